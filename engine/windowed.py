"""Long cues as overlapping windows denoised jointly (MultiDiffusion, Bar-Tal et al. 2023).

A cue's latent `(1, C, L)` of any length is covered by windows of `window` latent frames that overlap by `overlap`.
At every denoising step each window's model output is computed, and the outputs are fused into one full-length
output by a per-frame weighted average (MultiDiffusion eq. 5: the least-squares fusion of the windows' predictions),
with weights that ramp linearly across each overlap. The scheduler then steps the whole latent once. Fusing the
model output, not the per-window latents, keeps multistep schedulers (DPM-Solver++) exact: they see one consistent
prediction per step. Seams are blended at every step, so none survive to the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .constants import LATENT_DOWNSAMPLE


@dataclass(frozen=True)
class CueFrames:
    """A cue's length in frames: Mel frames cover its samples (rounded up), latent frames cover the Mel frames, and
    a cue shorter than one window is rounded up to the UNet's downsampling multiple; `n_mel_pad` is the Mel length
    the latent decodes to."""

    n_mel: int
    n_latent: int

    @property
    def n_mel_pad(self) -> int:
        return self.n_latent * LATENT_DOWNSAMPLE


def cue_frames(n_samples: int, hop: int, window: int, multiple: int) -> CueFrames:
    """Frames of a cue of `n_samples` at Mel hop `hop` for windows of `window` latent frames (`CueFrames`)."""
    n_mel = math.ceil(n_samples / hop)
    n_latent = math.ceil(n_mel / LATENT_DOWNSAMPLE)
    if n_latent < window:
        n_latent = math.ceil(n_latent / multiple) * multiple
    return CueFrames(n_mel, n_latent)


@dataclass(frozen=True)
class Window:
    start: int  # first latent frame
    length: int  # latent frames


def plan_windows(n_latent: int, window: int, overlap: int, multiple: int) -> list[Window]:
    """Windows covering [0, n_latent). A cue shorter than one window is one window (its length rounded up to
    `multiple` by the caller). The last window is aligned to the end, so every window has the full length."""
    if window % multiple or overlap >= window:
        raise ValueError(f"window {window} must be a multiple of {multiple} and longer than overlap {overlap}")
    if n_latent <= window:
        return [Window(0, n_latent)]
    hop = window - overlap
    starts = list(range(0, n_latent - window, hop)) + [n_latent - window]
    return [Window(s, window) for s in starts]


def fusion_weights(windows: list[Window], n_latent: int, overlap: int) -> list[torch.Tensor]:
    """Per-window weights `(length,)` that ramp linearly over overlaps, normalised to sum to 1 per frame."""
    raw = []
    for i, w in enumerate(windows):
        wt = torch.ones(w.length)
        ramp = torch.linspace(0.0, 1.0, overlap + 2)[1:-1] if overlap else torch.empty(0)
        if i > 0 and overlap:
            wt[:overlap] = ramp
        if i < len(windows) - 1 and overlap:
            wt[-overlap:] = ramp.flip(0)
        raw.append(wt)
    total = torch.zeros(n_latent)
    for w, wt in zip(windows, raw, strict=True):
        total[w.start:w.start + w.length] += wt
    return [wt / total[w.start:w.start + w.length] for w, wt in zip(windows, raw, strict=True)]
