"""Cue regions and hit points: the marker convention, in/out ranges, notes for markers that make no cue."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from filmscore.bridge.timelines.cues import CueError, file_stem_for, parse_time, read_cues
from filmscore.bridge.timelines.files import LoadedTimeline, read_timeline

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def marker(name: str, start: float, dur: float, color: str = "RED", rate: float = 24) -> otio.schema.Marker:
    return otio.schema.Marker(name=name, marked_range=TR(RT(start, rate), RT(dur, rate)), color=color)


def edit(tmp_path: Path) -> LoadedTimeline:
    """A 20 s timeline at 24 fps starting at 01:00:00:00: cuts at 5 s and 12 s, markers of every kind."""
    tl = otio.schema.Timeline(name="reel 1", global_start_time=RT(86400, 24))
    track = otio.schema.Track(name="V1")
    for name, dur in (("a", 120), ("b", 168), ("c", 192)):
        track.append(otio.schema.Clip(name=name, media_reference=otio.schema.MissingReference(),
                                      source_range=TR(RT(1000, 24), RT(dur, 24))))
    tl.tracks.append(track)
    tl.tracks.markers.extend([
        marker("1M1", 24, 72),                 # 1 s .. 4 s
        marker("Cue finale", 288, 144, "GREEN"),  # 12 s .. 18 s
        marker("1m2", 120, 96),                # 5 s .. 9 s (lower case still a spotting number)
        marker("hit", 60, 0),                  # point marker at 2.5 s
        marker("1M9", 100, 0),                 # a cue name with no duration: a hit point, with a note
        marker("notes", 30, 48, "BLUE"),       # ranged, but not a cue by name
        marker("late", 600, 24),               # outside the timeline
    ])
    # A clip marker lives in the clip's source time: 1000 + 36 frames into clip "b" = 5 s + 1.5 s = 6.5 s.
    track[1].markers.append(marker("clip hit", 1036, 0))
    p = tmp_path / "reel1.otio"
    otio.adapters.write_to_file(tl, str(p))
    return read_timeline(p)


def test_marker_convention(tmp_path):
    cl = read_cues(edit(tmp_path))
    assert [c.name for c in cl.cues] == ["1M1", "1m2", "Cue finale"]
    c1, c2, c3 = cl.cues
    assert (c1.record_start, c1.duration) == (RT(24, 24), RT(72, 24))
    assert c1.record_timecode_start.to_timecode() == "01:00:01:00"
    assert [(h.kind, h.time.to_seconds(), h.name) for h in c1.hits] == [("marker", 1.5, "hit")]
    # 1m2 starts exactly on the cut at 5 s: the cut is its start, not a hit inside; the clip marker is.
    assert [(h.kind, h.time.to_seconds(), h.name) for h in c2.hits] == [("marker", 1.5, "clip hit")]
    assert [(h.kind, h.time.to_seconds()) for h in c3.hits] == []
    notes = "\n".join(cl.notes)
    assert "marker 'late' on timeline at 01:00:25:00: outside the timeline" in notes
    assert "marker '1M9'" in notes and "has no duration, so it is a hit point" in notes
    assert "marker 'notes' on timeline at 01:00:01:06: a range not named as a cue" in notes


def test_cue_colour_and_pattern_options(tmp_path):
    loaded = edit(tmp_path)
    assert "notes" in [c.name for c in read_cues(loaded, cue_color="blue").cues]
    assert [c.name for c in read_cues(loaded, pattern=r"notes$").cues] == ["notes"]
    with pytest.raises(CueError, match="cue name pattern"):
        read_cues(loaded, pattern="(")


def test_cuts_are_hits_in_a_range_and_whole_timeline(tmp_path):
    loaded = edit(tmp_path)
    tl = loaded.timeline
    tl.tracks.markers.clear()
    whole = read_cues(loaded).cues
    assert len(whole) == 1 and whole[0].origin == "timeline" and whole[0].duration == RT(480, 24)
    assert [h.time.to_seconds() for h in whole[0].hits if h.kind == "cut"] == [5.0, 12.0]
    g0 = tl.global_start_time
    a, b = parse_time("01:00:04:00", 24, g0), parse_time("13.5", 24, g0)
    cue = read_cues(loaded, in_out=(a, b)).cues[0]
    assert cue.origin == "range" and cue.record_start == RT(96, 24) and cue.duration.to_seconds() == 9.5
    assert [(h.kind, h.time.to_seconds()) for h in cue.hits] == [("cut", 1.0), ("marker", 2.5), ("cut", 8.0)]
    with pytest.raises(CueError, match="is not after the in point"):
        read_cues(loaded, in_out=(b, a))
    with pytest.raises(CueError, match="outside the timeline"):
        read_cues(loaded, in_out=(a, parse_time("30", 24, g0)))
    with pytest.raises(CueError, match="not a timecode"):
        parse_time("1:xx", 24, g0)


def test_select_by_name_and_unique_file_stems(tmp_path):
    cl = read_cues(edit(tmp_path))
    assert [c.name for c in cl.select(["Cue_finale", "1M1"])] == ["1M1", "Cue finale"]
    assert cl.select(["all"]) == cl.cues
    with pytest.raises(CueError, match=r"no cue named '2M1'; cues: 1M1, 1m2, Cue finale"):
        cl.select(["2M1"])
    taken: set[str] = set()
    assert [file_stem_for(n, taken) for n in ("1M1", "1M1", "a/b: c", "")] == ["1M1", "1M1_2", "a_b_c", "cue"]


def test_too_short_cue_is_listed_with_a_warning(tmp_path):
    loaded = edit(tmp_path)
    loaded.timeline.tracks.markers.append(marker("2M1", 400, 12))
    cue = [c for c in read_cues(loaded).cues if c.name == "2M1"][0]
    assert "outside what the engine renders" in cue.warnings[0]


def test_json_has_rational_and_seconds(tmp_path):
    j = read_cues(edit(tmp_path)).to_json()
    c = j["cues"][0]
    assert c["record_start"] == {"value": 24.0, "rate": 24.0, "seconds": 1.0}
    assert c["duration_s"] == 3.0 and c["record_start_timecode"] == "01:00:01:00"
    assert j["global_start"]["value"] == 86400


def test_fixture_markers_become_hit_points(fixtures_dir):
    cl = read_cues(read_timeline(fixtures_dir / "timelines" / "premiere_example.xml"))
    hits = [(h.kind, h.time.value) for h in cl.cues[0].hits if h.kind == "marker"]
    assert hits == [("marker", 113.0), ("marker", 298.0), ("marker", 395.0), ("marker", 492.0)]
    assert len(cl.cues[0].offline()) == 4
