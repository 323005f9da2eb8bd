"""Run a time-local model over a long sequence in overlapping chunks, so memory stays flat in cue length.

For a model whose output frame depends only on input frames within `margin` (its receptive field), chunking with
that margin and cropping gives exactly the whole-sequence result (the VAE decoder and the vocoder use per-frame
norms for this reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch


T = TypeVar("T")
MapFn = Callable[[Callable[[T], torch.Tensor], Iterable[T]], list[torch.Tensor]]


@dataclass(frozen=True)
class Span:
    """One chunk of a chunked run: output frames [a, b) are computed from input frames [lo, hi) and cropped."""

    a: int
    b: int
    lo: int
    hi: int


def chunk_spans(length: int, chunk: int, margin: int) -> list[Span]:
    """The chunks `run_chunked` cuts a sequence of `length` frames into: one span of the whole sequence when it fits
    in a chunk and its two margins, else `chunk` frames each, read with `margin` frames of context either side
    (cut at the ends). The streamed decode/vocode (engine/pipeline.py) reads the same spans."""
    if length <= chunk + 2 * margin:
        return [Span(0, length, 0, length)]
    return [Span(a, min(a + chunk, length), max(a - margin, 0), min(a + chunk + margin, length))
            for a in range(0, length, chunk)]


def _serial(fn: Callable[[T], torch.Tensor], items: Iterable[T]) -> list[torch.Tensor]:
    return [fn(x) for x in items]


def run_chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int, margin: int,
                scale: int, map_fn: MapFn = _serial) -> torch.Tensor:
    """`fn` maps `(B, Cin, l)` to `(B, Cout, l * scale)` (or its last axis to `l * scale` samples for a vocoder
    returning `(B, l * scale)`); returns fn applied to the whole `x` `(B, Cin, L)` chunk by chunk. `map_fn`
    (engine/threads.py `StagePool.map`) may run the chunks concurrently: they are independent."""
    spans = chunk_spans(x.shape[-1], chunk, margin)
    if len(spans) == 1:
        return fn(x)

    def one(s: Span) -> torch.Tensor:
        return fn(x[..., s.lo:s.hi])[..., (s.a - s.lo) * scale:(s.b - s.lo) * scale]

    return torch.cat(map_fn(one, spans), dim=-1)


def run_crossfaded(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int, overlap: int,
                   scale: int, map_fn: MapFn = _serial) -> torch.Tensor:
    """For a non-local `fn` (Griffin-Lim): chunks that overlap by `overlap` input frames, joined by a linear
    crossfade over the overlap. `fn` maps `(B, C, l)` to `(B, l * scale)`."""
    length = x.shape[-1]
    if length <= chunk:
        return fn(x)
    out = torch.zeros(x.shape[0], length * scale)
    norm = torch.zeros(length * scale)
    step = chunk - overlap
    bounds = []
    for a in range(0, length, step):
        bounds.append((a, min(a + chunk, length)))
        if bounds[-1][1] == length:
            break
    ys = map_fn(lambda ab: fn(x[..., ab[0]:ab[1]]), bounds)
    for (a, b), y in zip(bounds, ys, strict=True):
        w = torch.ones(y.shape[-1])
        ramp = torch.linspace(0.0, 1.0, overlap * scale + 2)[1:-1]
        if a > 0:
            w[:ramp.numel()] = ramp
        if b < length:
            w[-ramp.numel():] = ramp.flip(0)
        out[:, a * scale:b * scale] += y * w
        norm[a * scale:b * scale] += w
    return out / norm.clamp(min=1e-8)
