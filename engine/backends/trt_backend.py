"""The TensorRT backend: engines built by `filmscore export --backend trt` from the bundle's ONNX graphs (fp16
through an fp16 ONNX and a strongly typed network; TensorRT 11 has no builder FP16 flag), one optimisation
profile covering the pipeline's window shapes, run on torch CUDA tensors with `execute_async_v3`.

Engines are specific to the GPU and the TensorRT version: both are in their cache key, and a mismatch means
"not built here", never a crash.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..bundle import Bundle
from ..errors import BackendError
from . import cache as ec
from .base import Backend

_TRT_DTYPES: dict[str, torch.dtype] = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32,
                                       "INT64": torch.int64, "BOOL": torch.bool}


def trt_version() -> str | None:
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return str(trt.__version__)


def unavailable_reason() -> str | None:
    """Why TensorRT cannot run here (None: it can)."""
    if trt_version() is None:
        return "TensorRT is not installed (pip install 'filmscore[gpu]' on a machine with an NVIDIA GPU)"
    if ec.gpu_name() is None:
        return "no CUDA GPU visible to torch"
    return None


class TrtGraph:
    """One engine + execution context; `graph(name=tensor, ...)` -> output as a CPU float32 tensor."""

    def __init__(self, engine_bytes: bytes, name: str):
        import tensorrt as trt

        self.name = name
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise BackendError(f"TensorRT could not deserialise engine {name} (built by another TensorRT or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = torch.cuda.Stream()

    def __call__(self, **feeds: torch.Tensor) -> torch.Tensor:
        keep = []
        with torch.cuda.stream(self.stream):
            for n in self.inputs:
                want = _TRT_DTYPES[self.engine.get_tensor_dtype(n).name]
                t = feeds[n].to("cuda", want, non_blocking=True).contiguous()
                keep.append(t)
                self.context.set_input_shape(n, tuple(t.shape))
                self.context.set_tensor_address(n, t.data_ptr())
            out_name = self.outputs[0]
            shape = tuple(self.context.get_tensor_shape(out_name))
            out = torch.empty(shape, dtype=_TRT_DTYPES[self.engine.get_tensor_dtype(out_name).name], device="cuda")
            self.context.set_tensor_address(out_name, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError(f"TensorRT engine {self.name} failed to run on shapes "
                                   f"{ {k: tuple(v.shape) for k, v in feeds.items()} } (outside its profile?)")
        self.stream.synchronize()
        return out.float().cpu()


class TrtDenoiser:
    def __init__(self, plain: TrtGraph, control: TrtGraph | None):
        self.plain, self.control = plain, control

    def __call__(self, sample, timestep, tokens, controls, control_scale):
        if controls is None or self.control is None:
            return self.plain(sample=sample, timestep=timestep, tokens=tokens)
        return self.control(sample=sample, timestep=timestep, tokens=tokens, controls=controls,
                            control_scale=torch.tensor([float(control_scale)]))


def load_trt(bundle: Bundle, *, precision: str = "fp16") -> Backend:
    """Engines of `bundle` for this GPU and TensorRT version. Raises BackendError naming what is missing."""
    reason = unavailable_reason()
    if reason:
        raise BackendError(f"trt backend: {reason}")
    t0 = time.perf_counter()
    gpu = ec.gpu_name() or ""
    cache_dir = ec.bundle_cache_dir(bundle.path, bundle.hash)
    graphs: dict[str, TrtGraph] = {}
    files: dict[str, Any] = {}
    for comp, model in ((ec.DENOISE_PLAIN, "unet"), (ec.DENOISE_CONTROL, "controlnet"), (ec.VAE_DECODER, "vae"),
                        (ec.VOCODER, "vocoder")):
        if model not in bundle.models:
            continue
        entry = ec.find_artefact(cache_dir, comp, kind="engine", precision=precision,
                                 runtime_prefix=f"trt{trt_version()}", device=gpu)
        if entry is None:
            raise BackendError(f"bundle {bundle.name} ({bundle.hash}) has no {precision} TensorRT engine of {comp} "
                               f"for {gpu} and TensorRT {trt_version()}; run `filmscore export --backend trt "
                               f"--bundle {bundle.path}`")
        graphs[comp] = TrtGraph((cache_dir / entry["file"]).read_bytes(), comp)
        files[comp] = entry["file"]
    head = bundle.models.get("film_head")  # a few kFLOP per window: not worth an engine
    dec, voc = graphs[ec.VAE_DECODER], graphs.get(ec.VOCODER)
    info = {"precision": precision, "trt": trt_version(), "files": files, "cache_dir": str(cache_dir),
            "load_s": round(time.perf_counter() - t0, 3)}
    return Backend("trt", gpu, TrtDenoiser(graphs[ec.DENOISE_PLAIN], graphs.get(ec.DENOISE_CONTROL)),
                   lambda z: dec(latent=z), (lambda m: voc(log_mel=m)) if voc is not None else None, head, info,
                   parallel_calls=False)  # one execution context per engine: calls must not overlap
