"""Local controls shaped by the picture (DESIGN.md, data flow step 3).

The picture's loudness curve: the motion envelope (0..1, film encoder) smoothed over 1 s maps linearly to -32..-8 dB,
and each shot cut adds a 4 dB accent decaying over 0.5 s, so that busy, fast-cut picture plays louder and cuts land
with an accent. Without a dynamics curve from MIDI, audio or a maestro theme it is the dynamics control; with one,
the two dB curves are mixed by the request's `picture_dynamics` weight (0: the theme's own, 1: the picture's). A
theme's dynamics are phrase-level swells and terraces within a few dB, so without the mix a themed cue would not
follow the picture's motion at all (measured: loudness-motion r 0.12 matched vs 0.02 mismatched, docs/eval/
picture_effect.md). The melody is never touched: without a theme it stays absent (the model improvises).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from .constants import CONTROL_FRAME_RATE
from .controls.types import Controls
from .film.features import FilmFeatures

QUIET_DB, LOUD_DB = -32.0, -8.0
CUT_ACCENT_DB, CUT_DECAY_S = 4.0, 0.5


def dynamics_from_picture(film: FilmFeatures, n_frames: int) -> np.ndarray:
    """`(n_frames,)` dB at 100/s from the film's motion envelope and cuts."""
    motion = film.motion_at(n_frames, CONTROL_FRAME_RATE)
    motion = uniform_filter1d(motion.astype(np.float64), size=CONTROL_FRAME_RATE, mode="nearest")
    lo, hi = float(motion.min(initial=0.0)), float(motion.max(initial=0.0))
    norm = (motion - lo) / (hi - lo) if hi - lo > 1e-6 else np.full_like(motion, 0.5)
    db = QUIET_DB + (LOUD_DB - QUIET_DB) * norm
    t = np.arange(n_frames) / CONTROL_FRAME_RATE
    for cut in film.cuts_s:
        after = t >= cut
        db[after] += CUT_ACCENT_DB * np.exp(-(t[after] - cut) / CUT_DECAY_S)
    return db.astype(np.float32)


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
