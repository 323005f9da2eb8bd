"""Rendering one timeline cue: the one code path for `filmscore score` (batch.py, through an executor), the bridge's
timeline jobs (bridge/server/timeline_jobs.py, the panels' "score this cue") and `filmscore render --timeline`.

A cue region becomes a request in two steps, because under `score` they run on two sides of an executor:
1. `cue_request` (where the timeline is read): the render options and output given by the front end, plus the
   cue's length in samples from its rational record range (`timing.range_samples`, the one conversion; the engine
   gets it back exactly from `n / rate`) and its delivery (`cue_delivery`: BWF whose `bext`/`iXML` time reference
   is the cue's start timecode, kept rational until the writer turns it into samples at the delivered rate);
2. `with_region_picture` (where the render runs): the region's picture encoded clip by clip
   (`film_of_region.encode_region`) as the request's film features, and its hit points (the timeline's edits and
   point markers merged with the picture's own, `merge_hits`); without any picture, picture guidance is off.

The engine then masters and writes the cue once (engine/audio/delivery.py), so the three front ends deliver the same
audio bytes and the same `bext` for the same cue and options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from filmscore.engine.audio.delivery import Delivery, DeliveryFormat
from filmscore.engine.request import RenderRequest
from filmscore.engine.timebase import Rational

if TYPE_CHECKING:
    from .cues import CueRegion
    from .film_of_region import EncodeFn
    from .files import LoadedTimeline
    from .picture import PictureSegment

HIT_MERGE_S = 0.05  # two hit points this close are one


def merge_hits(timeline_hits_s: Sequence[float], picture_hits_s: Sequence[float],
               duration_s: float) -> tuple[float, ...]:
    """A cue's hit points for the engine: the timeline's (edits, point markers) and the picture's own (cuts inside
    a clip, motion accents), seconds from the cue start, inside the cue, merged within 50 ms."""
    merged: list[float] = []
    for t in sorted(list(timeline_hits_s) + list(picture_hits_s)):
        if 0.0 <= t < duration_s and (not merged or t - merged[-1] > HIT_MERGE_S):
            merged.append(round(t, 6))
    return tuple(merged)


def timeline_name(loaded: LoadedTimeline) -> str:
    """The name a timeline's cues are delivered under (bext description, iXML project): its own, else its file's."""
    return loaded.timeline.name or loaded.path.stem


def timeline_hits_s(cue: CueRegion) -> tuple[float, ...]:
    """The timeline's hit points of `cue` (its edits and point markers), seconds from the cue start."""
    return tuple(h.time.to_seconds() for h in cue.hits)


def cue_samples(cue: CueRegion, sample_rate: int) -> int:
    """The cue's length in samples at `sample_rate`: `to_samples(end) - to_samples(start)` of its record range."""
    from .timing import range_samples

    return range_samples(cue.record_range, sample_rate)[1]


def cue_delivery(cue: CueRegion, timeline_name: str, seed: int, fmt: DeliveryFormat = "bwf") -> Delivery:
    """How a timeline cue is delivered: BWF whose `bext` names the cue, its timeline and seed, with its start
    timecode as the time reference (rational: samples are counted at the delivered rate by the writer), and iXML
    with the timeline's frame rate, project (the timeline) and scene (the cue)."""
    return Delivery(format=fmt, description=f"filmscore cue {cue.name} ({timeline_name}), seed {seed}",
                    originator="filmscore", originator_reference=cue.file_stem[:32],
                    time_reference=Rational.of(cue.record_timecode_start), timecode_rate=float(cue.record_start.rate),
                    project=timeline_name, scene=cue.name)


def cue_request(base: RenderRequest, cue: CueRegion, timeline_name: str, fmt: DeliveryFormat = "bwf") -> RenderRequest:
    """`base` (the front end's render options and output) as the request for `cue`: no video of its own (the
    region's picture is added by `with_region_picture` where the render runs), the cue's exact length, its
    delivery."""
    n = cue_samples(cue, base.sample_rate)
    return replace(base, video=None, start_s=0.0, duration_s=n / base.sample_rate,
                   delivery=cue_delivery(cue, timeline_name, base.seed, fmt))


def with_region_picture(request: RenderRequest, segments: Sequence[PictureSegment], hits_s: Sequence[float],
                        encode: EncodeFn | None = None) -> tuple[RenderRequest, list[str]]:
    """`request` with the picture of a timeline region (`segments`, encoded clip by clip) as its film features and
    the region's hit points (`hits_s`, the timeline's, merged with the picture's) unless the request names its own;
    picture guidance off when nothing could be seen. Returns it and the lines naming picture without media."""
    from .film_of_region import encode_region

    film = encode_region(list(segments), encode)
    duration = request.duration_s if request.duration_s is not None else 0.0
    hits = request.hits_s or merge_hits(hits_s, film.features.hit_points_s if film.features else (), duration)
    out = replace(request, video=None, film_features=film.features, hits_s=hits)
    if film.features is None:  # nothing to see: the engine renders without picture guidance
        out = replace(out, picture_guidance=0.0)
    return out, list(film.missing)

