"""Issue 18's sound measures and maestro classifier on real audio whose answer is known (engine/metrics/sound.py,
engine/metrics/maestro_classifier.py)."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.metrics.maestro_classifier import (FEATURE_NAMES, MaestroClassifier, clip_features,
                                                         heldout_accuracy, train_maestro_classifier)
from filmscore.engine.metrics.sound import (energy_above_db, fad_proxy, flatness_threshold, lr_correlation,
                                            noise_burst_share)

SR = 24_000


def melody(seconds: float, seed: int, tonic: int = 60, minor: bool = False, bpm: float = 120.0,
           harmonics: int = 4, sr: int = SR) -> np.ndarray:
    """A melody of harmonic tones, one note per beat from the major or minor scale of `tonic`, with a soft
    attack and decay per note: notes, never noise."""
    rng = np.random.default_rng(seed)
    steps = np.array([0, 2, 3, 5, 7, 8, 10, 12] if minor else [0, 2, 4, 5, 7, 9, 11, 12])
    beat = 60.0 / bpm
    n_notes = int(np.ceil(seconds / beat))
    out = np.zeros(int(seconds * sr))
    t = np.arange(int(beat * sr)) / sr
    env = np.minimum(1.0, t / 0.01) * np.exp(-t / (beat * 0.8))
    for k in range(n_notes):
        f = 440.0 * 2 ** ((tonic + steps[rng.integers(0, 8)] - 69) / 12)
        note = sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, harmonics + 1)) * env
        a = int(k * beat * sr)
        seg = out[a:a + len(note)]
        seg += 0.2 * note[:len(seg)]
    return out.astype(np.float32)


def test_noise_bursts_inserted_raise_the_share():
    clean = [(melody(8.0, s), SR) for s in range(4)]
    thr = flatness_threshold(clean)
    base = melody(8.0, 10)
    assert noise_burst_share(base, SR, thr) <= 0.03
    noisy = base.copy()
    rng = np.random.default_rng(0)
    for a in np.arange(0.5, 8.0, 1.0):  # 8 bursts of 100 ms of white noise at the melody's level: 10 % of frames
        i = int(a * SR)
        noisy[i:i + SR // 10] = 0.15 * rng.standard_normal(SR // 10)
    share = noise_burst_share(noisy, SR, thr)
    assert 0.08 <= share <= 0.16  # 10 % of the time, plus the frames whose 43 ms window overlaps a burst's edge
    # stereo input is measured on its mid
    assert noise_burst_share(np.stack([noisy, noisy], 1), SR, thr) == pytest.approx(share)


def test_energy_above_8k_known_tones():
    t = np.arange(SR * 2) / SR
    low = np.sin(2 * np.pi * 1000 * t)
    assert energy_above_db(low, SR) < -60
    both = low + np.sin(2 * np.pi * 10_000 * t)
    assert energy_above_db(both, SR) == pytest.approx(-3.01, abs=0.05)  # half the energy above 8 kHz
    assert energy_above_db(low + 0.1 * np.sin(2 * np.pi * 10_000 * t), SR) == pytest.approx(-20.04, abs=0.1)


def test_lr_correlation_known_pairs():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(SR), rng.standard_normal(SR)
    assert lr_correlation(np.stack([a, a], 1)) == pytest.approx(1.0)
    assert lr_correlation(np.stack([a, -a], 1)) == pytest.approx(-1.0)
    assert abs(lr_correlation(np.stack([a, b], 1))) < 0.05
    assert lr_correlation(np.stack([a + b, a - 0.0 * b], 1)) == pytest.approx(1 / np.sqrt(2), abs=0.03)
    with pytest.raises(ValueError):
        lr_correlation(a)


def test_fad_proxy_orders_sets():
    ref = [(melody(6.0, s), SR) for s in range(6)]
    same = [(melody(6.0, 100 + s), SR) for s in range(6)]
    rng = np.random.default_rng(2)
    noise = [(0.1 * rng.standard_normal(6 * SR).astype(np.float32), SR) for _ in range(6)]
    d_same, d_noise = fad_proxy(same, ref), fad_proxy(noise, ref)
    assert d_same < d_noise / 5


def _style_corpus(n_works: int = 6, clips: int = 2):
    """Three synthetic masters that differ as the corpus's do, in music rather than timbre alone: A major keys,
    fast; B minor keys, slow; C major, slow, pure tones. Every work has its own tonic and melody seeds."""
    style = {"A": dict(minor=False, bpm=150.0, harmonics=4), "B": dict(minor=True, bpm=72.0, harmonics=4),
             "C": dict(minor=False, bpm=80.0, harmonics=1)}
    out = []
    for m, kw in style.items():
        for w in range(n_works):
            tonic = 55 + (w * 5) % 12
            for c in range(clips):
                seed = ord(m) * 100 + w * 10 + c  # stable across runs (str hashes are salted)
                out.append((m, f"{m}{w}", clip_features(melody(20.0, seed, tonic=tonic, **kw), SR)))
    return out


def test_maestro_classifier_on_unseen_works():
    data = _style_corpus()
    train = [d for d in data if int(d[1][1:]) < 4]
    test = [d for d in data if int(d[1][1:]) >= 4]  # works never seen in training
    model = train_maestro_classifier([f for _, _, f in train], [m for m, _, _ in train])
    assert train[0][2].shape == (2, len(FEATURE_NAMES))
    acc = heldout_accuracy(model, [f for _, _, f in test], [m for m, _, _ in test])
    assert acc["n"] == 12 and acc["accuracy"] >= 0.9 and acc["chance"] == pytest.approx(1 / 3)
    # stored as plain arrays, predicts the same after a round trip
    again = MaestroClassifier.from_json(model.to_json())
    assert [again.predict_clip(f)[0] for _, _, f in test] == [model.predict_clip(f)[0] for _, _, f in test]
    # with the masters shuffled across works the same features learn nothing that carries to new works
    rng = np.random.default_rng(0)
    works = sorted({w for _, w, _ in train})
    fake = dict(zip(works, rng.permutation([w[0] for w in works])))
    shuffled = train_maestro_classifier([f for _, _, f in train], [fake[w] for _, w, _ in train])
    assert heldout_accuracy(shuffled, [f for _, _, f in test], [m for m, _, _ in test])["accuracy"] < acc["accuracy"]
