"""Local controls shaped by the picture where the user gives none (DESIGN.md, data flow step 3).

Without a dynamics curve from MIDI or audio, loudness follows the picture: the motion envelope (0..1, film encoder)
smoothed over 1 s maps linearly to -32..-8 dB, and each shot cut adds a 4 dB accent decaying over 0.5 s, so that
busy, fast-cut picture plays louder and cuts land with an accent. The melody stays absent (the model improvises).
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


def with_picture_dynamics(controls: Controls, film: FilmFeatures | None) -> Controls:
    """Fill an absent dynamics control from the picture; a given one is kept as it is."""
    if film is None or controls.dynamics_present:
        return controls
    return Controls(controls.melody, dynamics_from_picture(film, controls.n_frames), controls.melody_present, True,
                    controls.frame_rate)
