"""Rhythm against picture: onsets placed at known cut times, known event matchings, motion-following loudness."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.metrics.rhythm import (beat_f1, beat_transition_iou, event_hit_rate, inner_events,
                                             measure_rhythm, motion_loudness_correlation, onset_coverage,
                                             onset_times)

SR = 16_000


def _notes_at(times_s, duration_s, pitch=60):
    """FluidSynth piano notes starting exactly at `times_s`."""
    import mido

    from filmscore.engine.audio.fluidsynth import render_midi

    mf = mido.MidiFile(ticks_per_beat=1000)  # 120 bpm: 1 tick = 0.5 ms
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    now = 0
    for t in times_s:
        on = int(round(t * 2000))
        tr.append(mido.Message("note_on", note=pitch, velocity=110, time=on - now))
        tr.append(mido.Message("note_off", note=pitch, velocity=0, time=200))
        now = on + 200
    wave = render_midi(mf, SR, reverb=False, chorus=False)
    n = int(duration_s * SR)
    return np.pad(wave, (0, max(0, n - wave.size)))[:n]


CUTS = (0.8, 1.7, 2.9)


@pytest.fixture(scope="module")
def on_cuts():
    return _notes_at(CUTS, 3.5)


def test_onsets_on_cuts_align(on_cuts):
    onsets = onset_times(on_cuts, SR)
    assert event_hit_rate(CUTS, onsets) == 1.0
    scores = measure_rhythm(on_cuts, SR, CUTS, CUTS, None)
    assert scores.cut_onset_rate == 1.0 and scores.hit_onset_rate == 1.0
    assert np.isnan(scores.motion_loudness_r)


def test_onsets_off_cuts_do_not(on_cuts):
    late = tuple(c + 0.25 for c in CUTS[:2])
    assert event_hit_rate(late, onset_times(on_cuts, SR)) == 0.0


def test_event_hit_rate_arithmetic():
    assert event_hit_rate([1.0, 2.0, 3.0, 4.0], [1.05, 2.071, 2.93, 9.0]) == pytest.approx(0.5)
    assert event_hit_rate([1.0], []) == 0.0
    assert np.isnan(event_hit_rate([], [1.0]))


def test_onset_coverage_is_the_chance_level(on_cuts):
    assert onset_coverage([1.0], 2.14) == pytest.approx(0.14 / 2.0, abs=2e-3)  # one 140 ms window in 2 s
    assert onset_coverage(np.arange(0, 3, 0.1), 3.0) == 1.0  # an onset every 100 ms covers everything
    assert onset_coverage([], 3.0) == 0.0
    assert measure_rhythm(on_cuts, SR, CUTS, CUTS, None).onset_chance < 0.4


def test_beat_f1_and_iou_known_matchings():
    ref = [1.0, 2.0, 3.0]
    assert beat_f1(ref, ref) == pytest.approx(1.0)
    # 2 of 3 matched with 4 estimates: P = 2/4, R = 2/3
    assert beat_f1(ref, [1.02, 2.05, 5.0, 6.0]) == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert beat_transition_iou(ref, [1.0, 2.05, 5.0]) == pytest.approx(2 / (3 + 3 - 2))
    assert beat_transition_iou(ref, [1.5]) == 0.0
    assert np.isnan(beat_f1([], [1.0])) and beat_f1([1.0], []) == 0.0


def test_inner_events_drop_the_edges():
    assert list(inner_events([0.0, 0.05, 1.0, 2.96, 3.0], 3.0)) == [1.0]


def test_motion_loudness_follows_motion():
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)  # 2 s period swell
    noise = rng.normal(0, 0.1, t.size).astype(np.float32)
    motion = 0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * np.arange(400) / 100)
    assert motion_loudness_correlation(motion, noise * (0.05 + env), SR) > 0.9
    assert motion_loudness_correlation(1 - motion, noise * (0.05 + env), SR) < -0.9
    assert np.isnan(motion_loudness_correlation(np.full(400, 0.3), noise, SR))
