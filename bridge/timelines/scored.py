"""The scored timeline: the editor's timeline plus audio track(s) holding each rendered cue at its record time.

Cues go on a new audio track named "filmscore" (overlapping cues spill onto "filmscore 2", ...), each a clip whose
media is the delivered WAV, with every range in the timeline's frame rate: Final Cut Pro 7 XML's writer fails on
ranges at 48 kHz audio rates, and editors place clips on frames anyway (a cue's exact length in samples is in the
WAV and in the clip's metadata). `write_scored_timeline` writes `.otio` (Marker.2) and, where OpenTimelineIO has
a writer for it, the input's own format: FCP 7 XML keeps every track. The CMX 3600 writer (otio-cmx3600-adapter
1.0) writes the first video track only and drops every audio track, so an EDL input gets `.otio` and FCP 7 `.xml`
(which Resolve, Premiere and Avid import) instead of an EDL without the score. Each file written is read back
and checked: every cue must sit at its record time, to the frame, or the file is removed and the failure named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import opentimelineio as otio

from .cues import CueRegion
from .errors import TimelineError
from .files import LoadedTimeline, write_timeline

RationalTime = otio.opentime.RationalTime
TimeRange = otio.opentime.TimeRange

SCORE_TRACK_NAME = "filmscore"


@dataclass(frozen=True)
class Placement:
    """A rendered cue to place: the cue, its WAV, and its exact length in samples at `sample_rate`."""

    cue: CueRegion
    wav: Path
    n_samples: int
    sample_rate: int


def _lanes(placements: Sequence[Placement]) -> list[list[Placement]]:
    """Greedy interval colouring: each lane holds cues that do not overlap, in record order."""
    lanes: list[list[Placement]] = []
    for p in sorted(placements, key=lambda p: p.cue.record_start.to_seconds()):
        for lane in lanes:
            if lane[-1].cue.record_range.end_time_exclusive() <= p.cue.record_start:
                lane.append(p)
                break
        else:
            lanes.append([p])
    return lanes


def add_score_tracks(timeline: otio.schema.Timeline, placements: Sequence[Placement]) -> otio.schema.Timeline:
    """A copy of `timeline` with the cues on new audio track(s) at their record times (timeline frame rate)."""
    out = timeline.deepcopy()
    rate = timeline.duration().rate
    if out.global_start_time is None:  # the FCP 7 XML writer needs a start timecode
        out.global_start_time = RationalTime(0, rate)
    for clip in out.find_clips():  # the FCP 7 XML writer needs explicit source ranges; this is the same range
        if clip.source_range is None:
            clip.source_range = clip.trimmed_range()
    origin = out.tracks.trimmed_range().start_time.rescaled_to(rate)
    for i, lane in enumerate(_lanes(placements)):
        track = otio.schema.Track(name=SCORE_TRACK_NAME if i == 0 else f"{SCORE_TRACK_NAME} {i + 1}",
                                  kind=otio.schema.TrackKind.Audio)
        cursor = RationalTime(0, rate)
        for p in lane:
            start = (origin + p.cue.record_start).rescaled_to(rate)
            dur = p.cue.duration.rescaled_to(rate)
            if start > cursor:
                track.append(otio.schema.Gap(source_range=TimeRange(RationalTime(0, rate), start - cursor)))
            ref = otio.schema.ExternalReference(target_url=p.wav.resolve().as_uri(),
                                                available_range=TimeRange(RationalTime(0, rate), dur))
            clip = otio.schema.Clip(name=p.cue.name, media_reference=ref,
                                    source_range=TimeRange(RationalTime(0, rate), dur))
            clip.metadata["filmscore"] = {"cue": p.cue.name, "sample_rate": p.sample_rate, "n_samples": p.n_samples,
                                          "record_start": {"value": p.cue.record_start.value,
                                                           "rate": p.cue.record_start.rate}}
            track.append(clip)
            cursor = start + dur
        out.tracks.append(track)
    return out


def scored_outputs(loaded: LoadedTimeline, outdir: Path, stem: str) -> list[Path]:
    """Where the scored timeline goes: `.otio` always, plus FCP 7 XML for an XML or EDL input."""
    paths = [outdir / f"{stem}.otio"]
    if loaded.suffix in (".xml", ".edl"):
        paths.append(outdir / f"{stem}.xml")
    return paths


def check_placements(path: Path, placements: Sequence[Placement]) -> list[str]:
    """Read a written scored timeline back; one line per cue missing or off its record time by a frame or more."""
    from .files import read_timeline

    tl = read_timeline(path).timeline
    origin = tl.tracks.trimmed_range().start_time
    found: dict[str, list[TimeRange]] = {}
    for track in tl.audio_tracks():
        for i, item in enumerate(track):
            if isinstance(item, otio.schema.Clip):
                r = track.range_of_child_at_index(i)
                found.setdefault(item.name, []).append(TimeRange(r.start_time - origin, r.duration))
    problems = []
    for p in placements:
        frame = RationalTime(1, tl.duration().rate).to_seconds()
        want = p.cue.record_range
        ok = any(abs((r.start_time - want.start_time).to_seconds()) < frame / 2
                 and abs((r.duration - want.duration).to_seconds()) < frame / 2 for r in found.get(p.cue.name, []))
        if not ok:
            problems.append(f"{path}: cue {p.cue.name!r} is not at its record time after reading the file back")
    return problems


def write_scored_timeline(loaded: LoadedTimeline, placements: Sequence[Placement], outdir: Path,
                          stem: str | None = None) -> tuple[list[Path], list[str]]:
    """Write the scored timeline in every format `scored_outputs` names and check each by reading it back.
    Returns (written paths, one line per format refused or failing the check; such a file is removed).
    The `.otio` must succeed: its failure raises `TimelineError`."""
    stem = stem or f"{loaded.path.stem}.scored"
    scored = add_score_tracks(loaded.timeline, placements)
    written, failed = [], []
    for path in scored_outputs(loaded, outdir, stem):
        try:
            write_timeline(scored, path)
            problems = check_placements(path, placements)
            if problems:
                path.unlink(missing_ok=True)
                raise TimelineError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
            written.append(path)
        except TimelineError as e:
            if path.suffix == ".otio":
                raise
            failed.append(str(e))
    return written, failed
