"""Loudness normalisation for delivery (pyloudnorm, ITU-R BS.1770-4).

Gain to the target integrated loudness, then, when the true peak exceeds the ceiling, a look-ahead peak limiter and
a new gain, until both hold (loudness within 0.1 LU). Presets: EBU R128 -23 LUFS, ATSC A/85 -24 LKFS, streaming
-16 LUFS; ceiling -1 dBTP. True peak: 4x oversampled sample peak (BS.1770-4 Annex 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import FilmscoreError

LOUDNESS_PRESETS: dict[str, float] = {"ebu-r128": -23.0, "atsc-a85": -24.0, "streaming": -16.0}
"""Target integrated loudness (LUFS / LKFS) by name."""
TRUE_PEAK_CEILING_DBTP = -1.0


class LoudnessError(FilmscoreError):
    """Audio whose loudness cannot be normalised (silent, shorter than one gating block) or a bad target."""


def resolve_target(target: str | float) -> float:
    """A preset name (`ebu-r128`, `atsc-a85`, `streaming`) or a number in LUFS -> LUFS."""
    if isinstance(target, str) and target in LOUDNESS_PRESETS:
        return LOUDNESS_PRESETS[target]
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise LoudnessError(f"loudness target {target!r}: give LUFS (e.g. -23) or one of "
                            f"{', '.join(LOUDNESS_PRESETS)}") from None
    if not -70.0 <= value <= 0.0:
        raise LoudnessError(f"loudness target {value} LUFS is outside -70..0")
    return value


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP of `(n,)` or `(n, channels)` float audio: 4x oversampled peak (BS.1770-4 Annex 2;
    at 96 kHz and above, 2x)."""
    from scipy.signal import resample_poly

    x = audio.reshape(audio.shape[0], -1).astype(np.float64)
    if x.shape[0] == 0:
        return float("-inf")
    up = 4 if sample_rate < 96000 else 2
    peak = float(np.max(np.abs(resample_poly(x, up, 1, axis=0))))
    peak = max(peak, float(np.max(np.abs(x))))
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def _limit(audio: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Look-ahead peak limiter: the gain each sample needs (from the 4x oversampled peak) is spread as a minimum
    over +-5 ms and held 50 ms, then smoothed over 5 ms; the smoothed gain never exceeds what a peak within its
    window needs, so the ceiling holds without clipping."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d
    from scipy.signal import resample_poly

    x = audio.reshape(audio.shape[0], -1)
    up = 4 if sample_rate < 96000 else 2
    os_peak = np.abs(resample_poly(x.astype(np.float64), up, 1, axis=0)).max(axis=1)
    peak = np.maximum(os_peak[: x.shape[0] * up].reshape(x.shape[0], up).max(axis=1), np.abs(x).max(axis=1))
    ceiling = 10 ** (ceiling_dbtp / 20.0) * 0.985  # a little headroom for the 24-bit rounding and filter ripple
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    attack = max(1, int(0.005 * sample_rate))
    hold = max(1, int(0.050 * sample_rate))
    g = minimum_filter1d(need, size=2 * attack + 1, mode="nearest")
    g = minimum_filter1d(g, size=hold, origin=-(hold // 2) + (0 if hold % 2 else 1), mode="nearest")
    g = uniform_filter1d(g, size=attack, mode="nearest")
    g = np.minimum(g, minimum_filter1d(need, size=2 * attack + 1, mode="nearest"))
    return (x * g[:, None]).reshape(audio.shape).astype(np.float32)


@dataclass(frozen=True)
class LoudnessReport:
    """What normalisation measured and did: loudness in LUFS, true peak in dBTP, loudness range in LU."""

    target_lufs: float
    integrated_lufs: float
    true_peak_dbtp: float
    loudness_range_lu: float | None
    gain_db: float
    limited: bool
    input_lufs: float

    def to_json(self) -> dict:
        return asdict(self)


def normalize_loudness(audio: np.ndarray, sample_rate: int, target: str | float = "ebu-r128",
                       ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> tuple[np.ndarray, LoudnessReport]:
    """Bring `(n,)` or `(n, channels)` float audio to `target` integrated loudness with true peak <= ceiling.

    Raises `LoudnessError` for audio shorter than one 400 ms gating block or silent throughout (its loudness is
    undefined: nothing to normalise)."""
    import pyloudnorm

    target_lufs = resolve_target(target)
    x = np.asarray(audio, np.float64)
    if x.shape[0] < int(0.4 * sample_rate):
        raise LoudnessError(f"audio of {x.shape[0] / sample_rate:.3f} s is too short to measure loudness (>= 0.4 s)")
    meter = pyloudnorm.Meter(sample_rate)
    start = meter.integrated_loudness(x)
    if not np.isfinite(start):
        raise LoudnessError("the audio is silent: its loudness cannot be normalised")
    y, limited, lufs = x, False, start
    for _ in range(6):
        y = y * 10 ** ((target_lufs - lufs) / 20.0)
        if true_peak_dbtp(y, sample_rate) > ceiling_dbtp:
            y = _limit(y, sample_rate, ceiling_dbtp).astype(np.float64)
            limited = True
        lufs = meter.integrated_loudness(y)
        if abs(lufs - target_lufs) < 0.1 and true_peak_dbtp(y, sample_rate) <= ceiling_dbtp:
            break
    try:
        lra = float(meter.loudness_range(y))
    except Exception:  # pyloudnorm < 0.2 has no loudness_range; very short audio has too few blocks
        lra = None
    tp = true_peak_dbtp(y, sample_rate)
    gain = 20 * np.log10(np.max(np.abs(y)) / max(np.max(np.abs(x)), 1e-12))
    return y.astype(np.float32), LoudnessReport(target_lufs, float(lufs), float(tp), lra, float(gain), limited,
                                                float(start))
