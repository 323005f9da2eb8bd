"""How far a rendered cue follows its plan (docs/plan.md): hits on beats in the plan itself, and in the audio the
tempo (librosa's beat tracker, octave errors allowed), the mode (Krumhansl-Schmuckler on the mean chroma, the key
finder of `engine.plan.harmony`) and the pulse (onset strength on the plan's beats against between them)."""

from __future__ import annotations

import math

import numpy as np

from ..plan.harmony import estimate_key
from ..plan.mood import TONIC_NAMES
from ..plan.tempo_map import HIT_TOLERANCE_S

OCTAVE_TOLERANCE = 0.08
"""A tracked tempo within 8 % of the plan's, or of half or double it, counts as the plan's."""


def hits_on_beats(plan) -> float:
    """Share of the plan's hits whose beat is within HIT_TOLERANCE_S (nan without hits)."""
    if not plan.hits:
        return float("nan")
    return sum(abs(h.beat_time_s - h.time_s) <= HIT_TOLERANCE_S for h in plan.hits) / len(plan.hits)


def audio_tempo_mode(wave: np.ndarray, sr: int) -> tuple[float, int, str]:
    """(tempo BPM, tonic pitch class, mode) of mono audio."""
    import librosa

    tempo, _ = librosa.beat.beat_track(y=np.asarray(wave, np.float32), sr=sr)
    chroma = librosa.feature.chroma_cqt(y=np.asarray(wave, np.float32), sr=sr).mean(axis=1)
    tonic, mode = estimate_key([(0.0, float(w), pc) for pc, w in enumerate(chroma)])
    return float(np.atleast_1d(tempo)[0]), tonic, mode


def tempo_matches(audio_bpm: float, plan_bpm: float, tol: float = OCTAVE_TOLERANCE) -> bool:
    r = math.log2(audio_bpm / plan_bpm)
    return min(abs(r - k) for k in (-1, 0, 1)) <= math.log2(1 + tol)


def pulse_on_beats(wave: np.ndarray, sr: int, beats_s: np.ndarray) -> float:
    """Mean onset strength within 50 ms of the plan's beats over its mean half-way between them (1: no pulse at
    the plan's beats)."""
    import librosa

    env = librosa.onset.onset_strength(y=np.asarray(wave, np.float32), sr=sr, hop_length=512)
    rate = sr / 512
    dur = len(wave) / sr
    b = beats_s[(beats_s >= 0) & (beats_s < dur)]
    if len(b) < 3:
        return float("nan")
    mid = (b[:-1] + b[1:]) / 2

    def at(ts: np.ndarray) -> float:
        w = int(round(0.05 * rate))
        return float(np.mean([env[max(0, int(t * rate) - w):int(t * rate) + w + 1].max() for t in ts]))

    return at(b) / max(at(mid), 1e-9)


def plan_adherence(plan, wave: np.ndarray, sr: int) -> dict:
    bpm, tonic, mode = audio_tempo_mode(wave, sr)
    return {"hits_on_beats": hits_on_beats(plan), "plan_bpm": round(plan.tempo.tempo_bpm, 2),
            "audio_bpm": round(bpm, 2), "tempo_matches": tempo_matches(bpm, plan.tempo.tempo_bpm),
            "plan_mode": plan.mode, "audio_mode": mode, "audio_key": TONIC_NAMES[tonic],
            "mode_matches": mode == plan.mode, "pulse_on_beats": round(pulse_on_beats(wave, sr, plan.tempo.beats), 3)}
