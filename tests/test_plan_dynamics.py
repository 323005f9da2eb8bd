"""Picture dynamics on the absolute motion scale: a codec keyframe in a static H.264 shot (a real encode made with
PyAV, keyframe forced at 9.96 s) is not a swell; a static scene is quiet, not silent (the quietest 3 s within 20 dB
of the loudest), also beside a busy part of the same cue."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from filmscore.engine.cue_controls import dynamics_from_picture, picture_level
from filmscore.engine.film.features import FilmFeatures
from filmscore.engine.plan.dynamics import quietest_vs_loudest_db
from filmscore.engine.plan.compose import make_plan


def write_static_with_keyframe(path, seconds: float = 20.0, key_at: float = 9.96, fps: int = 25) -> None:
    """A dark, still scene with sensor noise, H.264 with one GOP except a keyframe forced at `key_at`."""
    import av

    rng = np.random.default_rng(0)
    h, w = 180, 320
    base = np.repeat(np.repeat(rng.random((h // 4, w // 4, 3)) * 0.12 + 0.06, 4, 0), 4, 1)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(fps))
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"crf": "32", "g": "1000", "keyint_min": "1000", "sc_threshold": "0"}
        for i in range(int(seconds * fps)):
            img = np.clip(base + rng.normal(0, 0.01, base.shape), 0, 1)
            f = av.VideoFrame.from_ndarray((img * 255).astype(np.uint8), format="rgb24")
            if abs(i / fps - key_at) < 0.5 / fps:
                f.pict_type = av.video.frame.PictureType.I
            for p in st.encode(f):
                out.mux(p)
        for p in st.encode():
            out.mux(p)


def test_keyframe_blip_in_a_static_shot_is_not_a_swell(tmp_path):
    from filmscore.engine.film import encode_video

    path = tmp_path / "static.mp4"
    write_static_with_keyframe(path)
    film = encode_video(path, faces=False, cache=False)
    assert film.motion.max() > 3 * np.median(film.motion)  # the keyframe does show in the motion envelope
    db = dynamics_from_picture(film, len(film.motion))
    print(f"static shot: motion peak {film.motion.max():.3f} at {film.motion.argmax() / 100:.2f} s, dynamics "
          f"{db.min():.2f}..{db.max():.2f} dB")
    assert db.max() - db.min() < 1.0  # an earlier version swelled by 8 dB there
    plan = make_plan(film.duration_s, film=film)
    assert quietest_vs_loudest_db(plan.dynamics_db, 10) <= 20.0


def _film(motion: np.ndarray) -> FilmFeatures:
    n = int(np.ceil(len(motion) / 10))
    z = np.zeros((n, 6), np.float32)
    return FilmFeatures(semantic=z, emotion=z, aesthetic=z, motion=motion.astype(np.float32), cuts_s=(),
                        duration_s=len(motion) / 100, layout="test")


def test_static_start_of_a_busy_cue_is_quiet_not_silent():
    motion = np.r_[np.full(2000, 0.005), np.full(4000, 0.7)]  # 20 s still, then 40 s of fast action
    db = dynamics_from_picture(_film(motion), len(motion))
    gap = quietest_vs_loudest_db(db, 100)
    print(f"60 s cue, still first 20 s: loudest - quietest 3 s = {gap:.1f} dB")
    assert gap <= 20.0 and db[:1800].mean() < db[2500:].mean() - 10  # quiet, and clearly quieter than the action


def test_absolute_scale_same_motion_same_level_in_any_cue():
    calm = np.full(1000, 0.1)
    a = picture_level(np.r_[calm, np.full(1000, 0.1)])
    b = picture_level(np.r_[calm, np.full(1000, 0.9)])
    assert np.allclose(a[:800], b[:800])  # the calm part does not depend on what else the cue holds
