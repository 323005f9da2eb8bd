"""`RenderOptions`: the one owner of every render option (name, type, default, range or choices, help).

Every front end derives its options from this dataclass rather than declaring them again:
- the command line: `bridge/cli/common.py` (`add_render_options`, `options_from_args`) makes one flag per field
  (`Option.flag`, else `--name-with-dashes`), its help from `Option.help` with the range and default, and keeps
  old spellings (`Option.aliases`) working as hidden, deprecated flags;
- the bridge protocol: `bridge/protocol.py` takes a render request's option keys, JSON types and defaults from
  `option_fields()` (the protocol still owns the envelope and the wire-only fields: output, picture, range, theme
  source, hits);
- the timeline batch (`bridge/timelines/batch.py` `ScoreOptions.render`) and the evaluation runner
  (`engine/metrics/runner.py` `EvalOptions.render`) hold a `RenderOptions`;
- the engine: `RenderRequest` (engine/request.py) is a `RenderOptions` plus what one cue is; the pipeline's
  keyword defaults are `DEFAULTS`'s.

`validate()` is the one range check: the CLI, the protocol (on both the client's and the server's side) and the
engine call it, so an out-of-range value is refused with the same error type and message everywhere. It imports
nothing beyond the standard library (the host-side client imports it with pyzmq alone); the checks that need the
plan modules (a key's spelling, a style's statistics) stay with `engine.plan.spec.PlanSpec.check`.

Adding an option: a field here (and the code that consumes it); the flags, the protocol and the batch follow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, get_type_hints

from .constants import DELIVERY_SAMPLE_RATE
from .errors import FilmscoreError, LoudnessError, PlanError, RequestError

SCHEDULERS: tuple[str, ...] = ("ddim", "dpmpp", "euler")
BACKENDS: tuple[str, ...] = ("auto", "torch", "ort", "trt")
VOCODERS: tuple[str, ...] = ("auto", "network", "griffin-lim")
ORCHESTRATIONS: tuple[str, ...] = ("strings", "winds", "full", "dark")
"""Names of the plan's orchestrations (their General MIDI programs: `engine.plan.mood.ORCHESTRA_PROGRAMS`)."""
LOUDNESS_PRESETS: dict[str, float] = {"ebu-r128": -23.0, "atsc-a85": -24.0, "streaming": -16.0}
"""Delivery loudness targets by name (LUFS): EBU R128, ATSC A/85 (LKFS), the streaming services' -16."""
MOODS: dict[str, tuple[float, float, float]] = {
    # (energy, valence, tension) in [0, 1] on the plan's axes (engine/plan/mood.py; docs/plan.md, "Named moods"):
    # a point in each region of the valence-arousal plane that film cues are written for
    "calm": (0.2, 0.65, 0.15),
    "tender": (0.3, 0.75, 0.2),
    "sad": (0.2, 0.15, 0.35),
    "mysterious": (0.35, 0.35, 0.7),
    "tense": (0.7, 0.3, 0.9),
    "action": (0.9, 0.5, 0.75),
    "heroic": (0.8, 0.8, 0.45),
    "joyful": (0.75, 0.9, 0.2),
}
"""Named moods for `RenderOptions.mood`: energy, valence and tension together."""

RENDER, PLAN = "render", "plan"
"""Option groups: how the model renders, and the cue plan's overrides (each replaces what the picture chooses)."""


@dataclass(frozen=True)
class Option:
    """What a front end needs to know of one option besides its name, type and default."""

    help: str
    range: tuple[float, float] | None = None  # inclusive
    choices: tuple[str, ...] | None = None
    flag: str | None = None  # the command-line spelling; None: --name-with-dashes
    aliases: tuple[str, ...] = ()  # deprecated command-line spellings: still parsed, hidden from --help
    unit: str = ""
    group: str = RENDER
    error: type[FilmscoreError] = RequestError  # what an out-of-range value raises, in every front end
    presets: Mapping[str, float] | None = None  # names a number may also be given as (command line)
    metavar: str | None = None
    max_len: int | None = None  # for free-text names


def option(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, **kw)})


@dataclass(frozen=True, kw_only=True)
class RenderOptions:
    """Every option of a render. Keyword-only, so a subclass (`RenderRequest`) keeps its own positional fields."""

    seed: int = option(0, "random seed: same request + seed = identical WAV (and, with --maestro and no --theme, "
                          "the theme drawn)", range=(0, 2**63 - 1), metavar="N")
    steps: int = option(25, "denoising steps", range=(1, 1000), metavar="N")
    scheduler: str = option("dpmpp", "sampler: ddim, dpmpp (DPM-Solver++ 2M) or euler", choices=SCHEDULERS)
    picture_guidance: float = option(2.0, "picture guidance scale (0: ignore the picture's film tokens; 1: "
                                          "conditioned, no guidance)", range=(0.0, 20.0), aliases=("--guidance",),
                                     metavar="SCALE")
    control_guidance: float = option(3.0, "melody/dynamics guidance scale", range=(0.0, 20.0), metavar="SCALE")
    control_strength: float = option(1.0, "ControlNet residual scale", range=(0.0, 20.0), metavar="SCALE")
    # How far the picture shapes the loudness of a theme that has dynamics of its own: 0 keeps the theme's, 1 takes
    # the picture's (motion and cut accents); between, the two dB curves are mixed (engine/cue_controls.py).
    picture_dynamics: float = option(0.5, "how far the picture's motion and cuts shape a theme's loudness: 0 keeps "
                                          "the theme's own dynamics, 1 takes the picture's (without a theme the "
                                          "picture's are used)", range=(0.0, 1.0), metavar="X")
    sample_rate: int = option(DELIVERY_SAMPLE_RATE, "delivered sample rate", range=(8000, 192000), unit="Hz",
                              metavar="HZ")
    target_lufs: float = option(-23.0, "programme loudness: LUFS, or ebu-r128 (-23), atsc-a85 (-24 LKFS), "
                                       "streaming (-16); true peak is kept at or under -1 dBTP",
                                range=(-70.0, 0.0), unit="LUFS", aliases=("--lufs", "--loudness"),
                                error=LoudnessError, presets=LOUDNESS_PRESETS, metavar="LUFS")
    backend: str = option("auto", "runtime: auto (the fastest measured here), torch, ort or trt", choices=BACKENDS)
    vocoder: str = option("auto", "Mel to audio: the bundle's network vocoder, or Griffin-Lim phase reconstruction "
                                  "(no network, lower quality); auto takes the network vocoder when the bundle has "
                                  "one", choices=VOCODERS)
    # A delivery choice of a v2 bundle (engine/render_v2.py): its stems beside the mix; a v1 bundle has none.
    stems: bool = option(False, "with a v2 bundle: also write the lead, accompaniment and percussion stems beside the "
                                "stereo mix (OUT.lead.wav, ...: same rate, length and time reference; they sum to the "
                                "mix); a v1 bundle is refused")
    # The cue plan's overrides (engine/plan, docs/plan.md). None follows the picture. Any of them given, a render
    # makes the plan and renders it (engine.plan.spec.plan_request).
    tempo_bpm: float | None = option(None, "target tempo", range=(40.0, 200.0), unit="BPM", flag="--tempo",
                                     group=PLAN, error=PlanError, metavar="BPM")
    key: str | None = option(None, 'key, e.g. "D minor", "Bb major", or a tonic alone ("F#")', group=PLAN,
                             error=PlanError, max_len=64)
    mood: str | None = option(None, "a named mood: its energy, valence and tension (each also given on its own "
                                    "replaces the mood's)", choices=tuple(MOODS), group=PLAN, error=PlanError)
    energy: float | None = option(None, "mood energy", range=(0.0, 1.0), group=PLAN, error=PlanError, metavar="X")
    valence: float | None = option(None, "mood valence (0 sad/dark, 1 happy/bright)", range=(0.0, 1.0), group=PLAN,
                                   error=PlanError, metavar="X")
    tension: float | None = option(None, "mood tension", range=(0.0, 1.0), group=PLAN, error=PlanError, metavar="X")
    orchestration: str | None = option(None, "strings, winds, full or dark", choices=ORCHESTRATIONS, group=PLAN,
                                       error=PlanError)
    free_timing: bool = option(False, "a steady tempo that does not follow the cuts", group=PLAN, error=PlanError)
    style: str | None = option(None, "the master whose harmony statistics harmonise or invent (default: --maestro's, "
                                     "else all masters pooled)", group=PLAN, error=PlanError, max_len=64)

    def validate(self) -> None:
        """Raise the option's error (`RequestError`, `LoudnessError`, `PlanError`) naming the first value out of
        its range or choices."""
        for f in option_fields():
            value = getattr(self, f.name)
            if value is None and f.optional:
                continue
            f.check(value)

    @property
    def plan_given(self) -> bool:
        """True when any cue plan override differs from its default: the render must make a plan."""
        return any(getattr(self, f.name) != f.default for f in option_fields(PLAN))

    def without_plan(self) -> RenderOptions:
        """These options with every plan override back at its default (a plan already made from them)."""
        return replace(self, **{f.name: f.default for f in option_fields(PLAN)})

    def mood_values(self) -> dict[str, float | None]:
        """energy, valence and tension as the plan takes them: `mood`'s, each replaced where given on its own."""
        named = MOODS[self.mood] if self.mood is not None else (None, None, None)
        return {k: v if v is not None else m
                for k, v, m in zip(("energy", "valence", "tension"), (self.energy, self.valence, self.tension), named)}

    def options(self) -> RenderOptions:
        """Only the options (a `RenderRequest` less what one cue is)."""
        return RenderOptions(**self.option_values())

    def option_values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in option_fields()}


@dataclass(frozen=True)
class OptionField:
    """One field of `RenderOptions` as the front ends see it."""

    name: str
    kind: type  # int, float, str or bool
    optional: bool  # None is a value (a plan override that follows the picture)
    default: Any
    meta: Option

    @property
    def group(self) -> str:
        return self.meta.group

    @property
    def flag(self) -> str:
        return self.meta.flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        """How errors name it: the field (the protocol's key), with the flag when that is spelt otherwise."""
        plain = "--" + self.name.replace("_", "-")
        return self.name if self.flag == plain else f"{self.name} ({self.flag})"

    @property
    def range_text(self) -> str | None:
        """"1..1000", "40..200 BPM" (None without a range)."""
        if self.meta.range is None:
            return None
        lo, hi = self.meta.range
        return f"{_num(lo)}..{_num(hi)}" + (f" {self.meta.unit}" if self.meta.unit else "")

    def check(self, value: Any) -> None:
        m = self.meta
        if m.range is not None:
            lo, hi = m.range
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise m.error(f"{self.label} must be {self.range_text}, got {str(value)[:24]}")
        if m.choices is not None and value not in m.choices:
            raise m.error(f"unknown {self.label} {str(value)[:40]!r}; choose one of {', '.join(m.choices)}")
        if m.max_len is not None and len(value) > m.max_len:
            raise m.error(f"{self.label} is {len(value)} characters; the limit is {m.max_len}")

    def parse_text(self, text: str) -> Any:
        """A command-line value of this option: its type, or a preset's number (`--target-lufs ebu-r128`)."""
        if self.meta.presets is not None and text in self.meta.presets:
            return self.meta.presets[text]
        try:
            return self.kind(text)
        except ValueError:
            names = f" or one of {', '.join(self.meta.presets)}" if self.meta.presets else ""
            raise self.meta.error(f"{self.flag} {text[:40]!r}: give {'an integer' if self.kind is int else 'a number'}"
                                  f"{names}") from None


def _num(x: float) -> str:
    if x == 2**63 - 1:
        return "2**63-1"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _fields() -> tuple[OptionField, ...]:
    hints = get_type_hints(RenderOptions)
    out = []
    for f in fields(RenderOptions):
        hint = hints[f.name]
        args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
        kind = args[0] if args else hint
        out.append(OptionField(f.name, kind, bool(args), f.default, f.metadata["option"]))
    return tuple(out)


_FIELDS = _fields()
DEFAULTS = RenderOptions()
"""The defaults, for keyword defaults elsewhere (`FilmScorePipeline`)."""


def option_fields(group: str | None = None) -> tuple[OptionField, ...]:
    """The options in declaration order (one group's, or all)."""
    return _FIELDS if group is None else tuple(f for f in _FIELDS if f.group == group)


def option_field(name: str) -> OptionField:
    for f in _FIELDS:
        if f.name == name:
            return f
    raise KeyError(f"no render option {name!r}")


def option_names(group: str | None = None) -> tuple[str, ...]:
    return tuple(f.name for f in option_fields(group))


def options_markdown() -> str:
    """The table of docs/options.md (a test keeps the file equal to it): one row per option, from the metadata."""
    rows = ["| option (protocol key) | flag | type | default | range or choices | help |",
            "| --- | --- | --- | --- | --- | --- |"]
    for f in _FIELDS:
        kind = f.kind.__name__ + (" or null" if f.optional else "")
        default = "the picture decides" if f.default is None else f"`{f.default}`"
        allowed = f.range_text or (", ".join(f"`{c}`" for c in f.meta.choices) if f.meta.choices else "")
        if f.meta.presets:
            allowed += "; flag also " + ", ".join(f"`{k}` ({v:g})" for k, v in f.meta.presets.items())
        if f.meta.max_len:
            allowed += f"at most {f.meta.max_len} characters"
        flag = f"`{f.flag}`" + (f" (old: {', '.join(f'`{a}`' for a in f.meta.aliases)})" if f.meta.aliases else "")
        group = " (plan override)" if f.group == PLAN else ""
        rows.append(f"| `{f.name}`{group} | {flag} | {kind} | {default} | {allowed} | {f.meta.help} |")
    return "\n".join(rows) + "\n"
