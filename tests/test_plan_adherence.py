"""Plan adherence measured on audio: a FluidSynth render of a plan's own MIDI follows its tempo, mode and pulse;
the same audio against a plan of another tempo and mode does not."""

from __future__ import annotations

import numpy as np

from filmscore.engine.audio.fluidsynth import render_midi
from filmscore.engine.metrics.plan_adherence import plan_adherence, tempo_matches
from filmscore.engine.plan.compose import make_plan
from filmscore.engine.plan.mood import MoodOverrides


def test_a_plans_own_midi_follows_it_and_another_plan_does_not():
    fast = make_plan(16.0, overrides=MoodOverrides(tempo_bpm=150, key="C major", energy=0.8), hits_s=(4.0,))
    slow = make_plan(16.0, overrides=MoodOverrides(tempo_bpm=100, key="C# minor", energy=0.8))
    wave = render_midi(fast.to_midi(), sample_rate=22050)
    own, other = plan_adherence(fast, wave, 22050), plan_adherence(slow, wave, 22050)
    print("own", own, "other", other)
    assert own["hits_on_beats"] == 1.0 and own["tempo_matches"] and own["mode_matches"]
    assert own["pulse_on_beats"] > 1.5
    assert not other["mode_matches"] and other["pulse_on_beats"] < own["pulse_on_beats"]


def test_tempo_match_allows_octaves_only():
    assert tempo_matches(120, 60) and tempo_matches(63, 120) and tempo_matches(118, 120)
    assert not tempo_matches(90, 120) and not tempo_matches(180, 120)
