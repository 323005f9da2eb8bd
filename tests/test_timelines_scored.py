"""The scored timeline: cues on new audio tracks at their record times, written and read back to the frame."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from filmscore.bridge.timelines.cues import read_cues
from filmscore.bridge.timelines.files import read_timeline
from filmscore.bridge.timelines.scored import (Placement, add_score_tracks, check_placements, scored_outputs,
                                               write_scored_timeline)

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def marked(tmp_path: Path, suffix: str = ".otio", rate: float = 24):
    tl = otio.schema.Timeline(name="reel", global_start_time=RT(86400, rate))
    track = otio.schema.Track(name="V1")
    track.append(otio.schema.Clip(name="shot", media_reference=otio.schema.ExternalReference(
        target_url=str(tmp_path / "shot.mov"), available_range=TR(RT(0, rate), RT(2000, rate))),
        source_range=TR(RT(0, rate), RT(40 * rate, rate))))
    tl.tracks.append(track)
    for name, a, d in (("1M1", 2, 5), ("1M2", 5, 6), ("1M3", 20, 3.5)):  # 1M1 and 1M2 overlap
        tl.tracks.markers.append(otio.schema.Marker(name=name, marked_range=TR(RT(a * rate, rate),
                                                                                RT(d * rate, rate))))
    p = tmp_path / f"reel{suffix}"
    otio.adapters.write_to_file(tl, str(p))
    return read_timeline(p)


def placements(cl, tmp_path, sr=48000):
    return [Placement(c, tmp_path / f"{c.file_stem}.wav", round(c.duration.to_seconds() * sr), sr) for c in cl.cues]


def test_overlapping_cues_spill_onto_a_second_track(tmp_path):
    loaded = marked(tmp_path)
    pl = placements(read_cues(loaded), tmp_path)
    scored = add_score_tracks(loaded.timeline, pl)
    assert len(loaded.timeline.tracks) == 1, "the input timeline is not changed"
    names = [t.name for t in scored.tracks]
    assert names == ["V1", "filmscore", "filmscore 2"]
    score = scored.tracks[1]
    assert score.kind == otio.schema.TrackKind.Audio
    clips = [(c.name, c.range_in_parent()) for c in score if isinstance(c, otio.schema.Clip)]
    assert clips == [("1M1", TR(RT(48, 24), RT(120, 24))), ("1M3", TR(RT(480, 24), RT(84, 24)))]
    c = scored.tracks[2][1]
    assert c.name == "1M2" and c.range_in_parent() == TR(RT(120, 24), RT(144, 24))
    assert c.media_reference.target_url == (tmp_path / "1M2.wav").resolve().as_uri()
    assert c.metadata["filmscore"]["n_samples"] == 6 * 48000


@pytest.mark.parametrize("suffix, formats", [(".otio", [".otio"]), (".xml", [".otio", ".xml"])])
def test_written_and_read_back_to_the_frame(tmp_path, suffix, formats):
    src = marked(tmp_path)
    if suffix == ".xml":  # make an FCP 7 XML input from the same edit
        otio.adapters.write_to_file(src.timeline, str(tmp_path / "reel.xml"), adapter_name="fcp_xml")
        src = read_timeline(tmp_path / "reel.xml")
    pl = placements(read_cues(src), tmp_path)
    out = tmp_path / "out"
    written, failed = write_scored_timeline(src, pl, out)
    assert [p.suffix for p in written] == formats and failed == []
    for p in written:
        assert check_placements(p, pl) == []
        back = read_timeline(p).timeline
        found = {c.name: c.range_in_parent() for t in back.audio_tracks() for c in t
                 if isinstance(c, otio.schema.Clip)}
        for pc in pl:
            r = found[pc.cue.name]
            assert r.start_time.to_frames(24) == pc.cue.record_start.to_frames(24), p
            assert r.duration.to_frames(24) == pc.cue.duration.to_frames(24), p


def test_edl_input_gets_otio_and_fcp_xml(tmp_path):
    edl = ("TITLE: Cut\nFCM: NON-DROP FRAME\n\n"
           "001  AX       V     C        00:00:00:00 00:00:20:00 01:00:00:00 01:00:20:00\n"
           "* FROM CLIP NAME:  a.mov\n")
    (tmp_path / "cut.edl").write_text(edl)
    loaded = read_timeline(tmp_path / "cut.edl")
    assert [p.suffix for p in scored_outputs(loaded, tmp_path, "x")] == [".otio", ".xml"]
    cl = read_cues(loaded)
    written, failed = write_scored_timeline(loaded, placements(cl, tmp_path), tmp_path / "o")
    assert [p.name for p in written] == ["cut.scored.otio", "cut.scored.xml"] and failed == []


def test_a_file_that_loses_the_cues_is_removed_and_named(tmp_path):
    loaded = marked(tmp_path)
    pl = placements(read_cues(loaded), tmp_path)
    p = tmp_path / "plain.otio"
    otio.adapters.write_to_file(loaded.timeline, str(p))  # no score track
    problems = check_placements(p, pl)
    assert len(problems) == 3 and "cue '1M1' is not at its record time" in problems[0]


def test_every_fixture_takes_a_score_track(fixtures_dir, tmp_path):
    for src in sorted((fixtures_dir / "timelines").iterdir()):
        loaded = read_timeline(src)
        cl = read_cues(loaded)
        written, failed = write_scored_timeline(loaded, placements(cl, tmp_path), tmp_path / src.stem)
        assert written[0].suffix == ".otio", src.name
        assert all(check_placements(p, placements(cl, tmp_path)) == [] for p in written), src.name
        if src.suffix == ".xml":
            assert [p.suffix for p in written] == [".otio", ".xml"] and failed == [], src.name
