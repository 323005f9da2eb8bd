"""Quality: "FAD-proxy", the Fréchet distance between generated cues and held-out corpus renders.

Fréchet Audio Distance (Kilgour et al. 2019) fits a Gaussian to embeddings of each set and reports
||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). filmscore computes the same distance on two feature sets
of its own, so it is named **FAD-proxy** and never presented as VGGish FAD (no VGGish weights can be fetched here):
- `embedding`: segment embeddings (3 s windows every 1 s) of the self-trained network (engine/metrics/embedding.py);
- `handcrafted`: per 1 s segment, mean and standard deviation of 20 MFCCs, the mean 12-bin chroma, and mean
  spectral centroid, bandwidth, flatness and roll-off (log-scaled), onset-strength mean: 57 numbers,
  z-scored with the reference set's statistics so that no unit dominates.
Lower is closer to the reference. With few segments the covariance is poorly estimated (the distance is biased
upwards for small sets): compare systems evaluated on the same set, as one report does.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..constants import MEL_HOP, MODEL_SAMPLE_RATE
from ..extras import require

SEGMENT_S = 1.0


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to `(N, D)` and `(M, D)`; nan with fewer than 2 rows in either."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) and (M, D), got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        return float("nan")
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # a singular product (fewer segments than dimensions) warns; handled below
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sa @ sb)
        if not np.all(np.isfinite(covmean)):  # regularise, as the FID reference code does
            eps = np.eye(sa.shape[0]) * 1e-6
            covmean = linalg.sqrtm((sa + eps) @ (sb + eps))
    covmean = np.real(covmean)
    d = float(np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(covmean))
    return max(d, 0.0)


def handcrafted_features(wave: np.ndarray, sr: int) -> np.ndarray:
    """`(S, 57)` statistics per 1 s segment of a mono recording (S = floor(duration), at least 1)."""
    librosa = require("librosa", "eval", "the quality metrics")

    from ..audio.io import resample

    y = resample(np.asarray(wave, np.float32), sr, MODEL_SAMPLE_RATE)
    sr = MODEL_SAMPLE_RATE
    kw = dict(n_fft=1024, hop_length=MEL_HOP)
    spec = np.abs(librosa.stft(y, **kw)) + 1e-10
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=spec ** 2, sr=sr)),
                                n_mfcc=20)
    chroma = librosa.feature.chroma_stft(S=spec ** 2, sr=sr)
    cent = np.log(librosa.feature.spectral_centroid(S=spec, sr=sr) + 1.0)
    bw = np.log(librosa.feature.spectral_bandwidth(S=spec, sr=sr) + 1.0)
    flat = np.log(librosa.feature.spectral_flatness(S=spec) + 1e-10)
    roll = np.log(librosa.feature.spectral_rolloff(S=spec, sr=sr) + 1.0)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(librosa.feature.melspectrogram(S=spec ** 2, sr=sr)),
                                         sr=sr)[None]
    t = mfcc.shape[1]
    seg = int(round(SEGMENT_S * sr / MEL_HOP))
    n = max(1, t // seg)
    rows = []
    for i in range(n):
        s = slice(i * seg, min(t, (i + 1) * seg))
        rows.append(np.concatenate([mfcc[:, s].mean(1), mfcc[:, s].std(1), chroma[:, s].mean(1),
                                    [cent[0, s].mean(), bw[0, s].mean(), flat[0, s].mean(), roll[0, s].mean(),
                                     onset[0, s].mean()]]))
    return np.asarray(rows, np.float64)


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """z-score every set with the reference set's mean and standard deviation."""
    mu = reference.mean(0)
    sd = reference.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    return [(x - mu) / sd for x in (reference, *others)]
