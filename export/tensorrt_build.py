"""TensorRT engines from the bundle's ONNX graphs: one optimisation profile per graph spanning the shapes the
pipeline sends (windows x guidance passes, latent lengths up to a window, decoder and vocoder chunks), fp16
through the fp16 ONNX and a strongly typed network (TensorRT 11 removed `BuilderFlag.FP16`; on TensorRT 10 the
strongly typed flag exists too, so one path serves both). Engines are keyed by TensorRT version and GPU name.
Needs an NVIDIA GPU and `pip install tensorrt` (the `gpu` extra); both are checked with a clear error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filmscore.engine.backends import cache as ec
from filmscore.engine.backends.trt_backend import trt_version, unavailable_reason
from filmscore.engine.bundle import Bundle
from filmscore.engine.constants import LATENT_DOWNSAMPLE, WINDOW_MEL_FRAMES
from filmscore.engine.errors import BackendError
from filmscore.engine.pipeline import DECODE_CHUNK_LATENT, DECODE_MARGIN_LATENT, VOCODE_CHUNK_MEL, VOCODE_MARGIN_MEL

logger = logging.getLogger(__name__)

MAX_BATCH = 16  # window_batch (4) x up to 2 passes per call, with room for a larger window batch
WORKSPACE_BYTES = 4 << 30


def profiles(bundle: Bundle) -> dict[str, dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]]:
    """(min, opt, max) shape per input of each graph, from the pipeline's window and chunk sizes."""
    cfg = bundle.models["unet"].config
    f = bundle.models["unet"].downsample_factor
    c, k, d = cfg.in_channels, cfg.n_null_tokens, cfg.token_dim
    win = WINDOW_MEL_FRAMES // LATENT_DOWNSAMPLE
    B = MAX_BATCH

    def den(extra: bool):
        p = {"sample": ((1, c, f), (8, c, win), (B, c, win)), "timestep": ((1,), (8,), (B,)),
             "tokens": ((1, k, d), (8, k, d), (B, k, d))}
        if extra:
            p["sample"] = ((1, c, f), (4, c, win), (B, c, win))
            p["timestep"] = ((1,), (4,), (B,))
            p["tokens"] = ((1, k, d), (4, k, d), (B, k, d))
            cc = bundle.models["controlnet"].config.control_channels
            p["controls"] = ((1, cc, 4 * f), (4, cc, 4 * win), (B, cc, 4 * win))
            p["control_scale"] = ((1,), (1,), (1,))
        return p

    lat_max = DECODE_CHUNK_LATENT + 2 * DECODE_MARGIN_LATENT
    mel_max = VOCODE_CHUNK_MEL + 2 * VOCODE_MARGIN_MEL
    out = {ec.DENOISE_PLAIN: den(False), ec.VAE_DECODER: {
        "latent": ((1, c, 2), (1, c, lat_max), (1, c, lat_max))}}
    if "controlnet" in bundle.models:
        out[ec.DENOISE_CONTROL] = den(True)
    if "vocoder" in bundle.models:
        n = bundle.models["vocoder"].config.n_mels
        out[ec.VOCODER] = {"log_mel": ((1, n, 2), (1, n, mel_max), (1, n, mel_max))}
    return out


def _profile_tag(shapes: dict[str, tuple]) -> str:
    first = next(iter(shapes.values()))
    lo, hi = first[0], first[2]
    return f"b{lo[0]}-{hi[0]}.t{lo[-1]}-{hi[-1]}"


def build_engine(onnx_path: Path, shapes: dict[str, tuple], out_path: Path) -> float:
    """Parse `onnx_path`, build a strongly typed engine with one profile, write it; returns build seconds."""
    import tensorrt as trt

    t0 = time.perf_counter()
    tlog = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(tlog)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, tlog)
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)")
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_bytes(bytes(blob))
    tmp.replace(out_path)
    return time.perf_counter() - t0


def build_engines(bundle: Bundle, cache_dir: Path, manifest: dict[str, Any], *, precision: str = "fp16",
                  force: bool = False, log: Callable[[str], None] | None = None) -> tuple[list[str], list[str]]:
    """Engines for the denoisers, decoder and vocoder; returns (built, reused) file names, updating `manifest`."""
    reason = unavailable_reason()
    if reason:
        raise BackendError(f"--backend trt: {reason}")
    say = log or (lambda m: logger.info("%s", m))
    gpu = ec.gpu_name() or "gpu"
    built, reused = [], []
    for comp, shapes in profiles(bundle).items():
        src = ec.find_artefact(cache_dir, comp, kind="onnx", precision=precision, runtime_prefix="torch")
        if src is None:
            raise BackendError(f"no {precision} ONNX of {comp} in {cache_dir} to build a TensorRT engine from")
        key = ec.ArtefactKey(comp, _profile_tag(shapes), f"trt{trt_version()}", precision, None, gpu)
        f = key.filename(".engine")
        if ec.has_artefact(cache_dir, manifest, f) and not force:
            reused.append(f)
            continue
        say(f"building TensorRT engine {comp} ({precision}) ...")
        secs = build_engine(cache_dir / src["file"], shapes, cache_dir / f)
        ec.record_artefact(manifest, "engine", key, f, source=src["file"], build_s=round(secs, 1),
                           profile={n: [list(s) for s in v] for n, v in shapes.items()})
        built.append(f)
    return built, reused
