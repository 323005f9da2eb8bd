"""`encode_video`: a picture range -> `FilmFeatures` (semantic, emotion, aesthetic, faces per frame at 10/s; cuts,
motion).

One streaming pass: the decoder hands 32 analysis frames at a time (long side 256 px) to the aesthetic and colour
statistics, the timing analyser (which keeps ~3 kB per frame), the face branch (every frame) and, every
`SEMANTIC_STRIDE`-th frame, the semantic backbone; no frame outlives its batch, so memory stays flat in the range's
length. After the pass, cuts are detected, the semantic embeddings are spread over the 10/s grid within shots, and
scene affect is computed.
Results are cached per media hash + range + layout.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..constants import VIDEO_FPS
from ..errors import BackendError, FilmscoreError
from . import cache as film_cache
from .aesthetic import AESTHETIC_COLUMNS, AESTHETIC_VERSION, aesthetic_features, pool2, to_planes
from .affect import EMOTION_COLUMNS, EMOTION_VERSION, frame_colour_stats, scene_affect
from .decode import ANALYSIS_LONG_SIDE, iter_frames, probe
from .features import FilmFeatures, layout_with_faces
from .semantic import ImageBackbone, fill_frames, shared_backbone
from .timing import TIMING_VERSION, TimingAnalyzer

logger = logging.getLogger(__name__)

SEMANTIC_STRIDE = 5
"""The backbone sees every 5th frame (2/s at 10 fps); the other frames are interpolated within their shot."""

CACHE_REVISION = 6  # 6: same-palette cuts (structure and shift-residual channels, timing.py)
"""Bumped when the encoder's output changes for the same layout (a detector tuned): cached features then miss."""

Progress = Callable[[float, str], None]
"""progress(fraction 0..1 of the range decoded, message), as the render pipeline's "picture" stage reports it."""

_FACE_BRANCH: list = []  # [FaceBranch] or [BackendError]: loaded (or found missing) once per process


def default_backbone() -> ImageBackbone:
    """The backbone $FILMSCORE_FILM_BACKBONE names (a local CLIP directory) or else the shipped EfficientNet-Lite0,
    loaded once per process, through ONNX Runtime unless FILMSCORE_FILM_BACKEND=torch (semantic.shared_backbone)."""
    return shared_backbone()


def _thread_budget() -> int:
    """Threads this process may use: OMP_NUM_THREADS when set, else the machine's cores."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else (os.cpu_count() or 1)


def default_face_branch():
    """fer's expression model behind OpenCV's face detector (faces.py), loaded once per process, through ONNX
    Runtime unless FILMSCORE_FILM_BACKEND=torch. Raises BackendError when OpenCV, h5py or fer is missing."""
    if not _FACE_BRANCH:
        try:
            from .expression import load_expression_net
            from .faces import FaceBranch

            use_ort = os.environ.get("FILMSCORE_FILM_BACKEND", "ort") != "torch"
            _FACE_BRANCH.append(FaceBranch(load_expression_net(onnx_cache=film_cache.onnx_dir() if use_ort else None)))
        except BackendError as e:
            logger.warning("film encoder: no face branch (%s)", e)
            _FACE_BRANCH.append(e)
    if isinstance(_FACE_BRANCH[0], BackendError):
        raise _FACE_BRANCH[0]
    return _FACE_BRANCH[0]


def feature_layout(backbone: ImageBackbone, stride: int = SEMANTIC_STRIDE, *, faces: bool = False) -> str:
    """The stable name of what `frame_matrix()` holds, column block by column block. `faces`: the emotion block
    includes the face block (`+faces-fer-v1:8`); the default bundle's token head was trained without it."""
    layout = (f"filmscore-film-v1;fps={VIDEO_FPS};frame={ANALYSIS_LONG_SIDE}px;"
              f"semantic={backbone.name}:{backbone.dim}/every{stride};"
              f"emotion={EMOTION_VERSION}:{len(EMOTION_COLUMNS)};"
              f"aesthetic={AESTHETIC_VERSION}:{len(AESTHETIC_COLUMNS)};timing={TIMING_VERSION}")
    return layout_with_faces(layout) if faces else layout


def encode_video(path: str | Path, start_s: float = 0.0, duration_s: float | None = None, *, cache: bool = True,
                 progress: Progress | None = None, backbone: ImageBackbone | None = None,
                 faces: bool = True) -> FilmFeatures:
    """Encode [start_s, start_s + duration_s) of the video at `path` (to its end when duration_s is None).

    start_s / duration_s are seconds (floats, or OpenTimelineIO RationalTime). Returns FilmFeatures with
    semantic `(N, 1280)`, emotion `(N, 6)`, aesthetic `(N, 8)`, faces `(N, 8)` at 10/s, N = ceil(duration * 10),
    motion at 100/s, cuts and hit points in seconds from start_s. Its layout is the one without the face block,
    the default bundle's (`as_layout` adds it). `faces=False`, or OpenCV / h5py / fer missing (logged once), leaves
    `faces` None and says why in extras["faces"]. Raises VideoDecodeError for a missing, audio-only, empty or too
    short file. `cache`: read and write ~/.cache/filmscore/features (see cache.py).
    """
    path = Path(path)
    start = float(start_s.to_seconds()) if hasattr(start_s, "to_seconds") else float(start_s)
    dur = None if duration_s is None else (
        float(duration_s.to_seconds()) if hasattr(duration_s, "to_seconds") else float(duration_s))
    bb = backbone if backbone is not None else default_backbone()
    layout = feature_layout(bb)
    face_branch, face_note = None, "off"
    if faces:
        try:
            face_branch, face_note = default_face_branch(), "on"
        except BackendError as e:
            face_note = f"unavailable ({e})"

    # 0. the cache: same content, range and layout -> no decoding at all
    cache_path = None
    if cache:
        probe(path)  # clear errors for missing / audio-only files before hashing
        key = f"{layout};rev={CACHE_REVISION};faces={'on' if face_branch is not None else 'off'}"
        cache_path = film_cache.features_dir() / film_cache.features_key(film_cache.media_hash(path), start, dur, key)
        if cache_path.is_file():
            try:
                feats = FilmFeatures.load_npz(cache_path)
                if feats.layout == layout:
                    logger.debug("film features from cache %s", cache_path)
                    # the same content may sit under another name now
                    return dataclasses.replace(feats, extras={**feats.extras, "source": str(path)})
            except FilmscoreError as e:
                logger.warning("ignoring unreadable cached features %s (%s)", cache_path, e)

    expected = None if dur is None else int(math.ceil(dur * VIDEO_FPS - 1e-6))
    if expected is None:
        info = probe(path)
        if info.duration_s is not None:
            expected = int(math.ceil((info.duration_s - start) * VIDEO_FPS - 1e-6))

    # 1. one streaming pass over the range. The face branch (OpenCV and ONNX Runtime release the GIL) runs on a
    # second core beside the rest when the thread budget has one; at most one batch waits for it (memory stays flat)
    timing = TimingAnalyzer(VIDEO_FPS)
    aesth, colour, face_rows = [], [], []
    sem_idx: list[int] = []
    sem_emb: list[np.ndarray] = []
    n = 0
    face_pool = pending = None
    if face_branch is not None and _thread_budget() > 1:
        from concurrent.futures import ThreadPoolExecutor

        face_pool = ThreadPoolExecutor(1, thread_name_prefix="film-faces")
    try:
        for batch in iter_frames(path, start, dur, fps=VIDEO_FPS):
            rgb = batch.rgb
            if face_pool is not None:
                if pending is not None:
                    face_rows.append(pending.result())
                pending = face_pool.submit(face_branch, rgb)
            elif face_branch is not None:
                face_rows.append(face_branch(rgb))
            planes = to_planes(rgb)
            small = pool2(planes)
            aesth.append(aesthetic_features(planes, small))
            colour.append(frame_colour_stats(small))
            timing.update(small)
            idx = np.arange(batch.first, batch.first + len(rgb))
            pick = idx % SEMANTIC_STRIDE == 0
            if pick.any():
                sem_idx.extend(idx[pick].tolist())
                sem_emb.append(bb.embed(rgb[pick]))
            n = batch.first + len(rgb)
            if progress is not None:
                frac = min(1.0, n / expected) if expected else 0.0
                progress(frac, f"frame {n}/{expected if expected else '?'}")
        if pending is not None:
            face_rows.append(pending.result())
    finally:
        if face_pool is not None:
            face_pool.shutdown(wait=True, cancel_futures=True)

    # 2. timing over the whole range, then the per-frame branches that depend on it
    duration = dur if dur is not None else n / VIDEO_FPS
    tm = timing.finish(duration)
    shot_starts = np.array([0] + list(tm.cut_frames), int)
    semantic = fill_frames(np.asarray(sem_idx, int), np.concatenate(sem_emb), n, shot_starts)
    aesthetic = np.concatenate(aesth).astype(np.float32)
    emotion = scene_affect(aesthetic[:, 0], aesthetic[:, 2], tm.frame_motion, tm.cut_frames,
                           np.concatenate(colour), VIDEO_FPS)
    if progress is not None:
        progress(1.0, f"{n} frames, {len(tm.cuts_s)} cuts")
    extras = {
        "source": str(path),
        "start_s": start,
        "cut_kinds": list(tm.cut_kinds),
        "hit_kinds": list(tm.hit_kinds),
        "emotion_columns": list(EMOTION_COLUMNS),
        "aesthetic_columns": list(AESTHETIC_COLUMNS),
        "faces": face_note,
    }
    face_block = None
    if face_branch is not None:
        from .faces import FACE_COLUMNS

        face_block = np.concatenate(face_rows).astype(np.float32)
        extras["face_columns"] = list(FACE_COLUMNS)
    feats = FilmFeatures(semantic=semantic, emotion=emotion, aesthetic=aesthetic, motion=tm.motion,
                         cuts_s=tm.cuts_s, duration_s=float(duration), layout=layout, fps=VIDEO_FPS,
                         extras=extras, hit_points_s=tm.hit_points_s, faces=face_block)

    # 3. cache (atomic: concurrent corpus workers may encode the same clip)
    if cache_path is not None:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_name(f"{cache_path.stem}.{os.getpid()}.tmp.npz")
            feats.save_npz(tmp)
            os.replace(tmp, cache_path)
        except OSError as e:
            logger.warning("could not cache film features at %s (%s)", cache_path, e)
    return feats
