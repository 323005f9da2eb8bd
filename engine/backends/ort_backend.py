"""The ONNX Runtime backend: the bundle's exported graphs (`filmscore export`) in ORT sessions.

Execution providers: CPU by default; CUDA when `onnxruntime-gpu` is installed and a GPU is visible, with IO
binding (outputs stay on the device until the one copy back, buffers reused across calls); TensorRT's EP when
asked for (`ep="tensorrt"`, engines cached in the export cache). CPU threads: one intra-op thread per session
call, inter-op 1, `session.intra_op.allow_spinning=0`; the thread count asked (default torch's) is how many calls
the pipeline runs at once (engine/threads.py): the same output at any count, and nothing spins on a busy machine
(spinning threads made two threads slower than one on a busy 2-core machine, MEASURED.md, "Runtimes").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..bundle import Bundle
from ..errors import BackendError
from . import cache as ec
from .base import Backend

logger = logging.getLogger(__name__)

OrtEP = Literal["auto", "cpu", "cuda", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8"]


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_ep(ep: OrtEP) -> str:
    """"auto": CUDA when ORT has the CUDA EP and torch (or ORT) sees a GPU, else CPU."""
    provs = available_providers()
    if ep == "auto":
        return "cuda" if "CUDAExecutionProvider" in provs and ec.gpu_name() is not None else "cpu"
    need = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
            "tensorrt": "TensorrtExecutionProvider"}[ep]
    if need not in provs:
        raise BackendError(f"ONNX Runtime {ep} execution provider is not available here (installed: "
                           f"{', '.join(provs)}; the GPU providers come with `pip install onnxruntime-gpu`)")
    return ep


def session_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # warnings about fused-node fallbacks are not the user's concern
    return so


def providers_for(ep: str, cache_dir: Path, fp16: bool) -> list[Any]:
    if ep == "cpu":
        return ["CPUExecutionProvider"]
    if ep == "cuda":
        return [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    trt_cache = cache_dir / "ort-trt"
    trt_cache.mkdir(parents=True, exist_ok=True)
    return [("TensorrtExecutionProvider", {"device_id": 0, "trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
                                           "trt_engine_cache_path": str(trt_cache)}),
            ("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]


class OrtGraph:
    """One session; `graph(name=tensor, ...)` -> the output as a CPU float32 torch tensor."""

    def __init__(self, path: Path, so, providers: list[Any], io_binding: bool):
        import onnxruntime as ort

        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # ORT raises several types; one named error for the user
            raise BackendError(f"ONNX Runtime cannot load {path.name} ({str(e).splitlines()[0]})") from e
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.io_binding = io_binding

    def __call__(self, **feeds: torch.Tensor) -> torch.Tensor:
        arrays = {k: np.ascontiguousarray(v.detach().to("cpu", torch.float32).numpy()) for k, v in feeds.items()}
        if not self.io_binding:
            return torch.from_numpy(self.session.run([self.output], arrays)[0])
        binding = self.session.io_binding()
        for name, arr in arrays.items():
            binding.bind_cpu_input(name, arr)
        binding.bind_output(self.output, "cuda", 0)  # ORT allocates on the device; one copy back below
        self.session.run_with_iobinding(binding)
        return torch.from_numpy(binding.copy_outputs_to_cpu()[0])


class OrtDenoiser:
    """The pipeline's denoiser over the fused ControlNet+UNet graph and the UNet-only graph."""

    def __init__(self, plain: OrtGraph, control: OrtGraph | None):
        self.plain, self.control = plain, control

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor,
                 controls: torch.Tensor | None, control_scale: float) -> torch.Tensor:
        if controls is None or self.control is None:
            return self.plain(sample=sample, timestep=timestep, tokens=tokens)
        return self.control(sample=sample, timestep=timestep, tokens=tokens, controls=controls,
                            control_scale=torch.tensor([float(control_scale)]))


def graph_file(cache_dir: Path, component: str, precision: Precision) -> Path | None:
    """The best file for `component`: ORT-optimised for this ORT version, else the raw export."""
    import onnxruntime as ort

    entry = ec.find_artefact(cache_dir, component, kind="ort", precision=precision,
                             runtime_prefix=f"ort{ort.__version__}")
    if entry is None:
        entry = ec.find_artefact(cache_dir, component, kind="onnx", precision=precision, runtime_prefix="torch")
    return cache_dir / entry["file"] if entry is not None else None


def int8_graphs(cache_dir: Path, threads: int) -> dict[str, bool]:
    """{component: int8 measured faster than fp32 here} from speed.json; {} when not measured (then int8 is used
    for every graph that has an int8 variant)."""
    entry = ec.read_json(cache_dir / ec.SPEED).get("machines", {}).get(ec.speed_key(threads), {})
    return {c: bool(v.get("int8_faster")) for c, v in entry.get("int8_graphs", {}).items()}


def load_ort(bundle: Bundle, *, threads: int | None = None, ep: OrtEP = "auto",
             precision: Precision = "fp32") -> Backend:
    """Sessions for every exported graph of `bundle`. Raises BackendError when the bundle was not exported for
    ONNX Runtime (with the command that does it) or a session cannot be created."""
    t0 = time.perf_counter()
    threads = threads or torch.get_num_threads()
    ep_name = resolve_ep(ep)
    cache_dir = ec.bundle_cache_dir(bundle.path, bundle.hash)
    files: dict[str, Path] = {}
    int8_choice = int8_graphs(cache_dir, threads) if precision == "int8" else {}
    for comp in (ec.DENOISE_PLAIN, ec.DENOISE_CONTROL, ec.VAE_DECODER, ec.VOCODER, ec.FILM_HEAD):
        prec = precision
        if comp in int8_choice and not int8_choice[comp]:
            prec = "fp32"  # measured slower in int8 on this machine: int8 only where it helps
        f = graph_file(cache_dir, comp, prec)
        if f is None and prec != "fp32":  # int8/fp16 variants exist for the heavy graphs only
            f = graph_file(cache_dir, comp, "fp32")
        if f is not None:
            files[comp] = f
    for comp, model in ((ec.DENOISE_PLAIN, "unet"), (ec.DENOISE_CONTROL, "controlnet"), (ec.VAE_DECODER, "vae"),
                        (ec.VOCODER, "vocoder"), (ec.FILM_HEAD, "film_head")):
        if model in bundle.models and comp not in files:
            raise BackendError(f"bundle {bundle.name} ({bundle.hash}) has no {precision} ONNX export of {comp} in "
                               f"{cache_dir}; run `filmscore export --bundle {bundle.path}`")
    # On the CPU every session call runs on one thread; the pipeline runs independent calls on `threads` workers
    # (engine/threads.py), so the output does not depend on the thread count and no ORT pool spins under load.
    so = session_options(1 if ep_name == "cpu" else threads)
    provs = providers_for(ep_name, cache_dir, precision == "fp16")
    io = ep_name in ("cuda", "tensorrt")
    graphs = {c: OrtGraph(f, so, provs, io) for c, f in files.items()}
    denoiser = OrtDenoiser(graphs[ec.DENOISE_PLAIN], graphs.get(ec.DENOISE_CONTROL))
    dec = graphs[ec.VAE_DECODER]
    voc, head = graphs.get(ec.VOCODER), graphs.get(ec.FILM_HEAD)
    device = "cpu" if ep_name == "cpu" else (ec.gpu_name() or "cuda")
    info = {"threads": threads, "precision": precision, "ep": ep_name,
            "int8_graphs": sorted(c for c, f in files.items() if "-int8" in f.name),
            "providers": graphs[ec.DENOISE_PLAIN].session.get_providers(), "io_binding": io,
            "files": {c: f.name for c, f in files.items()}, "cache_dir": str(cache_dir),
            "load_s": round(time.perf_counter() - t0, 3)}
    return Backend("ort", device, denoiser, lambda z: dec(latent=z),
                   (lambda m: voc(log_mel=m)) if voc is not None else None,
                   (lambda f: head(frames=f)) if head is not None else None, info, parallel_calls=not io)
