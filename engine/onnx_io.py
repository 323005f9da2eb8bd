"""The one PyTorch -> ONNX exporter of the project: torch.export (the dynamo exporter) at one pinned opset, the onnx
checker, and an atomic write (a temporary file replaced into place, so corpus workers racing to fill the same cache
never see half a file).

Every graph goes through `export_onnx`: the film encoder's backbones (semantic EfficientNet-Lite0, a CLIP image
encoder, the facial-expression net; engine/film) for their ONNX Runtime path, and a bundle's graphs (export/, which
the engine may not import, so the exporter lives here and export/ uses it). The legacy TorchScript exporter is not
used: it fails on the attention's dynamic shapes, and one exporter means one opset policy.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import BackendError

OPSET = 20  # >= 18 for the dynamo exporter; 20 is what the measured runs used (docs/runtimes.md)
MAX_BATCH = 4096  # the largest dynamic batch a film backbone accepts (frames per call)


class OnnxExportError(BackendError):
    """An export that failed in the exporter or the checker; names the graph and the cause."""


def batch_dim(name: str = "batch", max_size: int = MAX_BATCH):
    """A dynamic leading axis for `dynamic_shapes` (example inputs should use a batch of 2: torch.export
    specialises axes of size 1)."""
    from torch.export import Dim

    return Dim(name, min=1, max=max_size)


def export_onnx(module, inputs: dict[str, Any], path: str | Path, *, outputs: Sequence[str],
                dynamic_shapes: dict[str, Any] | tuple[Any, ...] | None, what: str, opset: int = OPSET,
                external_data: bool = False) -> dict[str, Any]:
    """Export `module` called on `inputs` (example tensors in forward's order, keyed by the ONNX input names) to
    `path` and check it. `dynamic_shapes` as torch.export takes it (keyed by forward's argument names, or a tuple in
    their order). With `external_data` the weights go to `<path>.data` beside it and `path` is written in place (give
    a fresh folder and move the folder); otherwise the file appears atomically.
    Returns {"export_s", "bytes"}; raises OnnxExportError naming `what`."""
    import onnx
    import torch

    path = Path(path)
    tmp = path if external_data else path.with_name(f".{path.name}.{os.getpid()}.tmp")
    exporter_log = logging.getLogger("torch.onnx")  # notes about torchvision ops these models do not use
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notes
            torch.onnx.export(module.eval(), tuple(inputs.values()), str(tmp), dynamo=True, input_names=list(inputs),
                              output_names=list(outputs), dynamic_shapes=dynamic_shapes, opset_version=opset,
                              external_data=external_data, verbose=False, optimize=True)
        onnx.checker.check_model(str(tmp), full_check=True)
    except Exception as e:  # exporter errors come in many types; one named error for the user
        if not external_data:
            tmp.unlink(missing_ok=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise OnnxExportError(f"{what}: ONNX export failed ({type(e).__name__}: {first})") from e
    finally:
        exporter_log.setLevel(level)
    if not external_data:
        os.replace(tmp, path)
    size = path.stat().st_size + (path.with_name(path.name + ".data").stat().st_size
                                  if external_data and path.with_name(path.name + ".data").is_file() else 0)
    return {"export_s": round(time.perf_counter() - t0, 3), "bytes": size}
