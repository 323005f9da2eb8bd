"""Thread policy of the pipeline's model stages: the same bytes at any thread count, and no spinning under load.

Every model call runs on one intra-op thread; parallelism is across calls. A stage splits its work into units whose
shapes depend only on the cue (rows of windows x guidance passes in fixed groups, decoder and vocoder chunks) and a
pool of `threads` workers runs the units. Each unit's arithmetic (its kernels, their reduction order) is then the
same whatever the pool size, so one request and seed give the same WAV from the CLI (all cores), a bridge worker
(its share of the cores) and a batch. What can still change it is recorded in every cue's JSON (`reproducibility`): the backend,
the CPU's instruction set (another ISA selects other kernels) and the numeric libraries' versions.

Delivery (stereo placement, resampling, measuring loudness and true peak, limiting, a v2 cue's stem files:
engine/audio/loudness.py) runs its numpy and scipy units on the same pool: they release the GIL, and a delivery
that used one core of the render's would leave the others idle while the editor waits. Its units are combined in a
fixed order, so it too gives the same samples at any count.

One thread per call also means no OpenMP team busy-waiting for its slowest member while other processes hold the
cores: under contention a render takes its share of the CPU instead of burning it spinning (issue 23 measured an
8 s cue at 49-74 s with 2 intra-op threads against 16-18 s with 1, at load 5-11 on 2 cores).
"""

from __future__ import annotations

import platform
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def _without_grad(fn: Callable[[T], R]) -> Callable[[T], R]:
    def run(x: T) -> R:
        with torch.no_grad():  # grad mode is per thread: the workers need it too
            return fn(x)

    return run


@dataclass
class StagePool:
    """Runs independent model calls on `threads` workers, each on one intra-op thread; results in input order."""

    threads: int
    _pool: ThreadPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        items = list(items)
        run = _without_grad(fn)
        if self._pool is None or len(items) < 2:
            return [run(x) for x in items]
        return list(self._pool.map(run, items))

    def imap(self, fn: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[R]:
        """`map`, lazily: results in input order as the caller takes them, with at most `ahead` items in flight
        (submitted, their results not yet handed over; the next is submitted as one is handed over, so the workers
        stay busy while the caller uses it): a long list's results never all exist at once (a denoising step)."""
        run = _without_grad(fn)
        if self._pool is None:
            for x in items:
                yield run(x)
            return
        pending: deque[Future[R]] = deque()
        it = iter(items)
        try:
            for x in islice(it, max(1, ahead)):
                pending.append(self._pool.submit(run, x))
            while pending:
                y = pending.popleft().result()
                for x in islice(it, 1):
                    pending.append(self._pool.submit(run, x))
                yield y
        finally:  # the caller stopped early (an error): what has not started does not run
            for f in pending:
                f.cancel()


def _one_thread() -> None:
    torch.set_num_threads(1)


_LOCK = threading.Lock()
_ACTIVE = 0  # renders inside model_threads in this process
_SAVED = 0  # torch's thread count before the first of them entered


@contextmanager
def model_threads(threads: int | None = None) -> Iterator[StagePool]:
    """A `StagePool` of `threads` workers (default: torch's thread count outside any render) for the duration of
    the block (a render's model stages, and its delivery: `pool.map` is a loudness.py `Workers`); torch's intra-op
    threads are 1 inside it (this thread and the workers) and restored when the last concurrent render in this
    process leaves (renders on several threads of one process do not restore 1)."""
    global _ACTIVE, _SAVED
    with _LOCK:
        if _ACTIVE == 0:
            _SAVED = torch.get_num_threads()
        _ACTIVE += 1
        n = max(1, int(threads or _SAVED))
        torch.set_num_threads(1)
    pool = ThreadPoolExecutor(n, thread_name_prefix="filmscore-model", initializer=_one_thread) if n > 1 else None
    try:
        yield StagePool(n, pool)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        with _LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0:
                torch.set_num_threads(_SAVED)


def reproducibility(backend: dict[str, Any]) -> dict[str, Any]:
    """What a cue's bytes depend on besides its request and seed (they do not depend on the thread count): for
    the cue's JSON, so two renders that differ can be told apart."""
    import numpy
    import scipy

    libs = {"torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__}
    if backend.get("name") == "ort":
        import onnxruntime

        libs["onnxruntime"] = onnxruntime.__version__
    elif backend.get("name") == "trt":
        libs["tensorrt"] = backend.get("trt")
    from .backends.cache import cpu_name

    return {"independent_of_threads": True,
            "depends_on": {"backend": backend.get("name"), "device": backend.get("device"),
                           "precision": backend.get("precision"), "cpu": cpu_name(),
                           "cpu_isa": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine(),
                           "libraries": libs}}
