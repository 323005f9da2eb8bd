"""Harmony of the plan: chord slots on the tempo map, filled from the theme's own parts, by harmonising a melody in
a master's style, or by drawing a progression (and a melody) from that style.

Vocabulary: the six diatonic triads of `engine.data.harmony` (major: I V IV vi ii iii; minor with a raised leading
tone: i V iv VI III VII), the same chords the corpus arranger voices. A *style* (`style_stats.json`, built by
`python -m filmscore.engine.plan.build_style`, see that module) holds, per master and mode, counts learned from the
master's music21 corpus pieces labelled with `harmony.chords_per_bar` on half-bar slots:

- `start` (6,) and `trans` (6, 6): which chord opens a piece, which follows which (a first-order chain);
- `emit` (6, 12): the melody's pitch classes (relative to the tonic, duration-weighted, onsets on the slot's start
  doubled) over each chord.

A melody is harmonised by Viterbi decoding of that hidden Markov model (chords hidden, melody notes observed; as in
Allan & Williams 2005, "Harmonising chorales by probabilistic inference", and Simon, Morris & Basu 2008, "MySong"),
with the last slot pulled to the tonic (a cadence). Counts are add-one smoothed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.harmony import MAJOR_TRIADS, MINOR_TRIADS, chords_per_bar
from .mood import TONIC_NAMES, PlanError

STYLE_FILE = Path(__file__).resolve().parent / "style_stats.json"
STYLE_FORMAT = 1
DEFAULT_STYLE = "all"
"""Pooled counts of every master: the style of a plan without a maestro."""
ROMAN = {"major": ("I", "V", "IV", "vi", "ii", "iii"), "minor": ("i", "V", "iv", "VI", "III", "VII")}
EMISSION_WEIGHT = 4.0
"""The melody's weight against the chain in decoding (a slot's normalised pitch-class weights count as four notes):
chosen on the first 8 themes of Bach, Mozart and the folk tunes (2: strong-beat chord-tone share 0.92 / 0.79 /
0.90; 4: 0.97 / 0.85 / 0.95; 8: Bach 1.0 but Mozart's progressions no likelier than shuffled ones)."""
MIN_SLOTS = 200
"""A master with fewer slots than this in a mode (Haydn, Monteverdi and the folk tunes hold no minor-key piece in
their counted works) is harmonised in that mode with the pooled counts."""
CADENCE_BONUS = 3.0
"""Log-probability bonus for the tonic in the last slot (and the dominant before it, a third of it)."""


def triads(mode: str) -> tuple[tuple[int, tuple[int, ...], float], ...]:
    return MAJOR_TRIADS if mode == "major" else MINOR_TRIADS


def chord_pcs(tonic: int, mode: str, index: int) -> tuple[int, ...]:
    root, iv, _ = triads(mode)[index]
    return tuple((tonic + root + i) % 12 for i in iv)


def chord_symbol(tonic: int, mode: str, index: int) -> str:
    root, iv, _ = triads(mode)[index]
    return TONIC_NAMES[(tonic + root) % 12] + ("m" if iv[1] == 3 else "")


@dataclass(frozen=True)
class Chord:
    """One chord of the plan: `time_s` (cue seconds, its start), `end_s`, `symbol` ("Dm"), `roman` ("i"; "" for a
    chord that is not one of the six), `pitch_classes` (root first for a triad), `degree` (index into the
    vocabulary, -1 when outside it)."""

    time_s: float
    end_s: float
    symbol: str
    roman: str
    pitch_classes: tuple[int, ...]
    degree: int = -1

    def to_json(self) -> dict:
        return {"time": round(self.time_s, 4), "end": round(self.end_s, 4), "symbol": self.symbol,
                "roman": self.roman, "pitch_classes": list(self.pitch_classes), "degree": self.degree}

    @classmethod
    def from_json(cls, d: dict) -> Chord:
        try:
            return cls(float(d["time"]), float(d.get("end", d["time"])), str(d["symbol"]), str(d.get("roman", "")),
                       tuple(int(p) % 12 for p in d["pitch_classes"]), int(d.get("degree", -1)))
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError(f"chord {d!r}: needs time, symbol, pitch_classes ({e})") from e


@dataclass(frozen=True)
class Style:
    """Counts of one master in one mode (see the module docstring), as log probabilities."""

    name: str
    mode: str
    log_start: np.ndarray
    log_trans: np.ndarray
    log_emit: np.ndarray
    n_slots: int

    @classmethod
    def from_counts(cls, name: str, mode: str, d: dict) -> Style:
        start = np.asarray(d["start"], np.float64) + 1.0
        trans = np.asarray(d["trans"], np.float64) + 1.0
        emit = np.asarray(d["emit"], np.float64) + 1.0
        return cls(name, mode, np.log(start / start.sum()), np.log(trans / trans.sum(axis=1, keepdims=True)),
                   np.log(emit / emit.sum(axis=1, keepdims=True)), int(d.get("slots", 0)))

    def sequence_loglik(self, degrees) -> float:
        """Mean log-probability per transition of a chord sequence under the chain (start included)."""
        d = [int(x) for x in degrees if x >= 0]
        if not d:
            return float("nan")
        ll = self.log_start[d[0]] + sum(self.log_trans[a, b] for a, b in zip(d[:-1], d[1:]))
        return float(ll / len(d))


@lru_cache(maxsize=4)
def _style_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PlanError(f"style statistics {path}: cannot read ({e}); rebuild with "
                        "`python -m filmscore.engine.plan.build_style`") from e
    if data.get("format") != STYLE_FORMAT or "styles" not in data:
        raise PlanError(f"style statistics {path}: not a format-{STYLE_FORMAT} file")
    return data


def style_names(path: Path = STYLE_FILE) -> list[str]:
    return sorted(_style_file(path)["styles"])


def load_style(name: str | None, mode: str, path: Path = STYLE_FILE) -> Style:
    """The statistics of master `name` (None: the pooled style) in `mode`."""
    data = _style_file(path)["styles"]
    key = (name or DEFAULT_STYLE).strip().lower()
    if key not in data:
        raise PlanError(f"no harmony statistics for {name!r}; known: {', '.join(sorted(data))}")
    if data[key][mode].get("slots", 0) < MIN_SLOTS:  # e.g. no minor-key piece among the master's: the pooled counts
        return Style.from_counts(f"{key} ({mode} from {DEFAULT_STYLE})", mode, data[DEFAULT_STYLE][mode])
    return Style.from_counts(key, mode, data[key][mode])


# -- slots --------------------------------------------------------------------------------------------------------
def chord_slots(downbeats: np.ndarray, beats: np.ndarray, chords_per_bar: int, start_s: float,
                end_s: float) -> list[tuple[float, float]]:
    """[start, end) cue seconds of each chord: every bar (downbeat to downbeat), split at its middle beat when
    `chords_per_bar` is 2 and the bar has an even number (>= 2) of beats; clipped to [start_s, end_s)."""
    out = []
    d = np.asarray(downbeats)
    for a, b in zip(d[:-1], d[1:]):
        if b <= start_s + 1e-6 or a >= end_s - 1e-6:
            continue
        inner = beats[(beats > a + 1e-6) & (beats < b - 1e-6)]
        n = len(inner) + 1
        edges = [a, b]
        if chords_per_bar >= 2 and n >= 2 and n % 2 == 0:
            edges = [a, float(inner[n // 2 - 1]), b]
        for x, y in zip(edges[:-1], edges[1:]):
            x, y = max(x, start_s), min(y, end_s)
            if y - x > 1e-3:
                out.append((float(x), float(y)))
    if out and out[-1][1] < end_s - 1e-3:
        out.append((out[-1][1], end_s))
    return out


def slot_pc_weights(notes, slots: list[tuple[float, float]]) -> np.ndarray:
    """`(S, 12)` duration weights of pitch classes sounding in each slot; a note starting on the slot's start
    counts double (the corpus statistics weigh notes the same way). notes: iterable of (onset_s, offset_s, pitch)."""
    w = np.zeros((len(slots), 12))
    starts = np.asarray([a for a, _ in slots])
    for on, off, pitch in notes:
        i0 = max(0, int(np.searchsorted(starts, on, side="right")) - 1)
        for i in range(i0, len(slots)):
            a, b = slots[i]
            if a >= off:
                break
            ov = min(off, b) - max(on, a)
            if ov > 0:
                w[i, int(pitch) % 12] += ov * (2.0 if abs(on - a) < 0.02 else 1.0)
    return w


# -- the three ways to a progression ------------------------------------------------------------------------------
def harmonise(style: Style, pc_weights: np.ndarray, tonic: int) -> list[int]:
    """Viterbi: the most likely chord degree per slot for melody weights `(S, 12)` (absolute pitch classes)."""
    s = pc_weights.shape[0]
    if s == 0:
        return []
    rel = np.roll(pc_weights, -tonic, axis=1)  # relative to the tonic, as the statistics are
    norm = rel / np.maximum(rel.sum(axis=1, keepdims=True), 1e-9)
    emit = norm @ style.log_emit.T * EMISSION_WEIGHT  # (S, 6)
    k = style.log_trans.shape[0]
    cad = np.zeros((s, k))
    cad[-1, 0] = CADENCE_BONUS
    if s > 1:
        cad[-2, 1] = CADENCE_BONUS / 3
    v = style.log_start + emit[0] + cad[0]
    back = np.zeros((s, k), np.int64)
    for i in range(1, s):
        tot = v[:, None] + style.log_trans
        back[i] = tot.argmax(axis=0)
        v = tot.max(axis=0) + emit[i] + cad[i]
    path = [int(v.argmax())]
    for i in range(s - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def sample_progression(style: Style, n: int, rng: np.random.Generator) -> list[int]:
    """A progression of `n` slots drawn from the chain, ending V - I (or i) when n >= 2."""
    if n <= 0:
        return []
    p = np.exp(style.log_start)
    seq = [int(rng.choice(len(p), p=p / p.sum()))]
    for _ in range(n - 1):
        q = np.exp(style.log_trans[seq[-1]])
        seq.append(int(rng.choice(len(q), p=q / q.sum())))
    if n >= 2:
        seq[-2], seq[-1] = 1, 0
    else:
        seq[-1] = 0
    return seq


def label_slots(notes_beats, slots_beats: np.ndarray, end_beats: float, tonic: int, mode: str) -> list[int]:
    """The theme's own chords: the diatonic triad covering most of each slot's sounding notes (all parts),
    `engine.data.harmony.chords_per_bar` over the slots. notes_beats `(N, 3)` (onset, duration, pitch)."""
    cs = chords_per_bar(np.asarray(notes_beats, np.float64).reshape(-1, 3), np.asarray(slots_beats), end_beats,
                        tonic, mode)
    vocab = [chord_pcs(tonic, mode, i) for i in range(6)]
    return [vocab.index(c.pcs) for c in cs]


def chords_from_degrees(degrees: list[int], slots: list[tuple[float, float]], tonic: int, mode: str,
                        ) -> list[Chord]:
    return [Chord(a, b, chord_symbol(tonic, mode, d), ROMAN[mode][d], chord_pcs(tonic, mode, d), d)
            for d, (a, b) in zip(degrees, slots)]


def strong_beat_chord_tone_share(melody, chords: list[Chord], strong_times: np.ndarray) -> float:
    """Share of melody notes starting on a strong beat (within 30 ms of one of `strong_times`) whose pitch class
    is a tone of the chord sounding then. melody: iterable of (onset_s, offset_s, pitch)."""
    starts = np.asarray([c.time_s for c in chords])
    hit = total = 0
    for on, _, pitch in melody:
        if strong_times.size == 0 or np.min(np.abs(strong_times - on)) > 0.03:
            continue
        i = int(np.searchsorted(starts, on + 1e-6)) - 1
        if i < 0:
            continue
        total += 1
        hit += int(pitch) % 12 in chords[i].pitch_classes
    return hit / total if total else float("nan")


KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
KEY_AGREEMENT = 0.05
"""A key given with a theme stands when its key-profile correlation is within this of the best key's."""


def key_correlations(notes) -> dict[tuple[int, str], float]:
    """Krumhansl-Schmuckler key finding (Krumhansl & Kessler 1982 profiles): the correlation of the duration-weighted
    pitch-class histogram with each of the 24 keys' profiles. notes: iterable of (onset, offset, pitch)."""
    h = np.zeros(12)
    for on, off, p in notes:
        h[int(p) % 12] += max(off - on, 0.0)
    if h.sum() <= 0 or np.all(h == h[0]):
        return {(0, "major"): 1.0}
    return {(t, mode): float(np.corrcoef(h, np.roll(prof, t))[0, 1])
            for t in range(12) for prof, mode in ((KK_MAJOR, "major"), (KK_MINOR, "minor"))}


def estimate_key(notes, given: tuple[int, str] | None = None) -> tuple[int, str]:
    """The best key of `notes`; a `given` key (a score's key signature) stands when it fits nearly as well
    (`KEY_AGREEMENT`): a corpus label can name the major of a tune that sits in its relative minor or a mode."""
    r = key_correlations(notes)
    best = max(r, key=r.get)
    if given is not None and r.get(given, -1.0) >= r[best] - KEY_AGREEMENT:
        return given
    return best
