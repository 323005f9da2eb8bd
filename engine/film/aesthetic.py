"""Aesthetic branch: per-frame image statistics that aesthetic-quality work relies on (HPM's TAVAR stand-in).

No aesthetic-rating weights can be had offline, so this branch measures what those models are known to respond to
(Datta et al. 2006, Ke et al. 2006, Luo & Tang 2008), each scaled to about [0, 1]:

| column | what | how |
| --- | --- | --- |
| 0 brightness | mean luma | Rec. 601 Y of sRGB values in [0, 1] |
| 1 contrast | RMS contrast | standard deviation of luma, x 2 (a half-black half-white frame gives 1) |
| 2 saturation | mean HSV saturation | (max - min) / max per pixel |
| 3 colourfulness | Hasler & Suesstrunk 2003, eq. 3 | sigma_rgyb + 0.3 mu_rgyb on 0-255 values, / 150 (their "extremely colourful" is ~109) |
| 4 sharpness | variance of the Laplacian of luma (Pech-Pacheco et al. 2000) | log10(1 + var) / 4 on 0-255 values, at 256 px wide |
| 5 thirds | rule of thirds: saliency mass near the four third-line intersections | spectral-residual saliency (Hou & Zhang 2007) weighted by Gaussians (sigma 0.1 of the frame) at the intersections, relative to a flat map, / 3: a flat map gives 0.33 |
| 6 balance | left/right balance of the saliency mass | 1 - 2 |x_centroid - 0.5| |
| 7 symmetry | left/right mirror symmetry of luma | 1 - mean |L - mirror(L)| / (2 mean |L - mean L|) |

All columns are computed on the decoder's analysis frames (long side 256 px) or a 2x-pooled copy of them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

AESTHETIC_COLUMNS = ("brightness", "contrast", "saturation", "colourfulness", "sharpness", "thirds", "balance",
                     "symmetry")
AESTHETIC_VERSION = "aesthetic-v1"

_SALIENCY_W = 64  # spectral residual works at ~64 px wide (Hou & Zhang 2007)


def luma(planes: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of planar `(B, 3, h, w)` float RGB in [0, 1] -> `(B, h, w)`."""
    return planes[:, 0] * 0.299 + planes[:, 1] * 0.587 + planes[:, 2] * 0.114


def to_planes(rgb: np.ndarray) -> np.ndarray:
    """`(B, H, W, 3)` uint8 -> planar `(B, 3, H, W)` float32 in [0, 1] (planar: per-channel maths runs contiguous)."""
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1.0 / 255.0)


def pool2(x: np.ndarray) -> np.ndarray:
    """2x2 mean pooling over the last two axes: `(..., H, W)` -> `(..., H//2, W//2)`."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return (x[..., 0:h:2, 0:w:2] + x[..., 1:h:2, 0:w:2] + x[..., 0:h:2, 1:w:2] + x[..., 1:h:2, 1:w:2]) * 0.25


def hsv_sv(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """max, min and HSV saturation of planar RGB `(B, 3, h, w)`, each `(B, h, w)`."""
    r, g, b = planes[:, 0], planes[:, 1], planes[:, 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = (mx - mn) / (mx + 1e-6)
    return mx, mn, sat


def saliency(y: np.ndarray) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007) of luma `(B, h, w)`, returns `(B, h, w)` >= 0, each map
    summing to 1. The log amplitude spectrum minus its 3x3 local mean is the 'residual'; back with the original phase,
    squared, and blurred."""
    f = np.fft.fft2(y, axes=(1, 2))
    amp = np.abs(f) + 1e-9
    log_amp = np.log(amp)
    residual = log_amp - ndimage.uniform_filter(log_amp, size=(1, 3, 3), mode="nearest")
    s = np.abs(np.fft.ifft2(np.exp(residual) * (f / amp), axes=(1, 2))) ** 2
    s = ndimage.gaussian_filter(s, sigma=(0, 2.5, 2.5))
    return s / (s.sum(axis=(1, 2), keepdims=True) + 1e-12)


def _thirds_weight(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    yy, xx = (yy + 0.5) / h, (xx + 0.5) / w
    g = np.zeros((h, w))
    for py in (1 / 3, 2 / 3):
        for px in (1 / 3, 2 / 3):
            g = np.maximum(g, np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * 0.1 ** 2)))
    return g / g.mean()


def aesthetic_features(planes: np.ndarray, small: np.ndarray | None = None) -> np.ndarray:
    """Planar analysis frames `(B, 3, H, W)` float [0, 1] (see `to_planes`) -> `(B, 8)` float32, columns as
    AESTHETIC_COLUMNS. `small`: the same 2x pooled, when the caller has it."""
    y_full = luma(planes)
    if small is None:
        small = pool2(planes)  # (B, 3, H/2, W/2)
    y = luma(small)
    b = small.shape[0]
    out = np.empty((b, len(AESTHETIC_COLUMNS)), np.float32)
    out[:, 0] = y.mean(axis=(1, 2))
    out[:, 1] = np.clip(2 * y.std(axis=(1, 2)), 0, 1)
    out[:, 2] = hsv_sv(small)[2].mean(axis=(1, 2))
    r, g, bl = small[:, 0] * 255, small[:, 1] * 255, small[:, 2] * 255
    rg, yb = r - g, 0.5 * (r + g) - bl
    sigma = np.sqrt(rg.var(axis=(1, 2)) + yb.var(axis=(1, 2)))
    mu = np.sqrt(rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2)
    out[:, 3] = np.clip((sigma + 0.3 * mu) / 150.0, 0, 1)
    lap = (y_full[:, 1:-1, :-2] + y_full[:, 1:-1, 2:] + y_full[:, :-2, 1:-1] + y_full[:, 2:, 1:-1]
           - 4 * y_full[:, 1:-1, 1:-1]) * 255.0
    out[:, 4] = np.clip(np.log10(1 + lap.var(axis=(1, 2))) / 4.0, 0, 1)
    # saliency at ~64 px wide: pool the half-size luma once more
    ys = pool2(y) if y.shape[2] > _SALIENCY_W else y
    sal = saliency(ys)
    hh, ww = sal.shape[1:]
    out[:, 5] = np.clip((sal * _thirds_weight(hh, ww)).sum(axis=(1, 2)) / 3.0, 0, 1)  # / 3: 1 ~ all mass at points
    xc = (sal.sum(axis=1) * ((np.arange(ww) + 0.5) / ww)).sum(axis=1)
    out[:, 6] = 1 - 2 * np.abs(xc - 0.5)
    dev = np.abs(ys - ys.mean(axis=(1, 2), keepdims=True)).mean(axis=(1, 2))
    asym = np.abs(ys - ys[:, :, ::-1]).mean(axis=(1, 2))
    out[:, 7] = np.clip(1 - asym / (2 * dev + 1e-3), 0, 1)
    return out
