"""A CLIP image encoder from a local directory as the semantic backbone: tiny random-weight CLIP models saved with
transformers' `save_pretrained` in the test, loaded back through filmscore, run on real encoded video; ONNX Runtime
parity, the layout a bundle checks, and one-line errors for directories that are not CLIP image encoders."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from filmscore.engine.errors import BackendError, FilmscoreError, RequestError
from filmscore.engine.film import clip as film_clip
from filmscore.engine.film.clip import ClipImageBackbone
from filmscore.engine.film.semantic import BACKBONE_ENV, OnnxBackbone, load_backbone, shared_backbone
from filmscore.engine.film.synthetic import Shot, write_edit

transformers = pytest.importorskip("transformers", reason="the [clip] extra (transformers) is not installed")

VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "image_size": 32, "patch_size": 8}
PROJECTION = 16


def _processor():
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return cls(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FILMSCORE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A vision-only CLIP (CLIPVisionModelWithProjection), random weights, seeded."""
    import torch

    torch.manual_seed(0)
    cfg = transformers.CLIPVisionConfig(**VISION, projection_dim=PROJECTION)
    path = tmp_path_factory.mktemp("clip") / "tiny-clip-vision"
    transformers.CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    _processor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("film") / "edit.mp4"
    cuts = write_edit(path, [Shot("pan", 2.0, speed=0.2, seed=1), Shot("shapes", 2.0, speed=0.3, seed=2)], fps=25)
    return path, cuts


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 144, 256, 3), dtype=np.uint8)


def test_embeddings_shape_name_determinism(clip_dir, tmp_path):
    import shutil

    bb = load_backbone(str(clip_dir))
    assert isinstance(bb, ClipImageBackbone)
    assert re.fullmatch(r"clip-p8-[0-9a-f]{12}@32", bb.name) and bb.dim == PROJECTION
    frames = _frames(3)
    e1, e2 = bb.embed(frames), bb.embed(frames)
    assert e1.shape == (3, PROJECTION) and e1.dtype == np.float32
    np.testing.assert_array_equal(e1, e2)
    assert np.isfinite(e1).all() and not np.allclose(e1[0], e1[1])
    assert bb.embed(frames[:0]).shape == (0, PROJECTION)
    # the same weights under another folder name give the same backbone name (the layout names weights, not paths)
    shutil.copytree(clip_dir, tmp_path / "elsewhere")
    assert film_clip.inspect_clip_dir(tmp_path / "elsewhere").name == bb.name


def test_preprocessing_is_clips(clip_dir):
    """A flat grey frame: resized and centre-cropped to 32 x 32 it stays flat, then (v/255 - mean) / std per
    channel with the processor's own mean/std."""
    bb = load_backbone(str(clip_dir))
    frame = np.full((1, 90, 160, 3), 200, np.uint8)
    x = bb.preprocess(frame)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    mean, std = np.array(bb.processor.image_mean), np.array(bb.processor.image_std)
    np.testing.assert_allclose(x[0].mean(axis=(1, 2)), (200 / 255 - mean) / std, atol=1e-5)
    assert float(x.std(axis=(2, 3)).max()) < 1e-5


def test_full_clip_model_directory(tmp_path):
    """A whole CLIPModel (text tower too) saved by transformers: the image embeddings equal its own
    get_image_features on the processor's pixel values."""
    import torch

    torch.manual_seed(1)
    cfg = transformers.CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                     "vocab_size": 99, "max_position_embeddings": 16},
        vision_config=VISION, projection_dim=PROJECTION)
    model = transformers.CLIPModel(cfg).eval()
    path = tmp_path / "tiny-clip"
    model.save_pretrained(path)
    _processor().save_pretrained(path)
    bb = load_backbone(str(path))
    frames = _frames(2, seed=3)
    with torch.inference_mode():
        want = model.get_image_features(pixel_values=torch.from_numpy(bb.preprocess(frames)))
    want = getattr(want, "pooler_output", want).numpy()  # transformers 5 may wrap the features in an output
    np.testing.assert_allclose(bb.embed(frames), want, atol=1e-5)


def test_onnx_runtime_parity_and_cache(clip_dir, tmp_path, monkeypatch):
    torch_bb = load_backbone(str(clip_dir))
    fast = load_backbone(str(clip_dir), onnx_cache=tmp_path / "onnx")
    assert isinstance(fast, OnnxBackbone) and fast.dim == PROJECTION and fast.name == torch_bb.name
    assert fast.path.is_file() and fast.path.with_name("model.onnx.data").is_file()
    frames = np.concatenate([_frames(4, seed=5), np.full((1, 144, 256, 3), 30, np.uint8)])
    want = torch_bb.embed(frames)
    got = fast.embed(frames)
    err = float(np.abs(got - want).max())
    print(f"CLIP image encoder, ONNX Runtime vs PyTorch: max abs diff {err:.2e} (feature scale "
          f"{np.abs(want).max():.2f})")
    assert err <= 1e-3
    assert fast.embed(frames[:1]).shape == (1, PROJECTION)  # dynamic batch
    # a second load reads the export and never builds the PyTorch model
    monkeypatch.setattr(film_clip, "ClipImageBackbone", lambda *a, **k: pytest.fail("PyTorch model was loaded"))
    again = load_backbone(str(clip_dir), onnx_cache=tmp_path / "onnx")
    np.testing.assert_array_equal(again.embed(frames), got)


def test_encode_video_with_clip(clip_dir, video, monkeypatch, capsys):
    from filmscore.bridge.cli import main
    from filmscore.engine.film import encode_video
    from filmscore.engine.film.spec import default_feature_spec

    path, cuts = video
    bb = load_backbone(str(clip_dir))
    f = encode_video(path, cache=False, backbone=bb)
    other = f.emotion.shape[1] + f.aesthetic.shape[1]  # the branches that do not depend on the backbone
    assert f.semantic.shape == (40, PROJECTION) and f.frame_matrix().shape == (40, PROJECTION + other)
    assert f"semantic={bb.name}:{PROJECTION}/every5" in f.layout
    assert len(f.cuts_s) == len(cuts) and abs(f.cuts_s[0] - cuts[0]) <= 0.1 + 1e-6
    # within a shot the embeddings move (interpolated between computed frames), across the cut they jump
    cut = round(f.cuts_s[0] * 10)
    assert not np.allclose(f.semantic[cut - 1], f.semantic[cut])
    again = encode_video(path, cache=False, backbone=bb)
    np.testing.assert_array_equal(again.semantic, f.semantic)

    # $FILMSCORE_FILM_BACKBONE picks it for everything that asks for the default (training builds heads with it)
    monkeypatch.setenv(BACKBONE_ENV, str(clip_dir))
    dim, layout = default_feature_spec()
    assert dim == PROJECTION + other and layout == f.layout
    monkeypatch.delenv(BACKBONE_ENV)
    # and `filmscore encode --backbone DIR`
    assert main(["encode", str(path), "--backbone", str(clip_dir), "--json", "--no-cache"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == f.layout and summary["feature_dim"] == PROJECTION + other


def test_bundle_trained_on_clip_refuses_efficientnet_features(clip_dir, video, tmp_path):
    """A film head built for CLIP features refuses the default encoder's; the error names both layouts."""
    from filmscore.engine.bundle_testing import make_tiny_bundle
    from filmscore.engine.film.encoder import feature_layout
    from filmscore.engine.film.spec import default_feature_spec
    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    clip_layout = feature_layout(load_backbone(str(clip_dir)))
    default_dim, default_layout = default_feature_spec()
    other = default_dim - shared_backbone().dim  # the branches that do not depend on the backbone
    bundle = make_tiny_bundle(tmp_path / "clip-bundle", feature_dim=PROJECTION + other, feature_layout=clip_layout,
                              with_vocoder=False)
    req = RenderRequest(output=tmp_path / "cue.wav", video=video[0], bundle=bundle, backend="torch", steps=1)
    with pytest.raises(RequestError) as err:
        render_cue(req)
    msg = str(err.value)
    assert clip_layout in msg and default_layout in msg and "efficientnet-lite0@128:1280" in msg and "\n" not in msg
    assert not (tmp_path / "cue.wav").exists()


def _save_other(tmp_path, name, write):
    path = tmp_path / name
    path.mkdir()
    write(path)
    return path


def test_directories_that_are_not_clip_image_encoders(tmp_path, clip_dir):
    import shutil

    import torch

    def vit(path):  # a ViT image classifier: a real transformers directory, not CLIP
        transformers.ViTModel(transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                                     intermediate_size=64, image_size=32,
                                                     patch_size=8)).save_pretrained(path)
        _processor().save_pretrained(path)

    def no_projection(path):  # CLIPVisionModel: the tower without the projection CLIP's embeddings come from
        torch.manual_seed(0)
        transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**VISION)).save_pretrained(path)
        _processor().save_pretrained(path)

    def no_processor(path):
        shutil.copytree(clip_dir, path, dirs_exist_ok=True)
        (path / "preprocessor_config.json").unlink()

    def no_weights(path):
        shutil.copytree(clip_dir, path, dirs_exist_ok=True)
        (path / "model.safetensors").unlink()

    def corrupt_weights(path):
        shutil.copytree(clip_dir, path, dirs_exist_ok=True)
        (path / "model.safetensors").write_bytes(b"not a safetensors file")

    def open_clip(path):
        (path / "open_clip_config.json").write_text("{}")
        (path / "open_clip_pytorch_model.bin").write_bytes(b"")

    cases = {
        "missing": (tmp_path / "missing", "no such directory"),
        "file": (clip_dir / "config.json", "is a file, not a directory"),
        "empty": (_save_other(tmp_path, "empty", lambda p: None), "no config.json"),
        "vit": (_save_other(tmp_path, "vit", vit), "'vit' model, not a CLIP image encoder"),
        "noproj": (_save_other(tmp_path, "noproj", no_projection), "weights lack"),
        "noproc": (_save_other(tmp_path, "noproc", no_processor), "no preprocessor_config.json"),
        "noweights": (_save_other(tmp_path, "noweights", no_weights), "holds no weights"),
        "corrupt": (_save_other(tmp_path, "corrupt", corrupt_weights), "cannot load a CLIP image encoder"),
        "openclip": (_save_other(tmp_path, "openclip", open_clip), "open_clip format"),
    }
    for name, (path, why) in cases.items():
        for onnx_cache in (None, tmp_path / "onnx"):
            with pytest.raises(BackendError) as err:
                load_backbone(str(path), onnx_cache=onnx_cache)
            msg = str(err.value)
            assert str(path) in msg and why in msg and "\n" not in msg, (name, msg)
    with pytest.raises(FilmscoreError, match="unknown"):
        load_backbone("clip-vit-b32")  # neither a known name nor a path


def test_cli_error_for_a_bad_backbone_is_one_line(video, tmp_path, capsys):
    from filmscore.bridge.cli import main

    assert main(["encode", str(video[0]), "--backbone", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and "no config.json" in err[0]
