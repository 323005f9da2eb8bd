"""Rhythm against picture: does the music move where the picture does?

- **Cut alignment** (`event_hit_rate`): the share of cuts / hit points that have a music onset within +-70 ms
  (the tolerance of mir_eval's onset and beat F-measures, about the 10/s picture grid's half frame plus the
  onset detector's spread).
  Its chance level is `onset_coverage`: the share of the cue's instants that have an onset within +-70 ms (a cue
  dense with onsets "hits" every cut by accident); read the rate against it.
- **Beat F1** (`beat_f1`): mir_eval's beat F-measure with the requested hit points as reference beats and the
  beats tracked in the audio as estimates (+-70 ms). Beats with no hit lower precision: a cue that plays a
  steady beat scores below 1 even when every hit lands, which is why it is read next to the baselines.
- **Beat/transition IoU** (`beat_transition_iou`): visual transitions and music beats matched one to one within
  +-70 ms (mir_eval.util.match_events), IoU = matched / (|transitions| + |beats| - matched), the set form of the
  transition-beat alignment scores of recent video-to-music work (e.g. VeM, arXiv 2511.09585).
- **Motion-loudness r** (`motion_loudness_correlation`): Pearson r between the picture's motion envelope and the
  music's loudness (frame energy in dB), both at 100/s and smoothed over 1 s.

Onsets: librosa's spectral-flux onset detector on the 16 kHz audio with a 10 ms hop (the Mel grid); beats:
librosa's dynamic-programming beat tracker on the same onset envelope. Events closer than the tolerance to either
end of the cue are left out: an onset there cannot be told from the cue's own start or end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import MEL_FRAME_RATE, MEL_HOP, MODEL_SAMPLE_RATE
from ..extras import require

TOLERANCE_S = 0.07
"""+-70 ms: mir_eval's default window for onsets and beats."""
SMOOTH_FRAMES = MEL_FRAME_RATE  # 1 s moving average for the motion-loudness correlation


def _to_model_rate(wave: np.ndarray, sr: int) -> np.ndarray:
    from ..audio.io import resample

    return resample(np.asarray(wave, np.float32), sr, MODEL_SAMPLE_RATE)


def onset_envelope(wave: np.ndarray, sr: int) -> np.ndarray:
    """`(T,)` spectral-flux onset strength at 100/s (librosa, 128 Mel bands, hop 160 at 16 kHz)."""
    librosa = require("librosa", "eval", "the rhythm metrics")

    y = _to_model_rate(wave, sr)
    return librosa.onset.onset_strength(y=y, sr=MODEL_SAMPLE_RATE, hop_length=MEL_HOP, n_fft=1024, n_mels=128)


def onset_times(wave: np.ndarray, sr: int) -> np.ndarray:
    """Onset instants in seconds (ascending) of a mono recording `(n,)` at `sr` Hz."""
    librosa = require("librosa", "eval", "the rhythm metrics")

    env = onset_envelope(wave, sr)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=MODEL_SAMPLE_RATE, hop_length=MEL_HOP, units="frames")
    return librosa.frames_to_time(frames, sr=MODEL_SAMPLE_RATE, hop_length=MEL_HOP)


def beat_times(wave: np.ndarray, sr: int) -> np.ndarray:
    """Beat instants in seconds (ascending), librosa's beat tracker on `onset_envelope`."""
    librosa = require("librosa", "eval", "the rhythm metrics")

    env = onset_envelope(wave, sr)
    if not np.any(env > 0):
        return np.zeros(0)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=MODEL_SAMPLE_RATE, hop_length=MEL_HOP, units="time")
    return np.asarray(beats, np.float64)


def inner_events(events_s, duration_s: float, tol: float = TOLERANCE_S) -> np.ndarray:
    """The events strictly inside (tol, duration - tol), sorted."""
    e = np.sort(np.asarray(events_s, np.float64).ravel())
    return e[(e > tol) & (e < duration_s - tol)]


def event_hit_rate(events_s, onsets_s, tol: float = TOLERANCE_S) -> float:
    """Share of `events_s` with at least one onset within +-tol; nan when there is no event."""
    ev = np.asarray(events_s, np.float64).ravel()
    on = np.sort(np.asarray(onsets_s, np.float64).ravel())
    if ev.size == 0:
        return float("nan")
    if on.size == 0:
        return 0.0
    nearest = np.abs(ev[:, None] - on[None, :]).min(axis=1)  # events and onsets number in the hundreds
    return float(np.mean(nearest <= tol + 1e-9))


def onset_coverage(onsets_s, duration_s: float, tol: float = TOLERANCE_S) -> float:
    """Share of instants in (tol, duration - tol) with an onset within +-tol (1 ms grid): the cut alignment a
    cue would score if the cuts fell at random times. nan for a cue shorter than 2 tol."""
    grid = np.arange(tol, duration_s - tol, 0.001)
    if grid.size == 0:
        return float("nan")
    on = np.sort(np.asarray(onsets_s, np.float64).ravel())
    if on.size == 0:
        return 0.0
    i = np.clip(np.searchsorted(on, grid), 1, max(on.size - 1, 1))
    near = np.minimum(np.abs(grid - on[i - 1]), np.abs(grid - on[np.minimum(i, on.size - 1)]))
    return float(np.mean(near <= tol + 1e-9))


def beat_f1(reference_s, estimated_s, tol: float = TOLERANCE_S) -> float:
    """mir_eval's beat F-measure (no trimming of the first 5 s: cues are short); nan without reference beats."""
    mir_eval = require("mir_eval", "eval", "the rhythm metrics")

    ref = np.sort(np.asarray(reference_s, np.float64).ravel())
    est = np.sort(np.asarray(estimated_s, np.float64).ravel())
    if ref.size == 0:
        return float("nan")
    if est.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=tol))


def beat_transition_iou(transitions_s, beats_s, tol: float = TOLERANCE_S) -> float:
    """matched / (|transitions| + |beats| - matched), one-to-one matching within +-tol; nan when both are empty."""
    mir_eval = require("mir_eval", "eval", "the rhythm metrics")

    t = np.sort(np.asarray(transitions_s, np.float64).ravel())
    b = np.sort(np.asarray(beats_s, np.float64).ravel())
    if t.size + b.size == 0:
        return float("nan")
    matched = len(mir_eval.util.match_events(t, b, tol)) if t.size and b.size else 0
    return matched / (t.size + b.size - matched)


def motion_loudness_correlation(motion: np.ndarray, wave: np.ndarray, sr: int) -> float:
    """Pearson r of the motion envelope `(T,)` at 100/s and the audio's frame energy in dB, both smoothed over
    1 s; nan when either is constant."""
    from scipy.ndimage import uniform_filter1d

    from ..controls.audio import energy_db

    y = _to_model_rate(wave, sr)
    n = min(int(motion.shape[0]), int(np.ceil(y.size / MEL_HOP)))
    if n < 2:
        return float("nan")
    loud = uniform_filter1d(energy_db(y, n).astype(np.float64), SMOOTH_FRAMES, mode="nearest")
    mot = uniform_filter1d(np.asarray(motion[:n], np.float64), SMOOTH_FRAMES, mode="nearest")
    if loud.std() < 1e-9 or mot.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(mot, loud)[0, 1])


@dataclass(frozen=True)
class RhythmScores:
    """Rhythm of one cue against its picture. cut_onset_rate: cuts with an onset within +-70 ms;
    hit_onset_rate: the same for the requested hit points; onset_chance: both rates' chance level;
    beat_f1: hit points vs tracked beats; beat_transition_iou: cuts vs tracked beats; motion_loudness_r.
    nan where the picture has no such event."""

    cut_onset_rate: float
    hit_onset_rate: float
    onset_chance: float
    beat_f1: float
    beat_transition_iou: float
    motion_loudness_r: float
    onsets_s: tuple[float, ...]
    beats_s: tuple[float, ...]


def measure_rhythm(wave: np.ndarray, sr: int, cuts_s, hits_s, motion: np.ndarray | None) -> RhythmScores:
    """All rhythm scores of one cue `(n,)` at `sr` Hz against its cuts, hit points (seconds from the cue start)
    and motion envelope (100/s, None without picture)."""
    duration = np.asarray(wave).shape[0] / sr
    onsets = onset_times(wave, sr)
    beats = beat_times(wave, sr)
    cuts = inner_events(cuts_s, duration)
    hits = inner_events(hits_s, duration)
    return RhythmScores(
        cut_onset_rate=event_hit_rate(cuts, onsets),
        hit_onset_rate=event_hit_rate(hits, onsets),
        onset_chance=onset_coverage(onsets, duration),
        beat_f1=beat_f1(hits, inner_events(beats, duration)),
        beat_transition_iou=beat_transition_iou(cuts, inner_events(beats, duration)) if cuts.size else float("nan"),
        motion_loudness_r=motion_loudness_correlation(motion, wave, sr) if motion is not None else float("nan"),
        onsets_s=tuple(float(x) for x in onsets), beats_s=tuple(float(x) for x in beats))
