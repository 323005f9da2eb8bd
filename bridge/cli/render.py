"""`filmscore render VIDEO -o OUT.wav`: score a clip (or a range of it) with the engine.

Everything that can be refused is refused before the model loads (`engine.preflight` plus the outputs rule in
`common.check_outputs`), and before this command imports the render path: a typo answers as fast as `encode`.
The cue is 1..600 s long: `--duration`, or the picture's length from `--start` when it is not given.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import asdict
from pathlib import Path

from filmscore.engine.errors import RequestError

from .plan import add_render_plan_options, plan_for_render
from .render_handoff import add_handoff_flags
from .common import (HelpFormatter, add_json_flag, add_overwrite_flag, add_render_options, check_outputs, emit,
                     given_options, options_from_args, parse_hits, print_draft_ready, stage_progress,
                     stderr_console)


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    """What `render`, `demo` and `midi-in` take besides the cue: the render options (engine/options.py, through
    `common.add_render_options`; the plan overrides come with `plan.add_render_plan_options`) and --bundle."""
    from filmscore.engine.options import RENDER, option_names

    add_render_options(p, only=option_names(RENDER))
    p.add_argument("--bundle", type=Path, default=None, help="model bundle directory (default: the shipped one)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a cue for a video clip", formatter_class=HelpFormatter,
                       description="Score a clip, or a range of it, and write OUT.wav (24-bit, --sample-rate, mono) "
                                   "with OUT.json, OUT.controls.npz and OUT.theme.mid beside it.")
    p.add_argument("video", type=Path, nargs="?", help="video file (any container PyAV reads); omit with --duration")
    p.add_argument("-o", "--output", type=Path, required=True, help="output WAV")
    p.add_argument("--preview", type=Path, default=None, metavar="PATH",
                   help="first write a few-step draft of the whole cue to PATH (WAV; same seed and plan), then the "
                        "full render to --output")
    p.add_argument("--start", type=float, default=0.0, help="start of the range in the video (s)")
    p.add_argument("--duration", type=float, default=None,
                   help="cue length (s), 1..600; default: the picture from --start to its end (also at least 1 s)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--midi", type=Path, help="MIDI theme to follow")
    src.add_argument("--reference", type=Path, help="reference recording whose melody and dynamics to follow")
    src.add_argument("--maestro", help="a master from the built-in library (see `filmscore maestros`)")
    p.add_argument("--theme", help="with --maestro: a theme id (default: picked by the seed)")
    add_render_plan_options(p, src)
    p.add_argument("--track", type=int, default=None,
                   help="with --midi: the track holding the melody (0-based index: 0 is the file's first track)")
    p.add_argument("--channel", type=int, default=None, help="with --midi: the channel holding the melody (1-16)")
    p.add_argument("--hits", default="", help="hit points in seconds, comma-separated (default: the picture's cuts)")
    p.add_argument("--bwf", action="store_true",
                   help="deliver a Broadcast WAV: bext (description, originator, time reference, loudness) and iXML "
                        "beside the same 24-bit audio (with --timeline, the one `score` and the bridge deliver)")
    p.add_argument("--timeline", type=Path, default=None, metavar="EDIT",
                   help="render a cue of an edited timeline (OTIO, FCP XML, EDL, ...) instead of a VIDEO: its picture, "
                        "length and hit points, as `score` renders it (give --cue)")
    p.add_argument("--cue", default=None, metavar="NAME", help="with --timeline: the cue marker to render")
    add_engine_flags(p)
    p.add_argument("--variations", type=int, default=1, metavar="N",
                   help="render N takes of the request together (seeds --seed, --seed + 1, ...) to OUT.take1.wav ... "
                        "OUT.takeN.wav, each with its JSON; any take re-renders alone, bit for bit, from its seed")
    p.add_argument("--from", dest="from_cue", type=Path, default=None, metavar="CUE.wav",
                   help="with --regenerate: the rendered cue to change (its JSON holds the request)")
    p.add_argument("--regenerate", default=None, metavar="START:END",
                   help="with --from: regenerate this range (seconds of the cue) with a new --seed (without --seed: "
                        "the cue's seed + 1); outside it the WAV is sample-identical to the cue")
    add_overwrite_flag(p)
    add_handoff_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def request_from_args(args: argparse.Namespace, output: Path, **overrides):
    from filmscore.engine.request import RenderRequest

    options = options_from_args(args)
    if overrides.get("plan") is not None:  # a plan file: made from the overrides already, or edited and given
        options = options.without_plan()
    return RenderRequest(output=output, bundle=args.bundle, **{**options.option_values(), **overrides})


def check_render(request, overwrite: bool, more_inputs: dict[str, Path | None] | None = None):
    """Every check a render can fail, before the model loads and before the render path is even imported: the
    engine's (`preflight.check_request`) and the outputs rule (`common.check_outputs`: an existing WAV or sidecar
    needs --overwrite). `more_inputs`: files the command reads besides the request's (protected the same way)."""
    from filmscore.engine.preflight import check_request, input_paths, output_paths

    checked = check_request(request)
    check_outputs(output_paths(request.output), {**input_paths(request), **(more_inputs or {})}, overwrite)
    return checked


def render_with_progress(request, json_mode: bool, checked=None, prefix: str = "filmscore render",
                         preview: Path | None = None, variations: int = 1, started: dict | None = None):
    """`render_cue` with the CLI's progress display. `started`, when given, receives `startup_s`: the process's
    age when the engine reported its first stage (interpreter, imports, parsing and checks: `startup.py`)."""
    from filmscore.engine.render import Preview, render_cue

    from .startup import process_age_s

    with stage_progress(prefix, enabled=not json_mode) as shown:
        def progress(stage: str, fraction: float, message: str = "") -> None:
            if started is not None and "startup_s" not in started:
                started["startup_s"] = process_age_s()
            shown(stage, fraction, message)

        return render_cue(request, progress=progress, checked=checked,
                          preview=Preview(preview, on_ready=functools.partial(print_draft_ready, prefix)) if preview is not None else None,
                          variations=variations)


def print_warnings(metadata: dict) -> None:
    """A cue's warnings (its metadata's), one line each on stderr."""
    for w in metadata.get("warnings", []):
        stderr_console.print(f"warning: {w}", highlight=False)


def run_regenerate(args: argparse.Namespace) -> int:
    """`render [VIDEO] --from CUE.wav --regenerate START:END -o NEW.wav` (engine/regenerate.py)."""
    if args.from_cue is None or args.regenerate is None:
        raise RequestError("--from CUE.wav and --regenerate START:END go together")
    given = [f"--{n.replace('_', '-')}" for n in ("midi", "reference", "maestro", "theme", "plan", "duration")
             if getattr(args, n, None) is not None] + (["--preview"] if args.preview is not None else []) + \
        (["--connection-file (a regeneration renders here)"] if args.connection_file is not None else [])
    if given:
        raise RequestError(f"{', '.join(given)}: with --from the cue's own request is used; drop them")
    from filmscore.engine import sidecar
    from filmscore.engine.preflight import output_paths, sidecar_paths
    from filmscore.engine.regenerate import Regeneration, latent_path, parse_range

    start, end = parse_range(args.regenerate)
    meta_path = sidecar_paths(args.from_cue)["metadata"]
    if args.video is not None and meta_path.is_file():
        video = sidecar.load(sidecar.CUE, meta_path)["request"].get("video")
        if video is None or Path(video).resolve() != args.video.resolve():
            raise RequestError(f"{args.video}: {args.from_cue} was rendered for {video or 'no picture'}")
    check_outputs([*output_paths(args.output), latent_path(args.output)], {"cue": args.from_cue}, args.overwrite)
    from filmscore.engine.regenerate import regenerate_cue

    film = None
    if meta_path.is_file():  # a cue `filmscore score` rendered: its timeline region's picture, encoded again
        from filmscore.bridge.timelines.region_picture import picture_of_cue_json

        film = picture_of_cue_json(sidecar.load(sidecar.CUE, meta_path), meta_path)
    with stage_progress("filmscore render", enabled=not args.json) as progress:
        seed = given_options(args).get("seed")  # None: the cue's seed + 1
        result = regenerate_cue(Regeneration(args.from_cue, args.output, start, end, seed, film),
                                progress=progress)
    regen = result.metadata["regenerated"]
    summary = {"output": str(result.output), "duration_s": result.duration_s, "n_samples": result.n_samples,
               "sample_rate": result.sample_rate, "regenerated": regen,
               "timings_s": {k: round(v, 3) for k, v in result.timings_s.items()}}
    emit(args, summary, lambda: stderr_console.print(
        f"wrote {result.output}: {start:g}-{end:g} s regenerated with seed {regen['seed']} (the cue's was "
        f"{regen['from_seed']}); outside it sample-identical to {args.from_cue}", highlight=False))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.from_cue is not None or args.regenerate is not None:
        return run_regenerate(args)
    if args.seed is None:
        args.seed = 0
    if args.video is None and args.duration is None and args.plan is None and args.timeline is None:
        raise RequestError("give a VIDEO, or --duration for a cue without picture")
    plan, duration, start = plan_for_render(args)
    req = request_from_args(args, args.output, video=args.video, start_s=start, duration_s=duration, plan=plan,
                            midi=None if plan else args.midi, maestro=None if plan else args.maestro,
                            reference_audio=args.reference, theme=None if plan else args.theme,
                            midi_track=args.track, midi_channel=args.channel, hits_s=parse_hits(args.hits))
    req, cue = delivered_as_asked(args, req)
    checked = check_render(req, args.overwrite)
    if args.stems:
        from filmscore.engine.preflight import input_paths
        from filmscore.engine.render_v2 import request_stem_paths

        check_outputs(list(request_stem_paths(req).values()), input_paths(req), args.overwrite)
    if args.variations != 1:
        from filmscore.engine.preflight import input_paths, output_paths
        from filmscore.engine.render import take_path

        if not 2 <= args.variations <= 16 or args.preview is not None:
            raise RequestError(f"--variations {args.variations}: give 2..16, without --preview")
        check_outputs([q for k in range(args.variations) for q in output_paths(take_path(args.output, k + 1))],
                      input_paths(req), args.overwrite)
    if args.preview is not None:
        from filmscore.engine.preflight import input_paths

        if args.preview.suffix.lower() != ".wav" or args.preview.resolve() == args.output.resolve():
            raise RequestError(f"--preview {args.preview}: give a .wav path other than the output")
        check_outputs([args.preview], input_paths(req), args.overwrite)
    started: dict = {}
    handed = render_on_bridge(args, started)
    if handed is not None:
        result, on_bridge = handed
    else:
        on_bridge = None
        if cue is not None:  # the region's picture, as score's workers and the bridge's timeline jobs encode it
            from filmscore.bridge.timelines.render_cue import timeline_hits_s, with_region_picture

            req, _missing = with_region_picture(req, cue.picture, timeline_hits_s(cue))
        rendered = render_with_progress(req, args.json, checked, preview=args.preview, variations=args.variations,
                                        started=started)
        result = asdict(rendered)
    emit(args, *cue_summary(result, started.get("startup_s"), on_bridge))
    return 0


def render_on_bridge(args: argparse.Namespace, started: dict) -> tuple[dict, dict] | None:
    """(the result, {pid, job_id, connection_file}) of the render handed to a running bridge
    (`render_handoff`), or None when it renders here. `started` receives `startup_s`: the process's age when the
    bridge queued the job."""
    from . import render_handoff as h
    from .startup import process_age_s

    bridge = h.find_bridge(args)
    if bridge is None:
        return None
    explicit = args.connection_file is not None
    with bridge.client:
        job = h.submit(bridge, args, explicit)
        if job is None:
            return None
        started["startup_s"] = process_age_s()
        where = f"bridge pid {bridge.pid}" if bridge.pid else str(bridge.connection_file)
        if not args.json:
            stderr_console.print(f"filmscore render: rendering on the running bridge ({where}, job {job}); --local "
                                 "renders in this process", highlight=False)
        with stage_progress("filmscore render", enabled=not args.json) as progress:
            result = h.wait_for(bridge, job, args, progress, functools.partial(print_draft_ready, "filmscore render"))
    return result, {"pid": bridge.pid, "job_id": job, "connection_file": str(bridge.connection_file)}


def cue_summary(result: dict, startup_s: float | None, bridge: dict | None):
    """(the --json summary, its human form) of a render's result (`RenderResult` as a dict: a local render's,
    or the one a bridge's job returns)."""
    meta = result["metadata"]
    theme = meta.get("theme")
    summary = {"output": str(result["output"]), "duration_s": result["duration_s"], "n_samples": result["n_samples"],
               "sample_rate": result["sample_rate"], "seed": result["seed"], "controls": str(result["controls_path"]),
               "theme": theme, "bundle": meta["bundle"], "loudness": meta["loudness"],
               "warnings": meta.get("warnings", []),
               "preview": meta.get("preview"), "variations": meta.get("variations"), "stems": meta.get("stems"),
               "startup_s": None if startup_s is None else round(startup_s, 3), "bridge": bridge,
               "timings_s": {k: round(v, 3) for k, v in result["timings_s"].items()}}

    def human() -> None:
        print_warnings(meta)
        if meta.get("variations"):
            v = meta["variations"]
            stderr_console.print(f"{v['of']} takes (seeds {', '.join(map(str, v['seeds']))}): "
                                 f"{', '.join(v['takes'])}", highlight=False)
        stderr_console.print(
            f"wrote {result['output']} ({result['duration_s']:.2f} s, {result['sample_rate']} Hz, seed "
            f"{result['seed']}, bundle {meta['bundle']['name']}); controls: {result['controls_path']}"
            + (f"; theme {theme['name']}" + (" (drawn by the seed)" if theme["chosen_by"] == "seed" else "")
               if theme else ""), highlight=False)
        if meta.get("stems"):
            stderr_console.print(f"stems: {', '.join(meta['stems'].values())}", highlight=False)

    return summary, human


def delivered_as_asked(args: argparse.Namespace, req):
    """(`req` with its delivery, the timeline cue or None). --timeline EDIT --cue NAME: the cue's request as `score`
    and the bridge's timeline jobs make it (`timelines.render_cue.cue_request`: its exact length, BWF with its
    time reference); else --bwf: a BWF named after the output, time reference 0."""
    from dataclasses import replace

    from filmscore.engine.audio.delivery import Delivery

    if args.timeline is None:
        if args.cue is not None:
            raise RequestError("--cue names a cue of a --timeline")
        if not args.bwf:
            return req, None
        stem = Path(args.output).stem
        return replace(req, delivery=Delivery(format="bwf", description=f"filmscore cue {stem}, seed {req.seed}",
                                              originator_reference=stem[:32], scene=stem)), None
    given = [f"--{n}" for n in ("duration", "plan", "preview", "stems") if getattr(args, n, None)]
    given += ["VIDEO"] if args.video is not None else []
    if given or args.variations != 1:
        raise RequestError(f"{', '.join(given) or '--variations'}: not with --timeline (the cue is the timeline's)")
    if args.cue is None:
        raise RequestError("--timeline needs --cue NAME (the cue marker to render)")
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.files import read_timeline
    from filmscore.bridge.timelines.render_cue import cue_request, timeline_name

    loaded = read_timeline(args.timeline)
    cue = read_cues(loaded).select([args.cue])[0]
    return cue_request(req, cue, timeline_name(loaded), "bwf"), cue
