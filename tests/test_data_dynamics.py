"""Phrase plans: phrases at bar lines, shapes, terraces that step."""

from __future__ import annotations

import numpy as np
from filmscore.engine.data.dynamics import DynamicsPlan, Phrase, plan_dynamics


def test_phrases_start_on_bars_and_cover_the_clip():
    bars = np.arange(0, 20, 2.0)  # 2 s bars, 20 s
    steps = []
    for seed in range(40):
        plan = plan_dynamics(bars, 20.0, np.random.default_rng(seed))
        starts = np.array(plan.phrase_starts_s)
        assert starts[0] == 0 and np.all(np.isin(starts, bars))
        ends = [p.end_s for p in plan.phrases]
        assert ends[-1] == 20.0 and np.allclose(ends[:-1], starts[1:])
        curve = plan.curve(100)
        assert curve.shape == (2000,) and curve.min() >= 0 and curve.max() <= 1
        steps += [abs(a.level - b.level) for a, b in zip(plan.phrases[:-1], plan.phrases[1:])
                  if "terrace" in (a.shape, b.shape)]
    # a terrace's level is redrawn up to 8 times until it steps by 0.2: nearly always audible
    assert len(steps) > 10 and np.mean(np.array(steps) >= 0.2) > 0.9


def test_plans_vary_the_level():
    spans = [np.ptp(plan_dynamics(np.arange(0, 20, 2.0), 20.0, np.random.default_rng(s)).curve(100))
             for s in range(30)]
    assert np.median(spans) > 0.3


def test_shapes():
    t = np.linspace(0, 4, 401)
    swell = Phrase(0, 4, "swell", 0.2, 0.5).level_at(t)
    assert abs(t[swell.argmax()] - 2.0) < 0.05 and swell[0] == 0.2
    cresc = Phrase(0, 4, "crescendo", 0.2, 0.5).level_at(t)
    assert np.all(np.diff(cresc) >= 0) and cresc[-1] == 0.7
    acc = Phrase(0, 4, "accent", 0.2, 0.5).level_at(t)
    assert acc[0] == 0.7 and acc[-1] < 0.21
    plan = DynamicsPlan((Phrase(0, 2, "accent", 0.3, 0.5), Phrase(2, 4, "terrace", 0.8, 0.0)), 4.0)
    assert plan.accents_s == (0.0, 2.0)  # an accent phrase and a loud phrase start


def test_every_clip_has_two_phrases():
    bars = np.array([0.0, 2.9, 6.8, 10.6, 14.5])  # long bars and a pickup: 8-bar phrases would swallow the clip
    for seed in range(20):
        assert len(plan_dynamics(bars, 18.35, np.random.default_rng(seed)).phrases) >= 2
