"""`controls_for_request`: the render path's single call, for each source and for none."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import soundfile as sf

from filmscore.engine.controls.audio import ReferenceAudioError
from filmscore.engine.controls.fit import FittedTheme, fit_theme
from filmscore.engine.controls.maestros import load_theme
from filmscore.engine.controls.request import controls_for_request
from filmscore.engine.controls.theme import theme_from_midi
from filmscore.engine.errors import MidiError, RequestError


def _midi(tmp_path):
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))]))
    tr = mido.MidiTrack()
    for p in (60, 64, 67, 72, 67, 64, 60, 55):
        tr.append(mido.Message("note_on", note=p, velocity=90))
        tr.append(mido.Message("note_off", note=p, time=480))
    mid.tracks.append(tr)
    path = tmp_path / "theme.mid"
    mid.save(str(path))
    return path


def test_no_source_is_absent():
    c, fitted = controls_for_request(n_frames=123)
    assert fitted is None and c.n_frames == 123 and not c.melody_present and not c.dynamics_present


def test_midi_is_fitted_like_the_cli(tmp_path):
    path = _midi(tmp_path)
    c, fitted = controls_for_request(n_frames=1000, midi=path, hits_s=(2.0, 6.1))
    assert isinstance(fitted, FittedTheme) and c.n_frames == 1000
    same = fit_theme(theme_from_midi(path), 10.0, (2.0, 6.1)).controls(1000)
    np.testing.assert_array_equal(c.melody, same.melody)
    np.testing.assert_array_equal(c.dynamics, same.dynamics)
    assert fitted.hit_share == 1.0
    with pytest.raises(MidiError, match="track 5 does not exist"):
        controls_for_request(n_frames=100, midi=path, track=5)


def test_maestro_is_seeded():
    c1, f1 = controls_for_request(n_frames=1500, maestro="mozart", seed=3)
    c2, f2 = controls_for_request(n_frames=1500, maestro="mozart", seed=3)
    assert f1.theme.name == f2.theme.name == load_theme("mozart", seed=3).name
    np.testing.assert_array_equal(c1.melody, c2.melody)
    _, f3 = controls_for_request(n_frames=1500, maestro="mozart", theme="mozart-05", seed=3)
    assert f3.theme.name.startswith("mozart-05")


def test_reference_audio(tmp_path):
    t = np.arange(32000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    c, fitted = controls_for_request(n_frames=300, reference_audio=(wave, 16000))
    assert fitted is None and c.n_frames == 300 and c.melody[10:190].argmax(axis=1).tolist() == [9] * 180
    assert c.melody[200:].sum() == 0  # padded with rests
    path = tmp_path / "silent.wav"
    sf.write(str(path), np.zeros(16000, np.float32), 16000)
    with pytest.raises(ReferenceAudioError, match="silent.wav: reference audio is silent"):
        controls_for_request(n_frames=100, reference_audio=path)


def test_conflicting_sources(tmp_path):
    with pytest.raises(RequestError, match="at most one of midi, reference audio, maestro"):
        controls_for_request(n_frames=100, midi=_midi(tmp_path), maestro="bach")
    with pytest.raises(RequestError, match="a theme id needs a maestro"):
        controls_for_request(n_frames=100, theme="3")
    with pytest.raises(RequestError, match="positive integer"):
        controls_for_request(n_frames=0, maestro="bach")
