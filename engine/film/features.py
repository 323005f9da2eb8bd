"""`FilmFeatures`: what the film encoder hands to the rest of the engine.

Per-frame features at VIDEO_FPS (10/s) from three branches (semantic, emotion, aesthetic, HPM's global control),
plus the picture's timing: shot cuts and a motion envelope at 100/s. The bundle's token head
(`engine/models/film_token_head.py`) turns a window of frame features into a few global control tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import MEL_FRAME_RATE, VIDEO_FPS
from ..errors import FilmscoreError


@dataclass(frozen=True)
class FilmFeatures:
    """Features of one picture range. Frame n covers [n / fps, (n + 1) / fps) s from the range start.

    semantic `(N, Ds)`, emotion `(N, De)`, aesthetic `(N, Da)` float32; motion `(ceil(duration*100),)` in [0, 1];
    cuts_s: cut times in seconds from the range start; `layout` names the feature layout (backbone and branch
    versions): a token head trained on one layout refuses another. hit_points_s: instants (s from the range start)
    where the picture invites a musical accent (cuts, motion peaks, flashes), ascending; extras: JSON-able details
    (kinds of cuts and hit points, the source's metadata).
    """

    semantic: np.ndarray
    emotion: np.ndarray
    aesthetic: np.ndarray
    motion: np.ndarray
    cuts_s: tuple[float, ...]
    duration_s: float
    layout: str
    fps: int = VIDEO_FPS
    extras: dict = field(default_factory=dict)
    hit_points_s: tuple[float, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(self.semantic.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.semantic.shape[1] + self.emotion.shape[1] + self.aesthetic.shape[1])

    def frame_matrix(self) -> np.ndarray:
        """`(N, Ds + De + Da)` float32, the token head's input."""
        return np.concatenate([self.semantic, self.emotion, self.aesthetic], axis=1).astype(np.float32)

    def window(self, start_s: float, duration_s: float) -> np.ndarray:
        """Frame features of [start_s, start_s + duration_s), at least one frame (the nearest one)."""
        m = self.frame_matrix()
        if m.shape[0] == 0:
            raise FilmscoreError("film features hold no frames")
        a = int(np.floor(start_s * self.fps))
        b = int(np.ceil((start_s + duration_s) * self.fps))
        a = min(max(a, 0), m.shape[0] - 1)
        b = min(max(b, a + 1), m.shape[0])
        return m[a:b]

    def motion_at(self, n_frames: int, rate: int = MEL_FRAME_RATE) -> np.ndarray:
        """The motion envelope resampled to exactly `n_frames` at `rate` frames per second."""
        src_t = np.arange(self.motion.shape[0]) / MEL_FRAME_RATE
        dst_t = np.arange(n_frames) / rate
        if self.motion.shape[0] == 0:
            return np.zeros(n_frames, np.float32)
        return np.interp(dst_t, src_t, self.motion).astype(np.float32)

    def save_npz(self, path: str | Path) -> None:
        np.savez_compressed(path, semantic=self.semantic, emotion=self.emotion, aesthetic=self.aesthetic,
                            motion=self.motion, cuts_s=np.asarray(self.cuts_s, np.float64),
                            duration_s=np.float64(self.duration_s), layout=np.str_(self.layout),
                            fps=np.int32(self.fps), hit_points_s=np.asarray(self.hit_points_s, np.float64),
                            extras=np.str_(json.dumps(self.extras, default=str)))

    @classmethod
    def load_npz(cls, path: str | Path) -> FilmFeatures:
        try:
            with np.load(path) as z:
                hits = tuple(float(h) for h in z["hit_points_s"]) if "hit_points_s" in z else ()
                extras = json.loads(str(z["extras"])) if "extras" in z else {}
                return cls(z["semantic"], z["emotion"], z["aesthetic"], z["motion"],
                           tuple(float(c) for c in z["cuts_s"]), float(z["duration_s"]), str(z["layout"]),
                           int(z["fps"]), extras, hits)
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise FilmscoreError(f"film features file {path}: cannot read ({e})") from e
