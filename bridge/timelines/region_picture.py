"""The picture of a cue `filmscore score` rendered, encoded again from its JSON, so the cue can be regenerated
(issue 20; engine/regenerate.py).

A cue scored from a timeline region is rendered from film features made clip by clip (`film_of_region`); they are
arrays, so its JSON keeps only their summary (layout, frames, duration) and the region itself (`cue.picture`: each
segment's record range, media file, source start and speed). `picture_of_cue_json` rebuilds the segments and encodes
them the same way; `engine.regenerate` checks the result against the summary, and its re-run of the cue's request
must then reproduce the cue's samples exactly, or the regeneration is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filmscore.engine.errors import RequestError

from .film_of_region import EncodeFn, encode_region
from .picture import PictureSegment


def segments_of_cue_json(cue: dict[str, Any], where: str) -> list[PictureSegment]:
    """The region's picture segments from a cue's JSON record (`CueRegion.to_json()["picture"]`)."""
    from ..executors.base import SegmentSpec

    try:
        out = []
        for s in cue["picture"]:
            src = s.get("source_start_s")
            spec = SegmentSpec(s["kind"], (float(s["record_start"]["value"]), float(s["record_start"]["rate"])),
                               (float(s["record_duration"]["value"]), float(s["record_duration"]["rate"])),
                               s.get("clip") or "", s.get("media"), None if src is None else (float(src), 1.0),
                               float(s.get("time_scalar", 1.0)), s.get("message") or "", s.get("item_path") or "")
            out.append(spec.to_segment())
        return out
    except (KeyError, TypeError, ValueError) as e:
        raise RequestError(f"{where}: its cue record has no readable picture ({type(e).__name__}: {e})") from None


def picture_of_cue_json(meta: dict[str, Any], where: str | Path, encode: EncodeFn | None = None):
    """The `FilmFeatures` a scored cue (its JSON `meta`) was rendered from, encoded again from its region; None for a
    cue whose request had no film features (rendered from a video, or without picture). A region whose media can no
    longer be decoded is refused, naming the clips."""
    if (meta.get("request") or {}).get("film_features") is None:
        return None
    cue = meta.get("cue")
    if not isinstance(cue, dict):
        raise RequestError(f"{where}: rendered from film features but its JSON has no `cue` record to encode them "
                           "from")
    film = encode_region(segments_of_cue_json(cue, str(where)), encode)
    if film.missing:
        raise RequestError(f"{where}: its region's picture cannot be encoded again: {'; '.join(film.missing)}")
    return film.features


__all__ = ["picture_of_cue_json", "segments_of_cue_json"]
