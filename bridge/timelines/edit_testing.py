"""The generated edit the timeline tests and benches score and conform: a 24 fps reel over two generated shots with
three cue markers and a hit (`make_edit`, its cue table `CUES`), and two later versions of it (`make_new_edit`:
0.5 s cut out of cue 1M2 and 1M1 removed; `make_third_edit`: 1M2 extended again); `write_reel` writes such a reel
from a clip list and cue and point markers (tests/executors_fixture.py's reel too).

Shared by tests/test_timelines_batch.py, test_timelines_conform_render.py, test_regenerate_scored.py,
test_render_v2.py, test_bridge_editor_loop.py and bench/bench_conform.py, so they score the same picture. Real
media is written (engine/film/synthetic.py), so the film encoder has cuts to find. Nothing here needs pytest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import opentimelineio as otio

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange
FPS = 24
CUES = {"1M1": (24, 48), "1M2": (84, 72), "cue 3": (168, 60)}  # frames at 24 fps: start, duration
CUT = 12  # frames (0.5 s at 24 fps) removed from clip A by make_new_edit, inside cue 1M2 (record 3.5-6.5 s)


def make_edit(folder: Path) -> Path:
    """Generated media (two shots, a cut at 3 s) cut into a 24 fps timeline starting at 01:00:00:00:
    clip A = media 0-6 s at record 0-6 s, clip B = media 1-6 s at record 6-11 s; three cue markers, one hit."""
    from filmscore.engine.film.synthetic import Shot, write_edit

    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    write_edit(media / "shots.mp4", [Shot("pan", 3.0, seed=1), Shot("shapes", 3.0, seed=2)], width=96, height=64,
               fps=25)
    return write_reel(folder / "reel.otio", "generated reel",
                      [("A", "media/shots.mp4", 0, 144), ("B", "media/shots.mp4", 24, 120)], CUES, {"door slam": 100})


def write_reel(path: Path, name: str, clips: Sequence[tuple[str, str, int, int]],
               cues: Mapping[str, tuple[int, int]], points: Mapping[str, int]) -> Path:
    """A 24 fps timeline from 01:00:00:00 written to `path`: `clips` (name, media URL, source start, frames) in
    order on V1, a green cue marker over each of `cues` (record start, frames) and a point marker at each of
    `points` (record frame)."""
    tl = otio.schema.Timeline(name=name, global_start_time=RT(86400, FPS))
    track = otio.schema.Track(name="V1")
    for clip, url, start, dur in clips:
        track.append(otio.schema.Clip(name=clip, media_reference=otio.schema.ExternalReference(target_url=url),
                                      source_range=TR(RT(start, FPS), RT(dur, FPS))))
    tl.tracks.append(track)
    for cue, (a, d) in cues.items():
        tl.tracks.markers.append(otio.schema.Marker(name=cue, marked_range=TR(RT(a, FPS), RT(d, FPS)),
                                                    color="GREEN"))
    for point, at in points.items():
        tl.tracks.markers.append(otio.schema.Marker(name=point, marked_range=TR(RT(at, FPS), RT(0, FPS))))
    otio.adapters.write_to_file(tl, str(path))
    return path


def make_new_edit(old: Path) -> Path:
    """OLD with clip A split at record 4.5 s and media 4.5-5 s removed; markers after the cut moved 12 frames
    earlier, 1M2 12 frames shorter, 1M1 removed. Written beside OLD as reel_v2.otio."""
    tl = otio.adapters.read_from_file(str(old))
    track = tl.tracks[0]
    a = track[0]
    ref = a.media_reference.deepcopy()
    a.source_range = TR(RT(0, FPS), RT(108, FPS))  # media 0-4.5 s
    track.insert(1, otio.schema.Clip(name="A2", media_reference=ref, source_range=TR(RT(120, FPS), RT(24, FPS))))
    markers = list(tl.tracks.markers)
    tl.tracks.markers.clear()
    for m in markers:
        start, dur = m.marked_range.start_time, m.marked_range.duration
        if m.name == "1M1":
            continue
        if m.name == "1M2":
            dur = dur - RT(CUT, FPS)
        elif start.to_seconds() >= 4.5:
            start = start - RT(CUT, FPS)
        tl.tracks.markers.append(otio.schema.Marker(name=m.name, marked_range=TR(start, dur), color=m.color))
    path = old.with_name("reel_v2.otio")
    otio.adapters.write_to_file(tl, str(path))
    return path


def make_third_edit(v2: Path) -> Path:
    """V2 with cue 1M2's region 12 frames longer at its end (record 3.5-6.5 s): the cue is extended. Written beside
    V2 as reel_v3.otio."""
    tl = otio.adapters.read_from_file(str(v2))
    markers = list(tl.tracks.markers)
    tl.tracks.markers.clear()
    for m in markers:
        r = m.marked_range
        if m.name == "1M2":
            r = TR(r.start_time, r.duration + RT(CUT, FPS))
        tl.tracks.markers.append(otio.schema.Marker(name=m.name, marked_range=r, color=m.color))
    path = v2.with_name("reel_v3.otio")
    otio.adapters.write_to_file(tl, str(path))
    return path
