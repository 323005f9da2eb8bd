"""Conform moves a cue's plan to the new cut (engine/plan/retime.py through bridge/timelines/conform.py's
`conform_plan`), on generated edit pairs (bridge/timelines/edit_pairs_testing.py): a cut moved by 1..48 frames, a
shot inserted, a shot removed, the cue region trimmed. Every cut of the new edit is on a beat of the moved plan
within +-25 ms and has a hit; outside the refitted spans the beats are the old ones moved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from filmscore.bridge.timelines.conform import conform_edit, conform_plan
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.edit_pairs_testing import FPS, KINDS, edit_pair
from filmscore.bridge.timelines.files import read_timeline
from filmscore.engine.plan.compose import make_plan
from filmscore.engine.plan.mood import MoodOverrides
from filmscore.engine.plan.plan import CuePlan
from filmscore.engine.plan.retime import Piece, retime_plan
from filmscore.engine.plan.tempo_map import HIT_TOLERANCE_S, Anchor


def _cues(pair):
    (old,) = read_cues(read_timeline(pair.old)).cues
    (new,) = read_cues(read_timeline(pair.new)).cues
    return old, new


def _cut_times(cue) -> list[float]:
    d = cue.duration.to_seconds()
    return [h.time.to_seconds() for h in cue.hits if h.kind == "cut" and 0 < h.time.to_seconds() < d]


def _old_plan(old, seed: int, energy: float) -> CuePlan:
    plan = make_plan(old.duration.to_seconds(), hits_s=_cut_times(old), overrides=MoodOverrides(energy=energy),
                     seed=seed)
    for track in ("melody", "harmony", "bass", "percussion"):  # make_plan can end a note at its start (to 0.1 ms)
        setattr(plan, track, [n for n in getattr(plan, track) if n.offset_s - n.onset_s >= 1e-3])
    return plan


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [3, 11, 27])
def test_every_new_cut_lands_on_a_beat_and_kept_beats_move_exactly(tmp_path, kind, seed):
    pair = edit_pair(tmp_path, seed, kind)
    old, new = _cues(pair)
    plan = _old_plan(old, seed, energy=0.2 + 0.2 * (seed % 4))
    plan.save(tmp_path / "old.plan.json")
    (c,) = conform_edit([old], [new]).cues
    assert c.status == "changed", pair.detail
    report = conform_plan(c, new, tmp_path / "old.plan.json", tmp_path / "new.plan.json")
    moved = CuePlan.load(tmp_path / "new.plan.json")  # a valid plan: JSON round trip
    assert (tmp_path / "new.plan.mid").is_file()
    assert moved.duration_s == pytest.approx(new.duration.to_seconds(), abs=1e-4)
    cuts = _cut_times(new)
    assert cuts, pair.detail
    err = np.abs(moved.tempo.hit_errors(cuts))
    assert err.max() <= HIT_TOLERANCE_S + 1e-4, (pair.detail, cuts, err)
    hits = np.asarray([h.time_s for h in moved.hits])
    assert all(np.abs(hits - t).min() <= 0.05 for t in cuts), pair.detail
    for h in moved.hits:  # each hit's beat is a beat of the plan
        assert np.abs(moved.tempo.beats - h.beat_time_s).min() < 1e-3
    # outside the refitted spans the old beats, moved by their stretch's offset
    for s in c.kept:
        ob = plan.tempo.beats + s.offset
        outside = (ob >= s.start) & (ob < s.end)
        for a, b in report.refitted:
            outside &= ~((ob >= a) & (ob < b))
        for t in ob[outside]:
            assert np.abs(moved.tempo.beats - t).min() < 2e-4, (pair.detail, t)
    if kind == "trim":
        assert report.refitted == []  # nothing to fit again: the same music, moved
        assert report.hits_new == 0


def test_a_cut_moved_one_frame_moves_its_beat_and_keeps_the_rest(tmp_path):
    """The smallest move: shot b starts one frame later; the click is fitted again only around the cut."""
    from filmscore.bridge.timelines.edit_pairs_testing import write_edit

    shots = [("a", 0, 48), ("b", 10, 48), ("c", 0, 72)]
    old_p = write_edit(tmp_path, "old", shots, (0, 168))
    new_p = write_edit(tmp_path, "new", [("a", 0, 49), ("b", 11, 47), ("c", 0, 72)], (0, 168))
    (old,) = read_cues(read_timeline(old_p)).cues
    (new,) = read_cues(read_timeline(new_p)).cues
    plan = _old_plan(old, 0, 0.5)
    (c,) = conform_edit([old], [new]).cues
    moved, report = retime_plan(plan, 7.0, [Piece(s.start, s.end, s.old_start) for s in c.kept], c.regenerate,
                                [Anchor(2 + 1 / FPS), Anchor(4.0)])
    assert report.refitted == [(pytest.approx(1.0), pytest.approx(2 + 1 / FPS + 1.0))]
    assert abs(moved.tempo.hit_errors([2 + 1 / FPS])[0]) <= HIT_TOLERANCE_S
    old_b = plan.tempo.beats
    for t in old_b[(old_b >= 0) & (old_b < 1.0 - 1e-6) | (old_b >= 3.05) & (old_b < 7.0)]:
        assert np.abs(moved.tempo.beats - t).min() < 1e-9
    assert report.hits_dropped == [pytest.approx(2.0)]  # the old cut's hit; the new cut's replaces it
    assert [round(h.time_s, 4) for h in moved.hits] == [round(2 + 1 / FPS, 4), 4.0]


def test_conform_plan_without_an_old_plan_writes_none(tmp_path):
    pair = edit_pair(tmp_path, 5, "move")
    old, new = _cues(pair)
    (c,) = conform_edit([old], [new]).cues
    stale = tmp_path / "new.plan.json"
    stale.write_text("{}")
    assert conform_plan(c, new, tmp_path / "missing.plan.json", stale) is None
    assert not stale.exists()


def test_edit_pair_kinds_are_what_they_say(tmp_path):
    for seed, kind in enumerate(KINDS):
        pair = edit_pair(tmp_path, 100 + seed, kind)
        old, new = _cues(pair)
        (c,) = conform_edit([old], [new]).cues
        assert c.status == "changed", pair.detail
        if kind == "trim":
            assert c.regenerate == () and len(c.kept) == 1
        else:
            assert c.regenerate, pair.detail
    with pytest.raises(ValueError, match="edit pair kind"):
        edit_pair(tmp_path, 0, "swap")
