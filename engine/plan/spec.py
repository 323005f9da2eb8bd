"""What a front end asks of a plan made on the fly, and the one function that makes it.

`filmscore render --tempo/--key/...` (bridge/cli/plan.py) and a bridge `render` request with the same fields
(bridge/server/worker.py) both call `make_cue_plan` and then render a `RenderRequest` whose `plan` is the file it
wrote (`plan_path(OUT.wav)` = OUT.plan.json): one code path, so a cue rendered through the bridge is the cue the
command line renders. A bridge `plan` request runs the same `plan_request` on a worker and stops there: it writes
OUT.plan.json and answers `plan_summary` (what the Premiere panel shows and lets the editor change).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import RequestError
from ..options import RenderOptions
from .mood import MoodOverrides, PlanError


@dataclass(frozen=True)
class PlanSpec:
    """The editor's overrides (None: the picture decides), free timing, and the master whose harmony statistics
    harmonise or invent (None: the maestro's, else all masters pooled)."""

    overrides: MoodOverrides = field(default_factory=MoodOverrides)
    free_timing: bool = False
    style: str | None = None

    @property
    def given(self) -> bool:
        """True when anything differs from the defaults: a plan must then be made for the render."""
        return self != PlanSpec()

    def check(self) -> None:
        """`PlanError` naming the first bad override (a key name, a value out of range, an orchestration)."""
        self.overrides.check()
        if self.style is not None:
            from .harmony import style_names

            if self.style.strip().lower() not in style_names():
                raise PlanError(f"no harmony statistics for style {self.style!r}; known: {', '.join(style_names())}")

    @classmethod
    def of(cls, options: RenderOptions) -> PlanSpec:
        """The plan overrides of render `options` (engine/options.py, group "plan"): where they are consumed."""
        o = options
        return cls(MoodOverrides(**o.mood_values(), tempo_bpm=o.tempo_bpm, key=o.key, orchestration=o.orchestration),
                   free_timing=o.free_timing, style=o.style)

    def to_json(self) -> dict[str, Any]:
        return {"overrides": asdict(self.overrides), "free_timing": self.free_timing, "style": self.style}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PlanSpec:
        return cls(MoodOverrides(**d.get("overrides", {})), bool(d.get("free_timing", False)), d.get("style"))


def plan_path(output: str | Path) -> Path:
    """Where a render of OUT.wav writes the plan it made: OUT.plan.json."""
    stem = Path(output).with_suffix("")
    return stem.with_name(stem.name + ".plan.json")


def plan_summary(plan, plan_file: str | Path) -> dict[str, Any]:
    """What a front end shows of a plan before rendering (the bridge's `plan` reply, the Premiere panel): the
    median tempo, the key and mode, the mood, the orchestration, the number of bars, and where the plan was written."""
    return {"plan": str(plan_file), "duration_s": round(float(plan.duration_s), 4),
            "tempo_bpm": round(float(plan.tempo.tempo_bpm), 3), "target_bpm": round(float(plan.tempo.target_bpm), 3),
            "key": plan.key, "mode": plan.mode, "mood": plan.mood.to_json(), "orchestration": plan.orchestration,
            "bars": len(plan.tempo.downbeats), "beats": len(plan.tempo.beats), "free_timing": plan.tempo.free_timing}


def make_cue_plan(spec: PlanSpec, *, duration_s: float | None, video: Path | None = None, film=None,
                  start_s: float = 0.0, midi: Path | None = None, maestro: str | None = None,
                  theme: str | None = None, track: int | None = None, channel: int | None = None,
                  hits_s: tuple[float, ...] = (), seed: int = 0, faces: bool = True, progress=None):
    """Encode the range (cached) unless `film` features are given, read the theme, make the plan. Returns the
    `CuePlan`."""
    from ..controls.request import theme_for_request
    from .compose import make_plan

    spec.check()
    if video is not None and film is None:
        from ..film import encode_video

        film = encode_video(video, start_s, duration_s, faces=faces, progress=progress)
    duration = duration_s if duration_s is not None else (film.duration_s if film is not None else None)
    if duration is None:
        raise RequestError("give a video, or a duration for a plan without picture")
    if theme is not None and maestro is None:
        raise RequestError("a theme id needs a maestro (--maestro NAME --theme ID)")
    theme_obj = theme_for_request(midi=midi, maestro=maestro, theme=theme, track=track, channel=channel, seed=seed)
    source = {"video": None if video is None else str(video), "start_s": start_s, "maestro": maestro,
              "midi": None if midi is None else str(midi), "seed": seed}
    return make_plan(float(duration), film=film, theme=theme_obj, style=spec.style or maestro, hits_s=hits_s,
                     overrides=spec.overrides, free_timing=spec.free_timing, seed=seed, source=source)


def plan_request(request, spec: PlanSpec, plan_file: Path, *, faces: bool = True, progress=None):
    """Make `request`'s plan (its picture, theme, hits and seed, with `spec`), write it to `plan_file`, and return
    the request that renders exactly that plan (its melody replaces the theme; its length is the cue's; the plan
    overrides it was made with are spent)."""
    if request.reference_audio is not None:
        raise RequestError("plan overrides (tempo, key, ...) take a MIDI theme or a maestro, not reference audio")
    plan = make_cue_plan(spec, duration_s=request.duration_s, video=request.video, film=request.film_features,
                         start_s=request.start_s, midi=request.midi, maestro=request.maestro, theme=request.theme,
                         track=request.midi_track, channel=request.midi_channel, hits_s=request.hits_s,
                         seed=request.seed, faces=faces, progress=progress)
    plan.save(plan_file)
    return replace(request.without_plan(), plan=Path(plan_file), duration_s=plan.duration_s, midi=None, maestro=None,
                   theme=None)
