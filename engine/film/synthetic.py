"""Synthetic edits with known cuts: the film encoder's test and benchmark material.

`write_edit` renders a sequence of procedural shots (panning textures, moving shapes, flat-lit still scenes) joined by
hard cuts, cross-dissolves or fades through black, and encodes it with PyAV (H.264, MPEG-4 Part 2, ...). It returns
the true cut instants: a hard cut at the first instant of the new shot, a dissolve or a fade at its midpoint, so
that a detector can be scored at +-1 frame of the 10/s grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Transition = Literal["cut", "dissolve", "fade"]
ShotKind = Literal["pan", "shapes", "still", "flicker"]


# libx264's macroblock tree (rate control from its lookahead) gives other bytes from run to run at some frame sizes
# (64x48 and 160x96 among those tried; decoded frames up to 26 levels apart), the same frames in, one thread or
# several. Off, a generated edit is the same file every time, as test and benchmark material must be.
# (`write_footage_edit` keeps the encoder's defaults: its 320x180 edits repeat, and the dissolve tests' expectations
# were measured on them.)
_REPEATABLE = {"h264": {"x264-params": "mbtree=0"}, "libx264": {"x264-params": "mbtree=0"}}


@dataclass(frozen=True)
class Shot:
    """One shot: `kind` of content, `duration_s`, `speed` in image widths per second (0 = static camera),
    `brightness` gain (1 = normal, 0.2 = dark), `seed`; `transition` is how this shot enters from the previous one
    (ignored for the first), lasting `transition_s`."""

    kind: ShotKind
    duration_s: float
    speed: float = 0.1
    brightness: float = 1.0
    saturation: float = 1.0
    seed: int = 0
    transition: Transition = "cut"
    transition_s: float = 1.0


def _texture(rng: np.random.Generator, h: int, w: int, smooth: float) -> np.ndarray:
    """A smooth random colour texture `(h, w, 3)` float32 in [0, 1]: 1/f^smooth noise, a random palette."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):
        spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** smooth
        spec[0, 0] = 0
        img = np.fft.irfft2(spec, s=(h, w))
        img = (img - img.mean()) / (img.std() + 1e-9)
        out[..., c] = img
    mix = rng.uniform(-1, 1, (3, 3)).astype(np.float32) + np.eye(3, dtype=np.float32)
    base = rng.uniform(0.25, 0.75, 3).astype(np.float32)
    return np.clip(base + 0.18 * out @ mix.T, 0, 1)


class _ShotRenderer:
    """Renders frames of one shot at a given size; `frame(t)` `(H, W, 3)` float32 in [0, 1], t from shot start."""

    def __init__(self, shot: Shot, width: int, height: int):
        self.shot, self.w, self.h = shot, width, height
        rng = np.random.default_rng(shot.seed)
        self.rng = rng
        # a texture wider than the frame, panned horizontally (and a little vertically)
        scale = 4 if max(width, height) > 640 else 1  # render big frames from a coarser texture, upsampled
        tw, th = (width * 2) // scale, (height * 5 // 4) // scale
        self.scale = scale
        self.tex = _texture(rng, th, tw, 1.6 if shot.kind != "still" else 2.2)
        self.bg = rng.uniform(0.1, 0.9, 3).astype(np.float32)
        n = 6
        self.shape_c = rng.uniform(0, 1, (n, 3)).astype(np.float32)
        self.shape_p = rng.uniform(0, 1, (n, 2))
        self.shape_v = rng.uniform(-1, 1, (n, 2))
        self.shape_r = rng.uniform(0.05, 0.15, n)
        # big frames are drawn at a quarter of their size and upsampled: the benchmark's 1080p material would
        # otherwise take longer to draw than to encode
        self.rh, self.rw = height // scale, width // scale
        yy, xx = np.mgrid[0:self.rh, 0:self.rw]
        self.yy, self.xx = yy / self.rh, xx / self.rw

    def _pan(self, t: float) -> np.ndarray:
        th, tw = self.tex.shape[:2]
        fw, fh = self.w // self.scale, self.h // self.scale
        span = max(1, tw - fw)
        x = int(round(self.shot.speed * t * fw)) % (2 * span)
        x = x if x <= span else 2 * span - x  # the camera pans back and forth: no jump in the picture
        y = int(round(0.25 * (th - fh) * (1 + np.sin(0.7 * t)) / 2)) if self.shot.speed else 0
        return self.tex[y:y + fh, x:x + fw]

    def frame(self, t: float) -> np.ndarray:
        s = self.shot
        if s.kind in ("pan", "still"):
            img = self._pan(t if s.kind == "pan" else 0.0)
        elif s.kind == "flicker":
            # firelight: a static frame whose brightness wavers by a few per cent, irregularly
            img = self._pan(0.0) * (0.95 + 0.03 * np.sin(2 * np.pi * 1.3 * t) + 0.02 * np.sin(2 * np.pi * 3.1 * t))
        else:
            img = np.broadcast_to(self.bg, (self.rh, self.rw, 3)).copy()
            p = (self.shape_p + s.speed * 4 * self.shape_v * t) % 2.0
            p = np.where(p <= 1.0, p, 2.0 - p)  # shapes bounce off the frame's edges
            for c, (py, px), r in zip(self.shape_c, p, self.shape_r):
                mask = (self.yy - py) ** 2 + ((self.xx - px) * self.w / self.h) ** 2 < r * r
                img[mask] = c
        grey = img.mean(axis=2, keepdims=True)
        img = np.clip((grey + s.saturation * (img - grey)) * s.brightness, 0, 1)
        if self.scale > 1:
            img = np.repeat(np.repeat(img, self.scale, 0), self.scale, 1)
        return img


def _timeline(shots: Sequence[Shot]) -> tuple[list[float], list[float]]:
    """Start time of each shot on the edit's timeline (dissolves overlap shots), and the true cut instants."""
    starts, cuts = [0.0], []
    t = shots[0].duration_s
    for s in shots[1:]:
        if s.transition == "dissolve":
            start = t - s.transition_s
            cuts.append(t - s.transition_s / 2)
        elif s.transition == "fade":
            start = t
            cuts.append(t)  # half the fade goes out of the old shot, half into the new one
        else:
            start = t
            cuts.append(t)
        starts.append(start)
        t = start + s.duration_s
    return starts, cuts


def edit_duration(shots: Sequence[Shot]) -> float:
    starts, _ = _timeline(shots)
    return starts[-1] + shots[-1].duration_s


def write_edit(path: str | Path, shots: Sequence[Shot], *, width: int = 256, height: int = 144,
               fps: float = 25, codec: str = "h264", container: str | None = None,
               options: dict[str, str] | None = None) -> list[float]:
    """Render `shots` into the video file `path` and return the true cut times in seconds.

    A dissolve of length L overlaps the two shots by L (cut at its midpoint); a fade of length L spends L/2 fading
    the old shot to black and L/2 fading the new one in, inside the two shots' durations (cut at the black frame).
    """
    import av
    from fractions import Fraction

    starts, cuts = _timeline(shots)
    total = starts[-1] + shots[-1].duration_s
    renderers = [_ShotRenderer(s, width, height) for s in shots]
    rate = Fraction(fps).limit_denominator(1001)
    # a hard cut happens on the first source frame of the new shot
    cuts = [float(np.ceil(c * float(rate) - 1e-6) / float(rate)) if s.transition == "cut" else c
            for c, s in zip(cuts, shots[1:])]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {**_REPEATABLE.get(codec, {}), **(options or {})}
        n = int(round(total * float(rate)))
        for i in range(n):
            t = i / float(rate)
            img = None
            for j, (s, st) in enumerate(zip(shots, starts)):
                if not st <= t < st + s.duration_s:
                    continue
                f = renderers[j].frame(t - st)
                gain = 1.0
                nxt = shots[j + 1] if j + 1 < len(shots) else None
                if s.transition == "fade" and j > 0 and t - st < s.transition_s / 2:
                    gain = (t - st) / (s.transition_s / 2)
                if nxt is not None and nxt.transition == "fade" and st + s.duration_s - t <= nxt.transition_s / 2:
                    gain = min(gain, (st + s.duration_s - t) / (nxt.transition_s / 2) - 1.0 / (float(rate) * 1e3))
                f = f * max(gain, 0.0)
                if img is None:
                    img = f
                else:  # inside a dissolve: the later shot's weight rises linearly over the overlap
                    w = (t - st) / s.transition_s
                    img = (1 - w) * img + w * f
            if img is None:
                img = np.zeros((height, width, 3), np.float32)
            frame = av.VideoFrame.from_ndarray((img * 255 + 0.5).astype(np.uint8), format="rgb24")
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return cuts


def write_footage_edit(path: str | Path, pieces: Sequence[np.ndarray], transitions: Sequence[Transition],
                       transition_s: Sequence[float], *, fps: float = 25, codec: str = "h264") -> list[float]:
    """Splice pieces of real footage (each `(N, H, W, 3)` uint8 at `fps`, one shot each) with the given
    transitions (`transitions[i]` enters piece i + 1) into `path`; returns the true cut times as `write_edit`."""
    import av
    from fractions import Fraction

    if len(transitions) != len(pieces) - 1 or len(transition_s) != len(pieces) - 1:
        raise ValueError("one transition (and its length) per join: len(pieces) - 1")
    h, w = pieces[0].shape[1:3]
    shots = [Shot("still", len(pieces[0]) / fps)] + [
        Shot("still", len(piece) / fps, transition=t, transition_s=ts)
        for piece, t, ts in zip(pieces[1:], transitions, transition_s)]
    starts, cuts = _timeline(shots)
    rate = Fraction(fps).limit_denominator(1001)
    cuts = [float(np.ceil(c * float(rate) - 1e-6) / float(rate)) if s.transition == "cut" else c
            for c, s in zip(cuts, shots[1:])]
    total = starts[-1] + shots[-1].duration_s
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(int(round(total * float(rate)))):
            t = i / float(rate)
            img = None
            for j, (s, st) in enumerate(zip(shots, starts)):
                if not st <= t < st + s.duration_s:
                    continue
                f = pieces[j][min(int(round((t - st) * float(rate))), len(pieces[j]) - 1)].astype(np.float32)
                gain = 1.0
                nxt = shots[j + 1] if j + 1 < len(shots) else None
                if s.transition == "fade" and j > 0 and t - st < s.transition_s / 2:
                    gain = (t - st) / (s.transition_s / 2)
                if nxt is not None and nxt.transition == "fade" and st + s.duration_s - t <= nxt.transition_s / 2:
                    gain = min(gain, (st + s.duration_s - t) / (nxt.transition_s / 2))
                f = f * max(gain, 0.0)
                if img is None:
                    img = f
                else:
                    wgt = (t - st) / s.transition_s
                    img = (1 - wgt) * img + wgt * f
            frame = av.VideoFrame.from_ndarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), format="rgb24")
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return cuts
