"""Render requests that name a timeline range instead of a video.

The server reads the timeline when the request arrives (so a bad file, an unknown cue or media outside the roots
is an immediate error reply) and stores the range with the job; the worker reads it again and encodes the region's
picture clip by clip (`bridge/timelines/film_of_region.py`, heavy: the film encoder), then renders with the
picture as `RenderRequest.film_features` and the cue's hit points, as `filmscore score` does for a whole timeline.

Timeline times are OTIO rational times with 0 = the timeline's first frame (not its start timecode); the range
is half-open, and its length in samples comes from `timelines.timing.range_samples`, the one conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from filmscore.engine.errors import RequestError

TimelineSpec = dict[str, Any]
"""{"path": str, "cue": str | None, "in": {"value", "rate"} | None, "out": ... | None}"""


def select_cue(spec: TimelineSpec, check_media: Callable[[str, str], Path] | None = None):
    """The `CueRegion` a spec names. `check_media(path, kind)` is called on every media file the region shows."""
    import opentimelineio as otio

    from ..timelines.cues import read_cues
    from ..timelines.files import read_timeline

    loaded = read_timeline(spec["path"])
    in_out = None
    if spec.get("in") is not None and spec.get("out") is not None:
        in_out = (otio.opentime.RationalTime(spec["in"]["value"], spec["in"]["rate"]),
                  otio.opentime.RationalTime(spec["out"]["value"], spec["out"]["rate"]))
    if in_out is not None:
        # A range names one cue region: ignore cue markers, which would otherwise win over the range.
        cues = read_cues(loaded, pattern=r"(?!)", in_out=in_out).cues
    else:
        cues = read_cues(loaded).select([spec["cue"]])
    if len(cues) != 1:
        raise RequestError(f"timeline {spec['path']}: the request names {len(cues)} regions, not one")
    cue = cues[0]
    if check_media is not None:
        for seg in cue.picture:
            if seg.kind == "media" and seg.media_path is not None:
                check_media(str(seg.media_path), f"timeline clip {seg.clip_name!r} medium")
    return cue


def cue_duration_s(cue: Any, sample_rate: int) -> float:
    from ..timelines.timing import range_samples

    _, n = range_samples(cue.record_range, sample_rate)
    return n / sample_rate


def timeline_request(request: Any, spec: TimelineSpec, progress: Callable[[str, float, str], None]):
    """`request` (a `RenderRequest` without picture) completed from the timeline region: picture, duration, hits."""
    from ..timelines.batch import engine_hits_s
    from ..timelines.film_of_region import encode_region

    cue = select_cue(spec)
    progress("picture", 0.0, f"encoding the picture of {cue.name}")
    film = encode_region(cue.picture)
    progress("picture", 1.0, f"{film.n_encoded} clip(s) encoded" + (f"; without picture: {'; '.join(film.missing)}"
                                                                     if film.missing else ""))
    hits = request.hits_s or engine_hits_s(cue, film.features)
    out = replace(request, video=None, start_s=0.0, duration_s=cue_duration_s(cue, request.sample_rate),
                  film_features=film.features, hits_s=hits)
    if film.features is None:  # nothing to see: render without picture guidance
        out = replace(out, picture_guidance=0.0)
    return out
