"""Film features of an edited region: per-clip encodes laid on the cue's frame grid in record order."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from filmscore.bridge.timelines.film_of_region import concat_film_features, encode_region
from filmscore.bridge.timelines.picture import read_region_picture
from filmscore.engine.errors import VideoDecodeError
from filmscore.engine.film.features import FilmFeatures

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def media_clock_encoder(calls: list):
    """Encodes a file as features that spell out (file id, media time of the frame): semantic[:, 0] = id,
    emotion[:, 0] = frame start time in media seconds; one cut at 0.5 s into every range, motion = 0.5."""
    def encode(path: Path, start_s: float, duration_s: float) -> FilmFeatures:
        calls.append((Path(path).name, round(start_s, 6), round(duration_s, 6)))
        if Path(path).name == "broken.mov":
            raise VideoDecodeError(f"{path}: no video stream")
        n = max(1, math.ceil(duration_s * 10 - 1e-9))
        ident = float(Path(path).stem[-1:].encode()[0])
        sem = np.full((n, 2), ident, np.float32)
        emo = np.stack([start_s + np.arange(n) / 10, np.zeros(n)], 1).astype(np.float32)
        aes = np.ones((n, 1), np.float32)
        motion = np.full(math.ceil(duration_s * 100), 0.5, np.float32)
        return FilmFeatures(sem, emo, aes, motion, (0.5,) if duration_s > 0.5 else (), duration_s, "test-5")
    return encode


def timeline(tmp_path: Path, items) -> otio.schema.Timeline:
    tl = otio.schema.Timeline()
    track = otio.schema.Track()
    for name, url, start, dur, scalar in items:
        if url is None:
            track.append(otio.schema.Gap(source_range=TR(RT(0, 10), RT(dur, 10))))
            continue
        if not url.startswith("missing") and not (tmp_path / url).exists():
            (tmp_path / url).write_bytes(b"x")
        c = otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(target_url=url),
                             source_range=TR(RT(start, 10), RT(dur, 10)))
        if scalar != 1.0:
            c.effects.append(otio.schema.LinearTimeWarp(time_scalar=scalar))
        track.append(c)
    tl.tracks.append(track)
    return tl


def test_frames_follow_record_order_warps_and_offline(tmp_path):
    tl = timeline(tmp_path, [("A", "clipA.mov", 20, 10, 1.0),       # 0-1 s, media 2.0-3.0 s
                             ("B", "clipB.mov", 0, 10, 2.0),        # 1-2 s, media 0-2 s (double speed)
                             ("gone", "missing.mov", 0, 5, 1.0),    # 2-2.5 s offline
                             ("gap", None, 0, 5, 1.0),              # 2.5-3 s black
                             ("F", "clipF.mov", 30, 10, 0.0)])      # 3-4 s freeze on media 3.0 s
    segs = read_region_picture(tl, TR(RT(0, 10), tl.duration()), tmp_path / "t.otio")
    calls: list = []
    film = encode_region(segs, media_clock_encoder(calls))
    assert calls == [("clipA.mov", 2.0, 1.0), ("clipB.mov", 0.0, 2.0), ("clipF.mov", 3.0, round(1 / 24, 6))]
    f = film.features
    assert f.n_frames == 40 and f.motion.shape == (400,) and f.duration_s == pytest.approx(4.0)
    ids = f.semantic[:, 0]
    assert ids[:10].tolist() == [ord("A")] * 10 and ids[10:20].tolist() == [ord("B")] * 10
    np.testing.assert_allclose(f.emotion[:10, 0], 2.0 + np.arange(10) / 10, atol=1e-6)
    np.testing.assert_allclose(f.emotion[10:20, 0], np.arange(10) * 0.2 + 0.1, atol=0.051)  # 2x speed
    assert np.all(f.emotion[30:40, 0] == pytest.approx(3.0))  # frozen frame
    mask = np.asarray(f.extras["picture_mask"])
    assert mask[:20].all() and not mask[20:30].any() and mask[30:].all()
    present = f.semantic[mask].mean(axis=0)
    np.testing.assert_allclose(f.semantic[25], present)  # no picture: the cue's mean picture
    assert f.motion[:200].min() == 0.5 and f.motion[200:300].max() == 0 and f.motion[300:].max() == 0
    # Edits at 1, 2, 2.5, 3 s and each segment's own cut: A at 0.5 s, B at 1 + 0.5 / 2 s.
    assert f.cuts_s == (0.5, 1.0, 1.25, 2.0, 2.5, 3.0)
    assert f.hit_points_s == f.cuts_s
    assert len(film.missing) == 1 and "clip 'gone'" in film.missing[0] and film.n_encoded == 3


def test_decode_failure_is_one_more_missing_clip(tmp_path):
    tl = timeline(tmp_path, [("A", "clipA.mov", 0, 15, 1.0), ("bad", "broken.mov", 0, 15, 1.0)])
    segs = read_region_picture(tl, TR(RT(0, 10), tl.duration()), tmp_path / "t.otio")
    film = encode_region(segs, media_clock_encoder([]))
    assert film.n_encoded == 1 and "clip 'bad'" in film.missing[0] and "no video stream" in film.missing[0]
    assert film.features.extras["picture_mask"] == [True] * 15 + [False] * 15


def test_no_picture_at_all_gives_none(tmp_path):
    tl = timeline(tmp_path, [("gone", "missing.mov", 0, 20, 1.0)])
    segs = read_region_picture(tl, TR(RT(0, 10), tl.duration()), tmp_path / "t.otio")
    film = encode_region(segs, media_clock_encoder([]))
    assert film.features is None and film.n_encoded == 0 and len(film.missing) == 1


def test_layouts_must_agree(tmp_path):
    tl = timeline(tmp_path, [("A", "clipA.mov", 0, 10, 1.0), ("B", "clipB.mov", 0, 10, 1.0)])
    segs = read_region_picture(tl, TR(RT(0, 10), tl.duration()), tmp_path / "t.otio")
    enc = media_clock_encoder([])
    parts = [(segs[0], enc(segs[0].media_path, 0, 1)), (segs[1], enc(segs[1].media_path, 0, 1))]
    object.__setattr__(parts[1][1], "layout", "other-7")
    with pytest.raises(Exception, match="different layouts"):
        concat_film_features(parts)


@pytest.mark.slow
def test_real_encoder_over_an_edit_of_generated_media(tmp_path):
    from filmscore.engine.film.synthetic import Shot, write_edit

    write_edit(tmp_path / "clip1.mp4", [Shot("pan", 3.0, seed=1), Shot("shapes", 3.0, seed=2)], fps=25)
    tl = timeline(tmp_path, [("one", "clip1.mp4", 10, 15, 1.0), ("two", "clip1.mp4", 40, 15, 1.0)])
    segs = read_region_picture(tl, TR(RT(0, 10), tl.duration()), tmp_path / "t.otio")
    film = encode_region(segs)
    f = film.features
    assert f.n_frames == 30 and all(f.extras["picture_mask"])
    assert 1.5 in f.cuts_s  # the edit between the two clips
    assert np.isfinite(f.frame_matrix()).all()
