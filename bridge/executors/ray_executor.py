"""`RayExecutor`: cues rendered by Ray actors on this machine or a cluster (`pip install 'filmscore[ray]'`).

Each actor is one render slot with its own resources (`num_cpus`, `num_gpus` from the CLI) and keeps the bundle
resident: it loads it (weights, and the backend's ONNX sessions or TensorRT engines on first use) once, when it
starts, and renders every cue it is given with it. The submitting side:

- schedules the cues longest-first over the actors that are ready, one cue per actor at a time;
- streams each cue's events back as they happen (an actor method that is a generator: "start", every
  "progress" report, then the cue's end), so progress and deliveries arrive while the others still render;
- receives a finished cue's files as bytes through Ray's object store and writes them atomically under the
  task's `request.output` folder, with the worker's paths in the results and JSON sidecars moved to that folder:
  delivery, the batch manifest and the job journal stay on the submitting side;
- retries a cue whose actor died (killed, its node lost) on another actor, up to `max_attempts`, and starts a
  replacement actor; when no actor can be started again (the cluster is gone) it raises `ExecutorError` and the
  cues not yet reported are simply not done: what was delivered stays delivered, a rerun renders the rest.

Inputs (picture media, MIDI theme, reference audio) are read by path by default: the cluster's nodes must see the
same files at the same paths (shared storage). With `ship_inputs=True` the submitting side puts each input file once
into the object store and an actor copies it to its own temporary folder the first time a cue needs it.
The bundle is read by path on every node: the default bundle ships inside the package, a custom one must be at the
same path everywhere (docs/scale_out.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filmscore.engine.errors import FilmscoreError, RenderCancelled
from filmscore.engine.request import CancelFn, RenderResult

from .base import (CueTask, Executor, ExecutorError, RenderFn, TaskEvent, TaskOutput, error_event, longest_first,
                   rebase_paths, render_task)

log = logging.getLogger(__name__)

NAMESPACE = "filmscore"
POLL_S = 0.05  # how often the submitting side looks at should_cancel() while no event arrives


def import_ray():
    """`ray`, or a one-line error saying how to get it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError("the ray executor needs Ray: pip install 'filmscore[ray]'") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How to reach the cluster and what each actor asks of it.

    `address`: None starts a Ray on this machine for the run (`local_num_cpus` CPUs) unless this process is already
    connected; "auto" joins the cluster this machine is part of (`ray start`); "HOST:PORT" a head's GCS address;
    "ray://HOST:10001" through Ray Client. `actors`: None = as many as the cluster's resources hold."""

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    actors: int | None = None
    ship_inputs: bool = False
    max_attempts: int = 3
    local_num_cpus: int | None = None
    ready_timeout_s: float = 300.0


class _RenderActor:
    """The body of a Ray actor (decorated in `_actor_class`): one render at a time, the bundle resident."""

    def __init__(self, bundle: str | None, threads: int, render: RenderFn | None = None) -> None:
        import torch

        from filmscore.engine.render import build_pipeline

        torch.set_num_threads(max(1, threads))  # its share of the node: the actor's num_cpus
        t0 = time.perf_counter()
        build_pipeline(None if bundle is None else Path(bundle))  # loads and caches the bundle in this process
        self.load_s = time.perf_counter() - t0
        self.tmp = Path(tempfile.mkdtemp(prefix="filmscore-actor-"))
        self.inputs: dict[str, str] = {}  # a shipped input's path on the submitting side -> its copy here
        self.cancelled: set[str] = set()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.render = render  # None: the engine's render_cue

    def info(self) -> dict[str, Any]:
        import ray

        return {"worker": self.name, "pid": os.getpid(), "host": socket.gethostname(),
                "node_id": ray.get_runtime_context().get_node_id(), "bundle_load_s": self.load_s}

    def cancel(self, task_id: str) -> None:
        self.cancelled.add(task_id)  # seen by the render's should_cancel() at its next denoising step

    def _materialise(self, shipped: dict[str, Any]) -> tuple[dict[str, str], float]:
        import ray

        t0 = time.perf_counter()
        for path, ref in shipped.items():
            if path not in self.inputs:
                folder = self.tmp / "inputs" / str(len(self.inputs))
                folder.mkdir(parents=True, exist_ok=True)
                local = folder / Path(path).name
                local.write_bytes(ray.get(ref))
                self.inputs[path] = str(local)
        return {p: self.inputs[p] for p in shipped}, time.perf_counter() - t0

    def run(self, task: CueTask, shipped: dict[str, Any]):
        """Generator: ("start", info), ("progress", stage, fraction, message)..., then one of ("done", payload),
        ("failed", ename, message), ("cancelled", message)."""
        yield ("start", self.name)
        events: queue.Queue = queue.Queue()
        work = self.tmp / "cues" / task.task_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)

        def progress(stage: str, fraction: float, message: str = "") -> None:
            # every report, as a local render gives them: the bridge's clients see each denoising step and know
            # where a cancel will land (a few bytes each through the stream)
            events.put(("progress", str(stage), float(fraction), str(message)))

        def body() -> None:
            try:
                media_map, fetch_s = self._materialise(shipped)
                out = render_task(task, work / Path(task.request.output).name, render=self.render, progress=progress,
                                  should_cancel=lambda: task.task_id in self.cancelled, media_map=media_map)
                files = {p.name: p.read_bytes() for p in sorted(work.iterdir()) if p.is_file()}
                out.timings_s["transfer"] = fetch_s
                out.worker = self.name
                events.put(("done", {"output": out, "files": files, "folder": str(work) + os.sep,
                                     "media_map": media_map}))
            except RenderCancelled as e:
                events.put(("cancelled", str(e)))
            except BaseException as e:  # noqa: BLE001 - one cue's failure is its event; the actor serves on
                ev = error_event(task, e)
                if ev.ename == "InternalError":
                    log.error("render of %s failed", task.task_id, exc_info=e)
                events.put(("failed", ev.ename, ev.message))
            finally:
                self.cancelled.discard(task.task_id)

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        while True:
            item = events.get()
            yield item
            if item[0] in ("done", "failed", "cancelled"):
                break
        thread.join()
        shutil.rmtree(work, ignore_errors=True)


def _check_reachable(address: str) -> None:
    """Raise `ExecutorError` at once when nothing listens at a HOST:PORT (or ray://HOST:PORT) address."""
    if address == "auto":
        return  # Ray finds this machine's cluster itself and says at once when there is none
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except OSError as e:
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {e.strerror or e} (is `ray start --head` "
                            "running there?)") from None


_ACTOR_CLASS = None


def _actor_class():
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        ray = import_ray()
        # max_concurrency 2: `cancel` runs while `run` renders. max_restarts 0: a dead actor's cue is retried by
        # us, on whichever actor is free, and counted.
        _ACTOR_CLASS = ray.remote(max_concurrency=2, max_restarts=0)(_RenderActor)
    return _ACTOR_CLASS


@dataclass
class _Slot:
    index: int
    actor: Any
    ready_ref: Any = None  # the `info` call that says the actor has loaded the bundle
    info: dict[str, Any] | None = None
    busy: str | None = None  # the task it renders

    @property
    def name(self) -> str:
        return (self.info or {}).get("worker", f"actor-{self.index}")


class RayExecutor(Executor):
    """Render on Ray actors. `bundle`: the bundle every actor keeps loaded (None: the shipped default). `render`
    replaces the engine's `render_cue` in the actors (tests; it travels pickled)."""

    name = "ray"

    def __init__(self, options: RayOptions | None = None, bundle: Path | str | None = None,
                 render: RenderFn | None = None) -> None:
        self.options = options or RayOptions()
        self.render = render
        if self.options.num_cpus <= 0 or self.options.num_gpus < 0:
            raise ExecutorError(f"ray executor: --num-cpus must be > 0 and --num-gpus >= 0, got "
                                f"{self.options.num_cpus:g} and {self.options.num_gpus:g}")
        self.bundle = None if bundle is None else str(bundle)
        self.slots: list[_Slot] = []
        self._started_ray = False
        self._ray = None
        self._shipped: dict[str, Any] = {}
        self.actors_started = 0
        self.ship_s = 0.0  # seconds spent putting inputs into the object store
        self.fetch_s = 0.0  # seconds spent getting finished cues' bytes out of it

    # -- cluster -------------------------------------------------------------------------------------------------
    def _where(self) -> str:
        return self.options.address or "a local Ray"

    def connect(self) -> None:
        """Join (or start) the cluster and start the actors; they load the bundle in the background."""
        if self._ray is not None:
            return
        ray = import_ray()
        if not ray.is_initialized():
            kw: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False, "include_dashboard": False}
            if self.options.address is None:
                kw["num_cpus"] = self.options.local_num_cpus
            else:
                _check_reachable(self.options.address)  # Ray itself retries an absent head for minutes
                kw["address"] = self.options.address
            try:
                ray.init(**kw)
            except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError: all mean "not there"
                raise ExecutorError(f"cannot reach the Ray cluster at {self._where()}: "
                                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
            self._started_ray = True
        self._ray = ray
        n = self._fitting_actors()
        for i in range(n):
            self.slots.append(self._new_slot(i))

    def _fitting_actors(self) -> int:
        res = self._ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        fits = math.floor(cpus / self.options.num_cpus + 1e-9)
        if self.options.num_gpus > 0:
            fits = min(fits, math.floor(gpus / self.options.num_gpus + 1e-9))
        if fits < 1:
            raise ExecutorError(f"the Ray cluster at {self._where()} has {cpus:g} CPU(s) and {gpus:g} GPU(s); one "
                                f"render actor asks for {self.options.num_cpus:g} CPU(s) and "
                                f"{self.options.num_gpus:g} GPU(s)")
        if self.options.actors is not None:
            if self.options.actors < 1:
                raise ExecutorError(f"ray executor: --actors must be at least 1, got {self.options.actors}")
            return self.options.actors  # more than fit now wait for room (an autoscaling cluster adds nodes)
        return fits

    def _new_slot(self, index: int) -> _Slot:
        actor = _actor_class().options(num_cpus=self.options.num_cpus, num_gpus=self.options.num_gpus).remote(
            self.bundle, max(1, math.ceil(self.options.num_cpus)), self.render)
        self.actors_started += 1
        return _Slot(index, actor, actor.info.remote())

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"executor": self.name, "address": self.options.address, "num_cpus": self.options.num_cpus,
                             "num_gpus": self.options.num_gpus, "ship_inputs": self.options.ship_inputs,
                             "actors": [s.info or {"worker": s.name, "ready": False} for s in self.slots]}
        return d

    def close(self) -> None:
        if self._ray is None:
            return
        for s in self.slots:
            try:
                self._ray.kill(s.actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.slots = []
        self._shipped = {}
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False
        self._ray = None

    # -- inputs and outputs --------------------------------------------------------------------------------------
    def _shipments(self, task: CueTask) -> dict[str, Any]:
        if not self.options.ship_inputs:
            return {}
        out = {}
        for path in task.input_files():
            if path not in self._shipped:
                t0 = time.perf_counter()
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue  # a missing medium is the worker's per-clip "offline" line, as with shared storage
                self._shipped[path] = self._ray.put(data)
                self.ship_s += time.perf_counter() - t0
            out[path] = self._shipped[path]
        return out

    @staticmethod
    def _write_back(task: CueTask, payload: dict[str, Any]) -> TaskOutput:
        """A remote render's files written under the task's output folder, their paths moved there."""
        from filmscore.engine.render import write_atomically

        dest = Path(task.request.output).parent
        dest.mkdir(parents=True, exist_ok=True)
        prefixes = {payload["folder"]: str(dest) + os.sep}
        prefixes.update({local: original for original, local in payload["media_map"].items()})
        for name, data in payload["files"].items():
            if name.endswith(".json"):  # the engine's metadata sidecar names the worker's paths
                data = (json.dumps(rebase_paths(json.loads(data), prefixes), indent=2, default=str) + "\n").encode()
            write_atomically(dest / name, lambda p, d=data: p.write_bytes(d))
        out: TaskOutput = payload["output"]
        r = out.result
        out.result = RenderResult(Path(rebase_paths(str(r.output), prefixes)), r.duration_s, r.n_samples,
                                  r.sample_rate, r.seed,
                                  None if r.controls_path is None else Path(rebase_paths(str(r.controls_path),
                                                                                         prefixes)),
                                  rebase_paths(r.metadata, prefixes), r.timings_s)
        out.bytes_returned = sum(len(d) for d in payload["files"].values())
        out.shipped_inputs = sorted(payload["media_map"])
        return out

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self, tasks: Sequence[CueTask], *, should_cancel: CancelFn | None = None) -> Iterator[TaskEvent]:
        self.connect()
        ray = self._ray
        pending: deque[CueTask] = deque(longest_first(tasks))
        attempts = {t.task_id: 1 for t in tasks}
        inflight: dict[Any, tuple[CueTask, _Slot]] = {}
        cancelling = False
        lost_since: float | None = None
        try:
            while pending or inflight:
                if not cancelling and should_cancel is not None and should_cancel():
                    cancelling = True
                    for task, slot in inflight.values():
                        slot.actor.cancel.remote(task.task_id)
                    while pending:
                        yield TaskEvent("cancelled", pending.popleft().task_id, message="cancelled before it started")
                    continue
                # actors that finished loading the bundle become free
                starting = [s.ready_ref for s in self.slots if s.info is None and s.ready_ref is not None]
                if starting:
                    done, _ = ray.wait(starting, num_returns=len(starting), timeout=0)
                    for slot in [s for s in self.slots if s.ready_ref in done]:
                        try:
                            slot.info = ray.get(slot.ready_ref)
                        except ray.exceptions.RayError as e:
                            log.warning("render actor %d did not start: %s", slot.index, str(e).splitlines()[0])
                            self._replace(slot)
                            continue
                        slot.ready_ref = None
                ready_slots = [s for s in self.slots if s.info is not None and s.busy is None]
                if ready_slots or inflight:
                    lost_since = None
                elif lost_since is None:
                    lost_since = time.monotonic()
                elif time.monotonic() - lost_since > self.options.ready_timeout_s:
                    raise ExecutorError(f"Ray cluster at {self._where()}: no render actor became ready in "
                                        f"{self.options.ready_timeout_s:g} s; {len(pending)} cue(s) not rendered "
                                        "(rerun to render them)")
                while pending and ready_slots:
                    task, slot = pending.popleft(), ready_slots.pop(0)
                    slot.busy = task.task_id
                    gen = slot.actor.run.remote(task, self._shipments(task))
                    inflight[gen] = (task, slot)
                if not inflight:
                    time.sleep(0.05)  # waiting for an actor to load its bundle
                    continue
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_S)
                for gen in ready:
                    task, slot = inflight[gen]
                    attempt = attempts[task.task_id]
                    try:
                        t0 = time.perf_counter()
                        item = ray.get(next(gen))
                        fetched_s = time.perf_counter() - t0
                    except StopIteration:  # cannot happen before a terminal item; treat as a lost actor
                        item, fetched_s = None, 0.0
                    except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError,
                            ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.LocalRayletDiedError) as e:
                        item, fetched_s = None, 0.0
                        log.warning("render actor %s lost while rendering %s: %s", slot.name, task.task_id,
                                    str(e).splitlines()[0])
                    except ray.exceptions.RayTaskError as e:  # a bug in the actor's own code
                        del inflight[gen]
                        slot.busy = None
                        yield error_event(task, e.as_instanceof_cause(), attempt, slot.name)
                        continue
                    if item is None:
                        del inflight[gen]
                        dead = slot.name
                        self._replace(slot)
                        if cancelling:
                            yield TaskEvent("cancelled", task.task_id, attempt, dead,
                                            message="its worker stopped while cancelling")
                        elif attempt < self.options.max_attempts:
                            attempts[task.task_id] = attempt + 1
                            pending.appendleft(task)  # it keeps its turn: the longest still goes first
                            yield TaskEvent("retry", task.task_id, attempt + 1, dead,
                                            message=f"worker {dead} died; retrying (attempt {attempt + 1} of "
                                                    f"{self.options.max_attempts})")
                        else:
                            yield TaskEvent("failed", task.task_id, attempt, dead, ename="WorkerDied",
                                            message=f"its worker {dead} died, {attempt} time(s) with this cue; "
                                                    "giving up")
                        continue
                    kind = item[0]
                    if kind == "start":
                        yield TaskEvent("start", task.task_id, attempt, item[1])
                    elif kind == "progress":
                        yield TaskEvent("progress", task.task_id, attempt, slot.name, stage=item[1],
                                        fraction=item[2], message=item[3])
                    else:
                        del inflight[gen]
                        slot.busy = None
                        if kind == "done":
                            self.fetch_s += fetched_s
                            try:
                                out = self._write_back(task, item[1])
                            except FilmscoreError as e:  # e.g. the output disk is full: this cue fails
                                yield error_event(task, e, attempt, slot.name)
                                continue
                            out.timings_s["transfer"] = out.timings_s.get("transfer", 0.0) + fetched_s
                            yield TaskEvent("done", task.task_id, attempt, out.worker, output=out)
                        elif kind == "failed":
                            yield TaskEvent("failed", task.task_id, attempt, slot.name, ename=item[1],
                                            message=item[2])
                        else:
                            yield TaskEvent("cancelled", task.task_id, attempt, slot.name, message=item[1])
        finally:
            # The caller stopped listening (Ctrl-C, an error) or the cluster is gone: stop what still renders.
            for task, slot in inflight.values():
                try:
                    slot.actor.cancel.remote(task.task_id)
                except Exception:  # noqa: BLE001
                    pass

    def _replace(self, slot: _Slot) -> None:
        """A dead actor's slot gets a new actor (it loads the bundle; the slot is free once it has)."""
        try:
            self._ray.kill(slot.actor)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        try:
            fresh = self._new_slot(slot.index)
        except Exception as e:  # noqa: BLE001 - the cluster is gone
            raise ExecutorError(f"Ray cluster at {self._where()}: cannot start a render actor again "
                                f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        slot.actor, slot.ready_ref, slot.info, slot.busy = fresh.actor, fresh.ready_ref, None, None


# -- the bridge: `filmscore serve --executor ray` -------------------------------------------------------------------
# The server keeps its job queue, journal and worker processes; each worker process renders through one Ray actor
# instead of in itself (its renderer is `render_on_ray`), so supervision, cancel, partial-file publishing and
# retries of the bridge stay as they are, and the heavy work runs where Ray places the actor.

RAY_RENDERER = "filmscore.bridge.executors.ray_executor:render_on_ray"
SERVE_ENV = "FILMSCORE_RAY"  # the workers' Ray options, JSON, set by the server process for its worker processes


class RemoteRenderError(FilmscoreError):
    """A render that failed on an actor, with the error name it had there (the bridge reports it as is)."""

    def __init__(self, ename: str, message: str) -> None:
        super().__init__(message)
        self.ename = ename


def start_for_server(options: RayOptions, workers: int, bundle: Path | None) -> Any:
    """Join the cluster at `options.address`, or start a Ray here with the CPUs and GPUs that `workers` actors ask
    for, and hand the workers (through the environment they inherit) its address and the actor options. Returns
    the function that stops what was started here."""
    ray = import_ray()
    if options.address is None:
        try:
            # CPUs for exactly the workers' actors (the server and its loop keep the rest); GPUs as Ray finds them
            ray.init(num_cpus=max(1, math.ceil(options.num_cpus * workers)), include_dashboard=False,
                     log_to_driver=False, namespace=NAMESPACE)
        except Exception as e:  # noqa: BLE001
            raise ExecutorError(f"cannot start a local Ray: {str(e).splitlines()[0] if str(e) else e}") from None
        address, stop = ray.get_runtime_context().gcs_address, ray.shutdown
    else:
        _check_reachable(options.address)
        address, stop = options.address, (lambda: None)
    os.environ[SERVE_ENV] = json.dumps({"address": address, "num_cpus": options.num_cpus,
                                        "num_gpus": options.num_gpus, "ship_inputs": options.ship_inputs,
                                        "bundle": None if bundle is None else str(bundle)})
    return stop


_WORKER_EXECUTOR: RayExecutor | None = None


def render_on_ray(request: Any, progress: Any = None, should_cancel: CancelFn | None = None) -> RenderResult:
    """A bridge worker's renderer: `request` rendered by this worker's actor (started on first use, with the
    options in $FILMSCORE_RAY), its files written at `request.output`'s names, progress passed on as it comes."""
    global _WORKER_EXECUTOR
    if _WORKER_EXECUTOR is None:
        cfg = json.loads(os.environ.get(SERVE_ENV) or "{}")
        bundle = cfg.pop("bundle", None)
        _WORKER_EXECUTOR = RayExecutor(RayOptions(actors=1, **cfg), bundle=bundle)
    task = CueTask(Path(request.output).stem, request, cost_s=float(request.duration_s or 0.0))
    for ev in _WORKER_EXECUTOR.run([task], should_cancel=should_cancel):
        if ev.kind == "progress" and progress is not None:
            progress(ev.stage, ev.fraction, ev.message)
        elif ev.kind == "retry":
            log.warning("%s", ev.message)
        elif ev.kind == "done":
            assert ev.output is not None
            return ev.output.result
        elif ev.kind == "failed":
            raise RemoteRenderError(ev.ename, ev.message)
        elif ev.kind == "cancelled":
            raise RenderCancelled(ev.message or "cancelled")
    raise ExecutorError(f"the Ray executor ended without a result for {task.task_id}")
