"""encode_video end to end on small real files written with PyAV: shapes, layout, cuts, cache, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from filmscore.engine.errors import VideoDecodeError
from filmscore.engine.film import FilmFeatures, encode_video
from filmscore.engine.film.synthetic import Shot, write_edit


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FILMSCORE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("film") / "edit.mp4"
    shots = [Shot("pan", 3.0, speed=0.2, seed=1), Shot("shapes", 3.0, speed=0.3, seed=2),
             Shot("still", 2.6, seed=3)]
    cuts = write_edit(path, shots, fps=25)
    return path, cuts


def test_encode_shapes_layout_and_cuts(clip):
    path, cuts = clip
    seen = []
    f = encode_video(path, cache=False, progress=lambda frac, msg: seen.append((frac, msg)))
    assert isinstance(f, FilmFeatures)
    assert f.n_frames == 86 and f.duration_s == pytest.approx(8.6)
    assert f.semantic.shape == (86, 1280) and f.emotion.shape == (86, 6) and f.aesthetic.shape == (86, 8)
    assert f.motion.shape == (860,) and 0 <= f.motion.min() and f.motion.max() <= 1
    assert f.frame_matrix().shape == (86, 1294)
    assert f.faces.shape == (86, 8) and f.extras["faces"] == "on"  # computed, not in the default layout's matrix
    assert f.as_layout(f"{f.layout}".replace("scene-affect-v1:6", "scene-affect-v1:6+faces-fer-v1:8")
                       ).frame_matrix().shape == (86, 1302)
    assert np.isfinite(f.frame_matrix()).all()
    assert "efficientnet-lite0" in f.layout and "scene-affect-v1:6" in f.layout and "aesthetic-v1:8" in f.layout
    assert len(f.cuts_s) == len(cuts)
    for got, want in zip(f.cuts_s, cuts):
        assert abs(got - want) <= 0.1 + 1e-6
    assert set(f.cuts_s) <= set(f.hit_points_s)
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    assert seen[-1][1] == f"86 frames, {len(cuts)} cuts"


def test_range_and_cache_roundtrip(clip, tmp_path):
    path, cuts = clip
    f1 = encode_video(path, start_s=2.0, duration_s=3.0)
    assert f1.n_frames == 30
    assert len(f1.cuts_s) == 1 and abs(f1.cuts_s[0] - (cuts[0] - 2.0)) <= 0.1 + 1e-6
    cached = list((tmp_path / "cache" / "features").glob("*.npz"))
    assert len(cached) == 1
    f2 = encode_video(path, start_s=2.0, duration_s=3.0)
    np.testing.assert_array_equal(f1.semantic, f2.semantic)
    assert f2.cuts_s == f1.cuts_s and f2.hit_points_s == f1.hit_points_s and f2.layout == f1.layout
    assert f2.extras["cut_kinds"] == f1.extras["cut_kinds"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        encode_video(tmp_path / "missing.mp4")
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all")
    with pytest.raises(VideoDecodeError, match="bogus.mp4"):
        encode_video(bogus)


def test_unreadable_cache_entry_is_recomputed(clip, tmp_path):
    path, _ = clip
    f1 = encode_video(path, duration_s=2.0)
    (entry,) = (tmp_path / "cache" / "features").glob("*.npz")
    entry.write_bytes(b"truncated")
    f2 = encode_video(path, duration_s=2.0)
    np.testing.assert_array_equal(f1.aesthetic, f2.aesthetic)
    assert FilmFeatures.load_npz(entry).n_frames == 20  # rewritten


def test_torch_and_onnx_runtime_backbones_agree(clip):
    from filmscore.engine.film.semantic import EfficientNetLite0, OnnxBackbone, load_backbone

    path, _ = clip
    ort_bb = load_backbone(onnx_cache=os.environ["FILMSCORE_CACHE_DIR"])
    torch_bb = EfficientNetLite0()
    assert isinstance(ort_bb, OnnxBackbone)
    a = encode_video(path, duration_s=3.0, cache=False, backbone=ort_bb)
    b = encode_video(path, duration_s=3.0, cache=False, backbone=torch_bb)
    assert a.layout == b.layout
    np.testing.assert_allclose(a.semantic, b.semantic, atol=1e-3)
    np.testing.assert_array_equal(a.aesthetic, b.aesthetic)
