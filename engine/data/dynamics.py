"""Phrase-level dynamics for the corpus renders: swells, hairpins, terraces and accents.

music21 writes every note at velocity 90, so an unshaped render has a flat dynamics control. A clip is split into
phrases at bar lines (`plan_dynamics`); each phrase gets a base level and a shape; `DynamicsPlan.level_at` gives
the loudness level in [0, 1] at any time. `engine.data.arrange` turns the level into note velocities and CC11
(expression) so that held notes swell too. The same plan drives the paired film clip's motion and flashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Shape = Literal["swell", "crescendo", "diminuendo", "terrace", "accent"]
SHAPES: tuple[Shape, ...] = ("swell", "crescendo", "diminuendo", "terrace", "accent")
SHAPE_WEIGHTS = (0.3, 0.2, 0.15, 0.2, 0.15)
ACCENT_DECAY_S = 0.5  # an accent (sforzando) falls back to the phrase's level with this time constant
PHRASE_TARGET_S = 6.0  # phrases last about this long: 1, 2, 4 or 8 bars


@dataclass(frozen=True)
class Phrase:
    """One phrase: [start_s, end_s) seconds from the clip start, a `shape`, its `level` (0..1, the floor of the
    shape) and `depth` (how far the shape rises above the floor)."""

    start_s: float
    end_s: float
    shape: Shape
    level: float
    depth: float

    def level_at(self, t_s: np.ndarray) -> np.ndarray:
        u = np.clip((t_s - self.start_s) / max(self.end_s - self.start_s, 1e-6), 0.0, 1.0)
        if self.shape == "swell":
            rise = np.sin(np.pi * u)
        elif self.shape == "crescendo":
            rise = u
        elif self.shape == "diminuendo":
            rise = 1.0 - u
        elif self.shape == "accent":
            rise = np.exp(-(t_s - self.start_s) / ACCENT_DECAY_S)
        else:  # terrace: one flat level, contrasting with its neighbours
            rise = np.zeros_like(u)
        return np.clip(self.level + self.depth * rise, 0.0, 1.0)


@dataclass(frozen=True)
class DynamicsPlan:
    """The phrases of one clip, back to back from 0 to `duration_s`."""

    phrases: tuple[Phrase, ...]
    duration_s: float

    def level_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Loudness level in [0, 1] at times `t_s` (seconds from the clip start), same shape as `t_s`."""
        t = np.asarray(t_s, np.float64)
        starts = np.array([p.start_s for p in self.phrases])
        idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(self.phrases) - 1)
        out = np.empty_like(t)
        for i, p in enumerate(self.phrases):
            m = idx == i
            if np.any(m):
                out[m] = p.level_at(t[m])
        return out

    def curve(self, rate: int) -> np.ndarray:
        """`(ceil(duration_s * rate),)` level curve sampled at `rate` per second."""
        n = int(np.ceil(self.duration_s * rate))
        return self.level_at(np.arange(n) / rate).astype(np.float32)

    @property
    def phrase_starts_s(self) -> tuple[float, ...]:
        return tuple(p.start_s for p in self.phrases)

    @property
    def accents_s(self) -> tuple[float, ...]:
        """Phrase starts that are hit hard: accent phrases and phrases starting loud."""
        return tuple(p.start_s for p in self.phrases if p.shape == "accent" or p.level_at(np.array(p.start_s)) > 0.75)

    @classmethod
    def from_json(cls, phrases: list[dict], duration_s: float) -> DynamicsPlan:
        return cls(tuple(Phrase(p["start_s"], p["end_s"], p["shape"], p["level"], p["depth"]) for p in phrases),
                   float(duration_s))

    def to_json(self) -> list[dict]:
        return [{"start_s": round(p.start_s, 4), "end_s": round(p.end_s, 4), "shape": p.shape,
                 "level": round(p.level, 3), "depth": round(p.depth, 3)} for p in self.phrases]


def phrase_bars(bar_s: float, rng: np.random.Generator) -> int:
    """Bars per phrase: the power of two whose length is nearest PHRASE_TARGET_S, sometimes half or double."""
    options = np.array([1, 2, 4, 8])
    best = int(np.argmin(np.abs(np.log(options * bar_s / PHRASE_TARGET_S))))
    best = int(np.clip(best + rng.choice([-1, 0, 0, 0, 1]), 0, len(options) - 1))
    return int(options[best])


def plan_dynamics(bar_starts_s: np.ndarray, duration_s: float, rng: np.random.Generator) -> DynamicsPlan:
    """Cut a clip into phrases at bar lines and give each a shape and level.

    bar_starts_s: `(B,)` bar starts in seconds from the clip start (the first is 0). A clip of two bars or more
    has at least two phrases. Consecutive phrases change
    level by at least 0.2 when either is a terrace, so terraces are audible steps.
    """
    bars = np.asarray(bar_starts_s, np.float64)
    bar_s = float(np.median(np.diff(np.append(bars, duration_s)))) if len(bars) else duration_s
    n = min(phrase_bars(max(bar_s, 0.1), rng), max(1, len(bars) // 2))  # at least two phrases (one cut) a clip
    starts = list(bars[::n]) if len(bars) else [0.0]
    if len(starts) > 1 and duration_s - starts[-1] < 0.4 * n * bar_s:
        starts.pop()  # a short tail joins the previous phrase
    phrases: list[Phrase] = []
    prev_level = None
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else duration_s
        shape: Shape = SHAPES[int(rng.choice(len(SHAPES), p=SHAPE_WEIGHTS))]
        depth = 0.0 if shape == "terrace" else float(rng.uniform(0.3, 0.6))
        level = float(rng.uniform(0.1, 0.85 - 0.5 * depth))
        if prev_level is not None and (shape == "terrace" or phrases[-1].shape == "terrace"):
            for _ in range(8):  # terraces must step
                if abs(level - prev_level) >= 0.2:
                    break
                level = float(rng.uniform(0.1, 0.85 - 0.5 * depth))
        phrases.append(Phrase(float(a), float(b), shape, level, depth))
        prev_level = level
    return DynamicsPlan(tuple(phrases), float(duration_s))
