"""The semantic branch: the shipped EfficientNet-Lite0 weights are the real ImageNet ones, ONNX Runtime matches
PyTorch, and per-shot interpolation never crosses a cut."""

from __future__ import annotations

import os

import numpy as np
import pytest

from filmscore.engine.errors import BackendError
from filmscore.engine.film.semantic import (EfficientNetLite0, EfficientNetLiteConfig, OnnxBackbone, export_onnx,
                                            fill_frames, load_backbone)

MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's Grace Hopper portrait


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    import matplotlib
    from PIL import Image

    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    return np.asarray(Image.open(path).convert("RGB"))[None]


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite0:
    return load_backbone()


def test_shipped_weights_classify_a_real_photo(grace_hopper):
    net = EfficientNetLite0(EfficientNetLiteConfig(input_size=224))
    probs = net.classify(grace_hopper)
    assert probs.shape == (1, 1000)
    assert int(probs[0].argmax()) == MILITARY_UNIFORM


def test_embeddings_shape_and_determinism(backbone, grace_hopper):
    rng = np.random.default_rng(0)
    frames = np.concatenate([grace_hopper[:, :144 * 3:3, :256 * 2:2][:, :144, :256],
                             rng.integers(0, 255, (2, 144, 256, 3), dtype=np.uint8)])
    e1, e2 = backbone.embed(frames), backbone.embed(frames)
    assert e1.shape == (3, 1280) and e1.dtype == np.float32
    np.testing.assert_array_equal(e1, e2)
    assert np.isfinite(e1).all() and (e1.std(axis=1) > 0).all()
    assert backbone.embed(frames[:0]).shape == (0, 1280)


def test_onnx_runtime_parity(backbone, grace_hopper, tmp_path):
    import onnxruntime as ort

    path = export_onnx(backbone, tmp_path / "lite0.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    frames = np.concatenate([np.repeat(grace_hopper[:, :512, :512], 1, axis=0)[:, ::2, ::2],
                             rng.integers(0, 255, (3, 256, 256, 3), dtype=np.uint8)])
    x = backbone.preprocess(frames)
    want = backbone.embed(frames)
    got = sess.run(None, {"frames": x})[0]
    err = float(np.abs(got - want).max())
    print(f"ONNX Runtime vs PyTorch, max abs diff {err:.2e} (feature scale {np.abs(want).max():.2f})")
    assert err <= 1e-3
    # the encoder's own ORT path gives the same embeddings
    fast = load_backbone(onnx_cache=tmp_path / "cache")
    assert isinstance(fast, OnnxBackbone) and fast.path.is_file()
    np.testing.assert_allclose(fast.embed(frames), want, atol=1e-3)
    again = load_backbone(onnx_cache=tmp_path / "cache")  # reuses the export
    np.testing.assert_array_equal(again.embed(frames), fast.embed(frames))


def test_fill_frames_interpolates_within_shots_only():
    emb = np.array([[0.0], [10.0], [20.0], [30.0]], np.float32)
    idx = np.array([0, 5, 10, 15])
    out = fill_frames(idx, emb, 18, shot_starts=np.array([0, 7]))
    np.testing.assert_allclose(out[:6, 0], [0, 2, 4, 6, 8, 10])
    np.testing.assert_allclose(out[6, 0], 10)  # held to the end of shot 1: frame 10 is in the next shot
    np.testing.assert_allclose(out[7:11, 0], 20)  # held from the next shot's first computed frame
    np.testing.assert_allclose(out[12, 0], 24)
    np.testing.assert_allclose(out[15:, 0], 30)
    # a shot with no computed frame takes the nearest one
    out = fill_frames(idx, emb, 18, shot_starts=np.array([0, 6, 9]))
    np.testing.assert_allclose(out[6:9, 0], 10)


def test_unknown_backbone():
    with pytest.raises(BackendError, match="unknown"):
        load_backbone("clip-vit-b32")
