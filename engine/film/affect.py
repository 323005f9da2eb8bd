"""Emotion branch: scene affect (valence, arousal) from colour, brightness, saturation, motion and cutting rate.

This is the scene half of the emotion branch: film-analysis heuristics from the literature, not a model fitted to
ratings. The facial half (expression probabilities where faces are visible) is its own block, faces.py.

| column | what | mapping (all inputs in [0, 1]) |
| --- | --- | --- |
| 0 valence | pleasantness | 0.5 + 0.69 (B - 0.5) + 0.22 (S - 0.5), clipped: the pleasure weights of brightness B and saturation S in Valdez & Mehrabian (1994), "Effects of color on emotions", J. Exp. Psychol. Gen. 123(4) |
| 1 arousal | excitement | 0.45 M + 0.35 R + 0.20 C, clipped: motion M and rhythm R as in Hanjalic & Xu (2005), "Affective video content representation and modeling", IEEE Trans. Multimedia 7(1) (their third term, sound energy, is not there before the music exists); colour arousal C = 0.5 + 0.60 (S - 0.5) - 0.31 (B - 0.5) from Valdez & Mehrabian's arousal weights |
| 2 motion | M: the motion envelope averaged over 1 s (Hann window) | see timing.py |
| 3 rhythm | R: exp(-L / 4 s), L the length of the shot holding the frame (Hanjalic & Xu's shot-length term: short shots are exciting) | |
| 4 warmth | mean (R - B) / 2 + 0.5: warm (red/orange) above 0.5, cool (blue) below | Wang & Cheong (2006), "Affective understanding in film", IEEE TCSVT 16(6), colour features |
| 5 low_key | share of pixels with luma < 0.2: low-key lighting (Wang & Cheong 2006, lighting key) | |

Arousal and valence are smoothed over 2 s (Hanjalic & Xu smooth with a Kaiser window for the same reason: affect
changes slower than frames).
"""

from __future__ import annotations

import numpy as np

from .aesthetic import luma

EMOTION_COLUMNS = ("valence", "arousal", "motion", "rhythm", "warmth", "low_key")
EMOTION_VERSION = "scene-affect-v1"
RHYTHM_TAU_S = 4.0


def frame_colour_stats(small: np.ndarray) -> np.ndarray:
    """Planar `(B, 3, h, w)` float RGB in [0, 1] -> `(B, 2)`: warmth, low-key share (the per-frame colour part)."""
    warmth = (small[:, 0] - small[:, 2]).mean(axis=(1, 2)) / 2 + 0.5
    low_key = (luma(small) < 0.2).mean(axis=(1, 2))
    return np.stack([warmth, low_key], axis=1).astype(np.float32)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if len(x) < 2 or width < 2:
        return x
    w = np.hanning(width + 2)[1:-1]
    w /= w.sum()
    pad = width // 2
    xp = np.pad(x, (pad, width - 1 - pad), mode="edge")
    return np.convolve(xp, w, mode="valid")


def scene_affect(brightness: np.ndarray, saturation: np.ndarray, frame_motion: np.ndarray,
                 cut_frames: tuple[int, ...], colour: np.ndarray, fps: int) -> np.ndarray:
    """Per-frame emotion features `(N, 6)` float32, columns as EMOTION_COLUMNS.

    brightness, saturation, frame_motion `(N,)` in [0, 1]; cut_frames the first frames of new shots; colour `(N, 2)`
    from `frame_colour_stats`.
    """
    n = len(brightness)
    out = np.zeros((n, len(EMOTION_COLUMNS)), np.float32)
    if n == 0:
        return out
    m = _smooth(frame_motion.astype(np.float64), fps)
    bounds = [0] + [c for c in cut_frames if 0 < c < n] + [n]
    shot_len = np.empty(n)
    for a, b in zip(bounds[:-1], bounds[1:]):
        shot_len[a:b] = (b - a) / fps
    r = np.exp(-shot_len / RHYTHM_TAU_S)
    bb, ss = brightness.astype(np.float64), saturation.astype(np.float64)
    colour_arousal = np.clip(0.5 + 0.60 * (ss - 0.5) - 0.31 * (bb - 0.5), 0, 1)
    arousal = np.clip(0.45 * m + 0.35 * r + 0.20 * colour_arousal, 0, 1)
    valence = np.clip(0.5 + 0.69 * (bb - 0.5) + 0.22 * (ss - 0.5), 0, 1)
    out[:, 0] = _smooth(valence, 2 * fps)
    out[:, 1] = _smooth(arousal, 2 * fps)
    out[:, 2] = m
    out[:, 3] = r
    out[:, 4:6] = colour
    return out
