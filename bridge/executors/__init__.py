"""Executors: who renders a batch of cues. `local` (this process) or `ray` (Ray actors, `filmscore[ray]`).

`base` holds the interface and the dataclasses that cross it; `local` and `ray_executor` implement it. Batch
scoring (`timelines/batch.py`) and `filmscore serve --executor ray` use them; docs/scale_out.md says how to run them.
"""

from __future__ import annotations

from pathlib import Path

from .base import CueTask, Executor, ExecutorError, SegmentSpec, TaskEvent, TaskOutput

EXECUTORS = ("local", "ray")


def make_executor(name: str, *, bundle: Path | None = None, address: str | None = None, num_cpus: float = 1.0,
                  num_gpus: float = 0.0, actors: int | None = None, ship_inputs: bool = False) -> Executor:
    """The executor a front end asked for by name (the CLI's `--executor`)."""
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from .ray_executor import RayExecutor, RayOptions

        return RayExecutor(RayOptions(address=address, num_cpus=num_cpus, num_gpus=num_gpus, actors=actors,
                                      ship_inputs=ship_inputs), bundle=bundle)
    raise ExecutorError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "CueTask", "Executor", "ExecutorError", "SegmentSpec", "TaskEvent", "TaskOutput",
           "make_executor"]
