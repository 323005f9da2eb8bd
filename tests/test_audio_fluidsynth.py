"""FluidSynth rendering with the real `fluidsynth` program and GM SoundFont (skipped, with the reason, without them)."""

from __future__ import annotations

import os
import shutil

import mido
import numpy as np
import pytest

from filmscore.engine.audio.fluidsynth import SynthError, find_soundfont, render_midi
from filmscore.engine.controls.audio import controls_from_audio
from filmscore.engine.controls.midi import controls_from_midi


def _have_synth() -> str | None:
    if shutil.which("fluidsynth") is None:
        return "the fluidsynth program is not installed (Debian package fluidsynth)"
    try:
        find_soundfont()
    except SynthError as e:
        return str(e)
    return None


needs_synth = pytest.mark.skipif(_have_synth() is not None, reason=_have_synth() or "")


def _scale(program=73, bpm=100):
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))]))
    tr = mido.MidiTrack([mido.Message("program_change", program=program)])
    for p in (72, 74, 76, 77, 79, 81, 83, 84):
        tr.append(mido.Message("note_on", note=p, velocity=100, time=0))
        tr.append(mido.Message("note_off", note=p, time=480))
    mid.tracks.append(tr)
    return mid


@needs_synth
def test_render_is_mono_float32_at_the_asked_rate(tmp_path):
    mid = _scale(program=0)  # piano: a fast attack
    path = tmp_path / "scale.mid"
    mid.save(str(path))
    wave = render_midi(path, sample_rate=22_050)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert wave.size >= int(mid.length * 22_050)  # the whole file, plus the release
    assert 0.01 < np.abs(wave).max() <= 1.0
    # sample 0 is MIDI time 0: the first note sounds within 20 ms
    assert np.argmax(np.abs(wave) > 0.01) < 0.02 * 22_050


@needs_synth
def test_rendered_theme_gives_back_its_melody():
    mid = _scale(program=73)  # flute
    c_midi = controls_from_midi(mid)
    c_audio = controls_from_audio(render_midi(mid, reverb=False, chorus=False), 16_000, n_frames=c_midi.n_frames)
    voiced = c_midi.melody.sum(axis=1) > 0
    agree = (c_midi.melody[voiced] * c_audio.melody[voiced]).sum(axis=1).mean()
    assert agree >= 0.9


def test_missing_soundfont_and_bad_options(tmp_path, monkeypatch):
    with pytest.raises(SynthError, match="nope.sf2: no such file"):
        find_soundfont(tmp_path / "nope.sf2")
    monkeypatch.setenv("FILMSCORE_SOUNDFONT", str(tmp_path / "env.sf2"))
    with pytest.raises(SynthError, match="env.sf2: no such file"):
        find_soundfont()
    monkeypatch.setattr("filmscore.engine.audio.fluidsynth.SOUNDFONT_DIRS", (tmp_path,))
    monkeypatch.delenv("FILMSCORE_SOUNDFONT")
    with pytest.raises(SynthError, match="install the Debian package fluid-soundfont-gm"):
        find_soundfont()
    with pytest.raises(SynthError, match="sample rate 4000"):
        render_midi(_scale(), sample_rate=4000)


@needs_synth
def test_unloadable_soundfont_is_a_named_error(tmp_path):
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont")
    with pytest.raises(SynthError, match="bad.sf2: not a SoundFont 2 file"):
        render_midi(_scale(), soundfont=bad)


@needs_synth
def test_failing_fluidsynth_is_a_named_error(tmp_path, monkeypatch):
    # a program named fluidsynth that fails, first on PATH
    fake = tmp_path / "bin" / "fluidsynth"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'fluidsynth: panic: out of memory' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    with pytest.raises(SynthError, match="fluidsynth failed \\(exit 3\\): fluidsynth: panic: out of memory"):
        render_midi(_scale())
