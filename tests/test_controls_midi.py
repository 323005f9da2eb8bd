"""MIDI → notes and controls: real files written by mido, frame-exact expectations computed by hand.

Frame rule under test: a note sounds in frame i (covering [i/100, (i+1)/100) s) when it covers the frame centre,
i.e. frames [round(onset*100), round(offset*100)).
"""

from __future__ import annotations

import math

import mido
import numpy as np
import pytest

from filmscore.engine.controls.midi import (DYNAMICS_FLOOR_DB, controls_from_midi, notes_from_midi, read_midi,
                                            sf2_gain_db)
from filmscore.engine.errors import FilmscoreError, MidiError


def _track(events, name=None):
    """events: (delta_ticks, message) pairs."""
    tr = mido.MidiTrack()
    if name:
        tr.append(mido.MetaMessage("track_name", name=name, time=0))
    for dt, msg in events:
        tr.append(msg.copy(time=dt))
    return tr


def on(note, vel=100, ch=0):
    return mido.Message("note_on", note=note, velocity=vel, channel=ch)


def off(note, ch=0):
    return mido.Message("note_off", note=note, velocity=0, channel=ch)


def tempo(bpm):
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))


def cc(ctl, val, ch=0):
    return mido.Message("control_change", control=ctl, value=val, channel=ch)


def _save(mid, tmp_path, name="t.mid"):
    path = tmp_path / name
    mid.save(str(path))
    return path


def _rows(melody):
    """Per frame: pitch class, or -1 for a rest (all-zero row)."""
    return np.where(melody.sum(axis=1) > 0, melody.argmax(axis=1), -1)


def test_type0_frame_exact_melody(tmp_path):
    # 120 BPM, 480 ticks/beat: C4 0-0.5 s, E4 0.5-1.0 s, rest 1.0-1.5 s, G4 1.5-2.0 s
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(_track([(0, tempo(120)), (0, on(60)), (480, off(60)), (0, on(64)), (480, off(64)),
                              (480, on(67)), (480, off(67))]))
    c = controls_from_midi(_save(mid, tmp_path))
    assert c.n_frames == 200 and c.melody.dtype == np.float32
    expect = np.array([0] * 50 + [4] * 50 + [-1] * 50 + [7] * 50)
    np.testing.assert_array_equal(_rows(c.melody), expect)
    assert set(np.unique(c.melody.sum(axis=1))) <= {0.0, 1.0}
    notes = notes_from_midi(mid)
    assert [(n.onset_s, n.offset_s, n.pitch) for n in notes] == [(0.0, 0.5, 60), (0.5, 1.0, 64), (1.5, 2.0, 67)]
    assert notes[0].channel == 1 and notes[0].track == 0 and notes[0].velocity == 100


def test_type1_tempo_map_in_conductor_track(tmp_path):
    # 96 ticks/beat; conductor: 120 BPM for one beat (0.5 s), then 60 BPM (1 s per beat), then 240 BPM at beat 3.
    mid = mido.MidiFile(type=1, ticks_per_beat=96)
    mid.tracks.append(_track([(0, tempo(120)), (96, tempo(60)), (192, tempo(240))], name="conductor"))
    # part: 4 notes of one beat each: 0-0.5, 0.5-1.5, 1.5-2.5, 2.5-2.75 s
    mid.tracks.append(_track([(0, on(72)), (96, off(72)), (0, on(74)), (96, off(74)), (0, on(76)), (96, off(76)),
                              (0, on(77)), (96, off(77))], name="melody"))
    notes = notes_from_midi(_save(mid, tmp_path))
    assert [(n.onset_s, n.offset_s) for n in notes] == [(0.0, 0.5), (0.5, 1.5), (1.5, 2.5), (2.5, 2.75)]
    assert all(n.track == 1 for n in notes)
    c = controls_from_midi(mid)
    assert c.n_frames == 275
    expect = np.array([0] * 50 + [2] * 100 + [4] * 100 + [5] * 25)
    np.testing.assert_array_equal(_rows(c.melody), expect)


def test_tempo_change_inside_a_note_and_odd_division(tmp_path):
    # 7 ticks/beat (odd division); 60 BPM for 2 ticks then 120 BPM: note from tick 1 to 9:
    # onset 1/7 s; offset 2/7 + 7/14 s; frames [round(14.29), round(78.57)) = [14, 79)
    mid = mido.MidiFile(type=1, ticks_per_beat=7)
    mid.tracks.append(_track([(0, tempo(60)), (2, tempo(120))]))
    mid.tracks.append(_track([(1, on(61)), (8, off(61))]))
    (n,) = notes_from_midi(mid)
    assert n.onset_s == pytest.approx(1 / 7) and n.offset_s == pytest.approx(2 / 7 + 0.5)
    rows = _rows(controls_from_midi(mid).melody)
    assert rows.size == math.ceil((2 / 7 + 0.5) * 100)
    assert (rows[:14] == -1).all() and (rows[14:79] == 1).all()


def test_frame_centre_rule_at_the_boundaries():
    # 1000 ticks per second (120 BPM, 500 ticks/beat): a note from 0.014 s to 0.026 s covers frame 1's centre
    # (0.015) and frame 2's centre (0.025); one from 0.016 to 0.024 covers no centre.
    for (a, b), frames in (((14, 26), [1, 2]), ((16, 24), [])):
        mid = mido.MidiFile(type=0, ticks_per_beat=500)
        mid.tracks.append(_track([(0, tempo(120)), (a, on(69)), (b - a, off(69)), (100, on(40)), (10, off(40))]))
        rows = _rows(controls_from_midi(mid, n_frames=5).melody)
        assert list(np.nonzero(rows == 9)[0]) == frames


def test_smpte_division(tmp_path):
    # SMPTE 25 fps x 40 ticks per frame = 1000 ticks per second, tempo events ignored
    # division word 0xE728 (-25 fps in the high byte, 40 ticks per frame), as a signed short: -6360
    mid = mido.MidiFile(type=0, ticks_per_beat=-(25 * 256 - 40))
    mid.tracks.append(_track([(0, tempo(30)), (250, on(62)), (500, off(62))]))
    path = _save(mid, tmp_path)
    back = read_midi(path)
    assert back.ticks_per_beat < 0
    (n,) = notes_from_midi(back)
    assert (n.onset_s, n.offset_s) == (0.25, 0.75)


def test_highest_note_wins_drums_ignored_and_selection():
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(_track([(0, tempo(120))]))
    # track 1, channel 1: a long low line E3 for 2 s; track 2, channel 2: B4 for 0.5-1.5 s; drums at pitch 81 on ch 10
    mid.tracks.append(_track([(0, on(52, ch=0)), (1920, off(52, ch=0))]))
    mid.tracks.append(_track([(480, on(71, ch=1)), (960, off(71, ch=1))]))
    mid.tracks.append(_track([(0, on(81, ch=9)), (1920, off(81, ch=9))]))
    rows = _rows(controls_from_midi(mid).melody)
    np.testing.assert_array_equal(rows, [4] * 50 + [11] * 100 + [4] * 50)
    np.testing.assert_array_equal(_rows(controls_from_midi(mid, track=1).melody), [4] * 200)
    np.testing.assert_array_equal(_rows(controls_from_midi(mid, channel=2).melody), [-1] * 50 + [11] * 100 + [-1] * 50)
    assert {n.pitch for n in notes_from_midi(mid)} == {52, 71}
    assert {n.pitch for n in notes_from_midi(mid, drums=True)} == {52, 71, 81}
    with pytest.raises(MidiError, match="no pitched notes on track 3.*track 1 channel 1, track 2 channel 2"):
        controls_from_midi(mid, track=3)
    with pytest.raises(MidiError, match="track 9 does not exist"):
        notes_from_midi(mid, track=9)
    with pytest.raises(MidiError, match="channel 17 is outside"):
        notes_from_midi(mid, channel=17)


def test_overlapping_same_pitch_and_unterminated_notes():
    mid = mido.MidiFile(type=0, ticks_per_beat=100)  # 120 BPM: 200 ticks per second
    # two overlapping C5 notes (FIFO pairing), then a D5 never released: it ends with its track (tick 400)
    mid.tracks.append(_track([(0, on(72)), (20, on(72)), (20, off(72)), (20, off(72)), (0, on(74)),
                              (340, mido.MetaMessage("end_of_track"))]))
    notes = notes_from_midi(mid)
    assert [(n.onset_s, n.offset_s, n.pitch) for n in notes] == [(0.0, 0.2, 72), (0.1, 0.3, 72), (0.3, 2.0, 74)]


def test_dynamics_velocity_and_expression_curves():
    # 3 s at velocity 127, 3 s at velocity 64, 3 s rest, 3 s at 127 with CC11=64 from its start, CC7 default 100
    tpb = 1000  # 120 BPM: 2000 ticks per second
    mid = mido.MidiFile(type=0, ticks_per_beat=tpb)
    mid.tracks.append(_track([(0, tempo(120)), (0, on(60, 127)), (6000, off(60)), (0, on(60, 64)), (6000, off(60)),
                              (6000, cc(11, 64)), (0, on(60, 127)), (6000, off(60))]))
    d = controls_from_midi(mid).dynamics
    assert d.shape == (1200,) and d.dtype == np.float32
    vol = 40 * math.log10(100 / 127)  # GM default CC7 = 100
    assert d[150] == pytest.approx(vol, abs=0.05)
    assert d[450] == pytest.approx(vol + 40 * math.log10(64 / 127), abs=0.05)
    assert d[750] == pytest.approx(DYNAMICS_FLOOR_DB, abs=0.05)
    assert d[1050] == pytest.approx(vol + 40 * math.log10(64 / 127), abs=0.05)
    assert d.min() >= DYNAMICS_FLOOR_DB
    # smoothing (~1 s) makes the velocity step a ramp, not a jump
    assert abs(d[301] - d[299]) < 2.0


def test_dynamics_power_sum_of_a_chord_and_cc7():
    mid = mido.MidiFile(type=0, ticks_per_beat=1000)
    mid.tracks.append(_track([(0, tempo(120)), (0, cc(7, 127)), (0, on(60, 90)), (0, on(64, 90)), (8000, off(60)),
                              (0, off(64))]))
    d = controls_from_midi(mid).dynamics
    assert d[200] == pytest.approx(float(sf2_gain_db(90)) + 10 * math.log10(2), abs=0.05)


def test_drums_only_gives_dynamics_only_control():
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(_track([(0, on(36, 110, ch=9)), (480, off(36, ch=9))]))
    c = controls_from_midi(mid)
    assert not c.melody_present and c.dynamics_present
    assert c.melody.sum() == 0 and c.dynamics.max() > DYNAMICS_FLOOR_DB
    with pytest.raises(MidiError, match="no pitched notes; the file holds no pitched notes"):
        notes_from_midi(mid)


def test_n_frames_pads_and_trims():
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(_track([(0, on(60)), (480, off(60))]))
    assert controls_from_midi(mid, n_frames=80).n_frames == 80
    long = controls_from_midi(mid, n_frames=300)
    assert long.n_frames == 300 and (long.melody[60:].sum() == 0) and long.dynamics[-1] == DYNAMICS_FLOOR_DB


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"RIFF0000WAVEfmt ", "not a readable standard MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00\x00\x90\x3c", "not a readable"),
])
def test_corrupt_and_truncated_bytes(data, match):
    with pytest.raises(MidiError, match=match):
        read_midi(data)


def test_truncated_real_file(tmp_path):
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(_track([(0, on(60)), (480, off(60)), (0, on(62)), (480, off(62))]))
    path = _save(mid, tmp_path)
    cut = tmp_path / "cut.mid"
    cut.write_bytes(path.read_bytes()[:-9])
    with pytest.raises(MidiError, match=f"MIDI file {cut}: not a readable"):
        controls_from_midi(cut)


def test_bad_files_named_errors(tmp_path):
    with pytest.raises(MidiError, match="no such file"):
        read_midi(tmp_path / "missing.mid")
    empty = mido.MidiFile(type=0)
    empty.tracks.append(_track([(0, tempo(100))]))
    with pytest.raises(MidiError, match="holds no notes"):
        controls_from_midi(_save(empty, tmp_path, "empty.mid"))
    fast = mido.MidiFile(type=0)
    fast.tracks.append(_track([(0, mido.MetaMessage("set_tempo", tempo=1)), (0, on(60)), (480, off(60))]))
    with pytest.raises(MidiError, match=r"fast.mid: tempo 6e\+07 BPM at tick 0 of track 0 is outside"):
        controls_from_midi(_save(fast, tmp_path, "fast.mid"))
    type2 = mido.MidiFile(type=2)
    type2.tracks.append(_track([(0, on(60)), (480, off(60))]))
    with pytest.raises(MidiError, match="type 2"):
        read_midi(_save(type2, tmp_path, "t2.mid"))
    stray = mido.MidiFile(type=0, ticks_per_beat=1)  # one tick = 0.5 s: a stray event 3 hours out
    stray.tracks.append(_track([(0, on(60)), (1, off(60)), (3 * 3600 * 2, mido.MetaMessage("marker", text="x"))]))
    with pytest.raises(MidiError, match="spans 10800 s, more than the 3600 s allowed"):
        notes_from_midi(stray)
    assert issubclass(MidiError, FilmscoreError)
