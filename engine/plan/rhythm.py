"""Rhythm: a figure per section whose density follows the section's energy, and accents on hits.

Sections are the stretches between major cuts (`plan.sections`). Per section the mood gives a subdivision (1, 2 or
4 notes per beat, `mood.choices_from_mood`), and the figure is:

- harmony: the chord voiced close below the melody (`engine.data.harmony.voice_below`), held as a block chord at
  subdivision 1, repeated on each beat at 2, arpeggiated (root, third, fifth, third) at 4;
- percussion (GM drum map, channel 10): nothing below energy 0.2 (a still scene wants no drums); a soft bass drum
  on downbeats above it; snare on the backbeats from energy 0.45; closed hi-hat at the subdivision from 0.6;
- accents: every hit (cut or flagged point) gets a crash cymbal and bass drum at full velocity on its beat, and the
  harmony note starting there is played louder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..controls.midi import Note
from ..data.harmony import voice_below
from .harmony import Chord
from .mood import Mood
from .tempo_map import TempoMap

KICK, SNARE, HAT, CRASH = 36, 38, 42, 49
DRUM_CHANNEL = 10
HARMONY_CEILING_BELOW_MELODY = 5


@dataclass(frozen=True)
class Section:
    """[start_s, end_s) of the cue with its mood and figure density (notes per beat)."""

    start_s: float
    end_s: float
    mood: Mood
    subdivision: int

    def to_json(self) -> dict:
        return {"start": round(self.start_s, 4), "end": round(self.end_s, 4), "mood": self.mood.to_json(),
                "subdivision": self.subdivision}

    @classmethod
    def from_json(cls, d: dict) -> Section:
        return cls(float(d["start"]), float(d["end"]), Mood.from_json(d["mood"]), int(d["subdivision"]))


def section_at(sections: list[Section], t: float) -> Section:
    for s in sections:
        if s.start_s - 1e-6 <= t < s.end_s:
            return s
    return sections[-1]


def harmony_figure(chords: list[Chord], tm: TempoMap, sections: list[Section], register: int,
                   hits: np.ndarray, channel: int = 2, track: int = 2) -> list[Note]:
    ceiling = register - HARMONY_CEILING_BELOW_MELODY
    floor = ceiling - 14
    out: list[Note] = []
    for c in chords:
        voiced = sorted(voice_below(pc, ceiling, floor) for pc in c.pitch_classes)
        sub = section_at(sections, c.time_s).subdivision
        beats = tm.beats[(tm.beats >= c.time_s - 1e-3) & (tm.beats < c.end_s - 1e-3)]
        if sub == 1 or beats.size == 0:
            onsets = [(c.time_s, c.end_s)]
        else:
            edges = np.append(beats, c.end_s)
            onsets = [(float(a) + (b - a) * j / (sub // 2 if sub == 4 else 1), 0.0)
                      for a, b in zip(edges[:-1], edges[1:]) for j in range(sub // 2 if sub == 4 else 1)]
            ends = [o for o, _ in onsets[1:]] + [c.end_s]
            onsets = [(o, e) for (o, _), e in zip(onsets, ends)]
        for k, (a, b) in enumerate(onsets):
            accent = bool(hits.size) and float(np.min(np.abs(hits - a))) < 0.03
            vel = 96 if accent else 64 + 4 * sub
            if sub == 4:  # arpeggio: root, third, fifth, third, each a half of the slot
                order = [voiced[0], voiced[1 % len(voiced)], voiced[2 % len(voiced)], voiced[1 % len(voiced)]]
                half = (b - a) / 2
                for j in range(2):
                    p = order[(2 * k + j) % 4]
                    out.append(Note(a + j * half, a + (j + 1) * half - 0.01, p, vel if j == 0 else 62, channel,
                                    track))
            else:
                for p in voiced:
                    out.append(Note(a, b - 0.01, p, vel, channel, track))
    return out


def percussion(tm: TempoMap, sections: list[Section], hits: np.ndarray, end_s: float,
               track: int = 4) -> list[Note]:
    out: list[Note] = []
    down = set(int(i) for i in tm.downbeat_indices)
    bar_pos = np.zeros(len(tm.beats), int)
    pos = 0
    for i in range(len(tm.beats)):
        pos = 0 if i in down else pos + 1
        bar_pos[i] = pos
    for i, t in enumerate(tm.beats[:-1]):
        if t < -1e-6 or t >= end_s - 1e-3:
            continue
        s = section_at(sections, float(t))
        e = s.mood.energy
        nxt = float(tm.beats[i + 1])
        if e >= 0.2 and bar_pos[i] == 0:
            out.append(Note(float(t), float(t) + 0.1, KICK, int(60 + 50 * e), DRUM_CHANNEL, track))
        if e >= 0.45 and bar_pos[i] % 2 == 1:
            out.append(Note(float(t), float(t) + 0.1, SNARE, int(50 + 50 * e), DRUM_CHANNEL, track))
        if e >= 0.6:
            for j in range(s.subdivision):
                a = float(t) + (nxt - float(t)) * j / s.subdivision
                if a < end_s:
                    out.append(Note(a, a + 0.05, HAT, 50 + (12 if j == 0 else 0), DRUM_CHANNEL, track))
    for h in hits:
        if 0 <= h < end_s:
            out.append(Note(float(h), float(h) + 0.5, CRASH, 120, DRUM_CHANNEL, track))
            out.append(Note(float(h), float(h) + 0.1, KICK, 120, DRUM_CHANNEL, track))
    # one note per drum and instant (a hit on a downbeat: the accent's kick, not two): MIDI cannot hold two
    # overlapping notes of one key on one channel apart
    best: dict[tuple[int, int], Note] = {}
    for n in out:
        k = (int(round(n.onset_s * 1000)), n.pitch)
        if k not in best or n.velocity > best[k].velocity:
            best[k] = n
    return sorted(best.values(), key=lambda n: (n.onset_s, n.pitch))


def onset_density(notes: list[Note], start_s: float, end_s: float) -> float:
    """Distinct onsets per second in [start_s, end_s)."""
    on = {round(n.onset_s, 3) for n in notes if start_s <= n.onset_s < end_s}
    return len(on) / max(end_s - start_s, 1e-9)
