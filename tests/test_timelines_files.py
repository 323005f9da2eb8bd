"""Reading and writing timelines: every shared fixture, the Marker.3 pre-pass, clear refusals, atomic writes."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import opentimelineio as otio
import pytest

from filmscore.bridge.deliverables import DeliveryError
from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.errors import TimelineError, TimelineSchemaError
from filmscore.bridge.timelines.files import read_timeline, write_timeline

FIXTURE_NAMES = ["hiero_xml_export.xml", "multitrack.otio", "nested_example.otio", "premiere_example.otio",
                 "premiere_example.xml", "premiere_generators.xml", "screening_example.otio", "simple_cut.otio",
                 "transition.otio"]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_loads_lists_cues_and_round_trips(fixtures_dir, tmp_path, name):
    src = fixtures_dir / "timelines" / name
    loaded = read_timeline(src)
    tl = loaded.timeline
    cues = read_cues(loaded)
    assert cues.cues, "a timeline without cue markers is one cue"
    assert cues.cues[0].duration == tl.duration()
    # Round trip: .otio always; the input's own format when it is XML.
    outs = [tmp_path / "rt.otio"] + ([tmp_path / "rt.xml"] if src.suffix == ".xml" else [])
    for out in outs:
        write_timeline(tl, out)
        back = read_timeline(out).timeline
        assert back.duration() == tl.duration(), out
        assert len(list(back.find_clips())) == len(list(tl.find_clips())), out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left behind"


def test_marker3_fixtures_are_downgraded_and_written_as_marker2(fixtures_dir, tmp_path):
    src = fixtures_dir / "timelines" / "premiere_example.otio"
    with pytest.raises(Exception, match="unsupported schema version"):
        otio.adapters.read_from_file(str(src))  # what the plain reader says
    loaded = read_timeline(src)
    assert loaded.markers_downgraded == 4
    markers = list(loaded.timeline.tracks.markers) + [m for c in loaded.timeline.find_clips() for m in c.markers]
    assert {m.color for m in markers} == {"RED"}
    write_timeline(loaded.timeline, tmp_path / "out.otio")
    text = (tmp_path / "out.otio").read_text()
    assert '"Marker.2"' in text and '"Marker.3"' not in text
    assert otio.adapters.read_from_file(str(tmp_path / "out.otio")).duration() == loaded.timeline.duration()


def test_colour_without_a_name_maps_to_the_nearest_marker_colour(tmp_path):
    tl = otio.schema.Timeline(name="t")
    tl.tracks.append(otio.schema.Track())
    tree = json.loads(otio.adapters.write_to_string(tl))
    tree["tracks"]["markers"] = [{"OTIO_SCHEMA": "Marker.3", "metadata": {}, "name": "1M1",
                                  "color": {"OTIO_SCHEMA": "Color.1", "r": 0.1, "g": 0.9, "b": 0.2, "a": 1.0},
                                  "marked_range": {"OTIO_SCHEMA": "TimeRange.1",
                                                   "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 24.0,
                                                                  "value": 0.0},
                                                   "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 24.0,
                                                                "value": 24.0}}}]
    p = tmp_path / "m3.otio"
    p.write_text(json.dumps(tree))
    assert read_timeline(p).timeline.tracks.markers[0].color == "GREEN"


def test_otioz_bundle_is_read_through_the_prepass(fixtures_dir, tmp_path):
    p = tmp_path / "bundle.otioz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("content.otio", (fixtures_dir / "timelines" / "screening_example.otio").read_text())
        z.writestr("version.txt", "1.0.0")
    loaded = read_timeline(p)
    assert loaded.markers_downgraded == 3 and loaded.timeline.name == "Example_Screening.01"


def test_a_schema_newer_than_otio_reads_is_named(tmp_path):
    tl = otio.schema.Timeline(name="t")
    tl.tracks.append(otio.schema.Track(name="V1"))
    text = otio.adapters.write_to_string(tl).replace('"Track.1"', '"Track.7"')
    p = tmp_path / "future.otio"
    p.write_text(text)
    with pytest.raises(TimelineSchemaError, match=r"Track 'V1' uses schema Track\.7, newer than OpenTimelineIO"):
        read_timeline(p)


@pytest.mark.parametrize("suffix, content, message", [
    (".otio", "{not json", "not valid OTIO JSON"),
    (".otio", otio.adapters.write_to_string(otio.schema.Clip(name="c")), "holds a Clip, not a timeline"),
    (".otio", '{"OTIO_SCHEMA": "Clip.2", "name": "c"}', "OpenTimelineIO refused it"),
    (".xml", "<xmeml><sequence>", "Final Cut Pro 7 XML .* reader refused it"),
    (".edl", "TITLE: x\n001  AX V C 01:00:00:00\n", "CMX 3600 EDL reader refused it"),
    (".mov", "", "unknown timeline format '.mov'"),
])
def test_bad_files_fail_with_one_line_naming_the_file(tmp_path, suffix, content, message):
    p = tmp_path / f"bad{suffix}"
    p.write_text(content)
    with pytest.raises(TimelineError, match=message) as e:
        read_timeline(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(TimelineError, match="no such timeline file"):
        read_timeline(tmp_path / "nope.otio")


def test_write_to_an_unwritable_place_names_the_path(fixtures_dir, tmp_path):
    tl = read_timeline(fixtures_dir / "timelines" / "simple_cut.otio").timeline
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DeliveryError, match=str(blocker / "sub" / "t.otio")):
        write_timeline(tl, blocker / "sub" / "t.otio")
    with pytest.raises(TimelineError, match="writes timelines as"):
        write_timeline(tl, tmp_path / "t.aaf")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(fixtures_dir, tmp_path):
    tl = read_timeline(fixtures_dir / "timelines" / "simple_cut.otio").timeline
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(DeliveryError, match=str(ro / "t.otio")):
            write_timeline(tl, ro / "t.otio")
    finally:
        ro.chmod(0o700)


def test_edl_reads(tmp_path):
    edl = ("TITLE: Cut\nFCM: NON-DROP FRAME\n\n"
           "001  AX       V     C        00:00:00:00 00:00:02:00 01:00:00:00 01:00:02:00\n"
           "* FROM CLIP NAME:  a.mov\n"
           "002  AX       V     C        00:00:05:00 00:00:08:00 01:00:02:00 01:00:05:00\n"
           "* FROM CLIP NAME:  b.mov\n")
    p = tmp_path / "cut.edl"
    p.write_text(edl)
    loaded = read_timeline(p)
    assert loaded.timeline.duration().to_seconds() == pytest.approx(5.0)
    assert [c.name for c in loaded.timeline.find_clips()] == ["a.mov", "b.mov"]
    assert Path(loaded.path) == p


def _two_clip_timeline() -> otio.schema.Timeline:
    RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
    tl = otio.schema.Timeline(name="t", global_start_time=RT(86400, 24))
    track = otio.schema.Track(name="V1")
    for n in ("a", "b"):
        track.append(otio.schema.Clip(name=n, media_reference=otio.schema.ExternalReference(
            target_url=f"file:///m/{n}.mov", available_range=TR(RT(0, 24), RT(240, 24))),
            source_range=TR(RT(24, 24), RT(48, 24))))
    tl.tracks.append(track)
    return tl


def test_fcpx_xml_reads(tmp_path):
    p = tmp_path / "cut.fcpxml"
    otio.adapters.write_to_file(_two_clip_timeline(), str(p), adapter_name="fcpx_xml")
    loaded = read_timeline(p)
    assert loaded.adapter == "fcpx_xml" and loaded.timeline.duration() == otio.opentime.RationalTime(96, 24)
    assert [c.name for c in loaded.timeline.find_clips()] == ["a", "b"]
    assert read_cues(loaded).cues[0].duration.to_seconds() == 4.0


def test_corrupt_aaf_is_refused_by_name(tmp_path):
    p = tmp_path / "cut.aaf"
    p.write_bytes(b"\xd0\xcf\x11\xe0 not really a compound file")
    with pytest.raises(TimelineError, match=r"cut\.aaf: the Avid AAF reader refused it"):
        read_timeline(p)


def test_sequence_audio_rate_from_fcp_xml(fixtures_dir):
    from filmscore.bridge.timelines.files import timeline_sample_rate

    assert timeline_sample_rate(read_timeline(fixtures_dir / "timelines" / "premiere_example.xml").timeline) == 48000
    assert timeline_sample_rate(read_timeline(fixtures_dir / "timelines" / "simple_cut.otio").timeline) is None
