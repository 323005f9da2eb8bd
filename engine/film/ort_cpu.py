"""`cpu_session`: the ONNX Runtime session every film-encoder model runs in (semantic backbones, expressions)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BackendError


def cpu_session(path: str | Path, what: str):
    """An `onnxruntime.InferenceSession` on the CPU for the graph at `path`. Threads follow OMP_NUM_THREADS when
    set; no busy-waiting between ops (on shared cores a spinning thread starves the others). A graph that does not
    load raises BackendError naming `what` and the file."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
        raise BackendError(f"{what}: ONNX Runtime cannot load {path} ({e})") from e
