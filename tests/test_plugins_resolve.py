"""plugin_manifests/resolve: the Resolve Studio script against a live bridge, with Resolve's scripting objects
replaced at the API boundary only; and the free edition's .otio round trip for real on the shared fixtures."""

from __future__ import annotations

import importlib.util
import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "plugin_manifests" / "resolve" / "filmscore_score_cue.py"


@pytest.fixture(scope="module")
def R():
    spec = importlib.util.spec_from_file_location("filmscore_score_cue", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


# -- stand-ins for DaVinciResolveScript objects: the methods the script calls, with Resolve's return shapes -------
class FakeMediaPoolItem:
    def __init__(self, path: str) -> None:
        self.path = path

    def GetClipProperty(self, key: str):
        return {"File Path": self.path}.get(key, "")


class FakeTimelineItem:
    def __init__(self, start: int, end: int, left: int, path: str) -> None:
        self.start, self.end, self.left, self.mpi = start, end, left, FakeMediaPoolItem(path)

    def GetStart(self):
        return self.start

    def GetEnd(self):
        return self.end

    def GetLeftOffset(self):
        return self.left

    def GetMediaPoolItem(self):
        return self.mpi


class FakeTimeline:
    def __init__(self, markers: dict, video: list[list[FakeTimelineItem]], audio_tracks: int = 2,
                 mark: dict | None = None) -> None:
        self.markers, self.video, self.audio_tracks, self.mark = markers, video, audio_tracks, mark
        self.calls: list[tuple] = []

    def GetName(self):
        return "Reel 2"

    def GetSetting(self, key: str):
        return {"timelineFrameRate": "24"}[key]

    def GetStartFrame(self):
        return 86400  # 01:00:00:00 at 24 fps

    def GetEndFrame(self):
        return 86400 + 24 * 60

    def GetMarkers(self):
        return self.markers

    def GetMarkInOut(self):
        return self.mark or {}

    def GetTrackCount(self, kind: str):
        return len(self.video) if kind == "video" else self.audio_tracks

    def GetItemListInTrack(self, kind: str, index: int):
        return self.video[index - 1] if kind == "video" else []

    def AddTrack(self, kind: str, sub: str):
        self.calls.append(("AddTrack", kind, sub))
        self.audio_tracks += 1
        return True


class FakeMediaPool:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def ImportMedia(self, paths: list[str]):
        self.calls.append(("ImportMedia", paths))
        return [FakeMediaPoolItem(p) for p in paths if Path(p).is_file()]

    def AppendToTimeline(self, infos: list[dict]):
        self.calls.append(("AppendToTimeline", infos))
        return [object() for _ in infos]


class FakeResolve:
    def __init__(self, timeline: FakeTimeline) -> None:
        self.timeline, self.pool = timeline, FakeMediaPool()
        project = type("Project", (), {"GetCurrentTimeline": lambda s: self.timeline,
                                       "GetMediaPool": lambda s: self.pool})()
        self.pm = type("PM", (), {"GetCurrentProject": lambda s: project})()

    def GetProjectManager(self):
        return self.pm


def test_cues_hits_and_picture(R, tmp_path):
    clip = tmp_path / "a.mov"
    clip.write_bytes(b"not decoded here")
    tl = R.ResolveTimeline(FakeResolve(FakeTimeline(
        {240.0: {"name": "1M1", "duration": 48, "color": "Blue", "note": ""},
         252.0: {"name": "door", "duration": 1, "color": "Red", "note": ""},
         600.0: {"name": "temp love", "duration": 96, "color": "Green", "note": ""}},
        [[FakeTimelineItem(86400, 86400 + 480, 100, str(clip))], [FakeTimelineItem(86400 + 600, 86400 + 700, 0, "")]]))
    ).read()
    assert tl.fps == 24 and tl.start_frame == 86400 and len(tl.clips) == 2
    cues = R.cue_regions(tl)
    assert [(c.name, c.origin, c.record_frame, c.n_frames, c.hits) for c in cues] == [
        ("1M1", "marker", 86640, 48, (12,))]  # "temp love" is not a cue name; the 1-frame marker is a hit
    assert R.picture_for(cues[0], tl.clips) == (str(clip), 100 + 240, "")
    # A cue over two clips (or offline media) is scored without picture, and the note says why.
    two = R.Cue("2M1", "marker", 86400 + 450, 100)
    assert R.picture_for(two, tl.clips)[0] is None and "spans" in R.picture_for(two, tl.clips)[2]
    assert R.parse_fps("23.976") == Fraction(24000, 1001)
    with pytest.raises(R.ResolveScriptError, match="frame rate"):
        R.parse_fps("fast")
    # Without cue markers, the marked In/Out range (Resolve's out is inclusive) is the cue.
    tl.markers = []
    tl.mark_in_out = (48, 96)
    assert [(c.origin, c.record_frame, c.n_frames) for c in R.cue_regions(tl)] == [("in/out", 86448, 48)]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_script_scores_through_a_live_bridge_and_places_the_cue(R, tmp_path):
    from filmscore.bridge.client import BridgeClient
    from filmscore.bridge.server.launch import launch_server
    from filmscore.engine.bundle_testing import make_tiny_bundle

    out = tmp_path / "cues"
    out.mkdir()
    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    fake = FakeResolve(FakeTimeline({240.0: {"name": "1M1", "duration": 48}, 252.0: {"name": "hit", "duration": 1}},
                                    [[]], audio_tracks=2))
    lines: list[str] = []
    with launch_server(tmp_path / "state", media_roots=[tmp_path], output_roots=[out], bundle=bundle) as srv:
        with BridgeClient(srv.info) as client:
            done = R.score(R.ResolveTimeline(fake), client, out, "1M1", seed=5, steps=3, log=lines.append)
            meta = client.result(client.list_jobs(("finished",))[0]["job_id"])["metadata"]
    assert done.track == 3 and done.wav.is_file() and done.wav.parent == out.resolve()
    assert ("AddTrack", "audio", "mono") in fake.timeline.calls
    assert fake.pool.calls[0] == ("ImportMedia", [str(done.wav)])
    (info,) = fake.pool.calls[1][1]
    assert info["recordFrame"] == 86400 + 240 and info["trackIndex"] == 3 and info["mediaType"] == 2
    assert info["endFrame"] == 47
    import soundfile as sf

    assert sf.info(done.wav).frames == 2 * 48000  # 48 frames at 24 fps
    assert meta["request"]["hits_s"] == [0.5] and meta["request"]["seed"] == 5
    assert any("progress" not in ln and "%" in ln for ln in lines) and "scored without picture" in lines[0]


def test_script_errors_are_one_line(R):
    with pytest.raises(R.ResolveScriptError, match="not reachable"):
        R.ResolveTimeline(None)
    nothing = type("R", (), {"GetProjectManager": lambda s: type("PM", (), {"GetCurrentProject": lambda s: None})()})()
    with pytest.raises(R.ResolveScriptError, match="no project"):
        R.ResolveTimeline(nothing)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_free_edition_otio_round_trip(fixtures_dir, tmp_path, capsys):
    """Resolve (free) exports the timeline as .otio, `filmscore score` scores it, Resolve imports the scored .otio:
    the scored file keeps every original clip and adds the cue on an audio track at its record time."""
    import opentimelineio as otio

    from filmscore.bridge.timelines.files import read_timeline
    from filmscore.engine.bundle_testing import make_tiny_bundle

    src = tmp_path / "export.otio"
    src.write_bytes((fixtures_dir / "timelines" / "nested_example.otio").read_bytes())
    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    outdir = tmp_path / "scored"
    from filmscore.bridge.cli import main

    rc = main(["score", str(src), "-o", str(outdir), "--in", "1", "--out", "3", "--steps", "2", "--bundle",
               str(bundle), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0, summary
    scored = [Path(p) for p in summary["scored_timelines"] if str(p).endswith(".otio")]
    assert scored and scored[0].is_file()
    before = read_timeline(src).timeline
    after = otio.adapters.read_from_file(str(scored[0]))  # what Resolve's File > Import > Timeline reads
    clips = lambda t: sorted(c.name for c in t.find_clips())  # noqa: E731
    audio = [t for t in after.tracks if t.kind == otio.schema.TrackKind.Audio and t.name.startswith("filmscore")]
    assert len(audio) == 1
    (cue,) = list(audio[0].find_clips())
    rec = cue.range_in_parent()
    assert rec.start_time.to_seconds() == pytest.approx(1.0) and rec.duration.to_seconds() == pytest.approx(2.0)
    wav = Path(cue.media_reference.target_url.removeprefix("file://"))
    assert wav.is_file() and wav.parent == outdir.resolve()
    assert clips(after) == sorted(clips(before) + [cue.name])
