"""The bass line from the harmony: the chord's root on its first beat, in the bass register (E1-D3 area); in a
section whose figure moves (2 or more notes a beat) the fifth on the chord's middle beat, so the bass walks
root-fifth as a common-practice accompaniment does. Voicing uses `engine.data.harmony.voice_below`."""

from __future__ import annotations

import numpy as np

from ..controls.midi import Note
from ..data.harmony import voice_below
from .harmony import Chord
from .tempo_map import TempoMap

BASS_CEILING, BASS_FLOOR = 50, 33
VELOCITY = 90


def bass_line(chords: list[Chord], tm: TempoMap, subdivision_at, channel: int = 3, track: int = 3) -> list[Note]:
    """`subdivision_at(t_s) -> int`: the section's rhythmic density at a time (1, 2 or 4)."""
    out: list[Note] = []
    for c in chords:
        root = c.pitch_classes[0]
        p = voice_below(root, BASS_CEILING, BASS_FLOOR)
        inner = tm.beats[(tm.beats > c.time_s + 1e-3) & (tm.beats < c.end_s - 1e-3)]
        if subdivision_at(c.time_s) >= 2 and len(inner) >= 1 and len(c.pitch_classes) >= 3:
            mid = float(inner[(len(inner) - 1) // 2]) if len(inner) > 1 else float(inner[0])
            out.append(Note(c.time_s, mid - 0.01, p, VELOCITY, channel, track))
            fifth = voice_below(c.pitch_classes[2], BASS_CEILING, BASS_FLOOR)
            out.append(Note(mid, c.end_s - 0.01, fifth, VELOCITY - 10, channel, track))
        else:
            out.append(Note(c.time_s, c.end_s - 0.01, p, VELOCITY, channel, track))
    return out


def roots_share(bass: list[Note], chords: list[Chord]) -> float:
    """Share of chords whose first bass note is the chord's root (a check of the line against the harmony)."""
    starts = np.asarray([n.onset_s for n in bass])
    ok = 0
    for c in chords:
        i = np.flatnonzero(np.abs(starts - c.time_s) < 1e-3)
        ok += bool(i.size) and bass[int(i[0])].pitch % 12 == c.pitch_classes[0]
    return ok / len(chords) if chords else float("nan")
