"""Transcription to a leading melody: skyline rule, chroma fallback and basic-pitch on a FluidSynth render."""

from __future__ import annotations

import pytest

from filmscore.engine.metrics.transcription import (TranscriptionError, basic_pitch_available, melody_from_audio,
                                                    resolve, skyline)

SR = 16_000
PITCHES = [72, 76, 79, 74]


@pytest.fixture(scope="module")
def phrase():
    import mido

    from filmscore.engine.audio.fluidsynth import render_midi

    mf = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.Message("program_change", program=73, time=0))
    for p in PITCHES:  # 0.5 s each at 120 bpm
        tr.append(mido.Message("note_on", note=p, velocity=100, time=0))
        tr.append(mido.Message("note_off", note=p, velocity=0, time=480))
    return render_midi(mf, SR, reverb=False, chorus=False)[: 2 * SR]


def _note_classes(melody):
    """Pitch class at the middle of each 0.5 s note."""
    return [int(melody[25 + 50 * k].argmax()) if melody[25 + 50 * k].sum() else -1 for k in range(len(PITCHES))]


def test_skyline_takes_the_highest_note():
    m = skyline([(0.0, 1.0, 48), (0.0, 0.5, 67), (0.5, 1.0, 64)], 100)
    assert m[10].argmax() == 7 and m[60].argmax() == 4 and m.sum() == 100


def test_chroma_transcriber_recovers_the_phrase(phrase):
    m, name = melody_from_audio(phrase, SR, "chroma")
    assert name == "chroma" and m.shape == (200, 12)
    assert _note_classes(m) == [p % 12 for p in PITCHES]


def test_unknown_transcriber_is_refused():
    with pytest.raises(TranscriptionError, match="unknown transcriber"):
        resolve("crepe")


@pytest.mark.skipif(not basic_pitch_available(), reason="basic-pitch not installed (pip install --no-deps "
                    "basic-pitch==0.4.0 pretty_midi resampy)")
def test_basic_pitch_recovers_the_phrase(phrase):
    m, name = melody_from_audio(phrase, SR, "basic-pitch")
    assert name == "basic-pitch"
    assert _note_classes(m) == [p % 12 for p in PITCHES]
