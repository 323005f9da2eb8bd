"""The paired film: its cuts, motion, flashes, colour and brightness follow the music by the documented rules."""

from __future__ import annotations

import numpy as np
import pytest
from filmscore.engine.data.arrange import ClipArrangement
from filmscore.engine.data.dynamics import DynamicsPlan, Phrase
from filmscore.engine.data.film_pairing import HEIGHT, MAJOR_HUE, MINOR_HUE, WIDTH, plan_film, render_film


def _arr(mode: str = "major", pitch: int = 72, tension: float = 0.0) -> ClipArrangement:
    dyn = DynamicsPlan((Phrase(0, 4, "terrace", 0.1, 0.0), Phrase(4, 8, "accent", 0.8, 0.2),
                        Phrase(8, 12, "crescendo", 0.2, 0.6)), 12.0)
    lead = np.array([[t, 1.0, pitch] for t in range(12)], float)
    return ClipArrangement(None, 12.0, lead, np.arange(0, 12, 2.0), dyn, np.full(6, tension), dyn.accents_s, 0,
                           mode, 0)


def test_rules():
    plan = plan_film(_arr(), qpm=120)
    assert plan.n_frames == 120
    assert plan.cuts_s == (4.0, 8.0)  # cuts on phrase starts
    assert plan.shot[39] == 0 and plan.shot[40] == 1 and plan.shot[80] == 2
    assert plan.level[20] == pytest.approx(0.1) and plan.level[60] > 0.8  # motion driver = dynamics level
    assert plan.flash[40] > 0.3 and plan.flash[39] == 0 and plan.flash[55] < 0.1  # accent flash
    assert np.allclose(plan.hue, MAJOR_HUE)
    minor = plan_film(_arr("minor"), qpm=120)
    assert np.allclose(minor.hue, MINOR_HUE)
    tense = plan_film(_arr(tension=1.0), qpm=120)
    assert np.all(tense.saturation > plan.saturation)
    assert abs((tense.hue[0] - 0.97 + 0.5) % 1 - 0.5) < abs((plan.hue[0] - 0.97 + 0.5) % 1 - 0.5)
    low, high = plan_film(_arr(pitch=62), qpm=120), plan_film(_arr(pitch=82), qpm=120)
    assert np.all(high.value > low.value)


def test_render_decodes_with_the_planned_cuts_and_motion(tmp_path):
    import av

    plan = plan_film(_arr(), qpm=120)
    path = tmp_path / "film.mp4"
    render_film(plan, path, seed=3)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
    assert len(frames) == 120 and frames[0].shape == (HEIGHT, WIDTH, 3)
    diff = np.array([np.abs(a - b).mean() for a, b in zip(frames[:-1], frames[1:])])
    # the two largest frame changes are the cuts (frames 39 -> 40 and 79 -> 80)
    assert set(np.argsort(diff)[-2:]) == {39, 79}
    # loud shot moves more than the quiet one (ignoring the cut and flash frames)
    assert diff[60:78].mean() > diff[5:38].mean()
