"""The executor interface: who renders a batch of cues, in this process or on a cluster, and what crosses over.

A front end (batch scoring, the bridge) turns each cue into a `CueTask` and hands the list to an `Executor`; the
executor yields `TaskEvent`s as things happen ("start", "progress", "retry", then one of "done" / "failed" /
"cancelled" per task) and ends when every task has ended. What a worker does with one task is `render_task`, the
same code whichever executor runs it, so the same request and seed give the same WAV everywhere (same backend).

Who owns what: the worker encodes the picture (the heavy decode) and renders; the submitting side owns the files.
A "done" event's `TaskOutput.result` names files on the submitting side, under the task's `request.output` folder,
written atomically (a local render writes them there itself; a remote one returns their bytes, written here by the
executor), so delivery, the batch manifest and the job journal stay where they were: on the submitting side.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from filmscore.engine.errors import FilmscoreError
from filmscore.engine.request import CancelFn, ProgressFn, RenderRequest, RenderResult


EventKind = Literal["start", "progress", "retry", "done", "failed", "cancelled"]
TERMINAL: tuple[str, ...] = ("done", "failed", "cancelled")


class ExecutorError(FilmscoreError):
    """The executor itself cannot go on (a cluster that cannot be reached or has no room for one worker). Tasks that
    ended before it was raised were reported; the others did not run to completion and are simply not done."""

    ename = "ExecutorError"


Rational = tuple[float, float]  # (value, rate) of an OTIO RationalTime: exact, and picklable where OTIO's is not


@dataclass(frozen=True)
class SegmentSpec:
    """One visible stretch of a timeline region (`timelines.picture.PictureSegment`) in plain values, so it can
    travel to another process or node; `to_segment` rebuilds the same segment there."""

    kind: str
    record_start: Rational
    record_duration: Rational
    clip_name: str = ""
    media_path: str | None = None
    source_start: Rational | None = None
    time_scalar: float = 1.0
    message: str = ""
    item_path: str = ""

    @classmethod
    def of(cls, seg: Any) -> SegmentSpec:
        rt = lambda t: (float(t.value), float(t.rate))  # noqa: E731
        return cls(seg.kind, rt(seg.record_range.start_time), rt(seg.record_range.duration), seg.clip_name,
                   None if seg.media_path is None else str(seg.media_path),
                   None if seg.source_start is None else rt(seg.source_start), float(seg.time_scalar), seg.message,
                   seg.item_path)

    def to_segment(self, media_map: dict[str, str] | None = None):  # -> PictureSegment
        import opentimelineio as otio

        from ..timelines.picture import PictureSegment

        RT = otio.opentime.RationalTime
        media = self.media_path
        if media is not None and media_map:
            media = media_map.get(media, media)
        return PictureSegment(otio.opentime.TimeRange(RT(*self.record_start), RT(*self.record_duration)), self.kind,
                              self.clip_name, None if media is None else Path(media),
                              None if self.source_start is None else RT(*self.source_start), self.time_scalar,
                              self.message, self.item_path)


@dataclass(frozen=True)
class CueTask:
    """One cue to render. `request.output`: where the submitting side wants the engine's WAV (its sidecars beside
    it). `picture`: a timeline region for the worker to encode (None: the request's own `video`/`film_features`);
    its hit points are merged with `timeline_hits_s` (seconds from the cue start). `cost_s`: the work it takes,
    for longest-first scheduling (the cue's length)."""

    task_id: str
    request: RenderRequest
    picture: tuple[SegmentSpec, ...] | None = None
    timeline_hits_s: tuple[float, ...] = ()
    cost_s: float = 0.0
    # `PlanSpec.to_json()` of the cue plan to write beside the engine's WAV (OUT.plan.json and OUT.plan.mid), made
    # where the picture is, from the request the worker renders (engine/plan/spec.py); None: no plan.
    plan: dict[str, Any] | None = None

    def input_files(self) -> list[str]:
        """Every input file the worker reads: picture media, the MIDI theme, the reference audio, the cue plan."""
        files = [s.media_path for s in self.picture or () if s.kind == "media" and s.media_path is not None]
        files += [str(p) for p in (self.request.video, self.request.midi, self.request.reference_audio,
                                   self.request.plan) if p]
        return list(dict.fromkeys(files))


@dataclass
class TaskOutput:
    """A finished task: the engine's `RenderResult` (files on the submitting side), the picture lines that had no
    media, and where the time went (seconds: "picture" decode+encode, "render" the rest of `render_cue`,
    "transfer" moving inputs and results, "cpu" the worker process's CPU time for picture and render, plus the
    engine's own stage timings under "engine")."""

    result: RenderResult
    missing_picture: list[str] = field(default_factory=list)
    timings_s: dict[str, Any] = field(default_factory=dict)
    worker: str = ""
    bytes_returned: int = 0  # what came back through the object store (a remote executor)
    shipped_inputs: list[str] = field(default_factory=list)  # inputs the worker read from its own copies


@dataclass
class TaskEvent:
    kind: EventKind
    task_id: str
    attempt: int = 1
    worker: str = ""
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    output: TaskOutput | None = None
    ename: str = ""

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


class Executor(ABC):
    """Runs `CueTask`s. Use as a context manager (workers start on entry or on first use, stop on exit)."""

    name: str = "?"

    @abstractmethod
    def run(self, tasks: Sequence[CueTask], *, should_cancel: CancelFn | None = None) -> Iterator[TaskEvent]:
        """Yield events until every task has ended (exactly one terminal event per task). When `should_cancel()`
        turns true, tasks in flight stop between denoising steps and the rest are reported cancelled.
        Raises `ExecutorError` when the executor cannot go on."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name}

    def close(self) -> None:
        """Stop workers; idempotent."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RenderFn = Callable[..., RenderResult]
EncodeFn = Callable[[Path, float, float], Any]  # as `timelines.film_of_region.EncodeFn`: (media, start_s, duration_s)


def prepare_request(task: CueTask, media_map: dict[str, str] | None = None,
                    encode: EncodeFn | None = None) -> tuple[RenderRequest, list[str], float]:
    """The request a worker renders: with a timeline region, its picture encoded here and its hit points merged
    (`timelines.render_cue.with_region_picture`); returns (request, lines for picture without media, seconds spent
    on the picture)."""
    request = task.request
    if task.picture is None:
        return request, [], 0.0
    t0 = time.perf_counter()
    # the same step as a bridge timeline job's (timelines/render_cue.py, the one timeline-cue renderer); imported
    # here, not with this module: every `filmscore` command's parser imports the executors, and the timeline
    # readers bring OpenTimelineIO (~0.3 s of start-up)
    from ..timelines.render_cue import with_region_picture

    request, missing = with_region_picture(request, [s.to_segment(media_map) for s in task.picture],
                                           task.timeline_hits_s, encode)
    picture_s = time.perf_counter() - t0
    if media_map:  # report the submitting side's paths, not a worker's copies
        back = {v: k for k, v in media_map.items()}
        missing = [rebase_paths(m, back) for m in missing]
    return request, missing, picture_s


def render_task(task: CueTask, output: Path | None = None, *, render: RenderFn | None = None,
                progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                media_map: dict[str, str] | None = None, encode: EncodeFn | None = None) -> TaskOutput:
    """Render one task to `output` (default: `task.request.output`) on this machine: the unit of work of every
    executor. `media_map`: input path -> the path of its copy here, for inputs shipped to this worker."""
    if render is None:
        from filmscore.engine.render import render_cue as render
    cpu0 = time.process_time()  # this process's CPU: what the cue costs a core, whatever else shares the machine
    request, missing, picture_s = prepare_request(task, media_map, encode)
    if output is not None:
        request = replace(request, output=Path(output))
    if media_map:
        request = replace(request, **{k: Path(media_map.get(str(getattr(request, k)), getattr(request, k)))
                                      for k in ("video", "midi", "reference_audio", "plan") if getattr(request, k)})
    plan_s = write_task_plan(task, request) if task.plan is not None else 0.0
    t0 = time.perf_counter()
    result = render(request, progress=progress, should_cancel=should_cancel)
    render_s = time.perf_counter() - t0 + plan_s
    engine = dict(getattr(result, "timings_s", {}) or {})
    return TaskOutput(result, missing, {"picture": picture_s + float(engine.get("picture", 0.0)),
                                        "render": render_s - float(engine.get("picture", 0.0)),
                                        "transfer": 0.0, "cpu": time.process_time() - cpu0, "engine": engine})


def write_task_plan(task: CueTask, request: RenderRequest) -> float:
    """Write the cue plan of `request` (its picture features, hit points, theme and seed, with `task.plan`'s
    overrides) beside its output as OUT.plan.json and OUT.plan.mid; returns the seconds it took. A request with
    reference audio has no plan (a plan's melody comes from a theme or a style)."""
    if request.reference_audio is not None:
        return 0.0
    from filmscore.engine.plan.spec import PlanSpec, make_cue_plan, plan_path

    t0 = time.perf_counter()
    plan = make_cue_plan(PlanSpec.from_json(task.plan or {}), duration_s=request.duration_s, video=request.video,
                         film=request.film_features, start_s=request.start_s, midi=request.midi,
                         maestro=request.maestro, theme=request.theme, track=request.midi_track,
                         channel=request.midi_channel, hits_s=request.hits_s, seed=request.seed)
    path = plan_path(request.output)
    plan.save(path)
    plan.save(path.with_suffix(".mid"))
    return time.perf_counter() - t0


def rebase_paths(obj: Any, prefixes: dict[str, str]) -> Any:
    """`obj` (JSON-like: str, dict, list, tuple) with each key of `prefixes` (a folder with its trailing separator,
    or a whole file name) replaced by its value in every string: a worker's file names become the submitting
    side's."""
    if isinstance(obj, str):
        for old, new in prefixes.items():  # anywhere in the string: a message names paths too
            obj = obj.replace(old, new)
        return obj
    if isinstance(obj, dict):
        return {k: rebase_paths(v, prefixes) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(rebase_paths(v, prefixes) for v in obj)
    return obj


def longest_first(tasks: Sequence[CueTask]) -> list[CueTask]:
    """The scheduling order on a pool: the longest cues first, so the batch does not end waiting on one long cue
    started last (ties keep their order)."""
    return sorted(tasks, key=lambda t: -t.cost_s)


def error_event(task: CueTask, e: BaseException, attempt: int = 1, worker: str = "") -> TaskEvent:
    """A task's failure as an event: a FilmscoreError's one line, or an internal error's type and first line."""
    if isinstance(e, FilmscoreError):
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return TaskEvent("failed", task.task_id, attempt, worker, message=text,
                         ename=getattr(e, "ename", type(e).__name__))
    return TaskEvent("failed", task.task_id, attempt, worker, message=f"{type(e).__name__}: {e}".splitlines()[0],
                     ename="InternalError")
