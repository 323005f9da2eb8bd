"""Local controls shaped by the picture (DESIGN.md, data flow step 3).

The picture's loudness curve, on an absolute motion scale: the motion envelope (0..1, film encoder) is first
median-filtered over `BLIP_S` (a codec keyframe or a one-frame glitch in a static shot changes the picture for a
frame or two; it is not movement), smoothed over 1 s, and mapped linearly from `STILL_MOTION` (still picture,
sensor noise) to `BUSY_MOTION` (fast action) onto `QUIET_DB`..`LOUD_DB`; each shot cut adds a `CUT_ACCENT_DB` accent
decaying over 0.5 s. The scale is the same for every cue, so a static scene is quiet and a busy one loud whatever
else the cue holds (an earlier version scaled each cue to its own min and max: a keyframe blip in a static clip
became a full swell, and the static part of a busy cue fell 33 dB under it, measured). The curve never leaves
[`QUIET_DB`, `LOUD_DB` + `CUT_ACCENT_DB`], an 18 dB span: the quietest stretch of a cue stays within 20 dB of its
loudest (a static scene is quiet, not silent).

Calibration (motion envelope percentiles 5/50/95, `encode_video`): a static H.264 shot with sensor noise
0.002/0.005/0.02 and a forced keyframe peaking at 0.13; Big Buck Bunny (slow animation) 0.03/0.09/0.30; carphone
(talking head) 0.11/0.20/0.32; bikes (whip pans) 0.16/0.44/0.90.

Without a dynamics curve from MIDI, audio or a maestro theme it is the dynamics control; with one, the two dB
curves are mixed by the request's `picture_dynamics` weight (0: the theme's own, 1: the picture's). A theme's
dynamics are phrase-level swells and terraces within a few dB, so without the mix a themed cue would not follow
the picture's motion at all (measured: loudness-motion r 0.12 matched vs 0.02 mismatched, docs/eval/
picture_effect.md). The melody is never touched: without a theme it stays absent (the model improvises).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from .constants import CONTROL_FRAME_RATE
from .controls.types import Controls
from .film.features import FilmFeatures

QUIET_DB, LOUD_DB = -26.0, -12.0
CUT_ACCENT_DB, CUT_DECAY_S = 4.0, 0.5
STILL_MOTION, BUSY_MOTION = 0.04, 0.6
"""Motion envelope values mapped to QUIET_DB and LOUD_DB (see the calibration in the module docstring)."""
BLIP_S = 0.7
"""Median window: changes shorter than about half of it (a keyframe, a glitch frame) are removed."""


def picture_level(motion: np.ndarray, rate: int = CONTROL_FRAME_RATE) -> np.ndarray:
    """`(T,)` motion envelope at `rate`/s -> `(T,)` level in [0, 1] on the absolute scale (blips removed)."""
    m = np.asarray(motion, np.float64)
    if m.size == 0:
        return m
    m = median_filter(m, size=max(1, int(round(BLIP_S * rate)) | 1), mode="nearest")
    m = uniform_filter1d(m, size=rate, mode="nearest")
    return np.clip((m - STILL_MOTION) / (BUSY_MOTION - STILL_MOTION), 0.0, 1.0)


def dynamics_from_picture(film: FilmFeatures, n_frames: int) -> np.ndarray:
    """`(n_frames,)` dB at 100/s from the film's motion envelope and cuts."""
    level = picture_level(film.motion_at(n_frames, CONTROL_FRAME_RATE), CONTROL_FRAME_RATE)
    db = QUIET_DB + (LOUD_DB - QUIET_DB) * level
    t = np.arange(n_frames) / CONTROL_FRAME_RATE
    for cut in film.cuts_s:
        after = t >= cut
        db[after] += CUT_ACCENT_DB * np.exp(-(t[after] - cut) / CUT_DECAY_S)
    return np.clip(db, QUIET_DB, LOUD_DB + CUT_ACCENT_DB).astype(np.float32)


def with_picture_dynamics(controls: Controls, film: FilmFeatures | None, weight: float = 0.5) -> Controls:
    """Fill an absent dynamics control from the picture; mix a given one with it, `weight` (0..1) the picture's
    share in dB. Without a picture, or at weight 0 with given dynamics, the controls are returned unchanged."""
    if film is None or (controls.dynamics_present and weight <= 0.0):
        return controls
    picture = dynamics_from_picture(film, controls.n_frames)
    if controls.dynamics_present:
        own = np.asarray(controls.dynamics, np.float32)
        picture = ((1.0 - weight) * own + weight * picture).astype(np.float32)
    return Controls(controls.melody, picture, controls.melody_present, True, controls.frame_rate)
