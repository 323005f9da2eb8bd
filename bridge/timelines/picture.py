"""The picture of a timeline region: what is on screen, clip by clip, in record order.

`read_region_picture(loaded, region)` walks the video tracks of the timeline over `region` (timeline time,
0 = first frame) and returns the visible `PictureSegment`s: the top-most video track with something on it wins
(as an NLE composites), nested stacks and tracks are walked recursively, transitions count at their cut point
(OTIO places the cut there), linear time warps and freeze frames set `time_scalar`. Each clip's media is
resolved relative to the timeline file, then to each search root (by relative path, then by file name); a clip
whose media cannot be found is an *offline* segment carrying a one-line message. Nothing here decodes video:
`film_of_region.py` does, from these segments.

Time stays rational: record ranges and source starts are OTIO `RationalTime`/`TimeRange`; only `time_scalar` (the
warp's speed, media seconds per record second) is a float, as OTIO stores it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import opentimelineio as otio

from .timing import format_time

RationalTime = otio.opentime.RationalTime
TimeRange = otio.opentime.TimeRange

SegmentKind = Literal["media", "gap", "offline", "generator"]


@dataclass(frozen=True)
class PictureSegment:
    """One stretch of the visible picture.

    `record_range`: timeline time (0 = timeline start). `source_start`: media time at the segment's first record
    frame, in the media file's own clock (0 = first frame of the file: the clip's source time minus the media's
    available-range start). `time_scalar`: media seconds per record second (1 normal speed, 0.5 slow motion,
    0 freeze frame). `message`: why an offline or generator segment has no picture.
    """

    record_range: TimeRange
    kind: SegmentKind
    clip_name: str = ""
    media_path: Path | None = None
    source_start: RationalTime | None = None
    time_scalar: float = 1.0
    message: str = ""
    item_path: str = ""

    @property
    def record_start(self) -> RationalTime:
        return self.record_range.start_time

    @property
    def record_end(self) -> RationalTime:
        return self.record_range.end_time_exclusive()

    def source_range_s(self) -> tuple[float, float]:
        """(start_s, duration_s) of media this segment shows, for the film encoder. A freeze frame reads one
        frame's worth (1/24 s); the encoder returns at least one frame."""
        if self.source_start is None:
            raise ValueError(f"segment {self.clip_name!r} has no media")
        dur = self.record_range.duration.to_seconds() * self.time_scalar
        return self.source_start.to_seconds(), max(dur, 1.0 / 24.0)

    def same_shot_as(self, other: PictureSegment) -> bool:
        """True when `other` continues this segment without an edit (same media, contiguous source time)."""
        if self.kind != other.kind or self.media_path != other.media_path or self.clip_name != other.clip_name:
            return False
        if self.kind != "media":
            return self.kind == "gap"
        expected = self.source_start + _scale(self.record_range.duration, self.time_scalar)
        return abs((expected - other.source_start).to_seconds()) < 1e-6 and self.time_scalar == other.time_scalar

    def to_json(self) -> dict:
        return {"kind": self.kind, "clip": self.clip_name, "item_path": self.item_path,
                "record_start_s": self.record_start.to_seconds(),
                "record_duration_s": self.record_range.duration.to_seconds(),
                "record_start": _rt_json(self.record_start), "record_duration": _rt_json(self.record_range.duration),
                "media": str(self.media_path) if self.media_path else None,
                "source_start_s": self.source_start.to_seconds() if self.source_start is not None else None,
                "time_scalar": self.time_scalar, "message": self.message}


def _rt_json(t: RationalTime) -> dict:
    return {"value": t.value, "rate": t.rate}


def _scale(t: RationalTime, k: float) -> RationalTime:
    return RationalTime(t.value * k, t.rate)


def _intersect(a: TimeRange, b: TimeRange) -> TimeRange | None:
    start = max(a.start_time, b.start_time)
    end = min(a.end_time_exclusive(), b.end_time_exclusive())
    if end <= start:
        return None
    return otio.opentime.range_from_start_end_time(start, end)


def _slice(seg: PictureSegment, start: RationalTime, end: RationalTime) -> PictureSegment:
    """The part of `seg` over record [start, end), its source start advanced accordingly."""
    src = seg.source_start
    if src is not None:
        src = src + _scale(start - seg.record_start, seg.time_scalar)
    return replace(seg, record_range=otio.opentime.range_from_start_end_time(start, end), source_start=src)


def _overlay(base: list[PictureSegment], top: list[PictureSegment]) -> list[PictureSegment]:
    """Composite `top` over `base`: top's non-gap segments hide what lies under them."""
    out = list(base)
    for t in top:
        if t.kind == "gap":
            continue
        kept: list[PictureSegment] = []
        for b in out:
            if b.record_end <= t.record_start or b.record_start >= t.record_end:
                kept.append(b)
                continue
            if b.record_start < t.record_start:
                kept.append(_slice(b, b.record_start, t.record_start))
            if b.record_end > t.record_end:
                kept.append(_slice(b, t.record_end, b.record_end))
        kept.append(t)
        out = sorted(kept, key=lambda s: s.record_start.to_seconds())
    return out


def time_scalar_of(item: otio.core.Item) -> float:
    """Media speed of an item from its time effects: product of LinearTimeWarp scalars (FreezeFrame is 0)."""
    k = 1.0
    for e in item.effects:
        if isinstance(e, otio.schema.LinearTimeWarp):  # FreezeFrame is a LinearTimeWarp with scalar 0
            k *= float(e.time_scalar)
    return k


class MediaResolver:
    """Finds a clip's media file: its path as written, then under the timeline's folder, then under each search
    root (see `resolve`)."""

    def __init__(self, timeline_path: Path | None, search_roots: Sequence[str | Path] = ()):
        self.base = timeline_path.parent if timeline_path is not None else Path.cwd()
        self.roots = [Path(r) for r in search_roots]

    @staticmethod
    def url_to_path(url: str) -> Path:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme in ("file", "") or len(parsed.scheme) == 1:  # len 1: a Windows drive letter "C:"
            raw = urllib.parse.unquote(parsed.path if parsed.scheme == "file" else url)
            if parsed.scheme == "file" and parsed.netloc and parsed.netloc != "localhost":
                raw = f"//{parsed.netloc}{raw}"
            return Path(raw)
        raise ValueError(f"media URL scheme {parsed.scheme!r} is not a local file")

    def resolve(self, url: str) -> tuple[Path | None, list[Path]]:
        """(found path or None, the candidates tried). Under the timeline's folder and each search root the
        path is tried with fewer and fewer leading folders (/old/shots/a.mov: old/shots/a.mov, shots/a.mov,
        a.mov), since media moved between machines keeps its tail."""
        p = self.url_to_path(url)
        parts = [part for part in p.parts if part not in ("/", "\\") and not part.endswith(":")]
        tails = [Path(*parts[k:]) for k in range(len(parts))] if parts else []
        candidates = [p] if p.is_absolute() else []
        for r in [self.base, *self.roots]:
            candidates += [r / t for t in tails]
        seen: list[Path] = []
        for c in candidates:
            if c in seen:
                continue
            seen.append(c)
            if c.is_file():
                return c, seen
        return None, seen


def _clip_segment(clip: otio.schema.Clip, rec: TimeRange, src_start: RationalTime, scalar: float, path: str,
                  resolver: MediaResolver) -> PictureSegment:
    at = f"clip {clip.name!r} at record {format_time(rec.start_time)}"
    ref = clip.media_reference
    base = PictureSegment(rec, "offline", clip.name, None, None, scalar, "", path)
    if isinstance(ref, otio.schema.GeneratorReference):
        kind = ref.generator_kind or "generator"
        return replace(base, kind="generator", message=f"{at}: generated picture ({kind}), no media to decode")
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        try:
            found, tried = resolver.resolve(ref.target_url)
        except ValueError as e:
            return replace(base, message=f"{at}: media offline ({e})")
        if found is None:
            return replace(base, message=f"{at}: media offline: {ref.target_url} not found "
                                         f"(tried {', '.join(str(t) for t in tried[:4])}"
                                         f"{', ...' if len(tried) > 4 else ''})")
        # Source times are in the media's clock (often its start timecode); the file starts at available start.
        offset = src_start - ref.available_range.start_time if ref.available_range else src_start
        if offset.to_seconds() < 0:
            offset = RationalTime(0, offset.rate)
        return replace(base, kind="media", media_path=found, source_start=offset)
    if isinstance(ref, otio.schema.ImageSequenceReference):
        return replace(base, message=f"{at}: image sequences are not decoded ({ref.target_url_base})")
    return replace(base, message=f"{at}: media offline (the timeline holds no media reference for it)")


def _segments(comp: otio.core.Composition, window: TimeRange, rec_start: RationalTime, speed: float, path: str,
              resolver: MediaResolver) -> list[PictureSegment]:
    """Visible segments of `comp` over `window` (comp-internal time), placed from `rec_start` in record time;
    `speed`: comp-internal seconds per record second."""
    if isinstance(comp, otio.schema.Stack):
        out: list[PictureSegment] = []
        for i, track in enumerate(comp):
            if isinstance(track, otio.schema.Track) and track.kind != otio.schema.TrackKind.Video:
                continue
            sub = _child_segments(comp, track, comp.range_of_child_at_index(i), window, rec_start, speed,
                                  f"{path}/{track.name or f'V{i + 1}'}", resolver)
            out = _overlay(out, sub) if out else sub
        return out
    out = []
    for i, child in enumerate(comp):
        if isinstance(child, otio.schema.Transition):
            continue  # OTIO keeps the cut point in the neighbouring items' ranges
        out += _child_segments(comp, child, comp.range_of_child_at_index(i), window, rec_start, speed,
                               f"{path}/{child.name or i}", resolver)
    return out


def _child_segments(comp, child, child_range: TimeRange, window: TimeRange, rec_start: RationalTime, speed: float,
                    path: str, resolver: MediaResolver) -> list[PictureSegment]:
    inter = _intersect(child_range, window)
    if inter is None:
        return []
    rec = TimeRange(rec_start + _scale(inter.start_time - window.start_time, 1.0 / speed),
                    _scale(inter.duration, 1.0 / speed))
    if isinstance(child, otio.schema.Gap):
        return [PictureSegment(rec, "gap", child.name, item_path=path)]
    k = time_scalar_of(child)
    inner_start = child.trimmed_range().start_time + _scale(inter.start_time - child_range.start_time, k)
    if isinstance(child, otio.schema.Clip):
        # Media seconds per record second: this clip's warp times the warps of the compositions around it.
        return [_clip_segment(child, rec, inner_start, k * speed, path, resolver)] if k >= 0 else []
    if isinstance(child, otio.core.Composition):
        if k == 0:  # freeze frame of a nested sequence: hold its first frame over the whole range
            one = TimeRange(inner_start, RationalTime(1, inner_start.rate))
            held = _segments(child, one, rec.start_time, 1.0, path, resolver)[:1]
            return [replace(s, record_range=rec, time_scalar=0.0) for s in held]
        inner = TimeRange(inner_start, _scale(inter.duration, k))
        return _segments(child, inner, rec.start_time, speed * k, path, resolver)
    return []


def read_region_picture(timeline: otio.schema.Timeline, region: TimeRange, timeline_path: Path | None = None,
                        search_roots: Sequence[str | Path] = ()) -> list[PictureSegment]:
    """The visible picture over `region` (timeline time), as contiguous segments in record order; stretches
    with no video item at all come back as gaps, so the segments tile the region exactly."""
    resolver = MediaResolver(timeline_path, search_roots)
    stack = timeline.tracks
    origin = stack.trimmed_range().start_time
    window = TimeRange(origin + region.start_time, region.duration)
    segs = _segments(stack, window, region.start_time, 1.0, "", resolver)
    # Fill holes (no track covers them) with gaps, so the segments tile the region.
    out: list[PictureSegment] = []
    cursor = region.start_time
    for s in segs:
        if s.record_start > cursor:
            out.append(PictureSegment(otio.opentime.range_from_start_end_time(cursor, s.record_start), "gap"))
        out.append(s)
        cursor = s.record_end
    if cursor < region.end_time_exclusive():
        out.append(PictureSegment(otio.opentime.range_from_start_end_time(cursor, region.end_time_exclusive()),
                                  "gap"))
    return out


def offline_messages(segments: Sequence[PictureSegment]) -> list[str]:
    """One line per segment without picture (offline media, generators), in record order, without repeats."""
    seen: list[str] = []
    for s in segments:
        if s.kind in ("offline", "generator") and s.message not in seen:
            seen.append(s.message)
    return seen
