"""Mastering a mix and its stems together, so the delivered stems still sum to the delivered mix.

Loudness normalisation is measured on the mix only; whatever it does to the mix (one gain, and where the true peak
would pass the ceiling the look-ahead limiter's per-sample gain, `loudness.limiter_gains`) is done, sample for
sample, to every stem. Resampling and trimming are linear, so `sum(stems) == mix` before mastering stays true after
it up to float rounding. Normalising each stem on its own would not: a quiet percussion stem would be raised to
-23 LUFS like the mix, and the stems would no longer add up to anything the editor heard.
"""

from __future__ import annotations

import numpy as np

from ..options import DEFAULTS  # the render options' defaults (engine/options.py)
from .io import resample
from .loudness import (TRUE_PEAK_CEILING_DBTP, LoudnessError, LoudnessReport, limiter_gains, measure,
                       resolve_target)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if x.shape[0] >= n else np.pad(x, [(0, n - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def normalize_with_stems(mix: np.ndarray, stems: dict[str, np.ndarray], sample_rate: int,
                         target: str | float = "ebu-r128", ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP
                         ) -> tuple[np.ndarray, dict[str, np.ndarray], LoudnessReport]:
    """`mix` `(n, channels)` to `target` with true peak <= ceiling, as `normalize_loudness` does it (gain, then
    limit and gain again until both hold), with each of `stems` (same shape) given the mix's gains. float32 out."""
    target_lufs = resolve_target(target)
    base = np.asarray(mix, np.float64)
    if base.shape[0] < int(0.4 * sample_rate):
        raise LoudnessError(f"audio of {base.shape[0] / sample_rate:.3f} s is too short to measure loudness (>= 0.4 s)")
    for name, s in stems.items():
        if np.shape(s) != base.shape:
            raise LoudnessError(f"stem {name!r} has shape {np.shape(s)}, the mix {base.shape}")
    followers = {k: np.asarray(v, np.float64) for k, v in stems.items()}
    meas = measure(base.astype(np.float32), sample_rate)
    start = meas.integrated_lufs()
    if not np.isfinite(start):
        raise LoudnessError("the audio is silent: its loudness cannot be normalised")
    gain, limited, lufs = 1.0, False, start
    for _ in range(6):  # the loop of loudness.normalize_loudness, with the limiter's gains applied to the stems too
        gain = gain * 10 ** ((target_lufs - lufs) / 20.0)
        if meas.true_peak_dbtp(gain) > ceiling_dbtp:
            x = base.reshape(base.shape[0], -1)
            for a, b, g in limiter_gains(x, sample_rate, ceiling_dbtp, gain):
                k = (gain * g)[:, None] if base.ndim == 2 else gain * g
                base[a:b] *= k
                for f in followers.values():
                    f[a:b] *= k
            gain, limited = 1.0, True
            meas = measure(base.astype(np.float32), sample_rate)
        lufs = meas.integrated_lufs(gain)
        if abs(lufs - target_lufs) < 0.1 and meas.true_peak_dbtp(gain) <= ceiling_dbtp:
            break
    x_peak = float(np.max(np.abs(mix)))
    out = (base * gain).astype(np.float32)
    gain_db = 20 * np.log10(float(np.max(np.abs(out))) / max(x_peak, 1e-12))
    report = LoudnessReport(target_lufs, float(lufs), float(meas.true_peak_dbtp(gain)), meas.loudness_range_lu(gain),
                            float(gain_db), limited, float(start))
    return out, {k: (f * gain).astype(np.float32) for k, f in followers.items()}, report


def master_with_stems(mix: np.ndarray, stems: dict[str, np.ndarray], sr_in: int, sr_out: int, n_samples: int,
                      target_lufs: float = DEFAULTS.target_lufs) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """`engine/audio/mastering.master` for a stereo mix `(n, 2)` and its stems: each resampled to `sr_out` and cut
    or padded to exactly `n_samples`, then `normalize_with_stems`. Returns the mix, the stems and the loudness
    report (of the mix) as JSON."""
    def prep(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return _fit(np.stack([resample(x[:, c], sr_in, sr_out) for c in range(x.shape[1])], axis=1), n_samples)

    out, out_stems, report = normalize_with_stems(prep(mix), {k: prep(v) for k, v in stems.items()}, sr_out,
                                                  target_lufs)
    return out, out_stems, report.to_json()
