"""The picture of a region: top-most track wins, nested stacks, transitions, time warps, offline clips per clip."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from filmscore.bridge.timelines.picture import MediaResolver, read_region_picture

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def clip(name: str, start: float, dur: float, url: str | None = None, rate: float = 24,
         available_start: float | None = None) -> otio.schema.Clip:
    ref = otio.schema.MissingReference() if url is None else otio.schema.ExternalReference(
        target_url=url, available_range=None if available_start is None else TR(RT(available_start, rate),
                                                                                 RT(100000, rate)))
    return otio.schema.Clip(name=name, media_reference=ref, source_range=TR(RT(start, rate), RT(dur, rate)))


def gap(dur: float, rate: float = 24) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=TR(RT(0, rate), RT(dur, rate)))


def whole(tl: otio.schema.Timeline) -> TR:
    return TR(RT(0, tl.duration().rate), tl.duration())


def summary(segs):
    return [(s.kind, s.clip_name, s.record_start.to_frames(24), s.record_range.duration.to_frames(24),
             None if s.source_start is None else round(s.source_start.to_seconds() * 24, 3), s.time_scalar)
            for s in segs]


def test_top_track_wins_and_holes_are_gaps(tmp_path):
    (tmp_path / "a.mov").write_bytes(b"x")
    (tmp_path / "b.mov").write_bytes(b"x")
    tl = otio.schema.Timeline()
    v1 = otio.schema.Track(name="V1")
    v1.extend([clip("A", 100, 48, "a.mov"), gap(24), clip("A2", 0, 24, "a.mov")])
    v2 = otio.schema.Track(name="V2")
    v2.extend([gap(12), clip("B", 10, 12, "b.mov")])
    a1 = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    a1.append(clip("music", 0, 200, "b.mov"))
    tl.tracks.extend([v1, v2, a1])
    segs = read_region_picture(tl, TR(RT(0, 24), RT(100, 24)), tmp_path / "t.otio")
    assert summary(segs) == [("media", "A", 0, 12, 100, 1.0), ("media", "B", 12, 12, 10, 1.0),
                             ("media", "A", 24, 24, 124, 1.0), ("gap", "", 48, 24, None, 1.0),
                             ("media", "A2", 72, 24, 0, 1.0), ("gap", "", 96, 4, None, 1.0)]
    assert segs[0].media_path == tmp_path / "a.mov"
    # The segments tile the region exactly.
    assert all(a.record_end == b.record_start for a, b in zip(segs, segs[1:]))
    # A sub-range starts mid-clip with the source advanced.
    sub = read_region_picture(tl, TR(RT(30, 24), RT(10, 24)), tmp_path / "t.otio")
    assert summary(sub) == [("media", "A", 30, 10, 130, 1.0)]


def test_nested_stack_warp_freeze_and_transition(tmp_path):
    (tmp_path / "m.mov").write_bytes(b"x")
    inner = otio.schema.Stack(name="nest", source_range=TR(RT(0, 24), RT(20, 24)))
    t = otio.schema.Track()
    t.append(clip("inner", 50, 40, "m.mov"))
    inner.append(t)
    slow = clip("slow", 0, 24, "m.mov")
    slow.effects.append(otio.schema.LinearTimeWarp(time_scalar=0.5))
    frozen = clip("frozen", 10, 12, "m.mov")
    frozen.effects.append(otio.schema.FreezeFrame())
    track = otio.schema.Track()
    track.extend([clip("x", 0, 24, "m.mov"), otio.schema.Transition(in_offset=RT(6, 24), out_offset=RT(6, 24)),
                  clip("y", 0, 24, "m.mov"), inner, slow, frozen])
    tl = otio.schema.Timeline()
    tl.tracks.append(track)
    segs = read_region_picture(tl, whole(tl), tmp_path / "t.otio")
    assert summary(segs) == [("media", "x", 0, 24, 0, 1.0), ("media", "y", 24, 24, 0, 1.0),
                             ("media", "inner", 48, 20, 50, 1.0), ("media", "slow", 68, 24, 0, 0.5),
                             ("media", "frozen", 92, 12, 10, 0.0)]
    # A slow-motion clip shows half its record length of media.
    assert segs[3].source_range_s() == (0.0, pytest.approx(0.5))


def test_offline_media_is_reported_per_clip_with_where_it_looked(tmp_path):
    roots = tmp_path / "roots"
    (roots / "shots").mkdir(parents=True)
    (roots / "shots" / "found.mov").write_bytes(b"x")
    track = otio.schema.Track()
    track.extend([clip("gone", 0, 24, "file:///nowhere/gone.mov"), clip("found", 0, 24, "file:///old/shots/found.mov"),
                  clip("no ref", 0, 24), otio.schema.Clip(name="title", media_reference=otio.schema.GeneratorReference(
                      generator_kind="SolidColor"), source_range=TR(RT(0, 24), RT(24, 24)))])
    tl = otio.schema.Timeline()
    tl.tracks.append(track)
    segs = read_region_picture(tl, whole(tl), tmp_path / "t.otio", search_roots=[roots])
    assert [s.kind for s in segs] == ["offline", "media", "offline", "generator"]
    assert "clip 'gone' at record 00:00:00:00: media offline: file:///nowhere/gone.mov not found" in segs[0].message
    assert str(tmp_path / "gone.mov") in segs[0].message  # where it looked
    assert segs[1].media_path == roots / "shots" / "found.mov"
    assert "no media reference" in segs[2].message
    assert "generated picture (SolidColor)" in segs[3].message


def test_source_time_is_relative_to_the_media_start_timecode(tmp_path):
    (tmp_path / "tc.mov").write_bytes(b"x")
    tl = otio.schema.Timeline()
    tl.tracks.append(otio.schema.Track())
    tl.tracks[0].append(clip("tc", 86400 + 48, 24, "tc.mov", available_start=86400))
    seg = read_region_picture(tl, whole(tl), tmp_path / "t.otio")[0]
    assert seg.source_start.to_seconds() == pytest.approx(2.0)


def test_url_forms():
    assert MediaResolver.url_to_path("file:///a/b%20c.mov") == Path("/a/b c.mov")
    assert MediaResolver.url_to_path("rel/x.mov") == Path("rel/x.mov")
    with pytest.raises(ValueError, match="not a local file"):
        MediaResolver.url_to_path("https://example.org/x.mov")


def test_fixture_nested_example_tiles_with_warps(fixtures_dir):
    from filmscore.bridge.timelines.files import read_timeline

    tl = read_timeline(fixtures_dir / "timelines" / "nested_example.otio").timeline
    segs = read_region_picture(tl, whole(tl), None)
    assert segs[0].record_start.to_seconds() == 0
    assert segs[-1].record_end.to_seconds() == pytest.approx(tl.duration().to_seconds())
    assert all(abs((a.record_end - b.record_start).to_seconds()) < 1e-9 for a, b in zip(segs, segs[1:]))
    assert {s.time_scalar for s in segs} >= {0.0, 1.0}
    assert all(s.kind in ("offline", "gap") for s in segs)


def test_mixed_frame_rates_stay_exact(tmp_path):
    (tmp_path / "pal.mov").write_bytes(b"x")
    (tmp_path / "ntsc.mov").write_bytes(b"x")
    tl = otio.schema.Timeline()
    track = otio.schema.Track()
    track.extend([clip("pal", 50, 50, "pal.mov", rate=25), clip("ntsc", 0, 60, "ntsc.mov", rate=30000 / 1001),
                  clip("film", 0, 24, "pal.mov")])
    tl.tracks.append(track)
    segs = read_region_picture(tl, TR(RT(0, 24), RT(24 * 6, 24)), tmp_path / "t.otio")
    assert [round(s.record_start.to_seconds(), 9) for s in segs] == [0.0, 2.0, round(2 + 60 * 1001 / 30000, 9),
                                                                       round(3 + 60 * 1001 / 30000, 9)]
    assert segs[0].source_start.to_seconds() == 2.0 and segs[-1].kind == "gap"
