"""Loudness normalisation for delivery (ITU-R BS.1770-4, the meter pyloudnorm implements).

Gain to the target integrated loudness, then, when the true peak exceeds the ceiling, a look-ahead peak limiter and
a new gain, until both hold (loudness within 0.1 LU). Presets: EBU R128 -23 LUFS, ATSC A/85 -24 LKFS, streaming
-16 LUFS; ceiling -1 dBTP. True peak: 4x oversampled sample peak (BS.1770-4 Annex 2).

Speed and memory (a 10-minute cue at 48 kHz is 29 M samples): the audio is measured in one pass of fixed-size chunks
(`measure`): K-weighting with the filter state carried from chunk to chunk, the gating blocks' energies from a
running sum of squares, the oversampled peak from a polyphase filter. Loudness and true peak scale exactly with a
gain, so a gain is applied to the measurement instead of measuring the scaled audio again; only a limited signal is
measured anew. The results equal pyloudnorm's meter and scipy's `resample_poly` peak to float rounding (tested),
in a fifth of the time and without a full-length float64 copy.

The oversampling filters are most of a measurement's cost, and most of a cue cannot reach the level that matters
(the running maximum, the limiter's ceiling): an oversampled value is at most 2.24x the largest sample within the
filter's reach, so a block whose samples are that far under the level is bounded, not filtered (`_sample_peaks`).
Every decision taken against the level is the one the exact values give: the same samples and report (tested);
a limited 60 s cue's delivery went from 1.27 s to 0.51 s, 3 of its 5 true-peak passes having been the filters.

Each pass splits into independent units that a `Workers` function may run at once: a channel's K-weighting (its
filter state runs through the cue), a chunk's true peak, a chunk's limiting (its gains need only the chunk and a
margin). numpy's convolution, scipy's filters and the working files' reads and writes release the GIL, so the
render's stage pool (engine/threads.py) spreads a delivery over the cores its model stages used. A unit's arithmetic
is the same whoever runs it and the units are combined in a fixed order (sums per channel, maxima, disjoint rows),
so the result does not depend on the number of workers (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import LoudnessError  # noqa: F401  (raised here; declared with the other named errors)
from ..options import LOUDNESS_PRESETS, option_field

TARGET_LUFS_RANGE = option_field("target_lufs").meta.range
"""The targets a delivery may ask for (LUFS): the render option's range (engine/options.py)."""
TRUE_PEAK_CEILING_DBTP = -1.0
CHUNK = 1 << 18  # samples per measuring pass chunk: ~2 MB of float64, flat in the cue's length
_BOUND_BLOCK = 2048  # samples per block whose oversampled peaks are computed or bounded as one (`_sample_peaks`)
_CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)  # BS.1770 channel weights (L, R, C, Ls, Rs)
_ABS_GATE = -70.0


Workers = Callable[[Callable[[Any], Any], Iterable[Any]], list]
"""Runs a function over items and returns the results in order, as `list(map(fn, items))` does; the render's stage
pool (engine/threads.py `StagePool.map`) runs them on its workers. Units of work are independent (module docstring)."""


def in_turn(fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
    """The default `Workers`: the units one after another, on the calling thread."""
    return [fn(x) for x in items]


def resolve_target(target: str | float) -> float:
    """A preset name (`ebu-r128`, `atsc-a85`, `streaming`) or a number in LUFS -> LUFS."""
    if isinstance(target, str) and target in LOUDNESS_PRESETS:
        return LOUDNESS_PRESETS[target]
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise LoudnessError(f"loudness target {target!r}: give LUFS (e.g. -23) or one of "
                            f"{', '.join(LOUDNESS_PRESETS)}") from None
    lo, hi = TARGET_LUFS_RANGE
    if not lo <= value <= hi:
        raise LoudnessError(f"loudness target {value} LUFS is outside {lo:g}..{hi:g}")
    return value


def _oversampling(sample_rate: int) -> int:
    return 4 if sample_rate < 96000 else 2


@lru_cache(maxsize=4)
def _phase_filters(up: int) -> tuple[tuple[np.ndarray, int], ...]:
    """scipy `resample_poly(x, up, 1)`'s own low-pass (Kaiser-windowed sinc, beta 5, 10 * up taps a side), split
    into its `up` polyphase branches: output sample `up * m + p` is `sum_k taps_p[k - k0_p] x[m - k]`."""
    from scipy.signal import firwin

    half = 10 * up
    h = firwin(2 * half + 1, 1.0 / up, window=("kaiser", 5.0)) * up
    out = []
    for p in range(up):
        k0 = -((half + p) // up)
        k1 = (half - p) // up
        out.append((h[half + p + up * np.arange(k0, k1 + 1)], k0))
    return tuple(out)


def _overshoot(sample_rate: int) -> float:
    """How far an oversampled value can exceed the largest input sample within the filter's reach: the largest sum
    of one phase's |taps| (|sum t_k x_k| <= sum |t_k| * max |x_k|; 2.24 at 4x), with room for float rounding."""
    return max(1.0, max(float(np.abs(t).sum()) for t, _ in _phase_filters(_oversampling(sample_rate)))) * (1 + 1e-9)


def _sample_peaks(x: np.ndarray, sample_rate: int, lo: int = 0, hi: int | None = None,
                  gain: float = 1.0, below: float = 0.0) -> np.ndarray:
    """float64 `(hi - lo,)`: for each sample in [lo, hi) of `(n, channels)` audio times `gain`, the largest
    magnitude of its oversampled values (all phases, all channels) and of itself. Computed chunk by chunk, with the
    filter's reach of real signal on either side (zeros only beyond the signal's ends, as resample_poly pads).

    `below`: a level the caller does not need exceeded exactly. Where `_overshoot` times the largest sample of a
    block of `_BOUND_BLOCK` samples and of the filter's reach either side is at most `below`, no peak in the block can
    pass it, and that bound (<= `below`, >= the true peaks) is given for the block's samples instead: the filters then
    run only on the blocks that can reach `below` (in a mastered cue, a few percent), and anything decided against
    `below` (the limiter's ceiling, a running maximum) is decided as it would be with every value exact."""
    n, chans = x.shape
    hi = n if hi is None else hi
    phases = _phase_filters(_oversampling(sample_rate))
    reach = max(len(t) for t, _ in phases)
    near = np.arange(-reach, reach + 1)
    out = np.empty(hi - lo)
    for a in range(lo, hi, CHUNK):
        b = min(a + CHUNK, hi)
        s0, s1 = max(a - reach, 0), min(b + reach, n)
        segs = np.ascontiguousarray(np.asarray(x[s0:s1], np.float64).T) * gain  # (chans, s1 - s0), one read
        mag = np.abs(segs).max(axis=0)
        edges = np.arange(0, b - a + _BOUND_BLOCK, _BOUND_BLOCK).clip(max=b - a)
        # the largest sample of each block, and within the filter's reach of each block edge (read from the segment;
        # past the segment's ends its end values, which only raises the bound): the largest within reach of a block
        inner = np.maximum.reduceat(mag[a - s0:b - s0], edges[:-1])
        at_edge = mag[(a - s0 + edges[:, None] + near).clip(0, s1 - s0 - 1)].max(axis=1)
        bound = _overshoot(sample_rate) * np.maximum(inner, np.maximum(at_edge[:-1], at_edge[1:]))
        peak = out[a - lo:b - lo]
        peak[:] = np.repeat(bound, np.diff(edges))
        todo = bound > below
        # runs of blocks that can pass `below`: their exact oversampled peaks
        flips = np.flatnonzero(np.diff(np.concatenate([[False], todo, [False]]).astype(np.int8)))
        for u, v in zip(edges[flips[0::2]], edges[flips[1::2]], strict=True):
            u0, v1 = max(a + u - reach, 0), min(a + v + reach, n)
            part = np.abs(segs[:, a + u - s0:a + v - s0]).max(axis=0)
            for seg in segs:
                sub = seg[u0 - s0:v1 - s0]
                for taps, k0 in phases:
                    y = np.convolve(sub, taps)  # y[i] = phase output at input index i + k0 (relative to u0)
                    i = a + u - u0 - k0
                    np.maximum(part, np.abs(y[i:i + v - u]), out=part)
            peak[u:v] = part
    return out


def _peak(x: np.ndarray, sample_rate: int, workers: Workers = in_turn) -> float:
    """The linear true peak of `(n, channels)` audio, a chunk a unit on `workers`. The true peak is at least the
    largest sample, so each chunk's filters run only where the peak can pass that (`_sample_peaks`' `below`)."""
    n = x.shape[0]
    largest = _abs_max(x)
    peaks = workers(lambda a: float(_sample_peaks(x, sample_rate, a, min(a + CHUNK, n), below=largest).max()),
                    range(0, n, CHUNK))
    return max([largest, *peaks])


def _as_2d(audio) -> np.ndarray:
    """`(n, channels)`: an array reshaped, or a 2-D sample source that reads like one (engine/audio/spill.py)."""
    if getattr(audio, "ndim", None) == 2 and not isinstance(audio, np.ndarray):
        return audio
    audio = np.asarray(audio)
    return audio.reshape(audio.shape[0], -1)


def _abs_max(x) -> float:
    """The largest sample magnitude of an array or sample source, a chunk at a time (no full-length temporary)."""
    n = x.shape[0]
    peak = 0.0
    for a in range(0, n, CHUNK):
        block = x[a:a + CHUNK]
        peak = max(peak, float(np.max(block)), -float(np.min(block)))
    return peak


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP of `(n,)` or `(n, channels)` float audio: 4x oversampled peak (BS.1770-4 Annex 2;
    at 96 kHz and above, 2x)."""
    x = _as_2d(audio)
    if x.shape[0] == 0:
        return float("-inf")
    peak = _peak(x, sample_rate)
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


@dataclass(frozen=True)
class _Blocks:
    """Gating blocks of one length and overlap: their sample bounds, as pyloudnorm computes them."""

    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def of(cls, n: int, rate: int, block_s: float, overlap: float) -> _Blocks:
        step = 1.0 - overlap
        count = int(np.round((n / rate - block_s) / (block_s * step))) + 1
        j = np.arange(count)
        lower = (block_s * (j * step) * rate).astype(np.int64)  # int() of the same float expressions
        upper = (block_s * (j * step + 1) * rate).astype(np.int64)
        return cls(np.minimum(lower, n), np.minimum(upper, n))


@dataclass(frozen=True)
class LoudnessMeasure:
    """One pass over a signal: mean-square K-weighted energy per channel of the 400 ms gating blocks (`z`) and of
    the 3 s loudness-range blocks (`z_range`, over the signal followed by 1.5 s of silence, EBU Tech 3342), and
    the linear true peak (None: not measured). Everything at a gain `g` follows: energies times g^2, peak times g.

    `z_free`: for a signal just limited, the part of `z` from the samples the limiter left alone (`Untouched`). The
    rest is held at the ceiling: limited again at a higher gain, it stays there to first order, while the free part
    rises with the gain; `gain_to` aims a next limiting pass with that, not with the whole signal's loudness."""

    z: np.ndarray  # (channels, blocks)
    z_range: np.ndarray | None  # None: too short for one 3 s block
    peak: float | None
    z_free: np.ndarray | None = None

    def _block_loudness(self, z: np.ndarray, gain: float) -> np.ndarray:
        g = np.asarray(_CHANNEL_GAINS[:z.shape[0]])[:, None]
        with np.errstate(divide="ignore"):
            return -0.691 + 10.0 * np.log10((g * z * gain * gain).sum(axis=0))

    def integrated_lufs(self, gain: float = 1.0) -> float:
        """Gated integrated loudness (BS.1770-4) of the signal times `gain`; -inf when silent."""
        z = self.z * gain * gain
        loud = self._block_loudness(self.z, gain)
        g = np.asarray(_CHANNEL_GAINS[:z.shape[0]])
        above = loud >= _ABS_GATE
        if not above.any():
            return float("-inf")
        with np.errstate(divide="ignore"):
            rel = -0.691 + 10.0 * np.log10(np.sum(g * z[:, above].mean(axis=1))) - 10.0
        keep = (loud > rel) & above
        if not keep.any():
            return float("-inf")
        with np.errstate(divide="ignore"):
            return float(-0.691 + 10.0 * np.log10(np.sum(g * z[:, keep].mean(axis=1))))

    def loudness_range_lu(self, gain: float = 1.0) -> float | None:
        """Loudness range (EBU Tech 3342, pyloudnorm's recipe) in LU; None when the cue is too short."""
        if self.z_range is None:
            return None
        loud = self._block_loudness(self.z_range, gain)
        gated = loud[loud >= _ABS_GATE]
        if gated.size == 0:
            return float("nan")
        power = np.sum(np.power(10, gated / 10)) / gated.size
        kept = gated[gated >= 10 * np.log10(power) - 20]
        if kept.size == 0:
            return float("nan")
        return float(np.percentile(kept, 95) - np.percentile(kept, 10))

    def true_peak_dbtp(self, gain: float = 1.0) -> float:
        if self.peak is None:
            raise ValueError("the true peak of this signal was not measured")
        p = self.peak * gain
        return 20.0 * np.log10(p) if p > 0 else float("-inf")

    def gain_to(self, target_lufs: float) -> float:
        """The gain that brings the signal to `target_lufs`. Plain loudness scaling, except above the signal's
        loudness with `z_free` known: then the gain that brings there the free part raised and the held part kept
        (the first-order effect of limiting the signal times that gain; found by bisection in dB, 0.001 dB)."""
        lufs = self.integrated_lufs()
        plain = 10 ** ((target_lufs - lufs) / 20.0)
        if self.z_free is None or target_lufs <= lufs:
            return plain
        held = self.z - self.z_free

        def lufs_at(db: float) -> float:
            return LoudnessMeasure(held + self.z_free * 10 ** (db / 10.0), None, None).integrated_lufs()

        lo, hi = 0.0, 24.0
        if lufs_at(hi) < target_lufs:  # (almost) everything held: no first-order model; the plain gain
            return plain
        while hi - lo > 1e-3:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if lufs_at(mid) < target_lufs else (lo, mid)
        return 10 ** (hi / 20.0)


class Untouched:
    """Which samples of an `n`-sample signal a limiter pass left alone (its gain 1): a bit per sample, in
    memory (a 10-minute cue at 48 kHz: 3.6 MB). Written and read in chunks that start on multiples of 8 (`CHUNK`)."""

    def __init__(self, n: int):
        self.n = n
        self.bits = np.zeros((n + 7) // 8, np.uint8)

    def __setitem__(self, rows: slice, free: np.ndarray) -> None:
        if rows.start % 8:
            raise ValueError(f"Untouched is written in chunks starting on multiples of 8, not at {rows.start}")
        self.bits[rows.start // 8:rows.start // 8 + (free.size + 7) // 8] = np.packbits(free)

    def __getitem__(self, rows: slice) -> np.ndarray:
        a, b = rows.start, min(rows.stop, self.n)
        return np.unpackbits(self.bits[a // 8:(b + 7) // 8], count=b - a).astype(bool)


@lru_cache(maxsize=4)
def _k_weighting(rate: int) -> tuple[tuple[np.ndarray, np.ndarray, float], ...]:
    """The K-weighting stages (high shelf, then high pass) as (b, a, passband gain), from pyloudnorm's meter."""
    import pyloudnorm

    meter = pyloudnorm.Meter(rate)
    return tuple((f.b, f.a, f.passband_gain) for f in meter._filters.values())


def measure(audio: np.ndarray, sample_rate: int, *, peak: bool = True, free: Untouched | None = None,
            workers: Workers = in_turn) -> LoudnessMeasure:
    """Measure `(n,)` or `(n, channels)` float audio, or a 2-D sample source (engine/audio/spill.py), in one chunked
    pass (see the module docstring), a channel a unit on `workers`. `peak=False`: the loudness alone (the true peak
    is most of the cost); `free`: the samples a limiter pass left alone, whose share of the gating blocks' energies is
    kept (`z_free`)."""
    from scipy.signal import lfilter

    x = _as_2d(audio)
    n, chans = x.shape
    if chans > len(_CHANNEL_GAINS):
        raise LoudnessError(f"audio with {chans} channels: loudness is defined for at most 5")
    silence = int(1.5 * sample_rate)
    gate = _Blocks.of(n, sample_rate, 0.4, 0.75)
    rng = _Blocks.of(n + silence, sample_rate, 3.0, 0.97) if n + silence >= 3.0 * sample_rate else None
    stages = _k_weighting(sample_rate)
    # Running sums of squares, read at every block bound: an index i needs the sum over [0, i).
    marks = [gate.lower, gate.upper] + ([rng.lower, rng.upper] if rng is not None else [])
    wanted = np.unique(np.concatenate(marks))
    sums = np.zeros((chans, wanted.size))
    sums_free = np.zeros((chans, wanted.size)) if free is not None else None

    def channel(c: int) -> None:  # fills row c of the sums
        state = [np.zeros(max(len(a), len(b)) - 1) for b, a, _ in stages]
        total = total_free = 0.0
        for a in range(0, n + silence, CHUNK):
            b = min(a + CHUNK, n + silence)
            seg = x[a:min(b, n), c].astype(np.float64)
            if b > n:
                seg = np.concatenate([seg, np.zeros(b - max(a, n))])
            for s, (fb, fa, gain) in enumerate(stages):
                seg, state[s] = lfilter(fb, fa, seg, zi=state[s])
                seg = gain * seg
            squared = seg * seg
            run = total + np.cumsum(squared)
            sel = (wanted > a) & (wanted <= b)
            sums[c, sel] = run[wanted[sel] - a - 1]
            total = run[-1]
            if free is not None:  # the same sums over the untouched samples (the silence past the end is none)
                m = max(0, min(b, n) - a)
                if m:
                    squared[:m][~free[a:a + m]] = 0.0
                squared[m:] = 0.0
                run = total_free + np.cumsum(squared)
                sums_free[c, sel] = run[wanted[sel] - a - 1]
                total_free = run[-1]

    workers(channel, range(chans))

    def energies(blocks: _Blocks, block_s: float, of: np.ndarray) -> np.ndarray:
        lo = of[:, np.searchsorted(wanted, blocks.lower)]
        hi = of[:, np.searchsorted(wanted, blocks.upper)]
        return (hi - lo) / (block_s * sample_rate)

    return LoudnessMeasure(energies(gate, 0.4, sums), energies(rng, 3.0, sums) if rng is not None else None,
                           _peak(x, sample_rate, workers) if peak else None,
                           energies(gate, 0.4, sums_free) if free is not None else None)


def _limit(audio: np.ndarray, sample_rate: int, ceiling_dbtp: float, gain: float = 1.0, out=None,
           curve=None, free: Untouched | None = None, workers: Workers = in_turn) -> np.ndarray:
    """Look-ahead peak limiter on `audio * gain` (`limiter_gain`). `(n,)` or `(n, channels)` in, float32 out;
    into `out` when given (a `(n, channels)` array or sample source: engine/audio/spill.py), returned as it is.
    `curve` (`(n, 1)`, array or sample source): each sample's gain, multiplied by the one applied here. `free`:
    where the limiter left the samples alone is recorded there. A chunk a unit on `workers`: each writes its own
    rows (and bytes of `free`: chunks start on multiples of 8)."""
    x = _as_2d(audio)
    n = x.shape[0]
    dest = np.empty(x.shape, np.float32) if out is None else out

    def chunk(a: int) -> None:
        b = min(a + CHUNK, n)
        g = limiter_gain(x, sample_rate, ceiling_dbtp, gain, a, b)
        dest[a:b] = x[a:b].astype(np.float64) * gain * g[:, None]
        if free is not None:
            free[a:b] = g >= 1.0 - 1e-9  # (the moving average's running sum may leave 1 - 1e-16)
        if curve is not None:
            curve[a:b] = curve[a:b].astype(np.float64) * gain * g[:, None]

    workers(chunk, range(0, n, CHUNK))
    return dest.reshape(audio.shape) if out is None else dest


def limiter_gain(x: np.ndarray, sample_rate: int, ceiling_dbtp: float, gain: float, a: int, b: int) -> np.ndarray:
    """The look-ahead limiter's gain `g` `(b - a,)` on samples [a, b) of `x * gain` (`(n, channels)`): sample `i`
    is multiplied by `gain * g[i - a]`. The gain each sample needs (from the 4x oversampled peak of all channels)
    is spread as a minimum over +-5 ms and held 50 ms, then smoothed over 5 ms; the smoothed gain never exceeds
    what a peak within its window needs, so the ceiling holds without clipping. One gain for all channels, so
    stems given the same gains still sum to the limited mix (engine/audio/stem_mastering.py).

    A chunk at a time with a margin longer than the filters' reach, so memory stays flat in the cue's length (the
    gain curve equals the whole-signal one up to the moving average's float rounding)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    n = x.shape[0]
    ceiling = 10 ** (ceiling_dbtp / 20.0) * 0.985  # a little headroom for the 24-bit rounding and filter ripple
    attack = max(1, int(0.005 * sample_rate))
    hold = max(1, int(0.050 * sample_rate))
    margin = 2 * (hold + 3 * attack)
    lo, hi = max(a - margin, 0), min(b + margin, n)
    # a peak bounded under the ceiling needs no gain reduction, exact or not: `below=ceiling`
    need = np.minimum(1.0, ceiling / np.maximum(_sample_peaks(x, sample_rate, lo, hi, gain, ceiling), 1e-12))
    spread = minimum_filter1d(need, size=2 * attack + 1, mode="nearest")
    g = minimum_filter1d(spread, size=hold, origin=-(hold // 2) + (0 if hold % 2 else 1), mode="nearest")
    g = uniform_filter1d(g, size=attack, mode="nearest")
    return np.minimum(g, spread)[a - lo:b - lo]


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


def _scaled(base: np.ndarray, gain: float, out: np.ndarray | None = None) -> np.ndarray:
    """float32 `base * gain`, computed in float64 chunk by chunk (no full-length float64 copy); into `out` when
    given (it may be `base` itself)."""
    out = np.empty(base.shape, np.float32) if out is None else out
    for a in range(0, base.shape[0], CHUNK):
        out[a:a + CHUNK] = base[a:a + CHUNK].astype(np.float64) * gain
    return out


def normalize_loudness(audio: np.ndarray, sample_rate: int, target: str | float = "ebu-r128",
                       ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP, *, in_place: bool = False,
                       workers: Workers = in_turn) -> tuple[np.ndarray, LoudnessReport]:
    """Bring `(n,)` or `(n, channels)` float audio to `target` integrated loudness with true peak <= ceiling;
    float32 out. `in_place`: a float32 `audio` may be overwritten with the result (delivery: one copy of the cue
    at the output rate instead of two). `workers`: runs the measuring and limiting (module docstring).

    Raises `LoudnessError` for audio shorter than one 400 ms gating block or silent throughout (its loudness is
    undefined: nothing to normalise)."""
    target_lufs = resolve_target(target)
    base = np.asarray(audio, np.float32)
    x_peak = max(float(np.max(audio)), -float(np.min(audio))) if base.size else 0.0  # no full-length temporary
    base, gain, report = normalize_source(base, sample_rate, target_lufs, ceiling_dbtp, x_peak=x_peak,
                                          workers=workers)
    own = base is not audio or (in_place and base.dtype == np.float32 and base.flags.writeable)
    return _scaled(base, gain, base if own else None), report


def normalize_source(base, sample_rate: int, target_lufs: float, ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP, *,
                     x_peak: float | None = None, store=None, curve=None,
                     workers: Workers = in_turn) -> tuple[object, float, LoudnessReport]:
    """The normalisation of `normalize_loudness` without making its output: `base` (a float32 array, or a 2-D
    sample source such as engine/audio/spill.py's `Spill`) is measured, and where the gain alone would pass the
    true-peak ceiling it is limited into a new signal, until loudness and ceiling both hold. Returns the signal
    the output is made of (`base` itself, or its last limited version), the gain to apply to it (the output is
    float32 `signal * gain`, computed in float64), and the report. `x_peak`: the input's sample peak for the
    report's gain (default: measured on `base`); `store(shape)`: where a limited signal is written (default: a
    float32 array), so a streamed delivery keeps none of them in memory. `curve` (`(n, 1)` of ones, an array or
    sample source): where the signal is limited, each sample's limiter gains are multiplied into it, so that
    signals that must follow this one (a mix's stems) are made `follower * curve * gain`
    (engine/audio/stem_mastering.py). `workers`: runs the measurements' and the limiter's units (module docstring);
    the result is the same with any."""
    if base.shape[0] < int(0.4 * sample_rate):
        raise LoudnessError(f"audio of {base.shape[0] / sample_rate:.3f} s is too short to measure loudness (>= 0.4 s)")
    meas = measure(base, sample_rate, workers=workers)
    start = meas.integrated_lufs()
    if not np.isfinite(start):
        raise LoudnessError("the audio is silent: its loudness cannot be normalised")
    if x_peak is None:
        x_peak = _abs_max(base)
    # The signal is `base * gain`: a gain only rescales the measurement. Where that gain would pass the ceiling, the
    # signal is limited into a new base, whose loudness (not its true peak: most of a measurement's cost) aims the
    # next gain (`gain_to`: the part the limiter held stays at the ceiling). Once the loudness holds, or a lower gain
    # would bring it there (a gain under 1 only scales), the true peak is measured: under the ceiling, done; over it
    # (filter ripple), limited once more. A loud noise-like signal (every block limited) takes two limiting passes
    # where raising the gain by the loudness it lost took three.
    gain = 10 ** ((target_lufs - start) / 20.0)
    limited = bool(meas.true_peak_dbtp(gain) > ceiling_dbtp)
    if limited:
        for _ in range(6):
            free = Untouched(base.shape[0])
            base = _limit(base, sample_rate, ceiling_dbtp, gain,
                          out=None if store is None else store(_as_2d(base).shape), curve=curve, free=free,
                          workers=workers)
            meas = measure(base, sample_rate, peak=False, free=free, workers=workers)
            gain = 1.0 if abs(meas.integrated_lufs() - target_lufs) < 0.1 else meas.gain_to(target_lufs)
            if gain <= 1.0:
                meas = replace(meas, peak=_peak(_as_2d(base), sample_rate, workers), z_free=None)
                if meas.true_peak_dbtp(gain) <= ceiling_dbtp:
                    break
        else:  # not seen in a cue: six passes without both holding; the ceiling before the loudness
            if meas.peak is None:
                meas = replace(meas, peak=_peak(_as_2d(base), sample_rate, workers), z_free=None)
            gain = min(gain, 1.0)
    lufs = meas.integrated_lufs(gain)
    out_peak = _abs_max(base) * gain
    gain_db = 20 * np.log10(out_peak / max(x_peak, 1e-12))
    return base, gain, LoudnessReport(target_lufs, float(lufs), float(meas.true_peak_dbtp(gain)),
                                      meas.loudness_range_lu(gain), float(gain_db), limited, float(start))
