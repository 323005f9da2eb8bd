"""`FilmFeatures`: what the film encoder hands to the rest of the engine.

Per-frame features at VIDEO_FPS (10/s) from three branches (semantic, emotion, aesthetic, HPM's global control),
plus the picture's timing: shot cuts and a motion envelope at 100/s. The bundle's token head
(`engine/models/film_token_head.py`) turns a window of frame features into a few global control tokens.

The emotion branch has two halves: scene affect (`emotion`, always in the token head's input) and faces (`faces`:
face area + facial-expression probabilities, faces.py). The face block enters `frame_matrix()` only when `layout`
names it (`emotion=scene-affect-v1:6+faces-fer-v1:8`): a token head trained without it (the default bundle's) gets
the columns it was trained on, and `as_layout` gives the view a head trained with it asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..constants import MEL_FRAME_RATE, VIDEO_FPS
from ..errors import FilmscoreError

FACES_BLOCK = "faces-fer-v1:8"
"""How a layout names the face block (faces.FACES_VERSION : len(faces.FACE_COLUMNS); faces.py checks they agree)."""


def layout_with_faces(layout: str) -> str:
    """`layout` with the face block appended to its emotion block (unchanged if it is there already)."""
    if layout_has_faces(layout):
        return layout
    parts = layout.split(";")
    for i, part in enumerate(parts):
        if part.startswith("emotion="):
            parts[i] = f"{part}+{FACES_BLOCK}"
            return ";".join(parts)
    raise FilmscoreError(f"feature layout {layout!r}: has no emotion block to add faces to")


def layout_without_faces(layout: str) -> str:
    """`layout` with the face block removed from its emotion block."""
    return ";".join(
        "+".join(p for p in part.split("+") if p != FACES_BLOCK) if part.startswith("emotion=") else part
        for part in layout.split(";"))


def layout_has_faces(layout: str) -> bool:
    """Whether the layout's emotion block names the face block."""
    return any(part.startswith("emotion=") and FACES_BLOCK in part.split("+") for part in layout.split(";"))


@dataclass(frozen=True)
class FilmFeatures:
    """Features of one picture range. Frame n covers [n / fps, (n + 1) / fps) s from the range start.

    semantic `(N, Ds)`, emotion `(N, De)` (scene affect), aesthetic `(N, Da)` float32; motion
    `(ceil(duration*100),)` in [0, 1]; cuts_s: cut times in seconds from the range start; `layout` names what
    `frame_matrix()` holds (backbone and branch versions): a token head trained on one layout refuses another.
    hit_points_s: instants (s from the range start) where the picture invites a musical accent (cuts, motion peaks,
    flashes), ascending; extras: JSON-able details (kinds of cuts and hit points, the source's metadata).
    faces `(N, 8)` float32 (face area, 7 expression probabilities; faces.FACE_COLUMNS), or None when the face branch
    did not run (features made before it existed, or without OpenCV / fer installed).
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
    faces: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.semantic.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(sum(b.shape[1] for b in self._blocks()))

    def _blocks(self) -> list[np.ndarray]:
        blocks = [self.semantic, self.emotion]
        if layout_has_faces(self.layout):
            if self.faces is None:
                raise FilmscoreError(f"film features: layout {self.layout!r} names the face block, but these "
                                     "features hold none (the face branch did not run)")
            blocks.append(self.faces)
        return blocks + [self.aesthetic]

    def frame_matrix(self) -> np.ndarray:
        """`(N, Ds + De [+ 8] + Da)` float32, the token head's input: semantic, scene affect, the face block if the
        layout names it, aesthetic."""
        return np.concatenate(self._blocks(), axis=1).astype(np.float32)

    def as_layout(self, layout: str) -> FilmFeatures:
        """These features seen through `layout`: this one, or it with / without the face block. Raises
        FilmscoreError for any other layout, or for the face block when the face branch did not run."""
        if layout == self.layout:
            return self
        if layout_without_faces(layout) != layout_without_faces(self.layout):
            raise FilmscoreError(f"film features: layout {layout!r} asked, these were encoded as {self.layout!r}")
        if layout_has_faces(layout) and self.faces is None:
            raise FilmscoreError(f"film features: layout {layout!r} needs the face block, which the face branch "
                                 "did not compute (is fer installed? see scripts/setup.sh)")
        return replace(self, layout=layout)

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
                            extras=np.str_(json.dumps(self.extras, default=str)),
                            **({} if self.faces is None else {"faces": self.faces}))

    @classmethod
    def load_npz(cls, path: str | Path) -> FilmFeatures:
        try:
            with np.load(path) as z:
                hits = tuple(float(h) for h in z["hit_points_s"]) if "hit_points_s" in z else ()
                extras = json.loads(str(z["extras"])) if "extras" in z else {}
                faces = z["faces"] if "faces" in z else None
                return cls(z["semantic"], z["emotion"], z["aesthetic"], z["motion"],
                           tuple(float(c) for c in z["cuts_s"]), float(z["duration_s"]), str(z["layout"]),
                           int(z["fps"]), extras, hits, faces)
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise FilmscoreError(f"film features file {path}: cannot read ({e})") from e
