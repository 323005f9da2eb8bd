"""Control adherence per cue and pooled: known answers on FluidSynth renders and constructed curves."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.controls.audio import controls_from_audio
from filmscore.engine.controls.types import Controls
from filmscore.engine.metrics.adherence import (CueAdherence, dynamics_correlation, measure_adherence,
                                                melody_accuracy, pool_adherence)

SR = 16_000


def _scale_midi(pitches, note_s=0.25, velocities=None):
    import mido

    mf = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.Message("program_change", program=73, time=0))  # flute: a clear fundamental
    ticks = int(round(note_s * 2 * 480))  # 120 bpm: a beat is 0.5 s
    for k, p in enumerate(pitches):
        v = velocities[k] if velocities is not None else 90
        tr.append(mido.Message("note_on", note=p, velocity=v, time=0))
        tr.append(mido.Message("note_off", note=p, velocity=0, time=ticks))
    return mf


@pytest.fixture(scope="module")
def melody_render():
    from filmscore.engine.audio.fluidsynth import render_midi

    pitches = [72, 74, 76, 77, 79, 81, 83, 84]
    wave = render_midi(_scale_midi(pitches, velocities=[40, 60, 80, 110, 127, 100, 70, 45]), SR, reverb=False,
                       chorus=False)
    return wave[: 2 * SR]


def test_identical_audio_scores_one(melody_render):
    requested = controls_from_audio(melody_render, SR)
    cue = measure_adherence(requested, melody_render, SR)
    assert cue.melody_accuracy == pytest.approx(1.0)
    assert cue.dynamics_r == pytest.approx(1.0)
    assert cue.melody_voiced > 100 and cue.melody_hits == cue.melody_voiced


def test_shifted_melody_scores_near_chance(melody_render):
    requested = controls_from_audio(melody_render, SR)
    shifted = Controls(np.roll(requested.melody, 5, axis=1), requested.dynamics)  # every note a fourth away
    assert measure_adherence(shifted, melody_render, SR).melody_accuracy < 0.15


def test_silence_misses_every_voiced_frame(melody_render):
    requested = controls_from_audio(melody_render, SR)
    quiet = np.random.default_rng(0).normal(0, 1e-6, melody_render.size).astype(np.float32)
    quiet[:10] = 0.01  # not silent for the extractor's refusal, but nothing voiced
    assert measure_adherence(requested, quiet, SR).melody_accuracy < 0.05


def test_absent_controls_score_nan(melody_render):
    cue = measure_adherence(Controls.absent(200), melody_render, SR)
    assert np.isnan(cue.melody_accuracy) and np.isnan(cue.dynamics_r) and cue.melody_voiced == 0


def test_reversed_dynamics_correlate_negatively():
    a = np.linspace(-30, -6, 300)
    assert dynamics_correlation(a, a[::-1]) == pytest.approx(-1.0)
    assert np.isnan(dynamics_correlation(a, np.full(300, -10.0)))


def test_melody_accuracy_counts_unvoiced_extraction_as_miss():
    req = np.zeros((4, 12), np.float32)
    req[[0, 1, 2], [0, 4, 7]] = 1  # frame 3 is a rest: not counted
    ext = np.zeros((4, 12), np.float32)
    ext[0, 0] = 1  # hit
    ext[1, 5] = 1  # wrong pitch class; frame 2 unvoiced: miss
    assert melody_accuracy(req, ext) == pytest.approx(1 / 3)


def _cue(hits, voiced, req, ext, acc=None):
    r = dynamics_correlation(np.asarray(req), np.asarray(ext))
    return CueAdherence(hits / voiced if acc is None else acc, r, hits, voiced, np.asarray(req, np.float32),
                        np.asarray(ext, np.float32), np.zeros((len(req), 12), np.float32))


def test_pooling_weights_frames_and_centres_cues():
    up = np.linspace(0, 10, 50)
    a = _cue(9, 10, up, up)  # 0.9 over 10 frames
    b = _cue(10, 90, up - 40, up + 40)  # 0.111 over 90 frames, far-apart levels: centred before pooling
    pooled = pool_adherence([a, b])
    assert pooled["melody_accuracy_pooled"] == pytest.approx(19 / 100)
    assert pooled["melody_accuracy_mean"] == pytest.approx((0.9 + 10 / 90) / 2)
    assert pooled["dynamics_r_micro"] == pytest.approx(1.0)
    assert pooled["dynamics_r_macro"] == pytest.approx(1.0)
    c = _cue(0, 10, up, up[::-1])
    assert pool_adherence([a, c])["dynamics_r_macro"] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(pool_adherence([])["melody_accuracy_pooled"])
