"""`filmscore plan VIDEO -o PLAN.json`: the cue plan (tempo map on the cuts, key and mode from the mood, harmony,
bass, rhythm, dynamics, melody) of a clip's range, as JSON and, with --midi-out, as a multi-track MIDI file.

    filmscore plan VIDEO [--start S] [--duration S] [--midi THEME | --maestro M [--theme ID]] [--style M]
                   [--hits T,T] [--tempo BPM] [--key "D minor"] [--energy X] [--valence X] [--tension X]
                   [--orchestration NAME] [--free-timing] [--seed N] -o PLAN.json [--midi-out PLAN.mid] [--json]

`filmscore render VIDEO --plan PLAN.json|PLAN.mid` renders a plan (edited or not); the same override flags on
`render` make a plan on the fly (docs/plan.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from filmscore.engine.errors import RequestError

from .common import (HelpFormatter, add_json_flag, add_overwrite_flag, add_render_options, check_outputs, emit,
                     options_from_args, parse_hits, stderr_console)


def add_plan_overrides(p: argparse.ArgumentParser) -> None:
    """The editor's overrides of the plan's choices (shared by `plan`, `render` and `score`): the render options of
    the group "plan" (engine/options.py)."""
    from filmscore.engine.options import PLAN, option_names

    add_render_options(p, only=option_names(PLAN))


def spec_from_args(args: argparse.Namespace):
    """The `PlanSpec` of the override flags (checked: a bad key or value is refused before any work)."""
    from filmscore.engine.plan.spec import PlanSpec

    spec = PlanSpec.of(options_from_args(args))
    spec.check()
    return spec


def has_overrides(args: argparse.Namespace) -> bool:
    return options_from_args(args).plan_given


def make_plan_from_args(args: argparse.Namespace, video: Path | None, start_s: float, duration_s: float | None,
                        hits_s: tuple[float, ...], progress=None):
    """Encode the range (cached), read the theme, make the plan (`engine.plan.spec.make_cue_plan`, which the
    bridge's worker calls too). Returns the `CuePlan`."""
    from filmscore.engine.plan.spec import make_cue_plan

    if duration_s is None and video is None:
        raise RequestError("give a VIDEO, or --duration for a plan without picture")
    return make_cue_plan(spec_from_args(args), duration_s=duration_s, video=video, start_s=start_s,
                         midi=getattr(args, "midi", None), maestro=getattr(args, "maestro", None),
                         theme=getattr(args, "theme", None), track=getattr(args, "track", None),
                         channel=getattr(args, "channel", None), hits_s=hits_s, seed=options_from_args(args).seed,
                         faces=not getattr(args, "no_faces", False), progress=progress)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="the cue plan of a clip: tempo map on the cuts, key, harmony, bass, rhythm, "
                                    "dynamics (JSON and MIDI)", formatter_class=HelpFormatter,
                       description="Turn a clip's range (and a theme or a master) into an explicit musical plan.")
    p.add_argument("video", type=Path, nargs="?", help="video file; omit with --duration for a plan without picture")
    p.add_argument("-o", "--output", type=Path, required=True, help="PLAN.json")
    p.add_argument("--midi-out", type=Path, default=None, help="also write the plan as a multi-track MIDI file")
    p.add_argument("--start", type=float, default=0.0, help="start of the range in the video (s)")
    p.add_argument("--duration", type=float, default=None, help="cue length (s); default: to the end of the video")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--midi", type=Path, help="MIDI theme (melody only: harmonised; with parts: its own chords)")
    src.add_argument("--maestro", help="a master from the built-in library (see `filmscore maestros`)")
    p.add_argument("--theme", help="with --maestro: a theme id (default: picked by the seed)")
    p.add_argument("--track", type=int, default=None, help="with --midi: the track holding the melody")
    p.add_argument("--channel", type=int, default=None, help="with --midi: the channel holding the melody (1-16)")
    p.add_argument("--hits", default="", help="hit points the editor flags, seconds, comma-separated (besides the "
                                              "picture's cuts)")
    add_render_options(p, only=("seed",), notes={"seed": "here: the drawn choices (theme, progression, melody)"})
    p.add_argument("--no-faces", action="store_true", help="skip the face branch (faster; valence from colour only)")
    add_plan_overrides(p)
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.video is None and args.duration is None:
        raise RequestError("give a VIDEO, or --duration for a plan without picture")
    if args.output.suffix.lower() != ".json":
        raise RequestError(f"output {args.output}: must end in .json (use --midi-out for MIDI)")
    if args.midi_out is not None and args.midi_out.suffix.lower() not in (".mid", ".midi"):
        raise RequestError(f"--midi-out {args.midi_out}: must end in .mid")
    if args.video is not None and not args.video.is_file():
        raise RequestError(f"{args.video}: no such video")
    if args.midi is not None and not args.midi.is_file():
        raise RequestError(f"{args.midi}: no such MIDI file")
    check_outputs([args.output, args.midi_out], {"video": args.video, "midi": args.midi}, args.overwrite)
    plan = make_plan_from_args(args, args.video, args.start, args.duration, parse_hits(args.hits))
    plan.save(args.output)
    if args.midi_out is not None:
        plan.save(args.midi_out)
    summary = {"output": str(args.output), "midi": None if args.midi_out is None else str(args.midi_out),
               **plan.summary()}
    emit(args, summary, lambda: stderr_console.print(
        f"wrote {args.output}: {plan.tempo.tempo_bpm:.1f} BPM, {plan.key} {plan.mode}, "
        f"{len(plan.tempo.downbeats)} bars, {len(plan.chords)} chords, mood energy {plan.mood.energy:.2f} valence "
        f"{plan.mood.valence:.2f} tension {plan.mood.tension:.2f}, {summary['hits_on_beat']}/{len(plan.hits)} hits "
        "on a beat" + (f"; MIDI {args.midi_out}" if args.midi_out else ""), highlight=False))
    return 0


def add_render_plan_options(p: argparse.ArgumentParser, src_group) -> None:
    """`render`'s plan options: --plan in the theme-source group (a plan holds its melody), and the overrides."""
    src_group.add_argument("--plan", type=Path, help="render this plan (PLAN.json or PLAN.mid from `filmscore plan`, "
                                                     "edited or not) exactly")
    add_plan_overrides(p)


def plan_for_render(args: argparse.Namespace) -> tuple[Path | None, float | None, float]:
    """(the plan file to render, the cue duration, the range start) for `render`'s arguments: --plan as given (read
    now, so a bad file is refused before the model loads; its duration is the cue's unless --duration says
    otherwise, and a --start of 0 means the plan's own range start); with plan overrides and no --plan, a plan made
    now and written to OUT.plan.json; else (None, --duration, --start)."""
    if args.plan is not None:
        from filmscore.engine.plan.plan import CuePlan  # here: scipy.ndimage costs ~1 s to every render otherwise

        if has_overrides(args):
            raise RequestError("--plan renders a plan as it stands; change it with `filmscore plan` (the override "
                               "flags) or in a DAW, not with render's override flags")
        plan = CuePlan.load(args.plan)
        start = args.start if args.start else float(plan.source.get("start_s") or 0.0)
        return args.plan, args.duration if args.duration is not None else plan.duration_s, start
    if not has_overrides(args):
        return None, args.duration, args.start
    if args.reference is not None:
        raise RequestError("plan overrides (--tempo, --key, ...) take a MIDI theme or a maestro, not --reference")
    from filmscore.engine.plan.spec import plan_path

    out = plan_path(args.output)
    check_outputs([out], {"video": args.video, "midi": args.midi}, args.overwrite)
    plan = make_plan_from_args(args, args.video, args.start, args.duration, parse_hits(args.hits))
    plan.save(out)
    return out, plan.duration_s, args.start
