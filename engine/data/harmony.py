"""Bar-wise harmony of a clip: a diatonic triad per bar (to accompany single-line tunes and to voice pads) and a
tension value per bar (drives the paired film's colour).

The triad of a bar is the diatonic triad that covers most of the bar's sounding notes (weighted by duration,
downbeat notes double), with a small prior for tonic, dominant and subdominant; the last bar resolves to the tonic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (root degree in semitones above the tonic, triad intervals, prior)
MAJOR_TRIADS = ((0, (0, 4, 7), 0.30), (7, (0, 4, 7), 0.25), (5, (0, 4, 7), 0.20), (9, (0, 3, 7), 0.10),
                (2, (0, 3, 7), 0.08), (4, (0, 3, 7), 0.05))
MINOR_TRIADS = ((0, (0, 3, 7), 0.30), (7, (0, 4, 7), 0.25), (5, (0, 3, 7), 0.20), (8, (0, 4, 7), 0.10),
                (3, (0, 4, 7), 0.08), (10, (0, 4, 7), 0.05))
DISSONANT_INTERVALS = (1, 2, 6, 10, 11)  # pitch-class intervals heard as tense between simultaneous notes


@dataclass(frozen=True)
class Chord:
    """A triad: root pitch class and its three pitch classes (root first)."""

    root: int
    pcs: tuple[int, int, int]


def diatonic_pcs(tonic: int, mode: str) -> set[int]:
    steps = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10, 11)  # minor with raised 7th
    return {(tonic + s) % 12 for s in steps}


def _bar_slices(notes: np.ndarray, bars_ql: np.ndarray, end_ql: float):
    edges = np.append(bars_ql, end_ql)
    for a, b in zip(edges[:-1], edges[1:]):
        on, off = notes[:, 0], notes[:, 0] + notes[:, 1]
        m = (on < b) & (off > a)
        yield a, b, notes[m]


def chords_per_bar(notes: np.ndarray, bars_ql: np.ndarray, end_ql: float, tonic: int, mode: str) -> list[Chord]:
    """One diatonic triad per bar. notes: `(N, 3)` (onset qL, duration qL, pitch) of all parts."""
    triads = MAJOR_TRIADS if mode == "major" else MINOR_TRIADS
    cands = [Chord((tonic + r) % 12, tuple((tonic + r + i) % 12 for i in iv)) for r, iv, _ in triads]
    priors = np.array([p for *_, p in triads])
    out = []
    slices = list(_bar_slices(notes, bars_ql, end_ql))
    for k, (a, b, bar_notes) in enumerate(slices):
        if k == len(slices) - 1:
            out.append(cands[0])
            continue
        w = np.zeros(12)
        for on, dur, pitch in bar_notes:
            overlap = min(on + dur, b) - max(on, a)
            w[int(pitch) % 12] += overlap * (2.0 if abs(on - a) < 1e-6 else 1.0)
        total = w.sum() or 1.0
        scores = [sum(w[pc] for pc in c.pcs) / total - 0.5 * (total - sum(w[pc] for pc in c.pcs)) / total + pr
                  for c, pr in zip(cands, priors)]
        out.append(cands[int(np.argmax(scores))])
    return out


def tension_per_bar(notes: np.ndarray, bars_ql: np.ndarray, end_ql: float, tonic: int, mode: str) -> np.ndarray:
    """`(B,)` tension in [0, 1]: 0.6 x the duration share of notes outside the key + 0.4 x the share of
    simultaneous note pairs (sampled at onsets) that form a dissonant interval."""
    scale = diatonic_pcs(tonic, mode)
    out = []
    for a, b, bar_notes in _bar_slices(notes, bars_ql, end_ql):
        if len(bar_notes) == 0:
            out.append(0.0)
            continue
        dur = bar_notes[:, 1]
        chromatic = float(dur[[int(p) % 12 not in scale for p in bar_notes[:, 2]]].sum() / dur.sum())
        pairs = dissonant = 0
        for t in np.unique(bar_notes[:, 0]):
            sounding = bar_notes[(bar_notes[:, 0] <= t) & (bar_notes[:, 0] + bar_notes[:, 1] > t), 2].astype(int)
            for i in range(len(sounding)):
                for j in range(i + 1, len(sounding)):
                    pairs += 1
                    dissonant += abs(sounding[i] - sounding[j]) % 12 in DISSONANT_INTERVALS
        out.append(0.6 * chromatic + 0.4 * (dissonant / pairs if pairs else 0.0))
    return np.clip(np.asarray(out, np.float64), 0.0, 1.0)


def voice_below(pc: int, ceiling: int, floor: int) -> int:
    """The highest MIDI pitch of class `pc` at or below `ceiling` (not below `floor`, rising an octave if so)."""
    p = ceiling - ((ceiling - pc) % 12)
    while p < floor:
        p += 12
    return p
