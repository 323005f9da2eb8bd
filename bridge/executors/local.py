"""`LocalExecutor`: the cues rendered one after another in this process, as `filmscore score` always did.

The render runs in a thread so that its progress reaches the caller as events while it runs; the caller's thread
only waits on a queue, so Ctrl-C there stops the render at its next denoising step (nothing half-written: the
engine writes atomically). The bridge server's own worker processes (`bridge/server/worker.py`) are its local
executor and stay as they are.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from filmscore.engine.errors import FilmscoreError, RenderCancelled
from filmscore.engine.request import CancelFn

from .base import CueTask, EncodeFn, Executor, RenderFn, TaskEvent, error_event, render_task

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """Render in this process, in the order given. `render`/`encode` replace the engine's (tests)."""

    name = "local"

    def __init__(self, render: RenderFn | None = None, encode: EncodeFn | None = None) -> None:
        self.render, self.encode = render, encode
        self.worker = f"local:{os.getpid()}"

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": 1, "pid": os.getpid()}

    def run(self, tasks: Sequence[CueTask], *, should_cancel: CancelFn | None = None) -> Iterator[TaskEvent]:
        stop = threading.Event()

        def cancelled() -> bool:
            return stop.is_set() or (should_cancel is not None and should_cancel())

        for task in tasks:
            if cancelled():
                yield TaskEvent("cancelled", task.task_id, worker=self.worker, message="cancelled before it started")
                continue
            yield TaskEvent("start", task.task_id, worker=self.worker)
            events: queue.Queue[TaskEvent] = queue.Queue()

            def work(task: CueTask = task) -> None:
                def progress(stage: str, fraction: float, message: str = "") -> None:
                    events.put(TaskEvent("progress", task.task_id, worker=self.worker, stage=str(stage),
                                         fraction=float(fraction), message=str(message)))

                try:
                    out = render_task(task, render=self.render, encode=self.encode, progress=progress,
                                      should_cancel=cancelled)
                    out.worker = self.worker
                    events.put(TaskEvent("done", task.task_id, worker=self.worker, output=out))
                except RenderCancelled as e:
                    events.put(TaskEvent("cancelled", task.task_id, worker=self.worker, message=str(e)))
                except BaseException as e:  # noqa: BLE001 - one cue's failure is its event; the batch goes on
                    if not isinstance(e, FilmscoreError):  # a bug, not a bad input: keep its traceback
                        log.error("render of %s failed", task.task_id, exc_info=e)
                    events.put(error_event(task, e, worker=self.worker))

            thread = threading.Thread(target=work, name=f"filmscore-render-{task.task_id}", daemon=True)
            thread.start()
            try:
                while True:
                    ev = events.get()
                    yield ev
                    if ev.terminal:
                        break
            finally:  # the caller stopped listening (Ctrl-C, an error): stop the render, wait for it
                if thread.is_alive():
                    stop.set()
                    thread.join()
