"""Bar-wise triads and tension."""

from __future__ import annotations

import numpy as np
from filmscore.engine.data.harmony import chords_per_bar, tension_per_bar, voice_below


def test_triads_follow_the_tune():
    # C major: bar 1 C E G (I), bar 2 G B D (V), bar 3 F A C (IV), bar 4 C (I, the last bar)
    pitches = [60, 64, 67, 55, 59, 62, 65, 69, 72, 60]
    onsets = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12]
    notes = np.array([[o, 1, p] for o, p in zip(onsets, pitches)], float)
    chords = chords_per_bar(notes, np.array([0, 4, 8, 12.0]), 16.0, 0, "major")
    assert [c.root for c in chords] == [0, 7, 5, 0]
    assert chords[1].pcs == (7, 11, 2)


def test_tension_rises_with_chromatic_clusters():
    calm = np.array([[0, 4, 60], [0, 4, 64], [0, 4, 67]], float)
    tense = np.array([[0, 4, 61], [0, 4, 62], [0, 4, 66]], float)
    assert tension_per_bar(calm, np.array([0.0]), 4, 0, "major")[0] == 0
    assert tension_per_bar(tense, np.array([0.0]), 4, 0, "major")[0] > 0.5


def test_voice_below():
    assert voice_below(0, 64, 40) == 60
    assert voice_below(4, 64, 40) == 64
    assert voice_below(11, 40, 36) == 35 + 12
