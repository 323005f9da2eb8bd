"""bridge/cli/midi_in.py: recording logic fed with mido messages through the port callback, the .mid file it
writes, the whole command (render here, and queued on a live bridge), sending the fitted theme back, and a real
virtual port where the ALSA sequencer exists."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import mido
import pytest

from filmscore.bridge.cli import main
from filmscore.bridge.cli import midi_in as M
from filmscore.engine.errors import MidiError

HAS_SEQ = Path("/dev/snd/seq").exists()


class Clock:
    """A hand-driven clock (seconds)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def on(note, vel=80, ch=0):
    return mido.Message("note_on", note=note, velocity=vel, channel=ch)


def off(note, ch=0):
    return mido.Message("note_off", note=note, velocity=0, channel=ch)


def play(rec: M.ThemeRecorder, clock: Clock, script) -> None:
    """script: [(seconds to advance, message or None)]; None only advances the clock and polls."""
    for dt, msg in script:
        clock.t += dt
        if msg is None:
            rec.poll()
        else:
            rec.feed(msg)


def test_records_from_first_note_and_stops_on_the_stop_note():
    clock = Clock()
    rec = M.ThemeRecorder(clock=clock)
    play(rec, clock, [(0, mido.Message("control_change", control=7, value=100)),  # before the first note: ignored
                      (1.0, on(60)), (0.5, off(60)), (0.0, on(64, 90)), (0.25, off(64)), (0.1, on(67)),
                      (0.4, on(108)), (0.1, off(108))])
    assert rec.done and rec.stop_reason == "stop note 108"
    assert [(n.pitch, round(n.start_s, 3), round(n.end_s, 3), n.velocity) for n in rec.notes] == [
        (60, 0.0, 0.5, 80), (64, 0.5, 0.75, 90), (67, 0.85, 1.25, 80)]  # 67 still held: ended at the stop


def test_stops_on_silence_only_when_nothing_sounds():
    clock = Clock()
    rec = M.ThemeRecorder(silence_s=2.0, clock=clock)
    play(rec, clock, [(0, None), (5.0, None)])
    assert not rec.done  # no note yet: waiting is not silence
    play(rec, clock, [(0, on(62)), (3.0, None)])
    assert not rec.done  # a held note is not silence
    play(rec, clock, [(0, off(62)), (1.9, None)])
    assert not rec.done
    play(rec, clock, [(0.2, None)])
    assert rec.done and rec.stop_reason == "2 s of silence" and rec.length_s == pytest.approx(3.0)


def test_midi_stop_message_and_sustain_pedal():
    clock = Clock()
    rec = M.ThemeRecorder(clock=clock, stop_note=None)
    play(rec, clock, [(0, on(60)), (0, mido.Message("control_change", control=64, value=127)), (0.5, off(60)),
                      (0.5, mido.Message("control_change", control=64, value=0)), (0.2, on(108)), (0.3, off(108)),
                      (0.1, mido.Message("stop"))])
    assert rec.stop_reason == "MIDI Stop message"
    # The pedal held 60 until it was lifted at 1.0 s; with no stop note, 108 is a played note.
    assert [(n.pitch, round(n.start_s, 3), round(n.end_s, 3)) for n in rec.notes] == [(60, 0.0, 1.0), (108, 1.2, 1.5)]


def test_length_limit_and_bad_settings():
    clock = Clock()
    rec = M.ThemeRecorder(clock=clock, max_s=1.0)
    play(rec, clock, [(0, on(60)), (1.5, None)])
    assert rec.done and rec.stop_reason == "1 s limit"
    with pytest.raises(MidiError, match="stop-note"):
        M.ThemeRecorder(stop_note=200)
    with pytest.raises(MidiError, match="silence"):
        M.ThemeRecorder(silence_s=0)
    with pytest.raises(MidiError, match="no notes"):
        M.ThemeRecorder().to_midi()


def test_written_midi_file_round_trips(tmp_path):
    clock = Clock()
    rec = M.ThemeRecorder(clock=clock)
    play(rec, clock, [(0, on(60)), (0.5, off(60)), (0, on(62, 100)), (0.5, off(62)), (0.25, on(64)), (0.75, off(64)),
                      (0.1, on(108))])
    path = tmp_path / "t.mid"
    rec.to_midi().save(path)
    t, got, starts = 0.0, [], {}
    for msg in mido.MidiFile(path):  # iterating a MidiFile gives times in seconds through its tempo map
        t += msg.time
        if msg.type == "note_on" and msg.velocity:
            starts[msg.note] = (t, msg.velocity)
        elif msg.type in ("note_off", "note_on"):
            got.append((msg.note, round(starts[msg.note][0], 4), round(t, 4), starts[msg.note][1]))
    assert got == [(60, 0.0, 0.5, 80), (62, 0.5, 1.0, 100), (64, 1.25, 2.0, 80)]
    # It is a theme the engine reads, note for note.
    from filmscore.engine.controls.midi import notes_from_midi, read_midi

    assert [n.pitch for n in notes_from_midi(read_midi(path))] == [60, 62, 64]


class FakePort:
    """Stands in for the rtmidi port only: a thread calls the same callback rtmidi's thread would, in real time."""

    def __init__(self, callback, script) -> None:
        self.closed = False
        self.thread = threading.Thread(target=self._play, args=(callback, script), daemon=True)
        self.thread.start()

    def _play(self, callback, script) -> None:
        for dt, msg in script:
            # The performer's timing, part of what is played: the command builds its recorder on the real clock.
            # The tests read the notes and the stop note, not the gaps.
            time.sleep(dt)
            callback(msg)

    def close(self) -> None:
        self.closed = True


THEME = [(0.05, on(62)), (0.3, off(62)), (0.0, on(66)), (0.3, off(66)), (0.0, on(69)), (0.4, off(69)), (0.05, on(108))]


@pytest.fixture()
def tiny_bundle(tmp_path_factory):
    from filmscore.engine.bundle_testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "b", seed=0)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_command_records_then_renders_and_sends_the_fitted_theme_back(tmp_path, tiny_bundle, monkeypatch, capsys):
    ports, sent = [], []

    def fake_open_input(recorder, port, connect):
        ports.append(FakePort(recorder.feed, THEME))
        return ports[-1]

    class Out:
        def send(self, msg):
            sent.append(msg)

        def close(self):
            pass

    monkeypatch.setattr(M, "open_input", fake_open_input)
    monkeypatch.setattr(M, "open_output", lambda name: Out())
    out = tmp_path / "cue.wav"
    rc = main(["midi-in", "-o", str(out), "--duration", "2", "--steps", "2", "--bundle", str(tiny_bundle),
               "--send-back", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert ports[0].closed and summary["notes"] == 3 and summary["stop"] == "stop note 108"
    assert Path(summary["theme"]) == tmp_path / "cue.played.mid"
    played = mido.MidiFile(summary["theme"])
    assert [m.note for m in played if m.type == "note_on" and m.velocity] == [62, 66, 69]
    import soundfile as sf

    assert sf.info(out).frames == 2 * 48000
    fitted = Path(summary["fitted_theme"])
    assert fitted.is_file() and summary["sent_back"]["messages"] == len(sent) > 0
    # The fitted theme is the played one (D, F#, A) on the cue's timing, played out in real time.
    assert {m.note % 12 for m in sent if m.type == "note_on" and m.velocity} == {2, 6, 9}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_command_queues_on_a_live_bridge(tmp_path, tiny_bundle, monkeypatch, capsys):
    from filmscore.bridge.client import BridgeClient
    from filmscore.bridge.server.launch import launch_server

    monkeypatch.setattr(M, "open_input", lambda recorder, port, connect: FakePort(recorder.feed, THEME))
    out = tmp_path / "out"
    out.mkdir()
    with launch_server(tmp_path / "state", media_roots=[tmp_path], output_roots=[out], bundle=tiny_bundle) as srv:
        rc = main(["midi-in", "-o", str(out / "q.wav"), "--queue", "--connection-file", str(srv.connection_file),
                   "--steps", "2", "--json"])
        assert rc == 0
        summary = json.loads(capsys.readouterr().out)
        with BridgeClient(srv.info) as c:
            final = c.wait(summary["job_id"], timeout_s=240)
            assert final["state"] == "finished", final
            result = c.result(summary["job_id"])
    assert Path(result["output"]) == out / "q.wav"
    assert result["metadata"]["controls"]["theme_midi"]  # the bridge fitted the played theme
    # Without a video or --duration the cue is as long as the played theme (at least the engine's 1 s).
    assert result["duration_s"] == pytest.approx(max(summary["played_s"], 1.0), abs=1e-3)


def test_port_error_is_one_clear_line(tmp_path, capsys):
    if HAS_SEQ:
        pytest.skip("the ALSA sequencer exists here: opening a virtual port succeeds")
    rc = main(["midi-in", "-o", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and "cannot open MIDI input 'filmscore in'" in err and "/dev/snd/seq" in err


@pytest.mark.skipif(not HAS_SEQ, reason="no ALSA sequencer (/dev/snd/seq): python-rtmidi cannot make virtual ports")
@pytest.mark.timeout(60)
def test_real_virtual_port():
    rec = M.ThemeRecorder(silence_s=0.5)
    port = M.open_input(rec, "filmscore test in", None)
    try:
        name = next(n for n in mido.get_output_names() if "filmscore test in" in n)
        with mido.open_output(name) as sender:
            for msg in (on(60), off(60), on(64), off(64)):
                sender.send(msg)
                time.sleep(0.1)  # a played note lasts: an on and its off sent at once make a note of no length
        M.record(rec, port)
    finally:
        port.close()
    assert [n.pitch for n in rec.notes] == [60, 64] and rec.stop_reason == "0.5 s of silence"
