"""The PyTorch backend: the bundle's modules, eager, on the CPU (float32), `torch.get_num_threads()` threads.
The pipeline runs under `torch.no_grad()`, so the modules are handed over as they are."""

from __future__ import annotations

import torch

from ..bundle import Bundle
from .base import Backend


def load_torch(bundle: Bundle) -> Backend:
    from ..pipeline import Denoiser

    m = bundle.models
    return Backend("torch", "cpu", Denoiser(m["unet"], m.get("controlnet")), m["vae"].decode, m.get("vocoder"),
                   m.get("film_head"), {"threads": torch.get_num_threads(), "precision": "fp32"})
