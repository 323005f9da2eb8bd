"""What every semantic backbone shares: the `ImageBackbone` interface, `TorchEmbedder` (a backbone run in PyTorch)
and `OnnxBackbone` (one exported and run by ONNX Runtime). The backbones themselves (EfficientNet-Lite0 in
semantic.py, a CLIP image encoder in clip.py) build on these, so neither module needs the other's internals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import FilmscoreError


class ImageBackbone(Protocol):
    """Turns RGB frames `(B, H, W, 3)` uint8 into embeddings `(B, dim)` float32. `name` goes into the layout."""

    name: str
    dim: int

    def embed(self, rgb: np.ndarray) -> np.ndarray: ...


def check_frames(rgb: np.ndarray) -> None:
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise FilmscoreError(f"semantic backbone: frames must be (B, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")


class TorchEmbedder:
    """`embed` for a backbone run in PyTorch: its `module` maps `preprocess(rgb)` to `(B, dim)` embeddings."""

    dim: int

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """`(B, H, W, 3)` uint8 -> `(B, dim)` float32."""
        import torch

        check_frames(rgb)
        if rgb.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            return self.module(torch.from_numpy(self.preprocess(rgb))).numpy().astype(np.float32)


class OnnxBackbone:
    """A backbone exported to ONNX, run by ONNX Runtime (2-3x faster than eager PyTorch on one CPU thread,
    measured, and no torch import). Threads follow OMP_NUM_THREADS when set."""

    def __init__(self, path: str | Path, name: str, dim: int, input_size: int,
                 preprocess: Callable[[np.ndarray], np.ndarray]):
        """`preprocess`: `(B, H, W, 3)` uint8 -> the model's `frames` input, as its PyTorch twin prepares it."""
        from .ort_cpu import cpu_session

        self.name, self.dim, self.input_size, self.path = name, dim, input_size, Path(path)
        self._preprocess = preprocess
        self.session = cpu_session(path, f"semantic backbone {name}")

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        return self._preprocess(rgb)

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        check_frames(rgb)
        if rgb.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.session.run(None, {"frames": self.preprocess(rgb)})[0].astype(np.float32)
