"""Scene affect on generated scenes: arousal rises with motion, cutting rate and (weakly) saturation; valence
rises with brightness. Each factor is varied alone, then all together (dark/slow/static vs bright/fast/cut-heavy)."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.film import encode_video
from filmscore.engine.film.affect import EMOTION_COLUMNS, scene_affect
from filmscore.engine.film.synthetic import Shot, write_edit

VAL, ARO = EMOTION_COLUMNS.index("valence"), EMOTION_COLUMNS.index("arousal")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FILMSCORE_CACHE_DIR", str(tmp_path / "cache"))


def _affect(tmp_path, name, shots):
    path = tmp_path / f"{name}.mp4"
    write_edit(path, shots, fps=25)
    f = encode_video(path, cache=False)
    return float(f.emotion[:, VAL].mean()), float(f.emotion[:, ARO].mean())


def _cuts(kind, n, seed, **kw):
    return [Shot(kind, 8.0 / n, seed=seed + i, **kw) for i in range(n)]


@pytest.mark.slow
def test_arousal_and_valence_order_generated_scenes(tmp_path):
    calm = _affect(tmp_path, "calm", [Shot("still", 8.0, brightness=0.35, saturation=0.4, seed=1)])
    moving = _affect(tmp_path, "moving", [Shot("pan", 8.0, speed=0.5, brightness=0.35, saturation=0.4, seed=1)])
    cutty = _affect(tmp_path, "cutty", _cuts("still", 8, 1, brightness=0.35, saturation=0.4))
    bright = _affect(tmp_path, "bright", [Shot("still", 8.0, brightness=1.2, saturation=0.4, seed=1)])
    intense = _affect(tmp_path, "intense", _cuts("shapes", 8, 1, speed=0.5, brightness=1.2, saturation=1.2))
    print(f"(valence, arousal) calm {calm}, moving {moving}, cut every 1 s {cutty}, bright {bright}, "
          f"bright/fast/cut-heavy {intense}")
    assert moving[1] > calm[1] + 0.1  # motion
    assert cutty[1] > calm[1] + 0.1  # cutting rate
    assert bright[0] > calm[0] + 0.2  # brightness -> valence
    assert intense[1] > max(moving[1], cutty[1])  # all together
    assert intense[1] - calm[1] > 0.3


def test_scene_affect_mapping_is_bounded_and_documented_direction():
    n = 50
    colour = np.full((n, 2), 0.5, np.float32)
    low = scene_affect(np.full(n, 0.2), np.full(n, 0.2), np.zeros(n), (), colour, 10)
    high = scene_affect(np.full(n, 0.8), np.full(n, 0.8), np.ones(n), tuple(range(5, n, 5)), colour, 10)
    assert low.shape == (n, len(EMOTION_COLUMNS)) and low.dtype == np.float32
    for x in (low, high):
        assert (x[:, :4] >= 0).all() and (x[:, :4] <= 1).all()
    assert high[:, ARO].mean() > low[:, ARO].mean() + 0.5
    assert high[:, VAL].mean() > low[:, VAL].mean() + 0.3
    assert scene_affect(np.zeros(0), np.zeros(0), np.zeros(0), (), np.zeros((0, 2)), 10).shape == (0, 6)
