"""`load_backend(name, bundle)`: the runtime a render asks for, or for "auto" the fastest one available here.

"auto" reads the speeds measured on this machine at this thread count (`speed.json` in the bundle's export cache,
written by `filmscore export` and `filmscore bench backends`) and picks the fastest backend it can load; every
backend it does not pick gets a one-line reason in `Backend.info["skipped"]`. Without a measurement it takes the
first that loads of TensorRT, ONNX Runtime (CUDA, else CPU: the bundle must have been exported) and PyTorch: with
one thread per call on both CPU runtimes (engine/threads.py), ORT measured 0.45 s against PyTorch's 0.87 s per
step of a picture-and-theme 60 s cue in one run on a busy 2-core machine (bench/results/backends_default_2threads.json). Loaded backends are
kept per process (a bridge worker renders many cues with one bundle): ORT sessions and TensorRT engines
load once.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..bundle import Bundle
from ..errors import BackendError, RequestError
from . import cache as ec
from .base import Backend

logger = logging.getLogger(__name__)

NAMES = ("auto", "torch", "ort", "trt")
_LOADED: dict[tuple, Backend] = {}


def _load(name: str, bundle: Bundle, threads: int, precision: str | None) -> Backend:
    if name == "torch":  # the bundle's own modules: nothing to load, nothing to keep
        from .torch_backend import load_torch

        return load_torch(bundle)
    key = (bundle.hash, str(bundle.path), name, threads, precision)
    if key in _LOADED:
        return _LOADED[key]
    if name == "ort":
        from .ort_backend import load_ort

        backend = load_ort(bundle, threads=threads, precision=precision or "fp32")
    else:
        from .trt_backend import load_trt

        backend = load_trt(bundle, precision=precision or "fp16")
    if len(_LOADED) >= 4:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = backend
    return backend


def measured_speeds(bundle: Bundle, threads: int) -> dict[str, float]:
    """Seconds per denoising step by backend name, measured on this machine with `threads` (GPU backends under
    the GPU's name)."""
    data = ec.read_json(ec.bundle_cache_dir(bundle.path, bundle.hash) / ec.SPEED).get("machines", {})
    out: dict[str, float] = {}
    for key in (ec.speed_key(threads), ec.speed_key(threads, ec.gpu_name()) if ec.gpu_name() else None):
        if key and key in data:
            out.update({k: float(v) for k, v in data[key].get("s_per_step", {}).items()})
    return out


def load_backend(name: str, bundle: Bundle, *, threads: int | None = None, precision: str | None = None) -> Backend:
    """The backend `name` ("auto", "torch", "ort", "trt") for `bundle`. An explicit name that cannot load raises
    BackendError saying why; "auto" falls back and records the reasons."""
    if name not in NAMES:
        raise RequestError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    threads = threads or torch.get_num_threads()
    if name != "auto":
        return _load(name, bundle, threads, precision)

    speeds = measured_speeds(bundle, threads)
    skipped: dict[str, str] = {}
    candidates: list[str] = []
    from .trt_backend import unavailable_reason

    why_not_trt = unavailable_reason()
    if why_not_trt:
        skipped["trt"] = why_not_trt
    else:
        candidates.append("trt")
    candidates += ["ort", "torch"]
    if speeds:  # fastest measured first; unmeasured ones after, in the default order
        order = sorted(candidates, key=lambda n: speeds.get(n, float("inf")))
    else:  # nothing measured: TensorRT, then ORT where the bundle was exported (its graphs load), then PyTorch
        order = candidates
    chosen: Backend | None = None
    for n in order:
        try:
            chosen = _load(n, bundle, threads, None)
            break
        except BackendError as e:
            skipped[n] = str(e)
    if chosen is None:
        raise BackendError(f"no backend could load bundle {bundle.name}: " +
                           "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    for n in candidates:
        if n == chosen.name or n in skipped:
            continue
        if n in speeds and chosen.name in speeds:
            skipped[n] = (f"slower here: {speeds[n]:.4f} s/step against {chosen.name} {speeds[chosen.name]:.4f} "
                          f"s/step at {threads} threads")
        else:
            skipped[n] = (f"no speed measured for it on this machine at {threads} threads (filmscore export or "
                          "filmscore bench backends measures it)")
    reason: dict[str, Any] = {"auto": True, "chosen_because": (
        f"fastest measured here ({speeds[chosen.name]:.4f} s/step, {threads} threads)" if chosen.name in speeds
        else "the faster measured backends could not load (see skipped)" if speeds
        else "first available in the default order (nothing measured)"), "skipped": skipped}
    view = Backend(chosen.name, chosen.device, chosen.denoiser, chosen.decode, chosen.vocode, chosen.film_tokens,
                   {**chosen.info, **reason}, chosen.parallel_calls)
    logger.info("backend auto -> %s (%s); skipped: %s", chosen.name, reason["chosen_because"], skipped)
    return view
