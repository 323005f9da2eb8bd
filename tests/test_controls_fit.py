"""Fitting themes to picture: tempo, start, repeats on bar lines, hit points on strong beats, fade, fitted MIDI."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from filmscore.engine.controls.fit import FitError, FitSettings, fit_theme
from filmscore.engine.controls.midi import DYNAMICS_FLOOR_DB, notes_from_midi
from filmscore.engine.controls.theme import BEAT_DOWN, BEAT_PHRASE, BEAT_STRONG, theme_from_beats, theme_from_midi

# 2 bars of 4/4 at 120 BPM (bar = 2 s): C D E F | G (half) A (half)
ROWS = [(0, 1, 60, 90), (1, 1, 62, 80), (2, 1, 64, 80), (3, 1, 65, 80), (4, 2, 67, 90), (6, 2, 69, 80)]


def theme(**kw):
    return theme_from_beats(ROWS, bpm=120, meter=(4, 4), name="scale", **kw)


def rows(melody):
    return np.where(melody.sum(axis=1) > 0, melody.argmax(axis=1), -1)


def test_grid_kinds():
    t = theme()
    g_s, g_k = t.grid()
    np.testing.assert_allclose(g_s, [0, 1, 2, 3])
    assert list(g_k) == [BEAT_PHRASE, BEAT_STRONG, BEAT_DOWN, BEAT_STRONG]
    assert t.length_s == 4.0 and t.bpm == 120.0


def test_repeats_on_bar_lines_without_hits():
    ft = fit_theme(theme(), 8.0)
    assert ft.base_stretch == 1.0 and ft.ends_on_bar and ft.fade_out_s == 0.0 and ft.loops == 2
    assert [(n.onset_s, n.pitch) for n in ft.notes] == [(t + r * 4.0, p) for r in range(2)
                                                        for t, p in ((0, 60), (0.5, 62), (1, 64), (1.5, 65),
                                                                     (2, 67), (3, 69))]
    c = ft.controls()
    assert c.n_frames == 800
    once = [0] * 50 + [2] * 50 + [4] * 50 + [5] * 50 + [7] * 100 + [9] * 100
    np.testing.assert_array_equal(rows(c.melody), once + once)


def test_base_tempo_fills_whole_bars():
    ft = fit_theme(theme(), 8.6)  # 4 bars at 8.6/8 = 1.075 stretch (111.6 BPM)
    assert ft.base_stretch == pytest.approx(1.075)
    assert ft.ends_on_bar and ft.notes[-1].offset_s == pytest.approx(8.6)
    assert ft.notes[1].onset_s == pytest.approx(0.5 * 1.075)


def test_hits_land_on_strong_beats():
    hits = [2.1, 5.9, 9.0]
    ft = fit_theme(theme(), 12.0, hits)
    assert ft.hit_share == 1.0
    for h in ft.hits:
        assert abs(h.error_s) <= 0.070 and h.kind in ("phrase start", "downbeat", "strong beat")
    # each hit sits on a note onset (the theme has a note on every strong beat)
    onsets = np.array([n.onset_s for n in ft.notes])
    assert all(np.min(np.abs(onsets - h)) < 1e-6 for h in hits)
    s = FitSettings()
    stretches = ft._stretches()
    assert np.all(stretches >= ft.base_stretch * (1 - s.max_change) - 1e-9)
    assert np.all(stretches <= ft.base_stretch * (1 + s.max_change) + 1e-9)
    assert np.all(np.diff(ft.knots_cue_s) > 0) and np.all(np.diff(ft.knots_own_s) > 0)


def test_impossible_hits_are_reported_not_forced():
    # two hits 0.3 s apart cannot both fall on strong beats (1 s apart) within +-15 % tempo
    ft = fit_theme(theme(), 8.0, [3.0, 3.3])
    caught = [h.caught for h in ft.hits]
    assert caught.count(True) == 1 and ft.hit_share == 0.5
    missed = [h for h in ft.hits if not h.caught][0]
    assert abs(missed.error_s) > 0.070


def test_late_entrance_on_a_hit():
    # a hit at 0.6 s cannot be reached from a start at 0 (the first strong beat, 1 s, would need stretch 0.6)
    ft = fit_theme(theme(), 8.0, [0.6])
    assert ft.hits[0].caught and ft.knots_cue_s[0] == pytest.approx(0.6)
    assert ft.notes[0].onset_s == pytest.approx(0.6)
    assert rows(ft.controls().melody)[:60].max() == -1


def test_note_cut_at_the_end_fades_out():
    long = theme_from_beats([(0, 8, 72, 100)], bpm=120, meter=(4, 4))  # one 4 s note per loop (2 bars)
    ft = fit_theme(long, 3.0, settings=FitSettings(min_stretch=0.95, max_stretch=1.05))  # no bar line reachable
    assert not ft.ends_on_bar and ft.fade_out_s == 1.0
    assert ft.notes[0].offset_s == pytest.approx(3.0)
    d = ft.controls().dynamics
    assert d[-1] == DYNAMICS_FLOOR_DB
    assert d[150] == pytest.approx(40 * np.log10(100 / 127) + 40 * np.log10(100 / 127), abs=0.1)
    assert d[250] < d[150] - 3.0  # half-way down the fade: -6 dB


def test_pickup_is_played_once():
    rows_p = [(0, 1, 67, 80)] + [(1 + o, d, p, v) for o, d, p, v in ROWS]  # one-beat pickup, then 2 bars
    t = theme_from_beats(rows_p, bpm=120, meter=(4, 4), pickup_beats=1.0)
    assert t.length_beats == 9.0 and t.period_beats == 8.0
    ft = fit_theme(t, 8.5)
    onsets = [n.onset_s for n in ft.notes if n.pitch == 67 and n.offset_s - n.onset_s < 0.6]
    assert onsets == [0.0]  # the pickup G does not come back on the repeat
    assert ft.ends_on_bar and ft.notes[-1].offset_s == pytest.approx(8.5)
    second_c = [n.onset_s for n in ft.notes if n.pitch == 60]
    assert second_c == pytest.approx([0.5, 4.5])


def test_fitted_midi_round_trip(tmp_path):
    ft = fit_theme(theme(), 12.0, [0.6, 5.9, 9.0])
    path = tmp_path / "fit.mid"
    ft.write_midi(path)
    back = notes_from_midi(path)
    assert len(back) == len(ft.notes)
    for a, b in zip(back, ft.notes):
        assert (a.pitch, a.velocity, a.channel) == (b.pitch, b.velocity, b.channel)
        assert abs(a.onset_s - b.onset_s) < 1e-3 and abs(a.offset_s - b.offset_s) < 1e-3
    mid = mido.MidiFile(str(path))
    markers = [m.text for m in mid.tracks[0] if m.type == "marker"]
    assert markers[:3] == ["hit 1 0.600s", "hit 2 5.900s", "hit 3 9.000s"] and markers[-1] == "cue end"
    sigs = [(m.numerator, m.denominator) for m in mid.tracks[0] if m.type == "time_signature"]
    assert sigs[0][1] == 4 and (4, 4) in sigs
    # the theme's bar grid survives: its first downbeat falls on a tick that is a whole number of beats
    first_on = next(m for m in mido.merge_tracks(mid.tracks[1:]) if m.type == "note_on")
    assert first_on.time % mid.ticks_per_beat == 0


def test_theme_from_midi_tempo_map_and_metre(tmp_path):
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90)),
                                      mido.MetaMessage("time_signature", numerator=3, denominator=4)]))
    tr = mido.MidiTrack([mido.Message("program_change", program=40)])
    for p in (64, 65, 67, 69, 71):  # five quarter notes: 1 2/3 bars of 3/4 → loop of 2 bars
        tr.append(mido.Message("note_on", note=p, velocity=90))
        tr.append(mido.Message("note_off", note=p, time=480))
    mid.tracks.append(tr)
    path = tmp_path / "waltz.mid"
    mid.save(str(path))
    t = theme_from_midi(path, track=1)
    assert t.length_beats == 6.0 and t.bpm == pytest.approx(90.0)
    assert t.programs == {1: 40} and t.melody_track == 1
    g_s, g_k = t.grid()
    np.testing.assert_allclose(g_s, [0.0, 2.0], atol=1e-5)  # 3/4: downbeats only, no mid-bar strong beat
    ft = fit_theme(t, 8.0)
    assert ft.ends_on_bar and ft.base_stretch == pytest.approx(1.0, abs=1e-5)  # 4 bars of 2 s


@pytest.mark.parametrize("duration, hits, match", [
    (0.0, (), "positive"), (float("nan"), (), "positive"), (5.0, ("x",), "numbers"),
    (5.0, (float("inf"),), "finite"), (5.0, tuple(range(501)), "at most 500"),
])
def test_bad_fit_input(duration, hits, match):
    with pytest.raises(FitError, match=match):
        fit_theme(theme(), duration, hits)


def test_fitted_midi_marks_the_pickup_bar(tmp_path):
    rows_p = [(0, 1, 67, 80)] + [(1 + o, d, p, v) for o, d, p, v in ROWS]
    t = theme_from_beats(rows_p, bpm=120, meter=(4, 4), pickup_beats=1.0)
    ft = fit_theme(t, 8.5)
    mid = ft.to_midi()
    sigs, tick = [], 0
    for m in mid.tracks[0]:
        tick += m.time
        if m.type == "time_signature":
            sigs.append((tick, m.numerator, m.denominator))
    assert sigs[0] == (0, 1, 4) and sigs[1] == (480, 4, 4)  # a one-beat pickup bar, then the theme's 4/4
    path = tmp_path / "p.mid"
    ft.write_midi(path)
    back = notes_from_midi(path)
    assert [round(n.onset_s, 3) for n in back] == [round(n.onset_s, 3) for n in ft.notes]


@pytest.mark.parametrize("duration_s, hit_s", [(2.0, 1.2), (1.5, 1.0), (2.5, 1.6)])
def test_a_late_hit_in_a_short_cue_keeps_the_melody(duration_s, hit_s):
    """A hit past the middle of the only bar: entering on it leaves less than half a bar before the cue end, where
    the ending stops on the bar line before, so that fit plays no note. The fit must still play the theme (it did
    not: a 2 s cue with a picture cut at 1.2 s lost its MIDI melody) and catch the hit."""
    one_bar = theme_from_beats([(0, 1, 62, 90), (1, 1, 64, 80), (2, 1, 65, 80), (3, 1, 69, 80)], bpm=120,
                               meter=(4, 4), name="d-e-f-a")
    ft = fit_theme(one_bar, duration_s, [hit_s])
    assert [n.pitch for n in ft.notes] == [62, 64, 65, 69]
    assert ft.hits[0].caught
    assert ft.controls().melody_present
