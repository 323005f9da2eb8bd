"""Run a time-local model over a long sequence in overlapping chunks, so memory stays flat in cue length.

For a model whose output frame depends only on input frames within `margin` (its receptive field), chunking with
that margin and cropping gives exactly the whole-sequence result (the VAE decoder and the vocoder use per-frame
norms for this reason).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def run_chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int, margin: int,
                scale: int) -> torch.Tensor:
    """`fn` maps `(B, Cin, l)` to `(B, Cout, l * scale)` (or its last axis to `l * scale` samples for a vocoder
    returning `(B, l * scale)`); returns fn applied to the whole `x` `(B, Cin, L)` chunk by chunk."""
    length = x.shape[-1]
    if length <= chunk + 2 * margin:
        return fn(x)
    outs = []
    for a in range(0, length, chunk):
        b = min(a + chunk, length)
        lo, hi = max(a - margin, 0), min(b + margin, length)
        y = fn(x[..., lo:hi])
        outs.append(y[..., (a - lo) * scale:(b - lo) * scale])
    return torch.cat(outs, dim=-1)


def run_crossfaded(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int, overlap: int,
                   scale: int) -> torch.Tensor:
    """For a non-local `fn` (Griffin-Lim): chunks that overlap by `overlap` input frames, joined by a linear
    crossfade over the overlap. `fn` maps `(B, C, l)` to `(B, l * scale)`."""
    length = x.shape[-1]
    if length <= chunk:
        return fn(x)
    out = torch.zeros(x.shape[0], length * scale)
    norm = torch.zeros(length * scale)
    step = chunk - overlap
    for a in range(0, length, step):
        b = min(a + chunk, length)
        y = fn(x[..., a:b])
        w = torch.ones(y.shape[-1])
        ramp = torch.linspace(0.0, 1.0, overlap * scale + 2)[1:-1]
        if a > 0:
            w[:ramp.numel()] = ramp
        if b < length:
            w[-ramp.numel():] = ramp.flip(0)
        out[:, a * scale:b * scale] += y * w
        norm[a * scale:b * scale] += w
        if b == length:
            break
    return out / norm.clamp(min=1e-8)
