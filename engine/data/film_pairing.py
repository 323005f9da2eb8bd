"""The paired synthetic film clip of a corpus clip: its timing and mood follow the music by fixed rules, so that
video -> music is learnable. These rules are the dataset's documentation (docs/dataset.md repeats them):

1. **Cuts on phrase starts.** Every phrase of the dynamics plan (which starts on a downbeat) after the first
   opens a new shot: a new layout, texture, texture contrast and hue offset (within +-0.05). No other cuts.
2. **Motion follows dynamics.** Camera pan speed and object speed rise with the loudness level L(t) in [0, 1]:
   pan = 0.02 + 0.15 L image widths/s, objects = 0.05 + 0.35 L image widths/s. Objects pulse on the beats
   (radius +15 % x L, decaying in 0.15 s).
3. **Accents flash.** At every accented phrase start (`DynamicsPlan.accents_s`, also where timpani/cymbal hit)
   the frame brightens by up to +0.45, decaying with a 0.25 s time constant.
4. **Colour follows mode and tension.** Major: warm hues (gold/orange, hue 0.05-0.15); minor: cool hues
   (blue, hue 0.55-0.65). Harmonic tension of the bar (chromatic notes, dissonant intervals) pulls the hue
   towards red-magenta (0.97) by up to 60 % and raises saturation from 0.35 to 0.85.
5. **Brightness follows register.** Value (HSV) = 0.25 + 0.55 r, r = (leading-voice pitch - 60) / 24 clipped to
   [0, 1], held through rests and smoothed over 0.5 s.

The picture is 256 x 144 at 10 frames/s (the film encoder's rate), H.264, exactly as long as the music clip.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..constants import VIDEO_FPS
from .arrange import ClipArrangement

WIDTH, HEIGHT = 256, 144
MAJOR_HUE, MINOR_HUE, TENSION_HUE = 0.10, 0.60, 0.97
PAN_BASE, PAN_GAIN = 0.02, 0.15  # image widths per second
OBJECT_BASE, OBJECT_GAIN = 0.05, 0.35
FLASH_GAIN, FLASH_TAU_S = 0.45, 0.25
BEAT_PULSE, BEAT_TAU_S = 0.15, 0.15


@dataclass(frozen=True)
class FilmPlan:
    """Per-frame drivers of one synthetic clip at `fps` (N frames): level `(N,)`, hue `(N,)`, saturation `(N,)`,
    value `(N,)`, flash `(N,)`, beat pulse `(N,)`, shot index `(N,)` int; cuts_s: shot starts after the first."""

    level: np.ndarray
    hue: np.ndarray
    saturation: np.ndarray
    value: np.ndarray
    flash: np.ndarray
    pulse: np.ndarray
    shot: np.ndarray
    cuts_s: tuple[float, ...]
    fps: int = VIDEO_FPS

    @property
    def n_frames(self) -> int:
        return int(self.level.shape[0])


def plan_film(arr: ClipArrangement, qpm: float, fps: int = VIDEO_FPS) -> FilmPlan:
    """Apply the pairing rules (module docstring) to an arranged clip."""
    n = int(round(arr.duration_s * fps))
    t = (np.arange(n) + 0.5) / fps  # frame centres
    level = arr.dynamics.level_at(t)
    cuts = tuple(s for s in arr.dynamics.phrase_starts_s if s > 1e-6)
    shot = np.searchsorted(np.asarray(cuts), t, side="right")
    # colour: mode hue, pulled to red by the bar's tension
    bar = np.clip(np.searchsorted(arr.bar_starts_s, t, side="right") - 1, 0, len(arr.tension) - 1)
    tension = arr.tension[bar] if len(arr.tension) else np.zeros(n)
    base = MAJOR_HUE if arr.mode == "major" else MINOR_HUE
    pull = 0.6 * tension
    # interpolate along the shorter way round the hue circle
    delta = ((TENSION_HUE - base + 0.5) % 1.0) - 0.5
    hue = (base + pull * delta) % 1.0
    saturation = 0.35 + 0.5 * tension
    # brightness: leading-voice register, held through rests, smoothed over 0.5 s
    pitch = np.full(n, np.nan)
    for on, dur, p in arr.lead_notes:
        pitch[(t >= on) & (t < on + dur)] = p
    valid = ~np.isnan(pitch)
    if valid.any():
        idx = np.where(valid, np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.argmax(valid))
        pitch = np.where(np.arange(n) < first, pitch[first], pitch[idx])
    else:
        pitch[:] = 66.0
    k = max(1, int(0.5 * fps))
    pitch = np.convolve(np.pad(pitch, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")
    value = 0.25 + 0.55 * np.clip((pitch - 60.0) / 24.0, 0.0, 1.0)
    flash = np.zeros(n)
    for h in arr.hits_s:
        after = t >= h
        flash[after] = np.maximum(flash[after], FLASH_GAIN * np.exp(-(t[after] - h) / FLASH_TAU_S))
    beat_s = 60.0 / qpm
    phase = np.mod(t, beat_s)
    pulse = BEAT_PULSE * level * np.exp(-phase / BEAT_TAU_S)
    return FilmPlan(level, hue, saturation, value, flash, pulse, shot.astype(np.int64), cuts, fps)


def _hue_colour(hue: float, saturation: float) -> np.ndarray:
    """`(3,)` RGB at value 1: with hue and saturation fixed, HSV -> RGB is this colour times the value."""
    return np.asarray(colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0.0), 1.0), 1.0), np.float32)


class _Shot:
    """Layout of one shot: a smooth luminance texture twice the frame width and a few discs."""

    def __init__(self, rng: np.random.Generator):
        h, w = HEIGHT, WIDTH * 2
        fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
        f = np.sqrt(fx * fx + fy * fy)
        f[0, 0] = 1.0
        spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** 1.8
        spec[0, 0] = 0
        tex = np.fft.irfft2(spec, s=(h, w))
        self.tex = ((tex - tex.mean()) / (tex.std() + 1e-9)).astype(np.float32)
        self.hue_offset = rng.uniform(-0.05, 0.05)
        self.contrast = rng.uniform(0.15, 0.4)  # how strongly the texture modulates brightness
        k = int(rng.integers(3, 7))
        self.pos = rng.uniform(0, 1, (k, 2))
        ang = rng.uniform(0, 2 * np.pi, k)
        self.dir = np.stack([np.sin(ang), np.cos(ang)], 1)
        self.radius = rng.uniform(0.05, 0.14, k)
        self.tone = rng.uniform(-0.35, 0.35, k)  # discs lighter or darker than the ground
        self.pan_dir = rng.choice([-1.0, 1.0])


def render_film(plan: FilmPlan, path: str | Path, seed: int) -> None:
    """Render `plan` into an H.264 MP4 at `path` (WIDTH x HEIGHT, plan.fps frames/s)."""
    import av

    rng = np.random.default_rng(seed)
    shots = [_Shot(rng) for _ in range(int(plan.shot.max(initial=0)) + 1)]
    aspect = WIDTH / HEIGHT
    ys = (np.arange(HEIGHT) / HEIGHT)[:, None]
    xs = (np.arange(WIDTH) / WIDTH * aspect)[None, :]
    dt = 1.0 / plan.fps
    pan = obj = 0.0
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("h264", rate=Fraction(plan.fps))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "26", "preset": "ultrafast"}
        stream.codec_context.thread_count = 1
        for i in range(plan.n_frames):
            if i and plan.shot[i] != plan.shot[i - 1]:
                pan = obj = 0.0  # a new shot starts from its own layout
            s = shots[plan.shot[i]]
            lv = plan.level[i]
            pan += (PAN_BASE + PAN_GAIN * lv) * dt
            obj += (OBJECT_BASE + OBJECT_GAIN * lv) * dt
            # the texture is periodic over its width (2 x WIDTH, an FFT texture): panning wraps without a seam
            x0 = int(round(pan * WIDTH * s.pan_dir))
            v = np.take(s.tex, np.arange(x0, x0 + WIDTH) % s.tex.shape[1], axis=1)
            v = np.clip(plan.value[i] * (1 + s.contrast * v) + plan.flash[i], 0, 1)
            hue = plan.hue[i] + s.hue_offset
            ground, disc = _hue_colour(hue, plan.saturation[i]), _hue_colour(hue, plan.saturation[i] + 0.2)
            inside = np.zeros((HEIGHT, WIDTH), bool)
            for (py, px), (dy, dx), r, tone in zip(s.pos, s.dir, s.radius, s.tone):
                # discs move on a torus: one leaving an edge enters from the opposite edge, whole
                ey = (ys - (py + dy * obj) + 0.5) % 1.0 - 0.5
                ex = (xs - (px + dx * obj) * aspect + 0.5 * aspect) % aspect - 0.5 * aspect
                rr = r * (1 + plan.pulse[i])
                m = ey ** 2 + ex ** 2 < rr * rr
                v = np.where(m, np.clip(v + tone, 0, 1), v)
                inside |= m
            rgb = v[..., None] * np.where(inside[..., None], disc, ground)
            frame = av.VideoFrame.from_ndarray((rgb * 255 + 0.5).astype(np.uint8), format="rgb24")
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
