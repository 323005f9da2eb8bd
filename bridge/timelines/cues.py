"""Cue regions and hit points of a timeline.

Convention (docs/timelines.md): a **cue** is a marker with a duration whose name follows film-music spotting
numbering (`1M1`, `M3`, `2M10A`: reel, "M", cue number) or starts with `cue` (any case), or, with
`cue_color`, any marker with a duration of that colour. Markers may sit on the timeline, a track or a clip (clip
markers are in the clip's source time and are moved to timeline time). When no marker makes a cue, the
`in_out` range is the one cue, else the whole timeline is.

**Hit points** of a cue: the cuts of the visible picture inside it (from `picture.read_region_picture`) and the
point markers (zero duration) inside it, in time from the cue start. All times are OTIO `RationalTime` in the
timeline's rate; `0` is the timeline's first frame (its start timecode is `global_start`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import opentimelineio as otio

from filmscore.engine.constants import MAX_CUE_S, MIN_CUE_S

from .errors import CueError
from .files import LoadedTimeline
from .picture import PictureSegment, offline_messages, read_region_picture
from .timing import format_time, rt_json

RationalTime = otio.opentime.RationalTime
TimeRange = otio.opentime.TimeRange

DEFAULT_CUE_PATTERN = r"^(\d*M\d+\w*|cue\b.*)"
"""Marker names that make cues: spotting numbers (1M1, M3, 2M10A) or names starting with "cue"."""


@dataclass(frozen=True)
class HitPoint:
    """A moment the music should hit: `time` from the cue start; `kind` "cut" (picture edit) or "marker"."""

    time: RationalTime
    kind: Literal["cut", "marker"]
    name: str = ""

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "time": rt_json(self.time)}


@dataclass(frozen=True)
class CueRegion:
    """One cue: `record_range` in timeline time (0 = first frame), rational. `file_stem` is unique in its list
    and safe as a file name. `picture`: the visible segments over the range, tiling it in record order."""

    name: str
    file_stem: str
    record_range: TimeRange
    origin: Literal["marker", "range", "timeline"]
    global_start: RationalTime
    hits: tuple[HitPoint, ...] = ()
    picture: tuple[PictureSegment, ...] = ()
    color: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def record_start(self) -> RationalTime:
        return self.record_range.start_time

    @property
    def duration(self) -> RationalTime:
        return self.record_range.duration

    @property
    def record_timecode_start(self) -> RationalTime:
        """The cue start as the editor's timeline shows it (start timecode included)."""
        return self.global_start + self.record_start

    def offline(self) -> list[str]:
        return offline_messages(self.picture)

    def to_json(self) -> dict:
        return {"name": self.name, "file_stem": self.file_stem, "origin": self.origin, "color": self.color,
                "record_start": rt_json(self.record_start), "duration": rt_json(self.duration),
                "record_start_timecode": format_time(self.record_timecode_start),
                "record_start_s": self.record_start.to_seconds(), "duration_s": self.duration.to_seconds(),
                "hits": [h.to_json() for h in self.hits], "offline": self.offline(), "warnings": list(self.warnings),
                "picture": [s.to_json() for s in self.picture]}


@dataclass
class CueList:
    """The cues of one timeline, with the notes reading produced (skipped markers, odd tracks)."""

    timeline: LoadedTimeline
    cues: list[CueRegion]
    notes: list[str] = field(default_factory=list)

    def select(self, names: Sequence[str] | None) -> list[CueRegion]:
        """The cues named (by name or file stem), in timeline order; None or ["all"]: every cue."""
        if not names or list(names) == ["all"]:
            return list(self.cues)
        by = {c.name: c for c in self.cues} | {c.file_stem: c for c in self.cues}
        unknown = [n for n in names if n not in by]
        if unknown:
            have = ", ".join(c.name for c in self.cues) or "none"
            raise CueError(f"{self.timeline.path}: no cue named {', '.join(map(repr, unknown))}; cues: {have}")
        picked = {id(by[n]) for n in names}
        return [c for c in self.cues if id(c) in picked]

    def to_json(self) -> dict:
        t = self.timeline.timeline
        return {"timeline": str(self.timeline.path), "name": t.name, "adapter": self.timeline.adapter,
                "rate": t.duration().rate, "duration": rt_json(t.duration()),
                "global_start": rt_json(_global_start(t)), "notes": self.timeline.notes + self.notes,
                "cues": [c.to_json() for c in self.cues]}


def _global_start(t: otio.schema.Timeline) -> RationalTime:
    return t.global_start_time if t.global_start_time is not None else RationalTime(0, t.duration().rate)


def file_stem_for(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "cue"
    out, i = stem, 2
    while out.lower() in taken:
        out, i = f"{stem}_{i}", i + 1
    taken.add(out.lower())
    return out


def _markers_in_timeline_time(tl: otio.schema.Timeline) -> list[tuple[otio.schema.Marker, TimeRange, str]]:
    """Every marker of the timeline, its range moved to timeline time, and where it sits (for messages)."""
    stack = tl.tracks
    origin = stack.trimmed_range().start_time
    out = [(m, TimeRange(m.marked_range.start_time - origin, m.marked_range.duration), "timeline") for m in
           stack.markers]
    for item in stack.find_children():
        for m in getattr(item, "markers", ()):
            r = item.transformed_time_range(m.marked_range, stack)
            out.append((m, TimeRange(r.start_time - origin, r.duration), f"{type(item).__name__.lower()} "
                                                                            f"{item.name!r}"))
    return out


def _hidden_track_notes(tl: otio.schema.Timeline) -> list[str]:
    """Tracks whose own source range shows none of their items (OTIO semantics; some EDL exports do this)."""
    notes = []
    for tr in tl.tracks:
        if not isinstance(tr, otio.schema.Track) or not len(tr) or tr.source_range is None:
            continue
        content = TimeRange(RationalTime(0, tr.source_range.start_time.rate), tr.available_range().duration)
        if not tr.source_range.overlaps(content) and not content.overlaps(tr.source_range):
            notes.append(f"track {tr.name!r}: its source range starts at {tr.source_range.start_time.value:g} "
                         f"frames, so none of its {len(tr)} items is visible in the timeline")
    return notes


def parse_time(text: str, rate: float, global_start: RationalTime) -> RationalTime:
    """A user's time: "HH:MM:SS:FF" timecode as the timeline shows it (start timecode included, so
    01:00:10:00 on a timeline starting at 01:00:00:00 is 10 s in), or plain seconds from the timeline start."""
    try:
        if ":" in text or ";" in text:
            t = otio.opentime.from_timecode(text, rate)
            return t - global_start if t >= global_start else t
        return otio.opentime.from_seconds(float(text), rate).rescaled_to(rate)
    except (ValueError, RuntimeError) as e:
        raise CueError(f"time {text!r}: not a timecode HH:MM:SS:FF at {rate:g} fps nor seconds ({e})") from e


def read_cues(loaded: LoadedTimeline, *, pattern: str = DEFAULT_CUE_PATTERN, cue_color: str | None = None,
              in_out: tuple[RationalTime, RationalTime] | None = None,
              search_roots: Sequence[str | Path] = ()) -> CueList:
    """Find the cue regions of a timeline (see the module docstring for the convention)."""
    tl = loaded.timeline
    duration = tl.duration()
    rate = duration.rate
    g0 = _global_start(tl)
    whole = TimeRange(RationalTime(0, rate), duration)
    try:
        name_re = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise CueError(f"cue name pattern {pattern!r}: {e}") from e
    notes = _hidden_track_notes(tl)
    ranged: list[tuple[str, TimeRange, str | None]] = []
    points: list[tuple[str, RationalTime]] = []
    for m, r, where in _markers_in_timeline_time(tl):
        label = f"marker {m.name!r} on {where} at {format_time(g0 + r.start_time)}"
        if r.start_time < whole.start_time or r.start_time >= whole.end_time_exclusive():
            notes.append(f"{label}: outside the timeline (0..{format_time(g0 + duration)}), ignored")
            continue
        is_cue = bool(name_re.match(m.name or "")) or (cue_color is not None and m.color == cue_color.upper())
        if r.duration.value > 0 and is_cue:
            end = min(r.end_time_exclusive(), whole.end_time_exclusive())
            if end < r.end_time_exclusive():
                notes.append(f"{label}: runs past the timeline end, cut at {format_time(g0 + end)}")
            ranged.append((m.name, otio.opentime.range_from_start_end_time(r.start_time, end), m.color))
        elif r.duration.value > 0:
            notes.append(f"{label}: a range not named as a cue (see --cue-pattern, --cue-color), ignored")
        else:
            if is_cue:
                notes.append(f"{label}: has no duration, so it is a hit point, not a cue")
            points.append((m.name, r.start_time))
    if ranged:
        regions = [(n, r, c, "marker") for n, r, c in sorted(ranged, key=lambda x: x[1].start_time.to_seconds())]
    elif in_out is not None:
        a, b = in_out
        if b <= a:
            raise CueError(f"{loaded.path}: the out point {format_time(g0 + b)} is not after the in point "
                           f"{format_time(g0 + a)}")
        if a < whole.start_time or b > whole.end_time_exclusive():
            raise CueError(f"{loaded.path}: range {format_time(g0 + a)}..{format_time(g0 + b)} is outside the "
                           f"timeline {format_time(g0)}..{format_time(g0 + duration)}")
        regions = [("range", otio.opentime.range_from_start_end_time(a, b), None, "range")]
    else:
        if duration.value <= 0:
            raise CueError(f"{loaded.path}: the timeline is empty (duration 0) and has no cue markers")
        regions = [(tl.name or loaded.path.stem, whole, None, "timeline")]

    taken: set[str] = set()
    cues = []
    for name, r, color, origin in regions:
        picture = read_region_picture(tl, r, loaded.path, search_roots)
        hits = [HitPoint(s.record_start - r.start_time, "cut", s.clip_name)
                for prev, s in zip(picture, picture[1:]) if not prev.same_shot_as(s)]
        hits += [HitPoint(t - r.start_time, "marker", n) for n, t in points
                 if r.start_time <= t < r.end_time_exclusive()]
        hits.sort(key=lambda h: h.time.to_seconds())
        warnings = []
        d = r.duration.to_seconds()
        if not MIN_CUE_S <= d <= MAX_CUE_S:
            warnings.append(f"duration {d:.3f} s is outside what the engine renders ({MIN_CUE_S:g}..{MAX_CUE_S:g} s)")
        cues.append(CueRegion(name or "cue", file_stem_for(name or "cue", taken), r, origin, g0, tuple(hits),
                              tuple(picture), color, tuple(warnings)))
    return CueList(loaded, cues, notes)
