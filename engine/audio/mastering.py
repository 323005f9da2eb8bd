"""Delivery mastering: model-rate waveform -> the timeline's rate, exact length in samples, loudness-normalised
with true peak under the ceiling (engine/audio/loudness.py)."""

from __future__ import annotations

import numpy as np

from .io import resample
from .loudness import normalize_loudness


def master(wave: np.ndarray, sr_in: int, sr_out: int, n_samples: int, target_lufs: float = -23.0) -> tuple[np.ndarray, dict]:
    """Resample `(n,)` float audio, trim/pad to exactly `n_samples`, normalise it to `target_lufs` with true peak
    <= -1 dBTP. Returns the audio and the loudness report as JSON."""
    wave = np.asarray(wave, np.float32)
    out = resample(wave, sr_in, sr_out)
    out = out[:n_samples] if out.shape[0] >= n_samples else np.pad(out, (0, n_samples - out.shape[0]))
    # normalised in place unless `out` is still the caller's array (no resampling, nothing trimmed or padded)
    out, report = normalize_loudness(out, sr_out, target_lufs, in_place=not np.shares_memory(out, wave))
    return out, report.to_json()
