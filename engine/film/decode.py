"""Decode a picture range at VIDEO_FPS (10/s) into small RGB frames, streaming, with PyAV.

Any container, codec and frame rate PyAV reads, constant or variable: output frame k is the source frame on screen
at `start_s + k / fps` (the last frame whose presentation time is <= that instant), so a 23.976, 29.97, 50 or VFR
source all land on the same 10/s grid. Frames are scaled down by swscale while still in the decoder's pixel format
(no full-resolution RGB copy is ever made) to an analysis size whose long side is `ANALYSIS_LONG_SIDE`, after the
sample aspect ratio and the rotation metadata (display matrix) are applied. Decoding uses FFmpeg's frame and slice
threads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import VIDEO_FPS
from ..errors import VideoDecodeError

logger = logging.getLogger(__name__)

ANALYSIS_LONG_SIDE = 256
"""Long side in pixels of the analysis frames (16:9 -> 256 x 144). Every branch works at this size or below."""

END_TOLERANCE_S = 0.25
"""A range may overrun the stream's end by this much (container durations are rounded; the last frame lasts)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video stream (coded size, before rotation). `duration_s` counts from the
    stream's first timestamp; None when the container does not know."""

    path: str
    width: int
    height: int
    average_fps: float | None
    duration_s: float | None
    codec: str


@dataclass(frozen=True)
class FrameBatch:
    """A run of consecutive analysis frames: `rgb` `(B, H, W, 3)` uint8, frame indices `first .. first + B - 1`."""

    first: int
    rgb: np.ndarray


def _seconds(value) -> float:
    """Seconds from a float or an OpenTimelineIO RationalTime (anything with `to_seconds()`)."""
    if hasattr(value, "to_seconds"):
        return float(value.to_seconds())
    return float(value)


def _open(path: str | Path):
    import av

    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(f"video file {p}: does not exist")
    if p.is_dir():
        raise VideoDecodeError(f"video file {p}: is a directory")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoDecodeError(f"video file {p}: cannot be opened by FFmpeg ({e})") from e
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoDecodeError(f"video file {p}: has no video stream (found: {', '.join(kinds)})")
    return container


def _analysis_size(width: int, height: int, sar: float) -> tuple[int, int]:
    """(w, h) to scale the coded frame to: display aspect kept, long side ANALYSIS_LONG_SIDE, even sizes."""
    disp_w = width * sar
    scale = ANALYSIS_LONG_SIDE / max(disp_w, height)
    w = max(2, int(round(disp_w * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def probe(path: str | Path) -> VideoInfo:
    """Read the stream's metadata without decoding. Raises VideoDecodeError for a missing file or no video."""
    container = _open(path)
    try:
        return _info(container, str(path))
    finally:
        container.close()


def _info(container, path: str) -> VideoInfo:
    stream = container.streams.video[0]
    cc = stream.codec_context
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000 - _stream_start(stream)  # AV_TIME_BASE
    fps = float(stream.average_rate) if stream.average_rate else None
    return VideoInfo(path, cc.width, cc.height, fps, duration, cc.name)


def _stream_start(stream) -> float:
    """The stream's first timestamp in seconds (MPEG-TS and edited MP4s do not start at 0)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _rotate(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display rotation. PyAV reports `frame.rotation` counter-clockwise in degrees (FFmpeg's display
    matrix convention); the picture must be turned by that angle to be seen upright."""
    quarter = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter)) if quarter else rgb


def _check_range(info: VideoInfo, start_s: float, duration_s: float | None) -> None:
    """Refuse a range the container says is not there (start past the end, or end past it by more than
    END_TOLERANCE_S); a container without a duration passes."""
    if info.duration_s is None:
        return
    if start_s >= info.duration_s:
        raise VideoDecodeError(f"video file {info.path}: range starts at {start_s:.3f} s, past the end of the "
                               f"video ({info.duration_s:.3f} s)")
    if duration_s is not None and start_s + duration_s > info.duration_s + END_TOLERANCE_S:
        raise VideoDecodeError(f"video file {info.path}: range {start_s:.3f}-{start_s + duration_s:.3f} s ends "
                               f"past the end of the video ({info.duration_s:.3f} s)")


def check_range(path: str | Path, start_s: float = 0.0, duration_s: float | None = None) -> VideoInfo:
    """Check, before any heavy work, that the range can be decoded: the file opens, has a video stream, the
    container's duration holds the range, and a picture decodes at its start and (for a range of given length) at
    its end. The end check catches a truncated file whose index still promises the whole length. Costs at most two
    seeks and a group of pictures each. Raises VideoDecodeError naming the file and the time at fault."""
    info = probe(path)
    start_s = _seconds(start_s)
    if duration_s is not None:
        duration_s = _seconds(duration_s)
    _check_range(info, start_s, duration_s)
    step = 1.0 / VIDEO_FPS
    _first_batch(path, start_s, step)  # raises when nothing decodes at the start
    if duration_s is not None and duration_s > step:
        t = start_s + duration_s - step
        try:
            _first_batch(path, t, step)
        except VideoDecodeError as e:
            claim = f"; the container says {info.duration_s:.2f} s" if info.duration_s is not None else ""
            raise VideoDecodeError(f"video file {path}: no picture decodes at {t:.2f} s, inside the range "
                                   f"{start_s:.2f}-{start_s + duration_s:.2f} s{claim} (a truncated or damaged "
                                   f"file?)") from e
    return info


def _first_batch(path: str | Path, start_s: float, duration_s: float) -> FrameBatch | None:
    frames = iter_frames(path, start_s, duration_s)
    try:
        return next(frames, None)
    finally:
        frames.close()  # closes the container now, not when the generator is collected


def picture_shortfall(info: VideoInfo, start_s: float, decoded_s: float) -> str | None:
    """A warning when the picture decoded "to the end" from `start_s` stops more than END_TOLERANCE_S before the
    end the container claims (a truncated file whose index survived, or a wrong container duration); else None."""
    if info.duration_s is None or start_s + decoded_s >= info.duration_s - END_TOLERANCE_S:
        return None
    return (f"video file {info.path}: the picture stops at {start_s + decoded_s:.2f} s but the container says "
            f"{info.duration_s:.2f} s (a truncated file?); the cue covers the {decoded_s:.2f} s that decode")


def iter_frames(path: str | Path, start_s: float = 0.0, duration_s: float | None = None, *,
                fps: int = VIDEO_FPS, batch: int = 32, threads: int = 0) -> Iterator[FrameBatch]:
    """Stream the range [start_s, start_s + duration_s) as analysis frames at `fps`, `batch` frames at a time.

    duration_s None reads to the end of the stream. Frame k is the picture on screen at start_s + k / fps. Raises
    VideoDecodeError for a missing file, no video stream, a range that starts or ends past the stream's end, or a
    stream with no decodable frame in the range. `threads` 0 lets FFmpeg pick (one per core).
    """
    import av
    from av.video.reformatter import VideoReformatter

    start_s = _seconds(start_s)
    if duration_s is not None:
        duration_s = _seconds(duration_s)
    if not math.isfinite(start_s) or start_s < 0:
        raise VideoDecodeError(f"range start {start_s} s: must be a finite number >= 0")
    if duration_s is not None and (not math.isfinite(duration_s) or duration_s <= 0):
        raise VideoDecodeError(f"range duration {duration_s} s: must be a finite number > 0")

    container = _open(path)
    try:
        info = _info(container, str(path))
        _check_range(info, start_s, duration_s)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: the decoder is the main cost for HD sources
        stream.codec_context.thread_count = threads
        if info.width * info.height >= 16 * ANALYSIS_LONG_SIDE * ANALYSIS_LONG_SIDE * 9 // 16:
            # 4x or more above the analysis size (720p and up): skip the in-loop deblocking filter, which the
            # downscale hides anyway; 5-10 % of H.264 decoding time (measured on 1080p)
            stream.codec_context.options = {"skip_loop_filter": "all"}
        end_s = math.inf if duration_s is None else start_s + duration_s
        n_target = None if duration_s is None else int(math.ceil(duration_s * fps - 1e-6))
        t0 = _stream_start(stream)
        if start_s > 0:
            # Seek to the key frame at or before the start, in the stream's time base; frames before start are
            # decoded (they are needed as references) but not converted.
            container.seek(int((start_s + t0) / stream.time_base), stream=stream, backward=True, any_frame=False)

        sar = float(stream.codec_context.sample_aspect_ratio or 1) or 1.0
        out: list[np.ndarray] = []
        first = 0
        k = 0  # next output frame index
        prev = None  # the latest decoded frame not yet past the next target time (a decoder frame, not a copy)
        last_end_t = -math.inf
        size = None
        rotation = None  # from the first frame's display matrix
        default_dur = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / fps

        # scale in the decoder's pixel format first (area averaging), then convert the small frame to RGB: ~2x
        # cheaper than one scale+convert pass on 1080p; the reformatters keep their swscale contexts
        scaler, to_rgb = VideoReformatter(), VideoReformatter()

        def convert(frame) -> np.ndarray:
            nonlocal size
            if size is None:
                size = _analysis_size(frame.width, frame.height, sar)
            small = scaler.reformat(frame, width=size[0], height=size[1], interpolation="AREA")
            rgb = to_rgb.reformat(small, format="rgb24").to_ndarray()
            return _rotate(rgb, rotation or 0)

        def emit(frame):
            nonlocal k, first
            rgb = convert(frame)
            out.append(rgb)
            k += 1
            if len(out) >= batch:
                b = FrameBatch(first, np.stack(out))
                first += len(out)
                out.clear()
                return b
            return None

        def target(i: int) -> float:
            return start_s + i / fps

        def more() -> bool:
            return (n_target is None or k < n_target) and target(k) < end_s

        broken = ""
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = float(frame.time) - t0
                if rotation is None:
                    rotation = int(getattr(frame, "rotation", 0) or 0)
                dur = float(frame.duration * frame.time_base) if frame.duration else default_dur
                last_end_t = max(last_end_t, t + dur)
                # every target instant before this frame's time shows `prev` (several times for a slow source)
                while prev is not None and more() and target(k) < t - 1e-6:
                    b = emit(prev)
                    if b is not None:
                        yield b
                if not more():
                    break
                prev = frame
        except av.error.FFmpegError as e:
            if prev is None:
                raise VideoDecodeError(f"video file {path}: decoding failed near output frame {k} ({e})") from e
            # the data stops or breaks after pictures decoded (a truncated file with its index intact): the
            # picture ends at the last good frame, which the range checks below judge like any early end
            broken = f"; decoding failed after it ({e})"
            logger.info("video file %s: decoding stopped at %.3f s (%s)", path, last_end_t, e)

        # the last decoded frame stays on screen until its end
        if prev is not None:
            while more() and target(k) < last_end_t - 1e-6:
                b = emit(prev)
                if b is not None:
                    yield b
        if out:
            yield FrameBatch(first, np.stack(out))
            first += len(out)
            out.clear()
        if k == 0:
            if start_s == 0:
                raise VideoDecodeError(f"video file {path}: its video stream holds no decodable frame (zero length)")
            raise VideoDecodeError(f"video file {path}: no decodable video frame in the range starting at "
                                   f"{start_s:.3f} s")
        if n_target is not None and k < n_target and target(k) < end_s - END_TOLERANCE_S:
            raise VideoDecodeError(f"video file {path}: range ends at {end_s:.3f} s but the video stops at "
                                   f"{last_end_t:.3f} s{broken}")
        if n_target is not None and k < n_target:
            logger.debug("range overruns the stream by %.3f s: %d frames short", end_s - last_end_t, n_target - k)
    finally:
        container.close()
