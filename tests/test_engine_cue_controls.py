"""Picture dynamics: the picture's loudness curve fills absent dynamics and, by the request's weight, reshapes a
theme's own; the melody is never touched; bad weights are refused by the request."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from filmscore.engine.controls.types import Controls
from filmscore.engine.cue_controls import CUT_ACCENT_DB, LOUD_DB, QUIET_DB, dynamics_from_picture, with_picture_dynamics
from filmscore.engine.errors import RequestError
from filmscore.engine.film.features import FilmFeatures
from filmscore.engine.preflight import check_inputs
from filmscore.engine.request import RenderRequest

N = 1000  # 10 s of control frames


def _film(cuts=(6.0,)) -> FilmFeatures:
    """Still for 5 s, then moving: motion 0 -> 1 at 100/s."""
    motion = np.r_[np.zeros(500), np.ones(500)].astype(np.float32)
    z = np.zeros((100, 4), np.float32)
    return FilmFeatures(semantic=z, emotion=z, aesthetic=z, motion=motion, cuts_s=tuple(cuts), duration_s=10.0,
                        layout="test")


def _theme(db: float = -20.0, present: bool = True) -> Controls:
    melody = np.zeros((N, 12), np.float32)
    melody[:, 0] = 1.0
    return Controls(melody, np.full(N, db, np.float32), True, present)


def test_picture_curve_follows_motion_and_accents_cuts():
    d = dynamics_from_picture(_film(), N)
    assert d.shape == (N,) and d.dtype == np.float32
    assert d[:300].mean() == pytest.approx(QUIET_DB, abs=0.5) and d[800:].mean() > LOUD_DB - 1.0
    assert d[601] - d[599] == pytest.approx(CUT_ACCENT_DB, abs=0.3)  # the cut at 6 s lands with its accent


def test_absent_dynamics_are_filled_whatever_the_weight():
    for w in (0.0, 0.5, 1.0):
        out = with_picture_dynamics(_theme(present=False), _film(), w)
        assert out.dynamics_present and np.allclose(out.dynamics, dynamics_from_picture(_film(), N))


def test_weight_mixes_a_themes_dynamics_with_the_pictures():
    theme, film = _theme(-20.0), _film()
    pic = dynamics_from_picture(film, N)
    assert with_picture_dynamics(theme, film, 0.0) is theme  # 0 keeps the theme's own dynamics
    half = with_picture_dynamics(theme, film, 0.5)
    assert np.allclose(half.dynamics, 0.5 * -20.0 + 0.5 * pic, atol=1e-5)
    assert np.allclose(with_picture_dynamics(theme, film, 1.0).dynamics, pic)
    assert np.array_equal(half.melody, theme.melody) and half.melody_present
    # the mixed curve follows the picture: quiet while still, louder once it moves
    assert np.corrcoef(half.dynamics, film.motion_at(N))[0, 1] > 0.9


def test_no_picture_leaves_controls_alone():
    theme = _theme()
    assert with_picture_dynamics(theme, None, 1.0) is theme


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_request_refuses_a_bad_weight(bad, tmp_path):
    with pytest.raises(RequestError, match=r"picture_dynamics must be 0\.\.1"):
        RenderRequest(output=tmp_path / "x.wav", duration_s=5.0, picture_dynamics=bad).validate()


def test_request_with_film_features_needs_no_duration(tmp_path):
    req = RenderRequest(output=tmp_path / "x.wav", film_features=_film())
    req.validate()  # the features stand in for a video: no duration needed
    assert check_inputs(req).duration_s == 10.0  # the cue takes the features' length
    with pytest.raises(RequestError, match="without a video, a duration is required"):
        replace(req, film_features=None).validate()
