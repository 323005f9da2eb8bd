"""Render worker processes: each runs one render at a time, so the server's loop never waits for the engine.

Server and worker talk over a `multiprocessing` pipe (our own two processes; this is not the wire) in the typed
messages of `worker_messages`: the server sends `Run` and `Stop`; a worker answers `Ready`, then per job
`Progress`, `Preview` (the draft is in place) and one of `Done`, `Failed`, `Cancelled`.

A job of kind "plan" (a bridge `plan` request) stops after `engine.plan.spec.plan_request`: it publishes only
OUT.plan.json and its result is the plan's summary; no audio is rendered.

Cancel goes through shared memory, not the pipe: the server writes the job's `seq` into `cancel_seq` and the
engine's `should_cancel()` (polled between denoising steps) sees it at once, while the worker is busy rendering.

A worker renders to a hidden partial file beside the output and renames it into place only when the render is
whole (`journal.partial_path`), so a worker killed mid-render leaves nothing at the output path. The output folder
is checked again before the render and when publishing (still the resolved folder the server accepted, still under
an output root: a folder swapped for a symlink after acceptance is refused), and publishing goes through a
descriptor of that folder. Without `overwrite`, the cue and its sidecars are published all or nothing: each is
linked into place only if its name is free (`link(2)` never replaces), and if one is not, the others are taken
back and the job fails with `OutputExists`. On Linux a worker
dies with its server (PR_SET_PDEATHSIG), so an orphan never finishes a job the restarted server re-runs.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import inspect
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..journal import atomic_write_bytes, iter_partial_files, partial_path
from . import worker_messages as wm

log = logging.getLogger(__name__)

WORKER_NICENESS = 5
_PATH_FIELDS = ("output", "video", "midi", "reference_audio", "bundle", "plan")


class OutputExists(Exception):
    """Publishing without overwrite found one of the cue's files already there (created after acceptance)."""

    ename = "OutputExists"


class OutputMoved(Exception):
    """The output folder is no longer the one accepted (a symlink swapped in) or left the output roots."""

    ename = "PathNotAllowed"


_SERVER_ONLY = ("timeline", "film_features", "output_roots", "overwrite", "plan_spec", "kind", "preview", "variations")


def request_from_json(d: dict[str, Any]):  # -> RenderRequest (engine imported lazily: workers pay for it, not us)
    from filmscore.engine.request import RenderRequest

    kw = {k: v for k, v in d.items() if k not in _SERVER_ONLY}
    for k in _PATH_FIELDS:
        if kw.get(k) is not None:
            kw[k] = Path(kw[k])
    kw["hits_s"] = tuple(kw.get("hits_s") or ())
    return RenderRequest(**kw)


def result_to_json(result: Any) -> dict[str, Any]:
    d = asdict(result) if hasattr(result, "__dataclass_fields__") else dict(result)
    return json.loads(json.dumps(d, default=str))  # Paths (at any depth) become strings; the journal stores JSON


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (workers and the gateway never outlive the server)."""
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


def open_output_dir(output: Path, roots: list[str] | None) -> int:
    """A descriptor of `output`'s folder after checking it is still what the server accepted: the resolved path
    (no component swapped for a symlink since) under one of `roots`. `OutputMoved` otherwise."""
    parent = output.parent
    real = Path(os.path.realpath(parent))
    if real != parent or (roots and not any(real.is_relative_to(r) for r in roots)):
        raise OutputMoved(f"output folder {parent} now leads to {real}, not the folder accepted; refusing to write")
    fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    st, now = os.fstat(fd), os.stat(real)
    if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):  # swapped between the check and the open
        os.close(fd)
        raise OutputMoved(f"output folder {parent} changed while it was opened; refusing to write")
    return fd


def check_free(output: Path, draft: bool = False) -> None:
    """`OutputExists` if the cue or one of its sidecars (named by the engine) already exists, or, with `draft`, its
    draft (`draft_path`)."""
    from filmscore.engine.render import sidecar_paths

    names = (*sidecar_paths(output).values(), output, *((draft_path(output),) if draft else ()))
    taken = [p.name for p in names if os.path.lexists(p)]
    if taken:
        raise OutputExists(f"{', '.join(taken)} already exist(s) beside {output.name}; send overwrite=true to "
                           "replace the cue and its sidecars")


def _publish(job_id: str, output: Path, result: dict[str, Any], *, overwrite: bool = True,
             roots: list[str] | None = None, takes: int = 1) -> dict[str, Any]:
    """Move everything the render wrote for `job_id` from its partial name to its final one (sidecars first, the
    WAV last, so the WAV's appearance means the cue is complete), and point the paths in the result and in the
    JSON sidecars at the final names. Renames go through a descriptor of the re-checked output folder; without
    `overwrite` every file is linked only where its name is free, and all are taken back if one is not. `takes`
    N > 1: the render wrote takes (OUT.take1.wav ...) and no OUT.wav; every take's WAV comes last."""
    from .editor_jobs import take_wavs

    part = partial_path(output, job_id)
    wavs = take_wavs(output, job_id, takes)
    old_prefix, new_prefix = str(part.with_suffix("")), str(output.with_suffix(""))
    dir_fd = open_output_dir(output, roots)
    try:
        for wav in wavs:
            try:
                os.stat(wav.name, dir_fd=dir_fd)
            except FileNotFoundError:
                raise RuntimeError(f"the renderer reported success but wrote no {wav.name}") from None
        moves: list[tuple[str, str]] = []
        for src in list(iter_partial_files(output, job_id, temps=False)):
            if src in wavs:
                continue
            dst = Path(new_prefix + str(src)[len(old_prefix):])
            if src.suffix == ".json":
                try:
                    doc = json.loads(src.read_text())
                except ValueError:
                    doc = None
                if doc is not None:  # rewritten in place (same partial name) with the final paths
                    atomic_write_bytes(src, (json.dumps(_replace_paths(doc, old_prefix, new_prefix), indent=2,
                                                        default=str) + "\n").encode())
            moves.append((src.name, dst.name))
        moves += [(w.name, Path(new_prefix + str(w)[len(old_prefix):]).name) for w in wavs]  # the WAVs last
        if overwrite:
            for src_name, dst_name in moves:
                os.replace(src_name, dst_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            linked: list[str] = []
            try:
                for src_name, dst_name in moves:
                    os.link(src_name, dst_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                    linked.append(dst_name)
            except FileExistsError as e:
                for name in linked:  # all or nothing: take back what this job had put in place
                    os.unlink(name, dir_fd=dir_fd)
                raise OutputExists(f"{e.filename2 or e.filename or 'a file'} appeared beside {output.name} while "
                                   "the job ran; nothing was replaced (send overwrite=true to replace)") from None
            for src_name, _ in moves:
                os.unlink(src_name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return _replace_paths(result, old_prefix, new_prefix)


def _publish_plan(job_id: str, output: Path, *, overwrite: bool = True,
                  roots: list[str] | None = None) -> dict[str, Any]:
    """Move a `plan` job's OUT.<job>.partial.plan.json to OUT.plan.json (through a descriptor of the re-checked
    output folder; without `overwrite` only if that name is free) and return its summary."""
    from filmscore.engine.plan.plan import CuePlan
    from filmscore.engine.plan.spec import plan_path, plan_summary

    part, final = plan_path(partial_path(output, job_id)), plan_path(output)
    summary = plan_summary(CuePlan.load(part), final)
    dir_fd = open_output_dir(output, roots)
    try:
        if overwrite:
            os.replace(part.name, final.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            try:
                os.link(part.name, final.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                raise OutputExists(f"{final.name} appeared beside {output.name} while the job ran; nothing was "
                                   "replaced (send overwrite=true to replace)") from None
            os.unlink(part.name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return summary


_NO_SPACE = tuple(os.strerror(n).lower() for n in (errno.ENOSPC, errno.EDQUOT))


def _says_no_space(e: BaseException) -> bool:
    """Whether `e`, or an exception it was raised from (even `from None`), is a full disk: ENOSPC/EDQUOT, or a
    message carrying that errno's text (engine.render.write_atomically names a full disk in its FilmscoreError, and
    by the time the job fails the partial file is deleted, so free space alone may no longer show it)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(cur).lower() for t in _NO_SPACE):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _failure(e: BaseException, output: Path) -> tuple[str, str]:
    """(ename, message) for a failed render; a full disk is named as such whatever layer noticed it (libsndfile
    reports ENOSPC only as "System error")."""
    msg = f"{e}".splitlines()[0] if str(e) else type(e).__name__
    nospace = _says_no_space(e)
    if not nospace:
        try:
            nospace = shutil.disk_usage(output.parent).free < 16 * 1024 * 1024
        except OSError:
            pass
    if nospace:
        return "DiskFull", f"no space left on the device of {output.parent} ({type(e).__name__}: {msg})"
    from filmscore.engine.errors import FilmscoreError

    ename = getattr(e, "ename", None) or (type(e).__name__ if isinstance(e, FilmscoreError) else None)
    return (ename, msg) if ename else ("InternalError", f"{type(e).__name__}: {msg}")


def draft_path(output: Path) -> Path:
    """Where a job that asked for a preview publishes its draft: OUT.draft.wav beside OUT.wav."""
    output = Path(output)
    return output.with_name(f"{output.stem}.draft{output.suffix}")


def _publish_draft(job_id: str, output: Path, roots: list[str] | None) -> Path:
    """Rename the job's draft from its partial name to `draft_path(output)` through a descriptor of the re-checked
    output folder (as `_publish` does the cue), replacing an earlier draft: whether one may be replaced was decided
    when the job was accepted (a retried job replaces its own)."""
    part, final = partial_path(output, job_id).with_suffix(".draft.wav"), draft_path(output)
    dir_fd = open_output_dir(output, roots)
    try:
        os.replace(part.name, final.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return final


def _cleanup(output: Path, job_id: str, drafted: list[Path] = ()) -> None:
    """Remove what a job that did not finish left: its partial files and the draft it published (a failed or
    cancelled job leaves nothing at the output's names)."""
    for p in (*iter_partial_files(output, job_id), *drafted):
        p.unlink(missing_ok=True)


def worker_main(conn: Connection, cancel_seq: Any, renderer: str, threads: int = 1) -> None:
    """Entry point of a worker process. `threads`: its share of the cores (`ServerConfig.worker_threads`), unless
    OMP_NUM_THREADS says otherwise (set before torch is imported, which reads it)."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us in order
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        # Renders are batch work; the server's request loop is interactive. A lower priority lets the loop answer
        # in about a millisecond even when renders fill every core.
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    parent = os.getppid()
    from filmscore.engine.errors import FilmscoreError, RenderCancelled, RequestError

    render = _load_renderer(renderer)
    wm.send(conn, wm.Ready(os.getpid()))
    while True:
        try:
            msg = wm.recv(conn)
        except (EOFError, OSError):
            return  # the server is gone
        if isinstance(msg, wm.Stop):
            return
        assert isinstance(msg, wm.Run), msg
        seq, job_id, request_json, output = msg.seq, msg.job_id, msg.request, Path(msg.output)

        def progress(stage: str, fraction: float, message: str = "", _seq: int = seq) -> None:
            wm.send(conn, wm.Progress(_seq, str(stage), float(fraction), str(message)))

        def should_cancel(_seq: int = seq) -> bool:
            return cancel_seq.value == _seq or os.getppid() != parent

        drafted: list[Path] = []  # the draft this job published, taken back if the job does not finish

        def draft_ready(_path: Path, seconds: float, _seq: int = seq, _job: str = job_id, _out: Path = output,
                        _roots: list[str] | None = request_json.get("output_roots")) -> None:
            drafted.append(_publish_draft(_job, _out, _roots))
            wm.send(conn, wm.Preview(_seq, str(drafted[-1]), draft_steps, float(seconds)))

        draft_steps = 0  # set below when the job asked for a draft (read by draft_ready when it is written)
        try:
            roots = request_json.get("output_roots")
            kind = request_json.get("kind")
            if kind == "conform":  # its output is the new folder's manifest: the folder is made here, under a root
                os.close(open_output_dir(output.parent, roots))
                output.parent.mkdir(exist_ok=True)
            os.close(open_output_dir(output, roots))  # refuse before any work when the folder moved
            if kind in ("regenerate", "conform"):  # the editor's loop (editor_jobs.py)
                from . import editor_jobs

                if kind == "conform":
                    wm.send(conn, wm.Done(seq, editor_jobs.run_conform(request_json, progress, should_cancel)))
                    continue
                if not request_json.get("overwrite", True):
                    check_free(output)
                result = editor_jobs.run_regenerate(job_id, output, request_json, progress, should_cancel)
                wm.send(conn, wm.Done(seq, _publish(job_id, output, result_to_json(result),
                                                    overwrite=request_json.get("overwrite", True), roots=roots)))
                continue
            takes = int(request_json.get("variations") or 1)
            if takes > 1 and not request_json.get("overwrite", True):
                from . import editor_jobs

                for take in editor_jobs.final_takes(output, takes):
                    check_free(take)
            if not request_json.get("overwrite", True) and request_json.get("kind") != "plan":
                check_free(output, request_json.get("preview") is not None)  # a plan job: OUT.plan.json, below
            request = request_from_json({**request_json, "output": str(partial_path(output, job_id))})
            if request_json.get("timeline"):
                from .timeline_jobs import timeline_request

                request = timeline_request(request, request_json["timeline"], progress)
            if request_json.get("plan_spec"):  # the plan `filmscore render --tempo ...` makes, beside the cue
                from filmscore.engine.plan.spec import PlanSpec, plan_path, plan_request

                if not request_json.get("overwrite", True) and os.path.lexists(plan_path(output)):
                    raise OutputExists(f"{plan_path(output).name} already exists beside {output.name}; send "
                                       "overwrite=true to replace the cue and its plan")
                request = plan_request(request, PlanSpec.from_json(request_json["plan_spec"]),
                                       plan_path(request.output),
                                       progress=lambda f, m: progress("picture", f, m))
                if request_json.get("kind") == "plan":  # a `plan` request: the plan is the result, no audio
                    if should_cancel():
                        raise RenderCancelled("cancelled before the plan was published")
                    summary = _publish_plan(job_id, output, overwrite=request_json.get("overwrite", True), roots=roots)
                    wm.send(conn, wm.Done(seq, summary))
                    continue
            if should_cancel():  # cancelled while the timeline's picture was being encoded
                raise RenderCancelled("cancelled before denoising step 0")
            extra = {}
            if request_json.get("preview") is not None:  # a draft first (protocol.PreviewSpec)
                if "preview" not in inspect.signature(render).parameters:
                    raise RequestError(f"this server's renderer ({renderer}) does not make drafts; send the render "
                                       "without preview")
                from filmscore.engine.render import PREVIEW_STEPS, Preview

                draft = Preview(partial_path(output, job_id).with_suffix(".draft.wav"),
                                request_json["preview"].get("steps") or PREVIEW_STEPS, on_ready=draft_ready)
                draft_steps = draft.steps_for(request.steps)
                extra["preview"] = draft
            if takes > 1:  # takes of one request, denoised together (issue 20)
                if "variations" not in inspect.signature(render).parameters:
                    raise RequestError(f"this server's renderer ({renderer}) does not render variations; send the "
                                       "render without variations")
                extra["variations"] = takes
            result = render(request, progress=progress, should_cancel=should_cancel, **extra)
            wm.send(conn, wm.Done(seq, _publish(job_id, output, result_to_json(result),
                                                overwrite=request_json.get("overwrite", True), roots=roots,
                                                takes=takes)))
        except RenderCancelled as e:
            _cleanup(output, job_id, drafted)
            wm.send(conn, wm.Cancelled(seq, str(e)))
        except (FilmscoreError, OutputExists, OutputMoved) as e:
            _cleanup(output, job_id, drafted)
            wm.send(conn, wm.Failed(seq, *_failure(e, output)))
        except Exception as e:  # noqa: BLE001 - a bug in a render must fail its job, not the worker
            _cleanup(output, job_id, drafted)
            traceback.print_exc(file=sys.stderr)
            wm.send(conn, wm.Failed(seq, *_failure(e, output)))


class WorkerHandle:
    """The server's view of one worker process."""

    def __init__(self, ctx: mp.context.BaseContext, renderer: str, index: int, threads: int = 1) -> None:
        self.index = index
        self.cancel_seq = ctx.Value("q", -1, lock=False)
        self.conn, child = ctx.Pipe(duplex=True)
        try:
            self.process = ctx.Process(target=worker_main, args=(child, self.cancel_seq, renderer, threads),
                                       name=f"filmscore-worker-{index}", daemon=True)
            self.process.start()
        except BaseException:  # e.g. EMFILE while spawning: give the pipe's descriptors back
            self.conn.close()
            raise
        finally:
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
        wm.send(self.conn, wm.Run(seq, job_id, request_json, str(output)))

    def cancel(self) -> None:
        self.cancel_seq.value = self.seq

    def clear(self) -> None:
        self.job_id, self.output, self.progress = None, None, {}

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to exit after its current job; kill it if it does not within `timeout_s`."""
        try:
            wm.send(self.conn, wm.Stop())
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
