"""`Backend`: one runtime's callables for the pipeline's model stages, behind one interface.

A backend provides what `FilmScorePipeline` calls, with the same signatures and torch tensors in and out (CPU,
float32), whatever runs underneath:

- `denoiser(sample (B, C, L), timestep (B,), tokens (B, K, D), controls (B, 14, 4L) | None, control_scale) -> v`
  (one guided pass: ControlNet + UNet when controls are given, the UNet alone otherwise)
- `decode(latent (B, C, L) unscaled) -> log_mel (B, n_mels, 4L)` (VAE decoder)
- `vocode(log_mel (B, n_mels, T)) -> wave (B, T * hop)` (network vocoder; None: the bundle has none)
- `film_tokens(frames (B, N, F)) -> tokens (B, K, D)` (film token head; None: the bundle has none)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

TensorFn = Callable[[torch.Tensor], torch.Tensor]
DenoiserFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None", float], torch.Tensor]
BackendKind = Literal["torch", "ort", "trt"]


@dataclass
class Backend:
    """A loaded runtime. `device`: "cpu" or the GPU's name; `info`: what was loaded (providers, files, threads,
    precision, load seconds) and, for `auto`, why it was chosen and why the others were skipped."""

    name: BackendKind
    device: str
    denoiser: DenoiserFn
    decode: TensorFn
    vocode: TensorFn | None = None
    film_tokens: TensorFn | None = None
    info: dict[str, Any] = field(default_factory=dict)
    parallel_calls: bool = True  # CPU: independent calls may run on several threads; one GPU context: one at a time

    def attach(self, pipe) -> None:
        """Make `pipe` (a FilmScorePipeline) run its model stages on this backend."""
        pipe.denoiser = self.denoiser
        pipe.decode = self.decode
        pipe.parallel_calls = self.parallel_calls
        if self.vocode is not None and pipe.vocoder is not None:
            pipe.vocode = self.vocode
        if self.film_tokens is not None and pipe.film_head is not None:
            pipe.film_tokens = self.film_tokens

    def summary(self) -> dict[str, Any]:
        """JSON-able: goes into a cue's metadata and the benchmark's output."""
        return {"name": self.name, "device": self.device, **self.info}
