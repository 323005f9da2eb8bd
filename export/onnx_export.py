"""PyTorch -> ONNX for each graph of a bundle: dynamo exporter, dynamic batch and time axes, pinned opset, onnx
checker, ONNX Runtime graph optimisation; and the optional CPU variants (dynamic int8, fp16).

Time axes are dynamic in the unit the model allows: latent frames as a multiple of the UNet's downsampling
factor (`L = factor * l`, torch.export's derived dims), Mel samples as a multiple of the hop. The legacy
TorchScript exporter fails on the attention's dynamic shapes; torch.export traces them symbolically.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from filmscore.engine import onnx_io
from filmscore.engine.backends import cache as ec
from filmscore.engine.bundle import Bundle
from filmscore.engine.errors import FilmscoreError

from . import wrappers

logger = logging.getLogger(__name__)

OPSET = onnx_io.OPSET  # the one opset every export uses (engine/onnx_io.py)
MAX_BATCH = 64  # windows x guidance passes in one call, with room
MAX_LATENT = 4096  # latent frames per call (164 s): far above one window (256)


class ExportError(FilmscoreError):
    """An export that failed (exporter, checker or parity): names the component and the cause."""


@dataclass
class GraphSpec:
    """One graph to export: the module, example inputs in call order, their names, the dynamic axes as
    torch.export `dynamic_shapes` (keyed by forward's argument names), and the output's name."""

    component: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    dynamic_shapes: dict[str, Any]
    output: str
    info: dict[str, Any] = field(default_factory=dict)


def graph_specs(bundle: Bundle, components: tuple[str, ...] | None = None, window_latent: int = 64) -> list[GraphSpec]:
    """The graphs of `bundle` (those it has components for), with example inputs of `window_latent` frames."""
    from torch.export import Dim

    m = bundle.models
    unet = m["unet"]
    cfg = unet.config
    factor = unet.downsample_factor
    batch = Dim("batch", min=1, max=MAX_BATCH)
    lq = Dim("latent_blocks", min=1, max=MAX_LATENT // factor)
    lat = factor * lq
    b, L = 2, window_latent
    c, k, d = cfg.in_channels, cfg.n_null_tokens, cfg.token_dim
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(b, c, L, generator=gen)
    timestep = torch.tensor([999.0, 500.0])
    tokens = torch.randn(b, k, d, generator=gen) * 0.1
    specs: list[GraphSpec] = []
    want = set(components) if components is not None else set(ec.COMPONENTS)
    den_dyn = {"sample": {0: batch, 2: lat}, "timestep": {0: batch}, "tokens": {0: batch}}
    if ec.DENOISE_PLAIN in want:
        specs.append(GraphSpec(ec.DENOISE_PLAIN, wrappers.PlainDenoiser(unet),
                               {"sample": sample, "timestep": timestep, "tokens": tokens}, den_dyn, "v",
                               {"downsample_factor": factor}))
    if ec.DENOISE_CONTROL in want and m.get("controlnet") is not None:
        cn = m["controlnet"]
        ctrl = torch.zeros(b, cn.config.control_channels, 4 * L)
        ctrl[:, torch.arange(4 * L) % 12, torch.arange(4 * L)] = 1.0  # a pitch-class staircase, present flags on
        ctrl[:, -1] = 1.0
        dyn = dict(den_dyn, controls={0: batch, 2: 4 * lat}, control_scale=None)
        specs.append(GraphSpec(ec.DENOISE_CONTROL, wrappers.ControlledDenoiser(unet, cn),
                               {"sample": sample, "timestep": timestep, "tokens": tokens, "controls": ctrl,
                                "control_scale": torch.tensor([1.0])}, dyn, "v", {"downsample_factor": factor}))
    if ec.VAE_DECODER in want:
        vae = m["vae"]
        t = Dim("latent_frames", min=2, max=MAX_LATENT)
        specs.append(GraphSpec(ec.VAE_DECODER, wrappers.VaeDecoder(vae),
                               {"latent": torch.randn(b, vae.config.latent_channels, L, generator=gen)},
                               {"latent": {0: batch, 2: t}}, "log_mel"))
    if ec.VOCODER in want and m.get("vocoder") is not None:
        voc = m["vocoder"]
        t = Dim("mel_frames", min=2, max=4 * MAX_LATENT)
        mel = torch.randn(b, voc.config.n_mels, 4 * L, generator=gen) * 2.0 - 6.0
        specs.append(GraphSpec(ec.VOCODER, wrappers.Vocoder(voc), {"log_mel": mel}, {"log_mel": {0: batch, 2: t}},
                               "wave"))
    if ec.FILM_HEAD in want and m.get("film_head") is not None:
        head = m["film_head"]
        n = Dim("film_frames", min=2, max=4096)
        specs.append(GraphSpec(ec.FILM_HEAD, wrappers.FilmHead(head),
                               {"frames": torch.randn(b, 103, head.config.feature_dim, generator=gen)},
                               {"frames": {0: batch, 1: n}}, "tokens"))
    if ec.MEL in want:
        from filmscore.engine.audio.mel import MelSpectrogram

        mc = bundle.mel_config
        frames = Dim("mel_frames", min=8, max=4 * MAX_LATENT)
        wave = torch.randn(b, mc.hop_length * 4 * L, generator=gen) * 0.1
        specs.append(GraphSpec(ec.MEL, wrappers.MelFrontEnd(MelSpectrogram(mc, conv_stft=True).eval()),
                               {"wave": wave}, {"wave": {0: batch, 1: mc.hop_length * frames}}, "log_mel"))
    return specs


def export_graph(spec: GraphSpec, path: Path, opset: int = OPSET) -> dict[str, Any]:
    """Export `spec` to `path` with the engine's exporter (engine/onnx_io.py: dynamo, onnx checker, atomic write).
    Returns {"export_s", "bytes"}; raises ExportError."""
    try:
        return onnx_io.export_onnx(spec.module, spec.inputs, path, outputs=[spec.output],
                                   dynamic_shapes=spec.dynamic_shapes, what=spec.component, opset=opset)
    except onnx_io.OnnxExportError as e:
        raise ExportError(str(e)) from e


def optimise_for_ort(src: Path, dst: Path) -> dict[str, Any]:
    """ONNX Runtime's offline graph optimisation (ORT_ENABLE_EXTENDED: fusions that hold on any machine; the
    layout transforms of ORT_ENABLE_ALL depend on the CPU and are applied when a session loads)."""
    import onnxruntime as ort

    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp.onnx")
    so.optimized_model_filepath = str(tmp)
    so.intra_op_num_threads = 1
    try:
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{src.name}: ONNX Runtime cannot optimise it ({str(e).splitlines()[0]})") from e
    os.replace(tmp, dst)
    return {"optimise_s": round(time.perf_counter() - t0, 3), "bytes": dst.stat().st_size}


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of MatMul/Gemm weights only (measured here: int8 Conv is 2.5x slower on this CPU,
    int8 MatMul 1.2x faster)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice goes to the root logger on every call
    try:
        quantize_dynamic(str(src), str(tmp), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    os.replace(tmp, dst)


def convert_fp16(src: Path, dst: Path) -> None:
    """An fp16 copy with float32 inputs and outputs (casts at the edges): the FP16 path of TensorRT >= 11, which
    dropped the builder's FP16 flag (strongly typed networks take their precision from the ONNX), and of ORT's
    CUDA EP. Norms and softmax stay in the graph's fp16, as in diffusers' fp16 exports."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp.onnx")
    onnx.save(half, str(tmp))
    os.replace(tmp, dst)
