"""A melody drawn from a style, for a plan without a theme: one note per beat (two in busy sections), chord tones
on strong beats, mostly steps, in the mood's register.

Each note's pitch is sampled (seeded) from a score over candidates within a tenth of the register centre:
the style's emission log-probability of the pitch class over the sounding chord (`harmony.Style.log_emit`), a bonus
for chord tones on downbeats and mid-bar beats, and a cost per semitone of leap (melodies move mostly by step:
Huron 2006, "Sweet Anticipation", ch. 5, pitch proximity), leaps over a sixth excluded. Every fourth bar ends in a
rest (a phrase breath) and the last note is the tonic.
"""

from __future__ import annotations

import numpy as np

from ..controls.midi import Note
from .harmony import Chord, Style
from .tempo_map import TempoMap

LEAP_COST = 0.35
STRONG_CHORD_BONUS = 2.5
MAX_LEAP = 9
VELOCITY = 84


def melody_from_style(style: Style, tm: TempoMap, chords: list[Chord], tonic: int, register: int,
                      notes_per_beat: int, rng: np.random.Generator, channel: int = 1, track: int = 1) -> list[Note]:
    if not chords:
        return []
    end = chords[-1].end_s
    starts = np.asarray([c.time_s for c in chords])
    down_idx = set(int(i) for i in tm.downbeat_indices)
    bar_of = np.searchsorted(tm.downbeats, tm.beats + 1e-6) - 1  # bar number of each beat
    notes: list[Note] = []
    prev = register
    idx = [i for i, b in enumerate(tm.beats) if -1e-6 <= b < end - 1e-3]
    cand = np.arange(register - 10, register + 11)
    for k, i in enumerate(idx):
        t0 = float(tm.beats[i])
        t1 = float(tm.beats[i + 1]) if i + 1 < len(tm.beats) else end
        t1 = min(t1, end)
        if i + 1 < len(tm.beats) and (i + 1) in down_idx and bar_of[i] % 4 == 3 and k < len(idx) - 1:
            continue  # the last beat of every fourth bar: a breath
        c = chords[max(0, int(np.searchsorted(starts, t0 + 1e-6)) - 1)]
        strong = i in down_idx or (i - 1 in down_idx and False)
        sub = notes_per_beat if t1 - t0 > 0.24 * notes_per_beat else 1
        for j in range(sub):
            a = t0 + (t1 - t0) * j / sub
            b = t0 + (t1 - t0) * (j + 1) / sub
            if k == len(idx) - 1 and j == sub - 1:
                pitch = int(cand[np.argmin(np.abs(cand - prev) + 100 * ((cand - tonic) % 12 != 0))])
            else:
                rel = (cand - tonic) % 12
                score = style.log_emit[max(c.degree, 0), rel].copy()
                if (strong and j == 0) or c.degree < 0:
                    score += STRONG_CHORD_BONUS * np.isin(cand % 12, c.pitch_classes)
                leap = np.abs(cand - prev)
                score -= LEAP_COST * leap + np.where(leap > MAX_LEAP, 1e9, 0.0) + np.where(leap == 0, 0.7, 0.0)
                score -= 0.05 * np.abs(cand - register)  # stay near the register
                p = np.exp(score - score.max())
                pitch = int(rng.choice(cand, p=p / p.sum()))
            notes.append(Note(a, b - 0.02 * (b - a), pitch, VELOCITY + (8 if strong and j == 0 else 0), channel,
                              track))
            prev = pitch
    return notes
