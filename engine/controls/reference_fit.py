"""Fitting a reference recording's controls to hit points, through its tracked beats.

A recording has no score: its beats come from librosa's beat tracker (Ellis 2007, dynamic programming over the
onset envelope, on the same 100/s grid as the controls). The fit is the theme fit's dynamic programme
(`fit.plan_knots`) with every tracked beat as a candidate (the tracker gives no downbeats); the control curves are
then resampled along the piecewise-linear time map: melody rows nearest, dynamics interpolated. Past the
recording's end the cue rests; where the recording is still sounding at the cue end the dynamics fade out, as a
fitted theme's do. Without hits the recording keeps its own timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import CONTROL_FRAME_RATE, MEL_HOP, MODEL_SAMPLE_RATE
from ..extras import require
from .fit import FitSettings, HitMatch, check_hits, match_hits, plan_knots
from .midi import DYNAMICS_FLOOR_DB
from .types import Controls

BEAT = ("beat",)


@dataclass(frozen=True)
class ReferenceFit:
    """The time map (own seconds → cue seconds knots, then `tail_stretch`), the tracked beats and the hits."""

    knots_own_s: np.ndarray
    knots_cue_s: np.ndarray
    tail_stretch: float
    beats_own_s: np.ndarray
    hits: list[HitMatch]
    faded: bool

    @property
    def hit_share(self) -> float | None:
        return sum(h.caught for h in self.hits) / len(self.hits) if self.hits else None

    def cue_to_own(self, cue_s) -> np.ndarray:
        y = np.asarray(cue_s, np.float64)
        x = np.interp(y, self.knots_cue_s, self.knots_own_s)
        past = y > self.knots_cue_s[-1]
        return np.where(past, self.knots_own_s[-1] + (y - self.knots_cue_s[-1]) / self.tail_stretch, x)

    def own_to_cue(self, own_s) -> np.ndarray:
        x = np.asarray(own_s, np.float64)
        y = np.interp(x, self.knots_own_s, self.knots_cue_s)
        past = x > self.knots_own_s[-1]
        return np.where(past, self.knots_cue_s[-1] + (x - self.knots_own_s[-1]) * self.tail_stretch, y)

    def summary(self) -> dict:
        return {"beats_tracked": int(self.beats_own_s.size), "tempo_stretch_range": [
                    round(float(v), 3) for v in (np.min(self._stretches()), np.max(self._stretches()))],
                "faded": self.faded,
                "hits": [{"hit_s": round(h.hit_s, 3), "beat_s": _num(h.beat_s, 3), "kind": h.kind,
                          "error_ms": _num(1000 * h.error_s, 1), "caught": h.caught} for h in self.hits],
                "hit_share": None if self.hit_share is None else round(self.hit_share, 3)}

    def _stretches(self) -> np.ndarray:
        d_own, d_cue = np.diff(self.knots_own_s), np.diff(self.knots_cue_s)
        return np.concatenate([d_cue / d_own, [self.tail_stretch]]) if d_own.size else np.array([self.tail_stretch])


def _num(x: float, digits: int) -> float | None:
    """JSON-safe: None where no beat was found (no error to report)."""
    return round(x, digits) if np.isfinite(x) else None


def track_beats(wave: np.ndarray, sr: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Beat times in seconds of a mono 16 kHz recording (librosa's tracker on a 100/s onset envelope)."""
    librosa = require("librosa", "reference", "beat tracking of a reference recording")

    env = librosa.onset.onset_strength(y=np.asarray(wave, np.float32), sr=sr, hop_length=MEL_HOP)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=MEL_HOP, units="time")
    return np.asarray(beats, np.float64)


def fit_reference(controls: Controls, beats_own_s: np.ndarray, n_frames: int, hits_s=(),
                  settings: FitSettings | None = None) -> tuple[Controls, ReferenceFit]:
    """`controls` of a recording (own timing) bent so tracked beats land on `hits_s`, as `n_frames` frames."""
    s = settings or FitSettings()
    duration = n_frames / CONTROL_FRAME_RATE
    hits_all = check_hits(duration, hits_s)
    hits = hits_all[(hits_all > 0) & (hits_all < duration)]
    beats = np.asarray(beats_own_s, np.float64)
    beats = beats[beats > 1e-9]
    kinds = np.zeros(beats.size, np.int64)
    knots: list[tuple[float, float]] = []
    if hits.size and beats.size:
        _, knots = plan_knots(hits, 0.0, 1.0, s, beats, kinds)
    own = np.asarray([0.0] + [k[0] for k in knots])
    cue = np.asarray([0.0] + [k[1] for k in knots])
    tail = float((cue[-1] - cue[-2]) / (own[-1] - own[-2])) if own.size > 1 else 1.0
    fit = ReferenceFit(own, cue, tail, beats, [], False)
    # resample the curves along the map: frame i of the cue reads the recording at its own time
    centres_own = fit.cue_to_own((np.arange(n_frames) + 0.5) / CONTROL_FRAME_RATE)
    src = np.floor(centres_own * CONTROL_FRAME_RATE).astype(np.int64)
    inside = (src >= 0) & (src < controls.n_frames)
    melody = np.zeros((n_frames, controls.melody.shape[1]), np.float32)
    melody[inside] = controls.melody[src[inside]]
    own_frames = (np.arange(controls.n_frames) + 0.5) / CONTROL_FRAME_RATE
    dynamics = np.interp(centres_own, own_frames, controls.dynamics.astype(np.float64),
                         right=DYNAMICS_FLOOR_DB) if controls.n_frames else np.full(n_frames, DYNAMICS_FLOOR_DB)
    faded = False
    end_own = float(fit.cue_to_own(duration))
    if controls.n_frames and end_own < controls.duration_s - 0.5:  # still playing at the cue end: fade
        n = min(n_frames, int(round(s.fade_s * CONTROL_FRAME_RATE)))
        if n > 0:
            gain = np.linspace(1.0, 0.0, n + 1)[1:]
            dynamics[n_frames - n:] += 20.0 * np.log10(np.maximum(gain, 1e-6))
            faded = True
    fit = ReferenceFit(own, cue, tail, beats, match_hits(fit.own_to_cue(beats), kinds, hits_all, duration,
                                                         s.tolerance_s, BEAT), faded)
    out = Controls(melody, np.maximum(dynamics, DYNAMICS_FLOOR_DB).astype(np.float32), controls.melody_present,
                   controls.dynamics_present, controls.frame_rate)
    return out, fit
