"""Clip cutting at bar lines and the arranged clip MIDI: lead on its own instrument and louder, CC11 dynamics."""

from __future__ import annotations

import numpy as np
import pytest
from filmscore.engine.controls.midi import controls_from_midi, notes_from_midi
from filmscore.engine.data.arrange import ClipSpec, arrange_clip, plan_clips
from filmscore.engine.data.music21_source import ParsedScore, PartNotes, Work
from filmscore.engine.data.orchestration import BY_NAME, ORCHESTRATIONS


def _tune(n_bars: int = 16, parts: int = 1) -> ParsedScore:
    """A C-major scale tune in 4/4, eighth... quarter notes, optionally with a held bass part."""
    rng = np.random.default_rng(0)
    mel = np.array([[q, 1.0, 60 + [0, 2, 4, 5, 7, 9, 11, 12][int(rng.integers(8))]] for q in range(4 * n_bars)])
    ps = [PartNotes("melody", "melody", mel)]
    if parts > 1:
        ps.append(PartNotes("bass", "accomp", np.array([[4.0 * b, 4.0, 48] for b in range(n_bars)])))
    return ParsedScore(Work("folk", "folk/test", "x.abc"), "test", ps, np.arange(0, 4.0 * n_bars, 4.0),
                       4.0 * n_bars, 0, "major")


def test_clips_are_10_to_30_s_at_bar_lines():
    p = _tune(64)
    for qpm in (60.0, 100.0, 150.0):
        clips = plan_clips(p, qpm, np.random.default_rng(1))
        assert clips and clips[0][0] == 0
        for a, b in clips:
            dur = (b - a) * 4 * 60 / qpm
            assert 10.0 <= dur <= 30.0
        assert all(c1[1] == c2[0] for c1, c2 in zip(clips[:-1], clips[1:]))


def test_too_short_a_piece_gives_no_clip():
    assert plan_clips(_tune(2), 120.0, np.random.default_rng(0)) == []


@pytest.mark.parametrize("parts", [1, 2])
def test_arranged_clip(parts):
    p = _tune(8, parts)
    orch = BY_NAME["epic"]
    arr = arrange_clip(p, ClipSpec(0, 8, 3, 120.0, 1.0, orch, 5))
    assert arr.duration_s == pytest.approx(16.0)
    assert arr.tonic == 3 and arr.mode == "major"
    mid = arr.midi
    assert mid.tracks[1].name == "melody"
    programs = {m.channel: m.program for t in mid.tracks for m in t if m.type == "program_change"}
    assert programs[0] == orch.lead and list(programs.values()).count(orch.lead) == 1
    lead = notes_from_midi(mid, track=1)
    rest = [n for n in notes_from_midi(mid) if n.track != 1]
    assert rest, "accompaniment is written"
    assert np.mean([n.velocity for n in lead]) > np.mean([n.velocity for n in rest]) + 15
    # the lead is transposed by 3 and lifted to the G4..F#5 register
    assert np.median([n.pitch for n in lead]) >= 67
    assert {(n.pitch - 3) % 12 for n in lead} <= {0, 2, 4, 5, 7, 9, 11}
    cc11 = [m.value for m in mid.tracks[1] if m.type == "control_change" and m.control == 11]
    assert len(set(cc11)) > 5
    # the MIDI melody control is exactly the lead line
    ctl = controls_from_midi(mid, track=1, n_frames=1600)
    voiced = ctl.melody.sum(1) > 0
    assert voiced.mean() > 0.9
    if parts == 1:
        assert any(t.name == "accomp 2" for t in mid.tracks)  # bass under a single-line tune
    assert arr.hits_s == arr.dynamics.accents_s


def test_every_orchestration_gives_the_lead_its_own_instrument():
    for o in ORCHESTRATIONS:
        assert o.lead not in (o.upper, o.bass, o.pad)
