"""The plan's dynamics curve (dB at 10/s): the picture's loudness on the absolute motion scale with its floor
(`engine.cue_controls.dynamics_from_picture`, the one owner of that mapping), offset by each section's energy
(+-3 dB about energy 0.5: louder music for more active scenes, Gabrielsson & Lindstrom 2010), clipped to an 18 dB
span, so the quietest stretch stays within 20 dB of the loudest. Without a picture: the section levels alone."""

from __future__ import annotations

import numpy as np

from ..constants import CONTROL_FRAME_RATE
from ..cue_controls import CUT_ACCENT_DB, LOUD_DB, QUIET_DB, dynamics_from_picture
from .rhythm import Section, section_at

PLAN_DYNAMICS_RATE = 10
"""Frames per second of the dynamics curve stored in a plan (and as CC11 in PLAN.mid); controls resample to 100/s."""
SPAN_DB = 18.0
SECTION_DB = 3.0


def plan_dynamics(film, duration_s: float, sections: list[Section]) -> np.ndarray:
    n100 = int(np.ceil(duration_s * CONTROL_FRAME_RATE - 1e-9))
    t100 = np.arange(n100) / CONTROL_FRAME_RATE
    if film is not None:
        db = dynamics_from_picture(film, n100).astype(np.float64)
    else:
        db = np.full(n100, 0.5 * (QUIET_DB + LOUD_DB))
    db += np.asarray([SECTION_DB * 2 * (section_at(sections, float(t)).mood.energy - 0.5) for t in t100])
    top = LOUD_DB + CUT_ACCENT_DB
    db = np.clip(db, top - SPAN_DB, top)
    n10 = int(np.ceil(duration_s * PLAN_DYNAMICS_RATE - 1e-9))
    # the mean over each 0.1 s keeps accents' energy rather than sampling past their peak
    pad = np.pad(db, (0, n10 * 10 - n100), mode="edge")
    return pad.reshape(n10, 10).mean(axis=1).astype(np.float32)


def to_control_rate(db10: np.ndarray, n_frames: int) -> np.ndarray:
    """`(n_frames,)` dB at 100/s from the plan's 10/s curve (linear between frame centres)."""
    src = (np.arange(len(db10)) + 0.5) / PLAN_DYNAMICS_RATE
    dst = (np.arange(n_frames) + 0.5) / CONTROL_FRAME_RATE
    return np.interp(dst, src, db10).astype(np.float32)


def quietest_vs_loudest_db(db: np.ndarray, rate: int, window_s: float = 3.0) -> float:
    """Loudest frame minus the quietest `window_s` mean (dB): the floor measure of the issue (<= 20 dB)."""
    w = max(1, int(round(window_s * rate)))
    if len(db) <= w:
        return float(db.max() - db.mean())
    c = np.convolve(db, np.ones(w) / w, mode="valid")
    return float(db.max() - c.min())
