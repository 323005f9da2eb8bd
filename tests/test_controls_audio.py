"""Reference audio → controls (Music ControlNet recipe) on synthetic tones with hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.controls.audio import (DYNAMICS_FLOOR_DB, ReferenceAudioError, chroma_from_audio,
                                             controls_from_audio, energy_db)

SR = 16_000


def tone(freq, dur_s, amp=0.3, harmonics=(1.0, 0.5, 0.25), sr=SR):
    t = np.arange(int(round(dur_s * sr))) / sr
    return sum(amp * a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(harmonics)).astype(np.float32)


def rows(melody):
    return np.where(melody.sum(axis=1) > 0, melody.argmax(axis=1), -1)


def test_melody_rows_and_rests():
    # A4 1 s, E5 1 s, silence 1 s, C#5 1 s
    wave = np.concatenate([tone(440.0, 1), tone(659.26, 1), np.zeros(SR, np.float32), tone(554.37, 1)])
    c = controls_from_audio(wave, SR)
    assert c.n_frames == 400 and c.melody_present
    r = rows(c.melody)
    # away from the transitions (the 2048-sample chroma window spans +-6 frames) the rows are exact
    assert (r[10:90] == 9).all() and (r[110:190] == 4).all() and (r[215:285] == -1).all() and (r[310:390] == 1).all()
    assert set(np.unique(c.melody.sum(axis=1))) <= {0.0, 1.0}


def test_highpass_keeps_the_bass_from_the_argmax():
    # a loud A2 bass (110 Hz) under a quieter E5 melody: the 261.2 Hz high-pass leaves the melody on top
    wave = tone(110.0, 2, amp=0.5, harmonics=(1.0,)) + tone(659.26, 2, amp=0.1)
    r = rows(controls_from_audio(wave, SR).melody)
    assert (r[10:190] == 4).all()
    chroma, _ = chroma_from_audio(wave, SR)
    assert chroma.shape == (200, 12) and chroma.max() == pytest.approx(1.0)


def test_energy_frames_sit_on_the_mel_grid():
    # a step at exactly 1.0 s; frame i is centred on sample 160 i + 80 with a 1024-sample window:
    # frames <= 96 end before the step, frames >= 103 start after it.
    wave = np.concatenate([np.zeros(SR, np.float32), tone(500.0, 1, amp=0.5, harmonics=(1.0,))])
    e = energy_db(wave, 200)
    assert (e[:97] == DYNAMICS_FLOOR_DB).all()
    full = 10 * np.log10(0.5**2 / 2)
    np.testing.assert_allclose(e[103:195], full, atol=0.1)
    assert DYNAMICS_FLOOR_DB < e[100] < full


def test_dynamics_follow_a_6_db_step_smoothed():
    wave = np.concatenate([tone(440.0, 3, amp=0.4), tone(440.0, 3, amp=0.2)])
    d = controls_from_audio(wave, SR).dynamics
    assert d.shape == (600,) and d.dtype == np.float32
    assert d[150] - d[450] == pytest.approx(20 * np.log10(2), abs=0.2)
    assert abs(d[301] - d[299]) < 1.5  # Savitzky-Golay over ~1 s: a ramp, not a jump


def test_other_sample_rates_are_resampled():
    wave44 = tone(440.0, 2, sr=44_100)
    c = controls_from_audio(wave44, 44_100)
    assert c.n_frames == 200
    assert (rows(c.melody)[10:190] == 9).all()


def test_bass_only_reference_is_dynamics_only():
    bass = tone(82.4, 2, amp=0.5, harmonics=(1.0,))
    ramp = np.linspace(0.0, 1.0, 320, dtype=np.float32)  # 20 ms fades: an abrupt start is a broadband click
    bass[:320] *= ramp
    bass[-320:] *= ramp[::-1]
    c = controls_from_audio(bass, SR)
    assert not c.melody_present and c.melody.sum() == 0 and c.dynamics_present


@pytest.mark.parametrize("wave, sr, match", [
    (np.zeros(16000, np.float32), SR, "silent"),
    (np.zeros(0, np.float32), SR, "no samples"),
    (np.zeros((2, 100), np.float32), SR, "mono"),
    (np.full(100, np.nan, np.float32), SR, "NaN"),
    (np.ones(100, np.float32), 0, "sample rate"),
])
def test_bad_audio(wave, sr, match):
    with pytest.raises(ReferenceAudioError, match=match):
        controls_from_audio(wave, sr)
