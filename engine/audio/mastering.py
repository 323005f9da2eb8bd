"""Delivery mastering: model-rate waveform -> the timeline's rate, loudness-normalised (ITU-R BS.1770 via
pyloudnorm), peaks under a ceiling, exact length in samples."""

from __future__ import annotations

import logging

import numpy as np

from .io import resample

logger = logging.getLogger(__name__)

PEAK_CEILING_DBFS = -1.0  # EBU R128 allows -1 dBTP; sample peak with a 1 dB margin is a conservative stand-in


def master(wave: np.ndarray, sr_in: int, sr_out: int, n_samples: int, target_lufs: float = -23.0) -> tuple[np.ndarray, dict]:
    """Resample `(n,)` float audio, normalise its integrated loudness to `target_lufs`, keep sample peaks at or
    below PEAK_CEILING_DBFS (gain is lowered, never clipped), and trim/pad to exactly `n_samples`.
    Returns the audio and a report (measured loudness before/after, gain, peak)."""
    import pyloudnorm

    out = resample(np.asarray(wave, np.float32), sr_in, sr_out)
    out = out[:n_samples] if out.shape[0] >= n_samples else np.pad(out, (0, n_samples - out.shape[0]))
    meter = pyloudnorm.Meter(sr_out)
    loud = float(meter.integrated_loudness(out.astype(np.float64))) if n_samples >= sr_out * 0.4 else float("-inf")
    gain_db = 0.0
    if np.isfinite(loud):
        gain_db = target_lufs - loud
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    ceiling = 10 ** (PEAK_CEILING_DBFS / 20)
    if peak > 0 and peak * 10 ** (gain_db / 20) > ceiling:
        gain_db = 20 * np.log10(ceiling / peak)
        logger.info("loudness target %.1f LUFS would clip; limited to peak ceiling (gain %.1f dB)", target_lufs, gain_db)
    out = (out * 10 ** (gain_db / 20)).astype(np.float32)
    after = float(meter.integrated_loudness(out.astype(np.float64))) if np.isfinite(loud) else float("-inf")
    return out, {"loudness_in_lufs": loud, "loudness_lufs": after, "gain_db": float(gain_db),
                 "peak_dbfs": float(20 * np.log10(max(np.max(np.abs(out)) if out.size else 0.0, 1e-12))),
                 "target_lufs": target_lufs}
