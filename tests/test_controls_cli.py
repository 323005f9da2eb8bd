"""`filmscore controls` and `filmscore maestros`, run in-process through the real entry point."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import soundfile as sf

from filmscore.bridge.cli import main


def _midi(tmp_path, name="theme.mid"):
    mid = mido.MidiFile(type=0, ticks_per_beat=96)
    tr = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))])
    for p in (62, 66, 69, 74):
        tr.append(mido.Message("note_on", note=p, velocity=100))
        tr.append(mido.Message("note_off", note=p, time=96))
    mid.tracks.append(tr)
    path = tmp_path / name
    mid.save(str(path))
    return path


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_midi_own_timing(tmp_path, capsys):
    out = tmp_path / "c.npz"
    assert main(["controls", str(_midi(tmp_path)), "-o", str(out), "--json"]) == 0
    summary = _json(capsys)
    assert summary["n_frames"] == 200 and summary["fit"] is None and summary["kind"] == "midi"
    with np.load(out) as z:
        assert z["melody"].shape == (200, 12) and z["melody"].dtype == np.float32
        assert z["dynamics"].shape == (200,) and int(z["frame_rate"]) == 100
        assert z["melody"][:50].argmax(axis=1).tolist() == [2] * 50  # D


def test_midi_fitted_with_hits_midi_out_and_plot(tmp_path, capsys):
    out, mid_out, png = tmp_path / "c.npz", tmp_path / "fit.mid", tmp_path / "c.png"
    code = main(["controls", str(_midi(tmp_path)), "--duration", "12", "--hits", "3.9,8.1", "-o", str(out),
                 "--midi-out", str(mid_out), "--plot", str(png), "--json"])
    assert code == 0
    s = _json(capsys)
    assert s["n_frames"] == 1200 and s["fit"]["hit_share"] == 1.0 and s["fit"]["ends_on_bar"]
    assert mido.MidiFile(str(mid_out)).type == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_maestro_and_audio_inputs(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["controls", "--maestro", "haydn", "--theme", "3", "--duration", "20", "-o", str(out),
                 "--json"]) == 0
    assert _json(capsys)["fit"]["theme"].startswith("haydn-03")
    wav = tmp_path / "ref.wav"
    t = np.arange(44100 * 2) / 44100
    sf.write(str(wav), (0.3 * np.sin(2 * np.pi * 523.25 * t)).astype(np.float32), 44100)
    assert main(["controls", str(wav), "--duration", "3", "-o", str(out), "--overwrite", "--json"]) == 0
    s = _json(capsys)
    assert s["kind"] == "audio" and s["n_frames"] == 300 and 0.6 < s["voiced_share"] < 0.7
    # hits bend a recording through its tracked beats; each hit is reported
    assert main(["controls", str(wav), "--duration", "3", "--hits", "1.2", "-o", str(out), "--overwrite",
                 "--json"]) == 0
    s = _json(capsys)
    assert s["n_frames"] == 300 and s["fit"]["hits"][0]["hit_s"] == 1.2 and "beats_tracked" in s["fit"]


@pytest.mark.parametrize("argv, message", [
    (["controls", "-o", "x.npz"], "give an INPUT file"),
    (["controls", "--maestro", "bach", "-o", "x.txt"], "must end in .npz"),
    (["controls", "--maestro", "nobody", "-o", "x.npz"], "unknown maestro 'nobody'"),
    (["controls", "--maestro", "bach", "--hits", "1,a", "-o", "x.npz"], "expected seconds separated by commas"),
    (["controls", "MISSING.mid", "-o", "x.npz"], "MISSING.mid: no such file"),
    (["controls", "CORRUPT.mid", "-o", "x.npz"], "not a readable standard MIDI file"),
    (["controls", "THEME.mid", "--midi-out", "f.mid", "-o", "x.npz"], "--midi-out writes a fitted theme"),
    (["maestros", "wagner"], "unknown maestro 'wagner'"),
])
def test_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CORRUPT.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01")
    _midi(tmp_path, "THEME.mid")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_maestros_listing(capsys):
    assert main(["maestros", "--json"]) == 0
    lib = _json(capsys)["masters"]
    assert len(lib) >= 6 and all(m["n_themes"] >= 20 for m in lib)
    assert main(["maestros", "bach", "--json"]) == 0
    (bach,) = _json(capsys)["masters"]
    assert bach["themes"][0]["id"] == "bach-01" and bach["themes"][0]["source"].startswith("music21 corpus")
    assert main(["maestros"]) == 0
    assert "bach" in capsys.readouterr().out
