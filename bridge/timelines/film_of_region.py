"""Film features of an edited region: each clip's media encoded over its source range, joined in record order.

The engine's film encoder reads one media file over one range (`filmscore.engine.film.encode_video(path, start_s,
duration_s) -> FilmFeatures`). A cue on a timeline spans cuts, nested stacks, speed changes and offline clips, so
`encode_region` encodes every visible segment (`picture.PictureSegment`) on its own and `concat_film_features`
lays the results on the cue's own frame grid:

- frame n of the cue (10/s) takes the feature frame its centre falls on, in the segment under it, through the
  segment's time warp (`time_scalar`; a freeze frame repeats its one frame);
- motion (100/s) is mapped the same way; a freeze frame or a stretch without picture has no motion;
- cuts are the segment boundaries that are edits, plus each segment's own cuts moved to record time;
- a stretch without picture (offline media, a generator, a gap) takes the mean feature of the frames that exist,
  and `extras["picture_mask"]` (N bools, JSON-able as extras must be) marks the frames that have real picture;
- hit points are the cuts plus each segment's own hit points, moved to record time. With no picture anywhere the
  result is None: the cue renders without picture guidance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from filmscore.engine.constants import MEL_FRAME_RATE, VIDEO_FPS
from filmscore.engine.errors import FilmscoreError
from filmscore.engine.film.features import FilmFeatures

from .picture import PictureSegment

EncodeFn = Callable[[Path, float, float], FilmFeatures]
"""encode(media_path, start_s, duration_s) -> FilmFeatures of that range."""


@dataclass
class RegionFilm:
    """The film features of a region (None when no segment has picture) and one line per segment without."""

    features: FilmFeatures | None
    missing: list[str] = field(default_factory=list)
    n_encoded: int = 0


def _default_encoder() -> EncodeFn:
    from filmscore.engine.film import encode_video  # the engine's film encoder (heavy: imports torch)

    return encode_video


def encode_region(segments: Sequence[PictureSegment], encode: EncodeFn | None = None) -> RegionFilm:
    """Encode each media segment (a file that fails to decode becomes one more missing line) and join them."""
    encode = encode or _default_encoder()
    parts: list[tuple[PictureSegment, FilmFeatures | None]] = []
    missing: list[str] = []
    for seg in segments:
        feats = None
        if seg.kind == "media":
            start_s, dur_s = seg.source_range_s()
            try:
                feats = encode(seg.media_path, start_s, dur_s)
            except FilmscoreError as e:
                missing.append(f"clip {seg.clip_name!r}: {e}")
        elif seg.kind != "gap" and seg.message not in missing:
            missing.append(seg.message)
        parts.append((seg, feats))
    n = sum(1 for _, f in parts if f is not None)
    return RegionFilm(concat_film_features(parts) if n else None, missing, n)


def concat_film_features(parts: Sequence[tuple[PictureSegment, FilmFeatures | None]]) -> FilmFeatures | None:
    """Join per-segment features (segments contiguous, in record order) into the region's `FilmFeatures`.

    Output: `n = ceil(duration * 10)` frames; motion `ceil(duration * 100)` values; cuts in seconds from the
    region start. Raises `FilmscoreError` when the parts come from different feature layouts.
    """
    if not parts:
        return None
    present = [f for _, f in parts if f is not None]
    if not present:
        return None
    layouts = {f.layout for f in present}
    if len(layouts) > 1:
        raise FilmscoreError(f"film features of one cue come in different layouts: {', '.join(sorted(layouts))}")
    t0 = parts[0][0].record_start.to_seconds()
    bounds = [(s.record_start.to_seconds() - t0, s.record_end.to_seconds() - t0) for s, _ in parts]
    duration_s = bounds[-1][1]
    starts = np.array([b[0] for b in bounds])

    def locate(times: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(parts) - 1)

    n = max(1, math.ceil(duration_s * VIDEO_FPS - 1e-9))
    centres = (np.arange(n) + 0.5) / VIDEO_FPS
    which = locate(centres)
    branches = ("semantic", "emotion", "aesthetic")
    dims = [getattr(present[0], b).shape[1] for b in branches]
    out = [np.zeros((n, d), np.float32) for d in dims]
    mask = np.zeros(n, bool)
    for i in range(n):
        seg, f = parts[which[i]]
        if f is None or f.n_frames == 0:
            continue
        u = (centres[i] - bounds[which[i]][0]) * seg.time_scalar  # media seconds into the segment's range
        k = min(int(u * f.fps + 1e-6), f.n_frames - 1)  # + 1e-6: 0.3 s * 10 is 2.999...
        for j, b in enumerate(branches):
            out[j][i] = getattr(f, b)[k]
        mask[i] = True
    for arr in out:  # frames without picture: the mean picture of the cue
        arr[~mask] = arr[mask].mean(axis=0)

    m = max(1, math.ceil(duration_s * MEL_FRAME_RATE - 1e-9))
    mc = (np.arange(m) + 0.5) / MEL_FRAME_RATE
    mwhich = locate(mc)
    motion = np.zeros(m, np.float32)
    for i in range(m):
        seg, f = parts[mwhich[i]]
        if f is None or seg.time_scalar == 0 or f.motion.shape[0] == 0:
            continue
        u = (mc[i] - bounds[mwhich[i]][0]) * seg.time_scalar
        motion[i] = f.motion[min(int(u * MEL_FRAME_RATE + 1e-6), f.motion.shape[0] - 1)]

    cuts: list[float] = []
    hits: list[float] = []
    for (prev, _), (seg, _), (a, _) in zip(parts, parts[1:], bounds[1:]):
        if not prev.same_shot_as(seg):
            cuts.append(a)
    for (seg, f), (a, b) in zip(parts, bounds):
        if f is not None and seg.time_scalar > 0:
            cuts += [a + c / seg.time_scalar for c in f.cuts_s if 0 < a + c / seg.time_scalar < b]
            hits += [a + h / seg.time_scalar for h in f.hit_points_s if 0 <= a + h / seg.time_scalar < b]
    cuts = sorted(set(round(c, 6) for c in cuts))
    hits = sorted(set(round(h, 6) for h in hits + cuts))
    return FilmFeatures(out[0], out[1], out[2], motion, tuple(cuts), duration_s, present[0].layout, VIDEO_FPS,
                        {"picture_mask": mask.tolist(), "segments": len(parts)}, tuple(hits))
