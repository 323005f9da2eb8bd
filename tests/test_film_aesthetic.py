"""Aesthetic statistics on frames built to have (or lack) each property."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from filmscore.engine.film.aesthetic import AESTHETIC_COLUMNS, aesthetic_features, to_planes

COL = {name: i for i, name in enumerate(AESTHETIC_COLUMNS)}
H, W = 144, 256


def feats(*frames: np.ndarray) -> np.ndarray:
    return aesthetic_features(to_planes(np.stack(frames).astype(np.uint8)))


def blob(cy: float, cx: float, r: float = 0.06, base: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.full((H, W, 3), base, np.uint8)
    img[((yy / H - cy) ** 2 + ((xx / W - cx) * W / H) ** 2) < r * r] = 230
    return img


def test_brightness_contrast_saturation_colourfulness():
    rng = np.random.default_rng(0)
    black, white = np.zeros((H, W, 3)), np.full((H, W, 3), 255)
    halves = np.zeros((H, W, 3))
    halves[:, W // 2:] = 255
    grey = np.full((H, W, 3), 128)
    colourful = rng.integers(0, 256, (H // 8, W // 8, 3)).repeat(8, 0).repeat(8, 1)
    f = feats(black, white, halves, grey, colourful)
    assert f.shape == (5, len(AESTHETIC_COLUMNS)) and f.dtype == np.float32
    assert f[0, COL["brightness"]] < 0.01 and f[1, COL["brightness"]] > 0.99
    assert f[2, COL["contrast"]] > 0.95 and f[3, COL["contrast"]] < 0.01
    assert f[3, COL["saturation"]] < 0.01 and f[3, COL["colourfulness"]] < 0.01
    assert f[4, COL["saturation"]] > 0.4 and f[4, COL["colourfulness"]] > 0.5


def test_sharpness_falls_with_blur():
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 256, (H, W, 3)).astype(np.float64)
    blurred = ndimage.gaussian_filter(sharp, sigma=(3, 3, 0))
    f = feats(sharp, blurred)
    assert f[0, COL["sharpness"]] > f[1, COL["sharpness"]] + 0.2


def test_symmetry_thirds_and_balance():
    rng = np.random.default_rng(2)
    half = ndimage.gaussian_filter(rng.uniform(0, 255, (H, W // 2, 3)), sigma=(4, 4, 0))
    symmetric = np.concatenate([half, half[:, ::-1]], axis=1)
    ramp = np.broadcast_to(np.linspace(0, 255, W)[None, :, None], (H, W, 3))
    on_thirds, centred, at_edge = blob(1 / 3, 1 / 3), blob(0.5, 0.5), blob(0.5, 0.05)
    f = feats(symmetric, ramp, on_thirds, centred, at_edge)
    assert f[0, COL["symmetry"]] > 0.9 and f[1, COL["symmetry"]] < 0.3
    assert f[2, COL["thirds"]] > 2 * f[3, COL["thirds"]]
    assert f[3, COL["balance"]] > 0.9 and f[4, COL["balance"]] < 0.4
    assert ((f >= 0) & (f <= 1)).all()
