"""A reference recording's controls bent onto hit points through its tracked beats."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.controls.audio import controls_from_audio
from filmscore.engine.controls.midi import DYNAMICS_FLOOR_DB
from filmscore.engine.controls.reference_fit import fit_reference, track_beats

SR = 16_000
PITCHES_HZ = (523.25, 659.26, 783.99, 987.77)  # C5 E5 G5 B5: pitch classes 0, 4, 7, 11


def plucked(seconds=8.0, beat_s=0.5):
    """A new plucked note on every beat (120 BPM), cycling C E G B: an unambiguous beat and pitch grid."""
    n_beat = int(beat_s * SR)
    t = np.arange(n_beat) / SR
    env = np.exp(-t / 0.12)
    notes = [0.4 * env * np.sin(2 * np.pi * f * t) for f in PITCHES_HZ]
    return np.concatenate([notes[i % 4] for i in range(int(seconds / beat_s))]).astype(np.float32)


def rows(melody):
    return np.where(melody.sum(axis=1) > 0, melody.argmax(axis=1), -1)


@pytest.mark.slow
def test_tracked_beats_land_on_hits():
    wave = plucked()
    beats = track_beats(wave)
    assert np.median(np.diff(beats)) == pytest.approx(0.5, abs=0.02)
    own = controls_from_audio(wave, SR)
    controls, fit = fit_reference(own, beats, 800, hits_s=(2.3, 5.75))
    assert controls.n_frames == 800 and fit.hit_share == 1.0
    for h in (2.3, 5.75):
        i = int(round(h * 100))
        # a note starts at the hit: the pitch class changes across it (the chroma window smears +-6 frames)
        assert rows(controls.melody)[i - 10] != rows(controls.melody)[i + 10]
    stretches = fit._stretches()
    assert np.all((stretches > 0.84) & (stretches < 1.16))


def test_without_hits_the_recording_keeps_its_timing():
    wave = plucked(4.0)
    own = controls_from_audio(wave, SR)
    longer, fit = fit_reference(own, np.zeros(0), 600)
    np.testing.assert_array_equal(longer.melody[:400], own.melody)
    assert longer.melody[400:].sum() == 0 and longer.dynamics[-1] == DYNAMICS_FLOOR_DB and not fit.faded
    shorter, fit = fit_reference(own, np.zeros(0), 250)
    assert fit.faded and shorter.dynamics[-1] == DYNAMICS_FLOOR_DB
    np.testing.assert_allclose(shorter.dynamics[:100], own.dynamics[:100], atol=1e-4)
