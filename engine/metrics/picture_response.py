"""Does the music change with the picture? Same theme and seed, different films: matched against mismatched pairs.

The question (issue 6: "outputs differ with the picture") is answered by contrasts, never by one number alone:
render one theme against N films, then score every cue against every film. A cue that follows *its* film scores
higher against it (the diagonal of the N x N matrix) than against the other films (off the diagonal); a cue that
ignores the picture scores the same everywhere. The significance of the diagonal is an exact permutation test
over which film each cue is assigned to (N! assignments; sampled past `MAX_EXACT_N`).

- **Loudness contour** (`loudness_contour`): RMS level in dB over 400 ms windows (EBU R128's momentary-loudness
  window, without its K-weighting) at 10 frames/s; the motion envelope is averaged over the same windows
  (`envelope_contour`). `contour_r_matrix` correlates them (Pearson r) after a 1 s moving average, as
  `rhythm.motion_loudness_correlation` does.
- **Accent at cuts** (`event_accent_matrix`): the level just after a film's cuts less the level just before.
- **Onset strength at cuts** (`event_onset_strength_matrix`): the spectral-flux peak within +-70 ms of a film's
  cuts over the same peak at the cue's typical instant (1 = chance).
- **Cut alignment** (`event_alignment_matrix`): share of a film's cuts with an onset of the cue within +-70 ms
  (`rhythm.event_hit_rate`); the cue's onset density gives its chance level (`rhythm.onset_coverage`).
- **How different** (`contour_distance`, `tempo_distance`): RMS difference of two mean-removed loudness contours
  (dB), mean |log2| ratio of two local tempo curves (octaves); read against the same distance between two seeds
  of one film (the sampler's own variation).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import FilmscoreError
from ..extras import require
from .rhythm import TOLERANCE_S, event_hit_rate, inner_events

CONTOUR_RATE = 10
"""Frames per second of the contours: the film encoder's picture rate."""
CONTOUR_WINDOW_S = 0.4
"""EBU R128 momentary-loudness window."""
SMOOTH_S = 1.0
"""Moving average before correlating, as `rhythm.SMOOTH_FRAMES`: note-to-note level changes are not the picture's."""
FLOOR_DB = -100.0
RANGE_DB = 40.0
"""Contour distances floor each contour this far under its peak (silence is silence)."""
ACCENT_WINDOW_S = 0.5
"""Accent at an event: mean level in the 0.5 s after it less the 0.5 s before it."""
MAX_EXACT_N = 8
"""8! = 40,320 assignments are enumerated exactly; larger sets are sampled."""


class PictureResponseError(FilmscoreError):
    """Contours or matrices that cannot be compared: wrong shapes, too short, non-finite."""


def window_means(x: np.ndarray, src_rate: float, n: int, rate: float, window_s: float) -> np.ndarray:
    """`(n,)` means of `x` (sampled at `src_rate`) over windows of `window_s` centred on (k + 0.5) / rate."""
    x = np.asarray(x, np.float64).ravel()
    if x.size == 0:
        raise PictureResponseError("cannot take a contour of an empty signal")
    csum = np.concatenate([[0.0], np.cumsum(x)])
    centres = (np.arange(n) + 0.5) / rate
    a = np.clip(np.round((centres - window_s / 2) * src_rate).astype(np.int64), 0, x.size - 1)
    b = np.clip(np.round((centres + window_s / 2) * src_rate).astype(np.int64), a + 1, x.size)
    return (csum[b] - csum[a]) / (b - a)


def n_contour_frames(duration_s: float, rate: int = CONTOUR_RATE) -> int:
    return math.floor(duration_s * rate + 1e-9)


def loudness_contour(wave: np.ndarray, sr: int, rate: int = CONTOUR_RATE,
                     window_s: float = CONTOUR_WINDOW_S) -> np.ndarray:
    """`(floor(duration * rate),)` RMS level in dB (re full scale 1.0, floored at -100 dB) of a mono cue `(n,)`."""
    wave = np.asarray(wave, np.float64)
    if wave.ndim != 1:
        raise PictureResponseError(f"loudness contour needs mono audio (n,), got shape {wave.shape}")
    n = n_contour_frames(wave.size / sr, rate)
    if n < 1:
        raise PictureResponseError(f"audio of {wave.size / sr:.3f} s is shorter than one contour frame")
    ms = window_means(wave * wave, sr, n, rate, window_s)
    return np.maximum(10.0 * np.log10(np.maximum(ms, 1e-30)), FLOOR_DB)


def envelope_contour(envelope: np.ndarray, src_rate: int, n: int, rate: int = CONTOUR_RATE,
                     window_s: float = CONTOUR_WINDOW_S) -> np.ndarray:
    """`(n,)` an envelope (the film's motion at 100/s) averaged over the loudness contour's windows."""
    return window_means(envelope, src_rate, n, rate, window_s)


def smooth(contour: np.ndarray, rate: int = CONTOUR_RATE, smooth_s: float = SMOOTH_S) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    size = max(1, round(smooth_s * rate))
    return uniform_filter1d(np.asarray(contour, np.float64), size, mode="nearest")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the common length; nan when either is constant there."""
    n = min(len(a), len(b))
    x, y = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
    if n < 2 or x.std() < 1e-9 or y.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def contour_r_matrix(contours: Sequence[np.ndarray], envelopes: Sequence[np.ndarray],
                     rate: int = CONTOUR_RATE, smooth_s: float = SMOOTH_S) -> np.ndarray:
    """`(n_cues, n_films)` r[i, j] = Pearson r of cue i's contour and film j's envelope, both smoothed."""
    cs = [smooth(c, rate, smooth_s) for c in contours]
    es = [smooth(e, rate, smooth_s) for e in envelopes]
    return np.array([[pearson(c, e) for e in es] for c in cs])


def event_alignment_matrix(onsets_s: Sequence[np.ndarray], events_s: Sequence[Sequence[float]],
                           duration_s: float, tol: float = TOLERANCE_S) -> np.ndarray:
    """`(n_cues, n_films)` share of film j's events (cuts) inside the cue with an onset of cue i within +-tol;
    nan for a film with no inner event."""
    evs = [inner_events(e, duration_s, tol) for e in events_s]
    return np.array([[event_hit_rate(e, o, tol) for e in evs] for o in onsets_s])


def event_accent_matrix(contours: Sequence[np.ndarray], events_s: Sequence[Sequence[float]],
                        rate: int = CONTOUR_RATE, window_s: float = ACCENT_WINDOW_S) -> np.ndarray:
    """`(n_cues, n_films)` mean accent in dB of cue i at film j's events (cuts): level over [e, e + w) less level
    over [e - w, e), for the events with a whole window each side; nan for a film with none. A cue that swells or
    strikes on its film's cuts scores high on them and near 0 on another film's."""
    w = max(1, round(window_s * rate))
    out = np.full((len(contours), len(events_s)), np.nan)
    for j, ev in enumerate(events_s):
        for i, c in enumerate(contours):
            c = np.asarray(c, np.float64)
            k = np.round(np.asarray(ev, np.float64) * rate).astype(np.int64)
            k = k[(k - w >= 0) & (k + w <= c.size)]
            if k.size:
                out[i, j] = float(np.mean([c[e:e + w].mean() - c[e - w:e].mean() for e in k]))
    return out


def event_onset_strength_matrix(onset_envelopes: Sequence[np.ndarray], events_s: Sequence[Sequence[float]],
                                duration_s: float, rate: int = 100, tol: float = TOLERANCE_S) -> np.ndarray:
    """`(n_cues, n_films)` onset strength at film j's events in cue i, relative to the cue's own instants: the
    strongest onset-envelope value (`rhythm.onset_envelope`, `rate` frames/s) within +-tol of each inner event,
    averaged over the events, over the same +-tol maximum averaged over every inner instant of the cue. 1 is
    chance (cuts at random times); a cue that strikes on its film's cuts scores well above 1 on them. Unlike
    `event_alignment_matrix` it does not saturate when the detector finds an onset every few frames. nan for a
    film with no inner event or a silent cue."""
    from scipy.ndimage import maximum_filter1d

    half = max(1, round(tol * rate))
    out = np.full((len(onset_envelopes), len(events_s)), np.nan)
    for i, env in enumerate(onset_envelopes):
        env = np.asarray(env, np.float64)
        peak = maximum_filter1d(env, 2 * half + 1, mode="nearest")
        lo, hi = half, min(env.size, round((duration_s - tol) * rate))
        norm = peak[lo:hi].mean() if hi > lo else 0.0
        if norm <= 0:
            continue
        for j, ev in enumerate(events_s):
            k = np.round(inner_events(ev, duration_s, tol) * rate).astype(np.int64)
            k = k[(k >= 0) & (k < env.size)]
            if k.size:
                out[i, j] = float(peak[k].mean() / norm)
    return out


def contour_distance(a: np.ndarray, b: np.ndarray, rate: int = CONTOUR_RATE, smooth_s: float = SMOOTH_S,
                     range_db: float = RANGE_DB) -> float:
    """RMS difference in dB of two smoothed contours over their common length, each less its own mean (the
    delivered level is normalised, so only the shape counts). Each contour is first floored at `range_db` under
    its own peak: how deep a silence is (Griffin-Lim's noise floor) is not a difference anyone hears in a mix."""
    n = min(len(a), len(b))
    if n < 1:
        raise PictureResponseError("contour distance of empty contours")
    a, b = (np.maximum(np.asarray(c[:n], np.float64), np.max(c[:n]) - range_db) for c in (a, b))
    x, y = smooth(a, rate, smooth_s), smooth(b, rate, smooth_s)
    return float(np.sqrt(np.mean(((x - x.mean()) - (y - y.mean())) ** 2)))


def local_tempo(wave: np.ndarray, sr: int, rate: int = CONTOUR_RATE) -> np.ndarray:
    """`(floor(duration * rate),)` local tempo in BPM: librosa's tempogram estimate per frame (8 s
    autocorrelation window, its default prior) on the onset envelope of `rhythm.onset_envelope`."""
    librosa = require("librosa", "eval", "the picture-response metrics")

    from ..constants import MEL_FRAME_RATE, MEL_HOP, MODEL_SAMPLE_RATE
    from .rhythm import onset_envelope

    env = onset_envelope(wave, sr)
    bpm = librosa.feature.tempo(onset_envelope=env, sr=MODEL_SAMPLE_RATE, hop_length=MEL_HOP, aggregate=None)
    n = n_contour_frames(np.asarray(wave).shape[0] / sr, rate)
    t = (np.arange(n) + 0.5) / rate
    return np.interp(t, np.arange(bpm.size) / MEL_FRAME_RATE, bpm)


def tempo_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |log2(a / b)| of two tempo curves (BPM) over their common length: 1.0 = an octave (double tempo)."""
    n = min(len(a), len(b))
    x, y = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
    if n < 1 or np.any(x <= 0) or np.any(y <= 0):
        raise PictureResponseError("tempo curves must be non-empty and positive")
    return float(np.mean(np.abs(np.log2(x / y))))


def pairwise(items: Sequence, distance) -> np.ndarray:
    """`(n, n)` symmetric matrix of distance(items[i], items[j]), zero diagonal."""
    n = len(items)
    out = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        out[i, j] = out[j, i] = distance(items[i], items[j])
    return out


def off_diagonal(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return m[~np.eye(m.shape[0], dtype=bool)]


@dataclass(frozen=True)
class MatchedContrast:
    """A cue-by-film score matrix summarised: matched = mean of the diagonal (each cue against its own film),
    mismatched = mean off the diagonal; p_value = share of the n! assignments of films to cues (sampled when
    n > MAX_EXACT_N) whose mean score is at least the matched one: the chance of a diagonal this high if cues
    ignored which film they were made for. nan entries are left out of the means."""

    matched: float
    mismatched: float
    difference: float
    p_value: float
    n_assignments: int
    exact: bool
    n: int

    def to_json(self) -> dict:
        """Rounded to 4 decimals; the p-value to 3 significant digits (1 / 40,320 is 2.48e-05, not 0)."""
        def r(k, v):
            if not isinstance(v, float):
                return v
            if not math.isfinite(v):
                return None
            return float(f"{v:.3g}") if k == "p_value" else round(v, 4)

        return {k: r(k, v) for k, v in asdict(self).items()}


def matched_contrast(matrix: np.ndarray, n_samples: int = 20_000, seed: int = 0) -> MatchedContrast:
    """Matched against mismatched scores of a square `(n, n)` matrix (rows cues, columns films), n >= 2."""
    m = np.asarray(matrix, np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise PictureResponseError(f"a matched contrast needs a square matrix of at least 2 x 2, got {m.shape}")
    n = m.shape[0]
    diag = np.diag(m)
    if not np.isfinite(diag).any():
        raise PictureResponseError("every matched score is nan")
    observed = float(np.nanmean(diag))
    exact = n <= MAX_EXACT_N
    if exact:
        perms = np.array(list(itertools.permutations(range(n))), np.int64)
    else:
        rng = np.random.default_rng(seed)
        perms = np.stack([np.arange(n)] + [rng.permutation(n) for _ in range(n_samples - 1)])
    scores = m[np.arange(n)[None, :], perms]  # (n_perm, n): cue i against film perm[i]
    ok = np.isfinite(scores)
    means = np.where(ok, scores, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
    means[~ok.any(axis=1)] = -np.inf  # an assignment with no scorable pair never counts as "as high"
    p = float(np.mean(means >= observed - 1e-12))  # the identity assignment is among them: p >= 1 / n_perm
    off = off_diagonal(m)
    mismatched = float(np.nanmean(off)) if np.isfinite(off).any() else float("nan")
    return MatchedContrast(observed, mismatched, observed - mismatched, p, int(perms.shape[0]), exact, n)
