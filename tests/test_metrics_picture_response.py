"""Picture response: contours of real audio with known levels, cues that follow (or ignore) real generated films,
exact permutation p-values of known matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from filmscore.engine.metrics.picture_response import (PictureResponseError, contour_distance, contour_r_matrix,
                                                       envelope_contour, event_accent_matrix, event_alignment_matrix,
                                                       event_onset_strength_matrix, local_tempo, loudness_contour,
                                                       matched_contrast, n_contour_frames, pairwise, tempo_distance)

SR = 16_000


def _tone(amplitude_at, duration_s: float, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A sine whose amplitude follows `amplitude_at(t)` (t in seconds, vectorised), plus -80 dB noise."""
    t = np.arange(int(duration_s * SR)) / SR
    rng = np.random.default_rng(seed)
    return (amplitude_at(t) * np.sin(2 * np.pi * freq * t) + 1e-4 * rng.standard_normal(t.size)).astype(np.float32)


def _following(envelope_100hz: np.ndarray, seed: int = 0, range_db: float = 30.0) -> np.ndarray:
    """Audio whose level in dB follows `envelope` (0..1 at 100/s) over `range_db`."""
    dur = envelope_100hz.size / 100
    t_env = np.arange(envelope_100hz.size) / 100
    return _tone(lambda t: 10 ** ((np.interp(t, t_env, envelope_100hz) - 1) * range_db / 20) * 0.5, dur, seed=seed)


def _clicks(times_s, duration_s: float) -> np.ndarray:
    """Decaying 1 kHz blips starting at `times_s`."""
    wave = np.zeros(int(duration_s * SR), np.float32)
    blip = (np.exp(-np.arange(1600) / 200) * np.sin(2 * np.pi * 1000 * np.arange(1600) / SR)).astype(np.float32)
    for t in times_s:
        i = round(t * SR)
        wave[i:i + blip.size] += blip[:wave.size - i]
    return wave


def test_loudness_contour_levels_and_length():
    wave = _tone(lambda t: np.where(t < 1.0, 0.1, 1.0), 2.05)
    c = loudness_contour(wave, SR)
    assert c.shape == (n_contour_frames(2.05),) == (20,)
    # RMS of a sine of amplitude a: a / sqrt(2)
    assert c[3] == pytest.approx(20 * math.log10(0.1 / math.sqrt(2)), abs=0.05)
    assert c[15] == pytest.approx(20 * math.log10(1.0 / math.sqrt(2)), abs=0.05)
    assert c[4] < c[10] < c[15]  # the window at 1.05 s straddles the step
    with pytest.raises(PictureResponseError):
        loudness_contour(np.zeros((2, 100)), SR)
    with pytest.raises(PictureResponseError):
        loudness_contour(np.zeros(100), SR)  # shorter than one frame


def test_envelope_contour_averages_over_the_same_windows():
    ramp = np.linspace(0.0, 1.0, 300)  # 3 s at 100/s
    e = envelope_contour(ramp, 100, 30)
    centres = (np.arange(30) + 0.5) / 10
    inner = slice(3, 27)  # away from the clipped ends
    assert np.allclose(e[inner], np.interp(centres[inner], np.arange(300) / 100, ramp), atol=0.01)


ENVELOPES = [  # 8 s at 100/s: four clearly different shapes
    np.linspace(0, 1, 800),
    np.linspace(1, 0, 800),
    np.r_[np.zeros(400), np.ones(400)],
    0.5 + 0.5 * np.sin(2 * np.pi * np.arange(800) / 400),
]


def test_cues_that_follow_their_envelope_score_on_the_diagonal():
    cues = [_following(e, seed=i) for i, e in enumerate(ENVELOPES)]
    n = n_contour_frames(8.0)
    contours = [loudness_contour(c, SR) for c in cues]
    envs = [envelope_contour(e, 100, n) for e in ENVELOPES]
    r = contour_r_matrix(contours, envs)
    assert np.all(np.diag(r) > 0.95)
    res = matched_contrast(r)
    assert res.exact and res.n_assignments == 24
    assert res.p_value == pytest.approx(1 / 24)  # only the true assignment is as good
    assert res.matched > 0.95 and res.difference > 0.5


def test_cues_that_ignore_the_picture_show_no_contrast():
    deaf = _following(ENVELOPES[0])
    contours = [loudness_contour(deaf, SR)] * 4  # the same cue whatever the film
    envs = [envelope_contour(e, 100, n_contour_frames(8.0)) for e in ENVELOPES]
    res = matched_contrast(contour_r_matrix(contours, envs))
    assert res.p_value == 1.0
    assert res.difference == pytest.approx(res.matched - res.mismatched)
    # the first "film" is matched once on the diagonal, among the others off it: no systematic gain
    assert abs(res.difference) < 0.7


def test_matched_contrast_known_matrices():
    res = matched_contrast(np.eye(3))
    assert (res.matched, res.mismatched, res.p_value, res.n_assignments) == (1.0, 0.0, pytest.approx(1 / 6), 6)
    flat = matched_contrast(np.full((3, 3), 0.4))
    assert flat.p_value == 1.0 and flat.difference == pytest.approx(0.0, abs=1e-12)
    big = matched_contrast(np.eye(9), n_samples=2000, seed=1)
    assert not big.exact and big.n_assignments == 2000 and big.p_value < 0.01
    with_nan = np.eye(3)
    with_nan[0, :] = np.nan  # a cue with nothing to score (a film without cuts) is left out
    res = matched_contrast(with_nan)
    assert res.matched == 1.0 and res.mismatched == 0.0
    assert res.to_json()["matched"] == 1.0
    for bad in (np.eye(1), np.ones((2, 3)), np.full((2, 2), np.nan)):
        with pytest.raises(PictureResponseError):
            matched_contrast(bad)


def test_event_alignment_matrix_on_real_onsets():
    from filmscore.engine.metrics.rhythm import onset_times

    cuts = [(1.0, 2.5, 4.0), (1.7, 3.2, 4.6)]
    onsets = [onset_times(_clicks(c, 5.5), SR) for c in cuts]
    m = event_alignment_matrix(onsets, cuts, 5.5)
    assert m.shape == (2, 2)
    assert np.allclose(np.diag(m), 1.0) and np.allclose(off_diag := m[[0, 1], [1, 0]], 0.0), (m, off_diag)
    assert math.isnan(event_alignment_matrix(onsets, [(), (9.0,)], 5.5)[0, 0])  # no cut inside the cue


def test_accent_at_cuts_of_real_audio():
    cuts = [(2.0, 4.0, 6.0), (3.5, 5.5)]
    # level +12 dB for 1 s from each of the first film's cuts
    wave = _tone(lambda t: np.where(np.any([(t >= c) & (t < c + 1.0) for c in cuts[0]], axis=0), 0.4, 0.1), 8.0)
    m = event_accent_matrix([loudness_contour(wave, SR)], cuts)
    assert m[0, 0] > 8.0  # the 400 ms window blurs the 12 dB step a little
    assert abs(m[0, 1]) < 1.0  # the other film cuts where the level is flat
    assert np.isnan(event_accent_matrix([loudness_contour(wave, SR)], [(0.1,)])[0, 0])  # no whole window before


def test_onset_strength_at_cuts_of_real_audio():
    from filmscore.engine.metrics.rhythm import onset_envelope

    cuts = [(1.0, 2.5, 4.0), (1.7, 3.2, 4.6)]
    envs = [onset_envelope(_clicks(c, 5.5), SR) for c in cuts]
    m = event_onset_strength_matrix(envs, cuts, 5.5)
    assert np.all(np.diag(m) > 3.0)  # blips on the cuts: far above the cue's typical instant
    assert np.all(m[[0, 1], [1, 0]] < 1.0)  # nothing at the other film's cuts
    res = matched_contrast(m)
    assert res.p_value == pytest.approx(0.5) and res.difference > 2.0
    assert np.isnan(event_onset_strength_matrix([np.zeros(550)], cuts[:1], 5.5)[0, 0])  # a silent cue
    assert matched_contrast(np.eye(8)).to_json()["p_value"] == 2.48e-05  # 1 / 8!, not rounded away to 0


def test_contour_and_tempo_distances():
    a = np.r_[np.full(30, -30.0), np.full(30, -20.0)]
    assert contour_distance(a, a) == 0.0
    assert contour_distance(a, a + 6.0) == pytest.approx(0.0)  # level is not shape
    flat = np.full(60, -25.0)
    assert contour_distance(a, flat, smooth_s=0.1) == pytest.approx(5.0)  # a +-5 dB step against flat
    silent = np.r_[np.full(30, -100.0), np.full(30, -20.0)]  # the same step into a deeper silence
    assert contour_distance(silent, a, smooth_s=0.1, range_db=10.0) == pytest.approx(0.0)
    assert contour_distance(silent, a, smooth_s=0.1, range_db=40.0) > 10.0
    assert tempo_distance(np.full(10, 120.0), np.full(10, 60.0)) == pytest.approx(1.0)
    d = pairwise([np.full(10, 100.0), np.full(10, 200.0), np.full(10, 400.0)], tempo_distance)
    assert np.allclose(d, [[0, 1, 2], [1, 0, 1], [2, 1, 0]])
    with pytest.raises(PictureResponseError):
        tempo_distance(np.zeros(3), np.ones(3))


def test_local_tempo_of_click_tracks():
    fast = local_tempo(_clicks(np.arange(0.25, 12, 60 / 120), 12.0), SR)
    slow = local_tempo(_clicks(np.arange(0.25, 12, 60 / 90), 12.0), SR)
    assert fast.shape == slow.shape == (120,)
    assert np.median(fast) == pytest.approx(120, rel=0.05)
    assert np.median(slow) == pytest.approx(90, rel=0.05)
    assert tempo_distance(fast, slow) == pytest.approx(math.log2(120 / 90), abs=0.08)


@pytest.mark.slow
def test_audio_following_a_generated_film_correlates_with_its_motion(tmp_path):
    """A real edit (still shot, then fast moving shapes, then a slow pan), encoded by the film encoder: audio
    loud where the picture moves follows it; audio loud where it is still follows it inversely."""
    from filmscore.engine.film import encode_video
    from filmscore.engine.film.synthetic import Shot, write_edit

    path = tmp_path / "edit.mp4"
    write_edit(path, [Shot("still", 3.0, seed=1), Shot("shapes", 3.0, speed=0.6, seed=2),
                      Shot("pan", 3.0, speed=0.05, seed=3)], width=128, height=72, fps=10)
    film = encode_video(path, cache=False)
    n = n_contour_frames(film.duration_s)
    motion = envelope_contour(film.motion, 100, n)
    assert motion[40:50].mean() > motion[5:25].mean() + 0.2  # the shapes move, the still does not

    level = np.clip(film.motion, 0, 1)
    follows, opposes = _following(level, seed=1), _following(1 - level, seed=2)
    r = contour_r_matrix([loudness_contour(follows, SR), loudness_contour(opposes, SR)], [motion])
    assert r[0, 0] > 0.9 and r[1, 0] < -0.9
