"""Control adherence, as Music ControlNet (Wu et al. 2023, arXiv 2311.07069, sec. 5.2) defines it.

- Melody accuracy: frame-wise agreement of the pitch class between the requested melody and the melody re-extracted
  from the generated audio, over the frames where the request has a note (voiced frames). A generated frame that
  the extractor finds unvoiced counts as a miss.
- Dynamics correlation: Pearson r between the requested dynamics curve and the one re-extracted from the audio.
"""

from __future__ import annotations

import numpy as np


def melody_accuracy(requested: np.ndarray, extracted: np.ndarray) -> float:
    """`(T, 12)` one-hot (all-zero rows = rest) each; nan when the request has no voiced frame."""
    n = min(requested.shape[0], extracted.shape[0])
    req, ext = requested[:n], extracted[:n]
    voiced = req.sum(axis=1) > 0
    if not voiced.any():
        return float("nan")
    hit = (req[voiced].argmax(axis=1) == ext[voiced].argmax(axis=1)) & (ext[voiced].sum(axis=1) > 0)
    return float(hit.mean())


def dynamics_correlation(requested: np.ndarray, extracted: np.ndarray) -> float:
    """Pearson r of two `(T,)` dB curves (trimmed to the shorter); nan when either is constant."""
    n = min(requested.shape[0], extracted.shape[0])
    a, b = requested[:n].astype(np.float64), extracted[:n].astype(np.float64)
    if n < 2 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
