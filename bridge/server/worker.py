"""Render worker processes: each runs one render at a time, so the server's loop never waits for the engine.

Server and worker talk over a `multiprocessing` pipe (our own two processes; this is not the wire):

    server -> worker   ("run", seq, job_id, request_json, output)   ("stop",)
    worker -> server   ("ready", pid)  ("progress", seq, stage, fraction, message)
                       ("done", seq, result_json)  ("failed", seq, ename, message)  ("cancelled", seq, message)

Cancel goes through shared memory, not the pipe: the server writes the job's `seq` into `cancel_seq` and the
engine's `should_cancel()` (polled between denoising steps) sees it at once, while the worker is busy rendering.

A worker renders to a hidden partial file beside the output and renames it into place only when the render is
whole (`journal.partial_path`), so a worker killed mid-render leaves nothing at the output path. On Linux a worker
dies with its server (PR_SET_PDEATHSIG), so an orphan never finishes a job the restarted server re-runs.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..journal import atomic_write_bytes, iter_partial_files, partial_path

log = logging.getLogger(__name__)

WORKER_NICENESS = 5
_PATH_FIELDS = ("output", "video", "midi", "reference_audio", "bundle")


def request_from_json(d: dict[str, Any]):  # -> RenderRequest (engine imported lazily: workers pay for it, not us)
    from filmscore.engine.request import RenderRequest

    kw = {k: v for k, v in d.items() if k not in ("timeline", "film_features")}
    for k in _PATH_FIELDS:
        if kw.get(k) is not None:
            kw[k] = Path(kw[k])
    kw["hits_s"] = tuple(kw.get("hits_s") or ())
    return RenderRequest(**kw)


def result_to_json(result: Any) -> dict[str, Any]:
    d = asdict(result) if hasattr(result, "__dataclass_fields__") else dict(result)
    return json.loads(json.dumps(d, default=str))  # Paths (at any depth) become strings; the journal stores JSON


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass


def _load_renderer(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _replace_paths(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, str):
        return new + obj[len(old):] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {k: _replace_paths(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_paths(v, old, new) for v in obj]
    return obj


def _publish(job_id: str, output: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Move everything the render wrote for `job_id` from its partial name to its final one (sidecars first, the
    WAV last, so the WAV's appearance means the cue is complete), and point the paths in the result and in the
    JSON sidecars at the final names."""
    part = partial_path(output, job_id)
    old_prefix, new_prefix = str(part.with_suffix("")), str(output.with_suffix(""))
    if not part.is_file():
        raise RuntimeError(f"the renderer reported success but wrote no {part.name}")
    for src in list(iter_partial_files(output, job_id, temps=False)):
        if src == part:
            continue
        dst = Path(new_prefix + str(src)[len(old_prefix):])
        if src.suffix == ".json":
            try:
                doc = json.loads(src.read_text())
            except ValueError:
                doc = None
            if doc is not None:
                atomic_write_bytes(dst, (json.dumps(_replace_paths(doc, old_prefix, new_prefix), indent=2,
                                                    default=str) + "\n").encode())
                src.unlink()
                continue
        os.replace(src, dst)
    os.replace(part, output)
    return _replace_paths(result, old_prefix, new_prefix)


def _cleanup(output: Path, job_id: str) -> None:
    for p in iter_partial_files(output, job_id):
        p.unlink(missing_ok=True)


def worker_main(conn: Connection, cancel_seq: Any, renderer: str) -> None:
    """Entry point of a worker process."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us in order
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        # Renders are batch work; the server's request loop is interactive. A lower priority lets the loop answer
        # in about a millisecond even when renders fill every core.
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    parent = os.getppid()
    from filmscore.engine.errors import FilmscoreError, RenderCancelled

    render = _load_renderer(renderer)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if msg[0] == "stop":
            return
        _, seq, job_id, request_json, output_str = msg
        output = Path(output_str)

        def progress(stage: str, fraction: float, message: str = "", _seq: int = seq) -> None:
            conn.send(("progress", _seq, str(stage), float(fraction), str(message)))

        def should_cancel(_seq: int = seq) -> bool:
            return cancel_seq.value == _seq or os.getppid() != parent

        try:
            request = request_from_json({**request_json, "output": str(partial_path(output, job_id))})
            if request_json.get("timeline"):
                from .timeline_jobs import timeline_request

                request = timeline_request(request, request_json["timeline"], progress)
            if should_cancel():  # cancelled while the timeline's picture was being encoded
                raise RenderCancelled("cancelled before denoising step 0")
            result = render(request, progress=progress, should_cancel=should_cancel)
            conn.send(("done", seq, _publish(job_id, output, result_to_json(result))))
        except RenderCancelled as e:
            _cleanup(output, job_id)
            conn.send(("cancelled", seq, str(e)))
        except FilmscoreError as e:
            _cleanup(output, job_id)
            conn.send(("failed", seq, getattr(e, "ename", type(e).__name__), str(e).splitlines()[0] if str(e) else ""))
        except Exception as e:  # noqa: BLE001 - a bug in a render must fail its job, not the worker
            _cleanup(output, job_id)
            traceback.print_exc(file=sys.stderr)
            conn.send(("failed", seq, "InternalError", f"{type(e).__name__}: {e}".splitlines()[0]))


class WorkerHandle:
    """The server's view of one worker process."""

    def __init__(self, ctx: mp.context.BaseContext, renderer: str, index: int) -> None:
        self.index = index
        self.cancel_seq = ctx.Value("q", -1, lock=False)
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, self.cancel_seq, renderer),
                                   name=f"filmscore-worker-{index}", daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.started_at = time.monotonic()
        self.job_id: str | None = None
        self.seq = -1
        self.output: Path | None = None
        self.job_started = 0.0
        self.progress: dict[str, Any] = {}
        self.stage_started = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def run(self, seq: int, job_id: str, request_json: dict[str, Any], output: Path) -> None:
        self.seq, self.job_id, self.output = seq, job_id, output
        self.job_started = self.stage_started = time.monotonic()
        self.progress = {}
        self.conn.send(("run", seq, job_id, request_json, str(output)))

    def cancel(self) -> None:
        self.cancel_seq.value = self.seq

    def clear(self) -> None:
        self.job_id, self.output, self.progress = None, None, {}

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to exit after its current job; kill it if it does not within `timeout_s`."""
        try:
            self.conn.send(("stop",))
        except OSError:
            pass
        self.process.join(timeout_s)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "pid": self.pid, "ready": self.ready, "job_id": self.job_id}
