"""Render requests that name a timeline range instead of a video.

The server reads the timeline when the request arrives (so a bad file, an unknown cue or media outside the roots
is an immediate error reply) and stores the range with the job; the worker reads it again and renders the cue as
`filmscore score` renders each cue of a timeline and `filmscore render --timeline` renders one: the same two steps
of `bridge/timelines/render_cue.py` (`cue_request`: the cue's exact length and its BWF delivery; then
`with_region_picture`: the region's picture encoded clip by clip and its hit points), so the job's WAV has the same
audio bytes and `bext` as theirs.

Timeline times are OTIO rational times with 0 = the timeline's first frame (not its start timecode); the range
is half-open, and its length in samples comes from `timelines.timing.range_samples`, the one conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from filmscore.engine.errors import RequestError

TimelineSpec = dict[str, Any]
"""{"path": str, "cue": str | None, "in": {"value", "rate"} | None, "out": ... | None}"""


def select_cue(spec: TimelineSpec, check_media: Callable[[str, str], Path] | None = None) -> tuple[Any, str]:
    """The `CueRegion` a spec names and its timeline's name. `check_media(path, kind)` is called on every media
    file the region shows."""
    import opentimelineio as otio

    from ..timelines.cues import read_cues
    from ..timelines.files import read_timeline
    from ..timelines.render_cue import timeline_name

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
    return cue, timeline_name(loaded)


def timeline_request(request: Any, spec: TimelineSpec, progress: Callable[[str, float, str], None]):
    """`request` (a `RenderRequest` without picture) as the request of the timeline cue `spec` names: its length,
    BWF delivery, picture and hit points (`timelines.render_cue`)."""
    from ..timelines.render_cue import cue_request, timeline_hits_s, with_region_picture

    cue, name = select_cue(spec)
    request = cue_request(request, cue, name)
    progress("picture", 0.0, f"encoding the picture of {cue.name}")
    request, missing = with_region_picture(request, cue.picture, timeline_hits_s(cue))
    progress("picture", 1.0, "picture encoded" + (f"; without picture: {'; '.join(missing)}" if missing else ""))
    return request
