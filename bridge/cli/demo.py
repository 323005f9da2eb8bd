"""`filmscore demo -o DIR`: synthesise a short sample clip with PyAV (no download), score it, write both."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import HelpFormatter, add_json_flag, add_overwrite_flag, check_outputs, emit, stderr_console
from .render import add_engine_flags, check_render, print_warnings, render_with_progress, request_from_args

DEMO_SHOTS_SPEC = (  # a calm opening, a busier middle, a dark close: the cue should follow
    ("still", 4.0, 0.02, 0.9, "cut"),
    ("pan", 3.5, 0.35, 1.0, "cut"),
    ("shapes", 3.0, 0.6, 1.0, "cut"),
    ("pan", 3.5, 0.05, 0.35, "dissolve"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="make a sample clip and render its cue with the default model",
                       formatter_class=HelpFormatter)
    p.add_argument("-o", "--out", type=Path, default=Path("demo_out"), help="output folder (created)")
    p.add_argument("--maestro", default=None, help="let a master's theme lead (see `filmscore maestros`)")
    add_engine_flags(p)
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def make_sample_clip(path: Path) -> list[float]:
    """Write the 14 s, 4-shot sample clip (H.264, 256x144, 25 fps); returns its true cut times."""
    from filmscore.engine.film.synthetic import Shot, write_edit

    shots = [Shot(kind, dur, speed=speed, brightness=bright, seed=i, transition=tr)
             for i, (kind, dur, speed, bright, tr) in enumerate(DEMO_SHOTS_SPEC)]
    return write_edit(path, shots, width=256, height=144, fps=25, codec="h264")


def run(args: argparse.Namespace) -> int:
    from filmscore.engine.errors import RequestError
    from filmscore.engine.preflight import output_paths

    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RequestError(f"output folder {args.out}: cannot be made ({e.strerror or e})") from None
    clip, cue = args.out / "sample_clip.mp4", args.out / "cue.wav"
    check_outputs([clip, *output_paths(cue)], {}, args.overwrite)  # the clip is written by us, then read
    cuts = make_sample_clip(clip)
    stderr_console.print(f"wrote sample clip {clip} (cuts at {', '.join(f'{c:.2f}' for c in cuts)} s)",
                         highlight=False)
    req = request_from_args(args, cue, video=clip, maestro=args.maestro)
    checked = check_render(req, overwrite=True)  # the cue's outputs were checked with the clip's above
    result = render_with_progress(req, args.json, checked, prefix="filmscore demo")
    print_warnings(result.metadata)
    summary = {"clip": str(clip), "true_cuts_s": cuts, "cue": str(result.output), "duration_s": result.duration_s,
               "sample_rate": result.sample_rate, "bundle": result.metadata["bundle"],
               "detected_cuts_s": (result.metadata.get("picture") or {}).get("cuts_s"),
               "theme": result.metadata.get("theme"),
               "timings_s": {k: round(v, 3) for k, v in result.timings_s.items()}}
    theme = result.metadata.get("theme")
    emit(args, summary, lambda: stderr_console.print(
        f"wrote {result.output} ({result.duration_s:.2f} s at {result.sample_rate} Hz) scored by "
        f"{result.metadata['bundle']['name']} {result.metadata['bundle']['version']}"
        + (f", theme {theme['name']}" if theme else "") + f"; metadata {result.output.with_suffix('.json')}",
        highlight=False))
    return 0
