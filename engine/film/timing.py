"""The picture's timing: shot cuts (hard cuts, cross-dissolves, fades), a motion envelope at 100/s, hit points.

`TimingAnalyzer` takes the 10/s analysis frames batch by batch and keeps only small per-frame descriptors (a 128-bin
HSV histogram, a 32 x 18 luma thumbnail, a 144-value structure descriptor and the shift residual to the previous
frame, ~3.4 kB a frame against 110 kB for the frame), so memory does not grow
with the frames' size. `finish()` runs the detectors over those descriptors:

- **Hard cuts** follow PySceneDetect's AdaptiveDetector (Castellano): a frame's content change (histogram distance
  plus thumbnail difference) over the mean change of its +-2 neighbours must exceed a ratio (3), and the change must
  exceed a floor. A change that undoes itself on the next frame (a flash, a glitch frame) is not a cut.
- **Same-palette cuts** (the colours stay, the texture and structure change: shot / reverse-shot in one room): the
  same adaptive rule on two more channels, where the colours stay and both frames have structure: the change of a
  structure descriptor (`texture_descriptors`: gradient-orientation histograms on a 4 x 4 grid plus each block's
  grain, unmoved by brightness and contrast, so not by a flash) and the residual of the best rigid shift between
  consecutive frames (`shift_residual`, phase correlation: a pan is explained by a shift, a cut is not).
- **Gradual transitions** (dissolves, fades, wipes) use the twin-window distance of Zhang, Kankanhalli & Smoliar
  (1993) in the form of Lienhart (1999): the histogram distance between frames n - 5 and n + 5 (1 s apart)
  stands high over a plateau centred on the transition's middle while shots change slowly; a plateau that holds no
  hard cut, rises well above its neighbourhood, and whose middle frame is a mix of its two ends (or black, for a
  fade) is a transition, placed at the darkest frame of a fade; a dissolve's middle is the median of three
  estimates: the plateau's centre, the first frame past the half-way mix, and the centre of a clipped linear ramp
  fitted to the frames' mix weights (the linear-blend model frame ~ (1 - w) A + w B, w rising over the dissolve).
- **Motion** is the mean absolute luma change between consecutive frames of the blurred thumbnail over the frames
  contrast (mean absolute deviation of luma, + 0.02), mapped by 1 - exp(-d / 0.25) to [0, 1], bridged over cuts
  and flashes, lightly smoothed, linearly interpolated to 100/s.
- **Hit points** are cuts plus the peaks of the motion envelope (prominence >= 0.15, >= 0.5 s apart) and sudden
  brightness jumps: instants where music may want an accent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from ..constants import MEL_FRAME_RATE, VIDEO_FPS
from .aesthetic import hsv_sv, luma, pool2

TIMING_VERSION = "timing-v1"

H_BINS, S_BINS, V_BINS = 8, 4, 4
THUMB_W, THUMB_H = 32, 18

ADAPTIVE_WINDOW = 2  # neighbours each side (PySceneDetect's default window_width)
ADAPTIVE_RATIO = 3.0  # PySceneDetect's default adaptive_threshold
MIN_CHANGE = 0.2  # floor of the combined change score for a hard cut
MIN_HIST_CHANGE = 0.3  # floor of the histogram change for a cut found on the histogram alone
GRADUAL_HALF = 5  # frames each side for the twin-window distance (1 s span at 10/s)
GRADUAL_MIN = 0.35  # histogram distance the plateau must reach
GRADUAL_RATIO = 2.5  # ... and its ratio to the surrounding level
RAMP_MAX_RESIDUAL = 0.15  # RMS of a dissolve's mix weights about the fitted ramp for it to place the cut
MOTION_SCALE = 0.25  # mean |d luma| / (contrast + 0.02) that maps to 1 - 1/e
TEX_GRID_Y, TEX_GRID_X, TEX_BINS = 4, 4, 8  # gradient-orientation histogram: 4 x 4 blocks x 8 orientations
MIN_TEX_CHANGE = 0.25  # floor of the structure change for a cut found on structure alone
SAME_PALETTE = 0.3  # colour-histogram distance over +-0.3 s under which both sides count as one palette
MIN_MC = 0.6  # floor of the shift residual (normalised luma) for a cut found by it
MIN_TEX_STRENGTH = 0.004  # mean gradient magnitude (luma / pixel) below which a frame has no structure to compare


@dataclass(frozen=True)
class Timing:
    """Cuts as frame indices of the first frame of each new shot and in seconds from the range start; motion at
    100/s in [0, 1] `(ceil(duration * 100),)`; per-frame motion at 10/s `(N,)`; hit points in seconds with their
    kind ('cut', 'motion', 'flash')."""

    cut_frames: tuple[int, ...]
    cuts_s: tuple[float, ...]
    cut_kinds: tuple[str, ...]
    motion: np.ndarray
    frame_motion: np.ndarray
    hit_points_s: tuple[float, ...]
    hit_kinds: tuple[str, ...]
    change: np.ndarray


def _soft_bins(x: np.ndarray, n_bins: int, circular: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear (soft) binning of values in [0, 1]: lower bin, upper bin, upper weight. A value at a bin's centre
    goes wholly to it; between two centres it is shared, so compression noise on a flat area near a bin edge does
    not flip the histogram (hard bins did, measured: 80 % distance between identical-looking frames)."""
    pos = x * n_bins - 0.5
    lo = np.floor(pos)
    w = (pos - lo).astype(np.float32)
    lo = lo.astype(np.int32)
    hi = lo + 1
    if circular:
        lo %= n_bins
        hi %= n_bins
    else:
        lo = np.clip(lo, 0, n_bins - 1)
        hi = np.clip(hi, 0, n_bins - 1)
    return lo, hi, w


def hsv_histograms(planes: np.ndarray) -> np.ndarray:
    """Planar `(B, 3, h, w)` float RGB in [0, 1] -> `(B, 128)` normalised joint HSV histograms (8 hue x 4
    saturation x 4 value bins, soft-binned)."""
    r, g, b = planes[:, 0], planes[:, 1], planes[:, 2]
    mx, mn, s = hsv_sv(planes)
    delta = mx - mn
    safe = np.where(delta > 1e-6, delta, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6.0
    bsz = planes.shape[0]
    n_bins = H_BINS * S_BINS * V_BINS
    offset = (np.arange(bsz, dtype=np.int32) * n_bins)[:, None, None]
    hb = _soft_bins(h, H_BINS, True)
    sb = _soft_bins(s, S_BINS, False)
    vb = _soft_bins(mx, V_BINS, False)
    hist = np.zeros(bsz * n_bins, np.float64)
    for hi_, hw in ((hb[0], 1 - hb[2]), (hb[1], hb[2])):
        for si_, sw in ((sb[0], 1 - sb[2]), (sb[1], sb[2])):
            for vi_, vw in ((vb[0], 1 - vb[2]), (vb[1], vb[2])):
                idx = (hi_ * S_BINS + si_) * V_BINS + vi_ + offset
                hist += np.bincount(idx.ravel(), weights=(hw * sw * vw).ravel(), minlength=bsz * n_bins)
    hist = hist.reshape(bsz, n_bins).astype(np.float32)
    return hist / hist.sum(axis=1, keepdims=True)


def texture_descriptors(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma `(B, h, w)` -> (`(B, 128)` structure descriptors, `(B,)` mean gradient magnitude).

    The descriptor is a histogram of gradient orientations (unsigned, 8 soft bins) weighted by gradient magnitude
    over a 4 x 4 grid of blocks (the layout of Dalal & Triggs' HOG, without its per-block normalisation), normalised
    to sum 1 over the frame: it changes when the picture's structure changes (a new texture, new edges, a new
    layout) even when the colours stay the same, and not when the brightness or contrast changes (a flash, a
    fade in light), since the whole frame is normalised at once."""
    b, h, w = y.shape
    ys = ndimage.gaussian_filter(y, sigma=(0, 0.8, 0.8))
    gy = ys[:, 2:, 1:-1] - ys[:, :-2, 1:-1]
    gx = ys[:, 1:-1, 2:] - ys[:, 1:-1, :-2]
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) % np.pi) / np.pi * TEX_BINS - 0.5
    lo = np.floor(pos)
    wt = (pos - lo).astype(np.float32)
    lo = lo.astype(np.int32) % TEX_BINS
    hi = (lo + 1) % TEX_BINS
    hh, ww = mag.shape[1:]
    by = np.minimum(np.arange(hh) * TEX_GRID_Y // hh, TEX_GRID_Y - 1)[:, None]
    bx = np.minimum(np.arange(ww) * TEX_GRID_X // ww, TEX_GRID_X - 1)[None, :]
    cell = (by * TEX_GRID_X + bx) * TEX_BINS
    n_bins = TEX_GRID_Y * TEX_GRID_X * TEX_BINS
    offset = (np.arange(b, dtype=np.int32) * n_bins)[:, None, None]
    hist = np.bincount((cell + lo + offset).ravel(), weights=(mag * (1 - wt)).ravel(), minlength=b * n_bins)
    hist += np.bincount((cell + hi + offset).ravel(), weights=(mag * wt).ravel(), minlength=b * n_bins)
    hist = hist.reshape(b, n_bins).astype(np.float32)
    total = hist.sum(axis=1, keepdims=True)
    # the grain of each block: mean gradient over the block's luma deviation, log; independent of brightness and
    # contrast (a flash), it tells a fine texture from a coarse one where orientations alone are alike (isotropic)
    cells = by * TEX_GRID_X + bx
    n_cells = TEX_GRID_Y * TEX_GRID_X
    core = ys[:, 1:-1, 1:-1]
    coff = (np.arange(b, dtype=np.int32) * n_cells)[:, None, None]
    idx = (cells + coff).ravel()
    cnt = np.bincount(idx, minlength=b * n_cells).reshape(b, n_cells)
    s1 = np.bincount(idx, weights=core.ravel(), minlength=b * n_cells).reshape(b, n_cells)
    s2 = np.bincount(idx, weights=(core * core).ravel(), minlength=b * n_cells).reshape(b, n_cells)
    gm = np.bincount(idx, weights=mag.ravel(), minlength=b * n_cells).reshape(b, n_cells) / np.maximum(cnt, 1)
    sd = np.sqrt(np.maximum(s2 / np.maximum(cnt, 1) - (s1 / np.maximum(cnt, 1)) ** 2, 0.0))
    grain = np.log((gm + 1e-3) / (sd + 1e-3)).astype(np.float32)
    return np.concatenate([hist / np.maximum(total, 1e-9), grain], axis=1), mag.mean(axis=(1, 2)).astype(np.float32)


def structure_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in [0, 1] between `texture_descriptors` rows: the mean of the orientation histograms' half L1
    distance and the blocks' mean grain difference (|d log| / 0.7, capped at 1)."""
    n = TEX_GRID_Y * TEX_GRID_X * TEX_BINS
    ori = _hist_dist(a[..., :n], b[..., :n])
    grain = np.clip(np.abs(a[..., n:] - b[..., n:]).mean(axis=-1) / 0.7, 0.0, 1.0)
    return 0.5 * ori + 0.5 * grain


MC_SIZE = (36, 64)  # (h, w) of the normalised luma the shift search compares
MC_MAX_SHIFT = 0.25  # largest shift searched, as a share of the frame


def _mc_frames(y: np.ndarray) -> np.ndarray:
    """Luma `(B, h, w)` -> `(B, 36, 64)` blurred, zero-mean, unit-variance (brightness and contrast removed)."""
    b, h, w = y.shape
    t = ndimage.zoom(y, (1, MC_SIZE[0] / h, MC_SIZE[1] / w), order=1, prefilter=False, grid_mode=True, mode="nearest")
    t = ndimage.gaussian_filter(t, sigma=(0, 0.6, 0.6))
    t = t - t.mean(axis=(1, 2), keepdims=True)
    return (t / (t.std(axis=(1, 2), keepdims=True) + 1e-3)).astype(np.float32)


def shift_residual(a: np.ndarray, b: np.ndarray) -> float:
    """How far frame b is from frame a moved rigidly: the best integer shift by phase correlation (Kuglin & Hines
    1975) within MC_MAX_SHIFT, then the mean |b - shifted a| over the overlap, on `_mc_frames` rows. About 0.1 for a
    pan or a still shot, about 1.1 between unrelated pictures; a flash does not count (frames are normalised)."""
    h, w = a.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)  # no wrap-around edge in the spectrum
    fa, fb = np.fft.rfft2(a * win), np.fft.rfft2(b * win)
    r = fb * np.conj(fa)
    r /= np.abs(r) + 1e-9
    corr = np.fft.irfft2(r, s=a.shape)
    my, mx = int(h * MC_MAX_SHIFT), int(w * MC_MAX_SHIFT)
    ys = np.r_[0:my + 1, h - my:h]
    xs = np.r_[0:mx + 1, w - mx:w]
    sub = corr[np.ix_(ys, xs)]
    best = np.inf
    for k in np.argsort(sub.ravel())[-3:]:  # the three highest peaks: a smooth picture can rank a wrong one first
        iy, ix = np.unravel_index(int(k), sub.shape)
        dy, dx = int(ys[iy]), int(xs[ix])
        dy = dy - h if dy > h // 2 else dy
        dx = dx - w if dx > w // 2 else dx
        ay = slice(max(0, -dy), h - max(0, dy))
        by = slice(max(0, dy), h - max(0, -dy))
        ax = slice(max(0, -dx), w - max(0, dx))
        bx = slice(max(0, dx), w - max(0, -dx))
        best = min(best, float(np.abs(b[by, bx] - a[ay, ax]).mean()))
    return best


def _thumbs(y: np.ndarray) -> np.ndarray:
    """Luma `(B, h, w)` -> `(B, THUMB_H, THUMB_W)` by area averaging and a light blur (noise, grain, small motion)."""
    b, h, w = y.shape
    zy, zx = THUMB_H / h, THUMB_W / w
    t = ndimage.zoom(y, (1, zy, zx), order=1, prefilter=False, grid_mode=True, mode="nearest")
    return ndimage.gaussian_filter(t, sigma=(0, 0.7, 0.7)).astype(np.float32)


class TimingAnalyzer:
    """Streams analysis frames in; `finish(duration_s)` returns the `Timing`. Frames must arrive in order."""

    def __init__(self, fps: int = VIDEO_FPS):
        self.fps = fps
        self._hist: list[np.ndarray] = []
        self._thumb: list[np.ndarray] = []
        self._mean: list[np.ndarray] = []
        self._tex: list[np.ndarray] = []
        self._tex_strength: list[np.ndarray] = []
        self._mc: list[float] = []
        self._mc_prev: np.ndarray | None = None

    def update(self, small: np.ndarray) -> None:
        """`small` planar `(B, 3, h, w)` float [0, 1]: the analysis frames 2x pooled (`pool2(to_planes(rgb))`)."""
        y = luma(small)
        self._hist.append(hsv_histograms(pool2(small)))  # colour statistics need no detail: 64 x 36 is plenty
        self._thumb.append(_thumbs(y))
        self._mean.append(y.mean(axis=(1, 2)).astype(np.float32))
        tex, strength = texture_descriptors(y)
        self._tex.append(tex)
        self._tex_strength.append(strength)
        # the shift residual between consecutive frames, computed as they stream by (only a scalar is kept)
        for f in _mc_frames(y):
            self._mc.append(0.0 if self._mc_prev is None else shift_residual(self._mc_prev, f))
            self._mc_prev = f

    def finish(self, duration_s: float) -> Timing:
        hist = np.concatenate(self._hist) if self._hist else np.zeros((0, 128), np.float32)
        thumb = np.concatenate(self._thumb) if self._thumb else np.zeros((0, THUMB_H, THUMB_W), np.float32)
        mean = np.concatenate(self._mean) if self._mean else np.zeros(0, np.float32)
        n_tex = TEX_GRID_Y * TEX_GRID_X * (TEX_BINS + 1)
        tex = np.concatenate(self._tex) if self._tex else np.zeros((0, n_tex), np.float32)
        strength = np.concatenate(self._tex_strength) if self._tex_strength else np.zeros(0, np.float32)
        return analyse(hist, thumb, mean, duration_s, self.fps, tex, strength, np.asarray(self._mc, np.float32))


def _hist_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half L1 distance between normalised histograms, in [0, 1]."""
    return 0.5 * np.abs(a - b).sum(axis=-1)


def _adaptive_ratio(x: np.ndarray, i: int) -> float:
    """x[i] over the mean of its +-ADAPTIVE_WINDOW neighbours (PySceneDetect's adaptive ratio)."""
    lo, hi = max(1, i - ADAPTIVE_WINDOW), min(len(x), i + ADAPTIVE_WINDOW + 1)
    neigh = np.concatenate([x[lo:i], x[i + 1:hi]])
    level = float(neigh.mean()) if len(neigh) else 0.0
    return float(x[i]) / (level + 0.02)


def detect_hard_cuts(change: np.ndarray, skip_change: np.ndarray, hist_change: np.ndarray,
                     tex_change: np.ndarray | None = None, tex_skip: np.ndarray | None = None,
                     mc: np.ndarray | None = None, struct_ok: np.ndarray | None = None) -> list[int]:
    """Frames n (first frame of a new shot) whose `change[n]` (n-1 -> n) stands out of its +-ADAPTIVE_WINDOW
    neighbourhood, or whose colour histogram alone does (fast camera moves raise the pixel part of the
    neighbours' change, not their histogram part), or whose structure alone does (`tex_change`: a cut between
    shots of the same palette). `skip_change[n]` is the change n-1 -> n+1: a flash frame returns to where it came
    from (`tex_skip` the same for structure)."""
    n = len(change)
    cuts: list[int] = []
    for i in range(1, n):
        c = change[i]
        by_all = c >= MIN_CHANGE and _adaptive_ratio(change, i) >= ADAPTIVE_RATIO
        by_hist = hist_change[i] >= MIN_HIST_CHANGE and _adaptive_ratio(hist_change, i) >= ADAPTIVE_RATIO
        ok = tex_change is not None and (struct_ok is None or bool(struct_ok[i]))
        by_tex = ok and tex_change[i] >= MIN_TEX_CHANGE and _adaptive_ratio(tex_change, i) >= ADAPTIVE_RATIO
        # a picture that no shift of the last one explains, where the neighbours are explained: a cut between
        # shots alike in colour and texture statistics (the same grain, panning); its structure must move too
        by_mc = (ok and mc is not None and mc[i] >= MIN_MC and tex_change[i] >= 0.3 * MIN_TEX_CHANGE
                 and _adaptive_ratio(mc, i) >= ADAPTIVE_RATIO)
        by_tex = by_tex or by_mc
        if not (by_all or by_hist or by_tex):
            continue
        if by_tex and not (by_all or by_hist):
            t = tex_change[i]
            if (i + 1 < n and tex_skip[i] < 0.35 * t) or (i >= 2 and tex_skip[i - 1] < 0.35 * t):
                continue  # a structure flash (a glitch frame) or the return from one
            if cuts and i - cuts[-1] <= 1:
                continue
            cuts.append(i)
            continue
        if i + 1 < n and skip_change[i] < 0.35 * c:
            continue  # flash: frame i differs from both neighbours, which match each other
        if i >= 2 and skip_change[i - 1] < 0.35 * c:
            continue  # the return from a flash: frame i matches frame i - 2
        if cuts and i - cuts[-1] <= 1:
            if c > change[cuts[-1]]:
                cuts[-1] = i
            continue
        cuts.append(i)
    return cuts


def detect_gradual(hist: np.ndarray, thumb: np.ndarray, mean: np.ndarray, hard: list[int]) -> list[tuple[int, str]]:
    """Cross-dissolves and fades: returns (frame of the transition's middle, kind)."""
    n = len(hist)
    k = GRADUAL_HALF
    if n < 2 * k + 1:
        return []
    twin = np.zeros(n, np.float32)
    twin[k:n - k] = _hist_dist(hist[: n - 2 * k], hist[2 * k:])
    # a hard cut c raises the twin distance over frames c - k .. c + k - 1: that is the cut's, not a transition's
    for c in hard:
        twin[max(0, c - k):min(n, c + k)] = 0.0
    # the level shots hold around a frame: a low percentile, since a long dissolve fills much of any window
    level = ndimage.percentile_filter(twin, 20, size=16 * k + 1, mode="nearest")
    hot = (twin >= GRADUAL_MIN) & (twin >= GRADUAL_RATIO * np.maximum(level, 0.03))
    step = _hist_dist(hist[1:], hist[:-1])  # step[i]: frame i -> i + 1
    labels, n_runs = ndimage.label(hot)
    found: list[tuple[int, str]] = []
    for r in range(1, n_runs + 1):
        idx = np.flatnonzero(labels == r)
        a, b = int(idx[0]), int(idx[-1])
        # the twin distance rises and falls symmetrically about the transition's middle: take the midpoint of
        # the two half-height crossings (interpolated) around the peak
        p = a + int(twin[a:b + 1].argmax())
        peak, base = twin[p], level[a:b + 1].min()
        half = base + 0.5 * (peak - base)
        lo_i = p
        while lo_i > 0 and twin[lo_i - 1] >= half:
            lo_i -= 1
        hi_i = p
        while hi_i < n - 1 and twin[hi_i + 1] >= half:
            hi_i += 1
        left = lo_i - (twin[lo_i] - half) / max(twin[lo_i] - twin[lo_i - 1], 1e-6) if lo_i > 0 else lo_i
        right = hi_i + (twin[hi_i] - half) / max(twin[hi_i] - twin[hi_i + 1], 1e-6) if hi_i < n - 1 else hi_i
        mid = int(round((left + right) / 2))
        lo, hi = max(0, mid - k), min(n - 1, mid + k)
        dark = mean[lo:hi + 1]
        j = lo + int(dark.argmin())
        if dark.min() < 0.2 and dark.min() < 0.4 * min(mean[lo], mean[hi]):
            found.append((j, "fade"))  # a dip to (near) black: the black frame is the cut
            continue
        # the picture must change faster inside the transition than in the shots around it: a pan or a
        # drift of light changes the histogram as much over a second, but at the same pace throughout
        inside = step[max(0, mid - 3):min(n - 1, mid + 2)].mean()
        around = np.concatenate([step[max(0, a - 20):max(0, a - 1)], step[min(n - 1, b + 1):min(n - 1, b + 20)]])
        if len(around) and inside < 1.5 * float(np.median(around)) + 0.03:
            continue
        # dissolve: the middle frame is close to a mix of the two ends, much closer than to either end alone
        # on a coarse 8 x 4 grid, where moving texture averages out and a mix stays a mix
        # (spans of 0.6 to 1 s: the shortest span that brackets the transition moves least)
        # (around the estimated middle, which motion can shift by a frame or two)
        if any(_is_mix(thumb, m, j) for m in range(mid - 2, mid + 3) for j in (3, 4, GRADUAL_HALF)
               if m - j >= 0 and m + j < n):
            lo, hi = _anchors(a, b, mid, n)
            at = _mix_crossing(thumb, lo, hi, mid)
            ramp = _ramp_fit(thumb, lo, hi)
            if ramp is not None and ramp[1] < RAMP_MAX_RESIDUAL:
                # three estimates of the middle, each thrown off by motion in its own way (the twin distance's
                # plateau, the first frame past the half-way mix, the fitted ramp): take the median
                at = int(np.floor(np.median([ramp[0], mid, at]) + 0.5))
            found.append((at, "dissolve"))
        elif peak >= 0.6 and peak >= 3 * max(base, 0.03) and b - a <= 4 * k:
            # a strong, isolated change of palette over at most two seconds between steady shots: a transition
            # whose middle is not a plain mix (a wipe, a non-linear dissolve, a light flash between shots)
            found.append((_mix_crossing(thumb, *_anchors(a, b, mid, n), mid), "dissolve"))
    return found


def _is_mix(thumb: np.ndarray, mid: int, j: int) -> bool:
    """Whether frame `mid` is a mix of frames mid - j and mid + j (weight 0.15-0.85) much closer than to either
    alone, on the coarse grid."""
    ta, tb, tm = (_coarse(thumb[i]) for i in (mid - j, mid + j, mid))
    w = np.clip(((tm - ta) * (tb - ta)).sum() / max(((tb - ta) ** 2).sum(), 1e-9), 0, 1)
    err_mix = np.abs(tm - ((1 - w) * ta + w * tb)).mean()
    err_end = min(np.abs(tm - ta).mean(), np.abs(tm - tb).mean())
    return bool(0.15 <= w <= 0.85 and err_mix < 0.7 * err_end)


def _anchors(a: int, b: int, mid: int, n: int) -> tuple[int, int]:
    """Frames outside a transition whose twin-window run is [a, b]: the run starts up to GRADUAL_HALF frames
    before the transition's first frame and ends as many after its last, so a - 1 and b + 1 lie in the shots."""
    lo = min(max(0, a - 1), mid - 1)
    hi = max(min(n - 1, b + 1), mid + 1)
    return max(lo, 0), min(hi, n - 1)


def _mix_crossing(thumb: np.ndarray, lo: int, hi: int, mid: int) -> int:
    """The first frame of [lo, hi] that is more the new shot than the old: each frame's mix weight is its
    projection on the line from thumb[lo] to thumb[hi] (coarse grid); the crossing of 0.5 nearest `mid`."""
    ta, tb = _coarse(thumb[lo]), _coarse(thumb[hi])
    d = tb - ta
    norm = (d * d).sum()
    if norm < 1e-9:
        return mid
    w = np.array([((_coarse(thumb[i]) - ta) * d).sum() / norm for i in range(lo, hi + 1)])
    cross = [lo + i for i in range(1, len(w)) if w[i - 1] < 0.5 <= w[i]]
    if not cross:
        return mid
    return min(cross, key=lambda c: abs(c - mid))


def _ramp_fit(thumb: np.ndarray, lo: int, hi: int) -> tuple[float, float] | None:
    """Fit the linear-blend model of a dissolve to frames lo..hi: frame i ~ (1 - w_i) A + w_i B on the coarse grid,
    A and B the shots' ends (frames lo - 1..lo and hi..hi + 1 averaged), w_i a clipped ramp
    clip((i - c) / L + 0.5, 0, 1). Returns (c: the frame, fractional, where the mix is half-way; RMS residual of
    the per-frame weights about the ramp), or None when the ends do not differ or the span is too short."""
    n = len(thumb)
    if hi - lo < 4:
        return None
    a = np.mean([_coarse(thumb[i]) for i in range(max(0, lo - 1), lo + 1)], axis=0)
    b = np.mean([_coarse(thumb[i]) for i in range(hi, min(n, hi + 2))], axis=0)
    d = b - a
    norm = float((d * d).sum())
    if norm < 1e-9:
        return None
    frames = np.arange(lo, hi + 1, dtype=np.float64)
    w = np.array([((_coarse(thumb[i]) - a) * d).sum() / norm for i in range(lo, hi + 1)])
    centres = np.arange(2 * lo, 2 * hi + 1) / 2.0  # half-frame steps
    lengths = np.arange(2, hi - lo, dtype=np.float64)  # ramps shorter than the span: flat shot at each end
    model = np.clip((frames[None, None, :] - centres[None, :, None]) / lengths[:, None, None] + 0.5, 0, 1)
    rms = np.sqrt(((model - w) ** 2).mean(axis=2))
    li, ci = np.unravel_index(int(rms.argmin()), rms.shape)
    return float(centres[ci]), float(rms[li, ci])


def _coarse(t: np.ndarray) -> np.ndarray:
    """A `(18, 32)` thumbnail -> `(4, 8)` block means (the 2 bottom rows dropped)."""
    return t[:16].reshape(4, 4, 8, 4).mean(axis=(1, 3))


def detect_fades(mean: np.ndarray, hard: list[int], taken: list[int]) -> list[int]:
    """Dips to black between brighter shots that the histogram twin window missed (both shots alike)."""
    n = len(mean)
    out = []
    dark = mean < 0.06
    labels, n_runs = ndimage.label(dark)
    for r in range(1, n_runs + 1):
        idx = np.flatnonzero(labels == r)
        a, b = int(idx[0]), int(idx[-1])
        if a == 0 or b == n - 1:
            continue  # fade in from / out to black at the range's edge: no shot on one side
        before, after = mean[max(0, a - 10):a].max(), mean[b + 1:b + 11].max()
        if min(before, after) < 0.15:
            continue
        j = int(round((a + b) / 2))
        if any(abs(j - c) <= 3 for c in list(hard) + list(taken)):
            continue
        out.append(j)
    return out


def analyse(hist: np.ndarray, thumb: np.ndarray, mean: np.ndarray, duration_s: float, fps: int = VIDEO_FPS,
            tex: np.ndarray | None = None, tex_strength: np.ndarray | None = None,
            mc: np.ndarray | None = None) -> Timing:
    """Run the detectors over per-frame descriptors `(N, 128)`, `(N, 18, 32)`, `(N,)` and, when given, the
    structure descriptors `(N, 128)` with their strength `(N,)` (`texture_descriptors`); see the module
    docstring."""
    n = len(hist)
    change = np.zeros(n, np.float32)
    skip = np.full(n, np.inf, np.float32)
    pix = np.zeros(n, np.float32)
    hist1 = np.zeros(n, np.float32)
    if n > 1:
        pix[1:] = np.abs(thumb[1:] - thumb[:-1]).mean(axis=(1, 2))
        hist1[1:] = _hist_dist(hist[1:], hist[:-1])
        change[1:] = 0.5 * hist1[1:] + 0.5 * np.clip(pix[1:] / 0.25, 0, 1)
    if n > 2:
        pix2 = np.abs(thumb[2:] - thumb[:-2]).mean(axis=(1, 2))
        skip[1:-1] = 0.5 * _hist_dist(hist[2:], hist[:-2]) + 0.5 * np.clip(pix2 / 0.25, 0, 1)
    tex_change = tex_skip = struct_ok = None
    if tex is not None and n > 1:
        tex_change = np.zeros(n, np.float32)
        tex_change[1:] = structure_distance(tex[1:], tex[:-1])
        tex_skip = np.full(n, np.inf, np.float32)
        if n > 2:
            tex_skip[1:-1] = structure_distance(tex[2:], tex[:-2])
        # the structure channels speak only where both frames have structure (a flat or dark frame's gradients are
        # noise: fades, black) and where the colours stay (a same-palette cut; a change of palette is the colour
        # channels' to find, and inside a dissolve or fade the structure of a mix jumps about)
        has = tex_strength >= MIN_TEX_STRENGTH
        struct_ok = np.zeros(n, bool)
        idx = np.arange(1, n)
        around = _hist_dist(hist[np.maximum(idx - 3, 0)], hist[np.minimum(idx + 2, n - 1)])
        struct_ok[1:] = has[1:] & has[:-1] & (around < SAME_PALETTE)
    hard = detect_hard_cuts(change, skip, hist1, tex_change, tex_skip,
                            mc if mc is not None and len(mc) == n else None, struct_ok)
    if n > 6:
        # a hard cut makes its whole change in one step; inside a dissolve one step is a fraction of the change
        # over five steps (histogram bins can still make one step of a dissolve jump): leave those to the
        # gradual detector
        keep = []
        for c in hard:
            lo, hi = max(0, c - 3), min(n - 1, c + 2)
            span = np.abs(thumb[hi] - thumb[lo]).mean()
            tex_step = tex_change is not None and tex_change[c] >= 0.5 * structure_distance(tex[hi], tex[lo])
            if pix[c] >= 0.5 * span or (tex_step and tex_change[c] >= MIN_TEX_CHANGE):
                keep.append(c)
        hard = keep
    gradual = []
    for g, kd in detect_gradual(hist, thumb, mean, hard):
        # one event per transition: a hard cut or an earlier gradual event close by wins
        if any(abs(g - c) <= 3 for c in hard) or any(abs(g - c) <= 3 for c, _ in gradual):
            continue
        gradual.append((g, kd))
    fades = detect_fades(mean, hard, [g for g, _ in gradual])
    events = sorted([(c, "cut") for c in hard] + gradual + [(f, "fade") for f in fades])
    cut_frames = tuple(int(c) for c, _ in events if c > 0)
    kinds = tuple(kd for c, kd in events if c > 0)

    # motion between consecutive frames, bridged over cuts and transitions (a cut is not movement)
    # relative to the picture's own contrast, so that a dim, flat scene moving fast reads as fast
    contrast = np.abs(thumb - thumb.mean(axis=(1, 2), keepdims=True)).mean(axis=(1, 2)) if n else pix
    rel = pix.copy()
    if n > 1:
        rel[1:] = pix[1:] / (0.5 * (contrast[1:] + contrast[:-1]) + 0.02)
    fm = 1.0 - np.exp(-rel / MOTION_SCALE)
    if n > 1:
        fm[0] = fm[1]
    # sudden brightness jumps (a flash, lights switched on): accents, not movement
    jumps = (np.flatnonzero(np.abs(np.diff(mean)) > 0.25) + 1) if n > 1 else np.zeros(0, int)
    bad = np.zeros(n, bool)
    for j in jumps:
        bad[j:min(n, j + 2)] = True  # the jump and the return from it
    for c, kd in events:
        span = 1 if kd == "cut" else GRADUAL_HALF
        bad[max(0, c - (0 if kd == "cut" else span)):min(n, c + span)] = True
    if bad.any() and not bad.all():
        good = np.flatnonzero(~bad)
        fm[bad] = np.interp(np.flatnonzero(bad), good, fm[good])
    if n > 2:  # a light [1 2 1] / 4 smoothing: frame differences at 10/s are noisy
        fm = np.convolve(np.pad(fm, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    n100 = int(np.ceil(duration_s * MEL_FRAME_RATE - 1e-6))
    # sample n is the change from frame n-1 to n, i.e. at the instant n / fps
    src_t = np.arange(n) / fps
    dst_t = np.arange(n100) / MEL_FRAME_RATE
    motion = np.interp(dst_t, src_t, fm).astype(np.float32) if n else np.zeros(n100, np.float32)

    hits: list[tuple[float, str]] = [(c / fps, "cut") for c in cut_frames]
    for j in jumps:
        t = j / fps
        if all(abs(t - c) > 0.3 for c, _ in hits):
            hits.append((t, "flash"))
    if n100 > 3:
        peaks, _ = signal.find_peaks(motion, prominence=0.15, distance=int(0.5 * MEL_FRAME_RATE))
        for p in peaks:
            t = p / MEL_FRAME_RATE
            if all(abs(t - c) > 0.3 for c, _ in hits):
                hits.append((t, "motion"))
    hits.sort()
    return Timing(cut_frames, tuple(c / fps for c in cut_frames), kinds, motion, fm.astype(np.float32),
                  tuple(t for t, _ in hits), tuple(k for _, k in hits), change)
