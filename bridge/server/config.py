"""Server settings, and the turning of a `render` request's wire content into an engine `RenderRequest`.

Every path a request names is resolved (symlinks followed) and must lie under one of the configured roots: media
roots for inputs, output roots for outputs. A client holding the key can therefore read and write only where the
person running the server said it may.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from filmscore.engine.constants import MAX_CUE_S
from filmscore.engine.errors import FilmscoreError, RequestError
from filmscore.engine.preflight import check_stems
from filmscore.engine.request import RenderRequest
from filmscore.engine.timebase import to_samples

from ..protocol import RenderParams


class PathNotAllowed(FilmscoreError):
    """A request path outside the server's media or output roots, or not absolute."""

    ename = "PathNotAllowed"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME")
    return (Path(base) if base else Path.home() / ".local" / "state") / "filmscore" / "bridge"


@dataclass
class ServerConfig:
    """What `filmscore serve` is told. Paths become absolute and resolved in `__post_init__`."""

    state_dir: Path = field(default_factory=default_state_dir)
    connection_file: Path | None = None  # None: runtime_dir()/bridge-PID.json
    ip: str = "127.0.0.1"
    allow_remote: bool = False  # binding anything but loopback needs this AND uses CURVE
    media_roots: tuple[Path, ...] = ()  # () : the user's home
    output_roots: tuple[Path, ...] = ()  # () : the user's home
    workers: int = 1
    max_attempts: int = 2  # a job whose worker dies is retried once
    bundle: Path | None = None  # None: the engine's default bundle
    ws: tuple[str, int] | None = None  # (host, port) of the WebSocket gateway; port 0 picks one
    ws_origins: tuple[str, ...] = ()  # Origins a browser-based panel may connect from (none without Origin is ok)
    replay_window_s: float = 60.0
    renderer: str = "filmscore.engine.render:render_cue"  # "module:function" each worker calls
    max_queued: int = 1000  # renders waiting at once; more are refused with QueueFull
    max_pending_per_peer: int = 4  # unread messages libzmq holds per connection (ZMQ_RCVHWM)
    max_connections: int | None = None  # per ZeroMQ socket; None: derived from the descriptor limit
    ws_cert: Path | None = None  # TLS certificate chain (PEM) for the WebSocket gateway: needed off loopback
    ws_key: Path | None = None

    @property
    def worker_threads(self) -> int:
        """Each render worker's share of this machine's cores (at least 1): how many model calls its renders run at
        once (engine/threads.py; one intra-op thread each, so none spins). One worker on 2 cores renders on both,
        as the command line does; OMP_NUM_THREADS, when set, overrides it."""
        return max(1, len(os.sched_getaffinity(0)) // self.workers)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).expanduser().resolve()
        home = Path.home().resolve()
        self.media_roots = tuple(Path(p).expanduser().resolve() for p in self.media_roots) or (home,)
        self.output_roots = tuple(Path(p).expanduser().resolve() for p in self.output_roots) or (home,)
        if self.bundle is not None:
            self.bundle = Path(self.bundle).expanduser().resolve()
        if self.workers < 1:
            raise RequestError(f"workers must be >= 1, got {self.workers}")
        if self.max_attempts < 1:
            raise RequestError(f"max attempts must be >= 1, got {self.max_attempts}")
        if self.max_queued < 1:
            raise RequestError(f"max queued must be >= 1, got {self.max_queued}")
        if (self.ws_cert is None) != (self.ws_key is None):
            raise RequestError("give both a TLS certificate and its key for the WebSocket gateway, or neither")

    def check_path(self, raw: str, kind: str, roots: tuple[Path, ...], must_exist: bool) -> Path:
        """`raw` resolved; `PathNotAllowed` unless absolute and under one of `roots`."""
        p = Path(raw)
        if not p.is_absolute():
            raise PathNotAllowed(f"{kind} path {raw!r} must be absolute")
        long = next((part for part in p.parts if len(os.fsencode(part)) > 255), None)
        if long is not None or len(os.fsencode(raw)) > 4095:
            raise PathNotAllowed(f"{kind} path {raw[:80]!r}... is too long (a name over 255 bytes or a path over "
                                 "4095)")
        try:
            resolved = p.resolve()
            if not any(resolved.is_relative_to(r) for r in roots):
                raise PathNotAllowed(f"{kind} path {raw} is outside the server's allowed roots "
                                     f"({', '.join(map(str, roots))})")
            if must_exist and not resolved.is_file():
                raise PathNotAllowed(f"{kind} file {raw} does not exist")
        except OSError as e:  # a symlink loop, a name the file system refuses, ...
            raise PathNotAllowed(f"{kind} path {raw} cannot be used: {e.strerror or errno.errorcode.get(e.errno)}") \
                from None
        return resolved

    def media(self, raw: str, kind: str) -> Path:
        return self.check_path(raw, kind, self.media_roots, must_exist=True)

    def output(self, raw: str, overwrite: bool) -> Path:
        out = self.check_path(raw, "output", self.output_roots, must_exist=False)
        if not out.parent.is_dir():
            raise PathNotAllowed(f"output folder {out.parent} does not exist")
        if out.suffix.lower() != ".wav":
            raise RequestError(f"output {raw} must end in .wav")
        if len(os.fsencode(out.name)) > 200:  # the worker's partial name adds ~50 bytes to it
            raise PathNotAllowed(f"output name {out.name[:60]!r}... is over 200 bytes")
        # The sidecars are checked by the worker (it knows what the engine writes), before rendering and again,
        # all or nothing, when it publishes.
        if (out.exists() or out.is_symlink()) and not overwrite:
            raise RequestError(f"output {raw} exists; send overwrite=true to replace it")
        return out


def build_request(cfg: ServerConfig, params: RenderParams, midi_file: Path | None) -> RenderRequest:
    """The engine request for `params`, with every path checked against the roots. `midi_file` is where an inline
    MIDI buffer was saved (the caller writes it). Timeline ranges are resolved by `resolve_timeline`."""
    video = cfg.media(params.video, "video") if params.video is not None else None
    start_s = params.start.to_seconds() if params.start is not None else 0.0
    # the cue's length stays rational until it becomes samples (`timebase.to_samples`, the one conversion); the
    # engine gets `n / rate` back as exactly n samples. Start and hits are positions in seconds for the picture.
    duration_s = (to_samples(params.duration, params.sample_rate) / params.sample_rate
                  if params.duration is not None else None)
    if params.timeline is not None:
        video, start_s, duration_s = resolve_timeline(cfg, params)
    midi = midi_file if midi_file is not None else (cfg.media(params.midi, "midi") if params.midi else None)
    ref = cfg.media(params.reference_audio, "reference audio") if params.reference_audio else None
    plan = None
    if params.plan is not None:
        plan, plan_duration_s, plan_start_s = check_plan_file(cfg, params.plan)
        duration_s = duration_s if duration_s is not None else plan_duration_s
        start_s = start_s if params.start is not None else plan_start_s
    req = RenderRequest(
        output=cfg.output(params.output, params.overwrite), video=video, start_s=start_s, duration_s=duration_s,
        midi=midi, reference_audio=ref, maestro=params.maestro, theme=params.theme, midi_track=params.midi_track,
        midi_channel=params.midi_channel, hits_s=tuple(h.to_seconds() for h in params.hits), bundle=cfg.bundle,
        plan=plan, **params.option_values())
    req.validate()  # the options' ranges, and a plan with overrides or reference audio refused
    check_ranges(req)
    check_stems(req)  # a v1 bundle has no stems: refused before queueing, as the command line refuses it
    plan_spec(params)
    return req


MAX_PLAN_FILE_BYTES = 4 * 1024 * 1024
"""Largest PLAN.json / PLAN.mid a request may name: it is read on the server's loop, before queueing."""


def check_plan_file(cfg: ServerConfig, raw: str) -> tuple[Path, float, float]:
    """(the plan file resolved under the media roots, its cue duration, its range start). The plan is read now
    (`CuePlan.load`), so a damaged or unknown file is refused with `PlanError` before the job is queued, and a
    request without a duration gets the plan's, as `filmscore render --plan` does."""
    path = cfg.media(raw, "plan")
    if path.suffix.lower() not in (".json", ".mid", ".midi"):
        raise RequestError(f"plan {raw}: must be a PLAN.json or PLAN.mid from `filmscore plan`")
    size = path.stat().st_size
    if size > MAX_PLAN_FILE_BYTES:
        raise RequestError(f"plan {raw} is {size} bytes; the limit is {MAX_PLAN_FILE_BYTES}")
    from filmscore.engine.plan.plan import CuePlan

    plan = CuePlan.load(path)
    return path, float(plan.duration_s), float(plan.source.get("start_s") or 0.0)


def plan_spec(params: RenderParams):
    """The `PlanSpec` of a render's override fields, checked (`PlanError` naming the field) before queueing, or
    None when the request sets none (the plan modules are then not imported on the server's loop). The worker makes
    the plan with it (`engine.plan.spec.plan_request`), as `filmscore render --tempo ...` does."""
    if not params.plan_given:
        return None
    from filmscore.engine.plan.spec import PlanSpec

    spec = PlanSpec.of(params)
    spec.check()
    return spec


def check_ranges(req: RenderRequest) -> None:
    """Ranges `RenderRequest.validate` does not check yet, refused here before a job is queued rather than when
    its render fails: the MIDI channel (1..16) and track, and hit points inside the cue. (The render options'
    ranges, the loudness target's among them, are `RenderOptions.validate`'s.)"""
    if req.midi_channel is not None and not 1 <= req.midi_channel <= 16:
        raise RequestError(f"midi_channel must be 1..16, got {str(req.midi_channel)[:24]}")
    if req.midi_track is not None and not 0 <= req.midi_track < 65536:
        raise RequestError(f"midi_track must be 0..65535, got {str(req.midi_track)[:24]}")
    limit = req.duration_s if req.duration_s is not None else MAX_CUE_S
    bad = next((h for h in req.hits_s if not 0 <= h <= limit), None)
    if bad is not None:
        raise RequestError(f"hit point {bad:g} s is outside the cue (0..{limit:g} s)")


def resolve_timeline(cfg: ServerConfig, params: RenderParams) -> tuple[Path | None, float, float]:
    """(video, start_s, duration_s) for a timeline cue region: no single video (the worker encodes the region's
    clips), start 0, the region's length. Reads the timeline now, so a bad file, an unknown cue or a clip outside
    the media roots is refused before the job is queued."""
    from ..timelines.render_cue import cue_samples
    from .timeline_jobs import select_cue

    spec = timeline_spec(cfg, params)
    cue, _ = select_cue(spec, check_media=cfg.media)
    return None, 0.0, cue_samples(cue, params.sample_rate) / params.sample_rate


def timeline_spec(cfg: ServerConfig, params: RenderParams) -> dict | None:
    """The timeline range as the job stores it (path resolved and checked), or None."""
    tl = params.timeline
    if tl is None:
        return None
    return {"path": str(cfg.media(tl.path, "timeline")), "cue": tl.cue,
            "in": tl.in_time.to_json() if tl.in_time else None, "out": tl.out_time.to_json() if tl.out_time else None}
