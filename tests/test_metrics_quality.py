"""FAD-proxy: Fréchet distance on known Gaussians, handcrafted statistics of real audio."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.metrics.quality import frechet_distance, handcrafted_features, standardise


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean moved by (2, 0, 0): distance = |mu_a - mu_b|^2 = 4
    assert frechet_distance(a, a + np.array([2.0, 0, 0])) == pytest.approx(4.0, abs=1e-6)
    # isotropic scale s: Tr(S + s^2 S - 2 s S) = 3 (1 - s)^2 for S = I
    b = rng.normal(size=(4000, 3)) * 3.0
    assert frechet_distance(a, b) == pytest.approx(3 * (1 - 3) ** 2, rel=0.1)
    assert np.isnan(frechet_distance(a[:1], a))
    with pytest.raises(ValueError):
        frechet_distance(a, a[:, :2])


def test_handcrafted_features_tell_tone_from_noise():
    sr = 16_000
    t = np.arange(3 * sr) / sr
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    noise = np.random.default_rng(1).normal(0, 0.1, t.size).astype(np.float32)
    ft, fn = handcrafted_features(tone, sr), handcrafted_features(noise, sr)
    assert ft.shape == (3, 57) and np.all(np.isfinite(ft))
    assert ft[:, 40 + 9].mean() > 0.9  # chroma A (the 10th bin after 40 MFCC statistics)
    ref, tz, nz = standardise(np.concatenate([ft, ft]), ft, fn)
    assert frechet_distance(tz, ref) < frechet_distance(nz, ref)
