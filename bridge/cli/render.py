"""`filmscore render VIDEO -o OUT.wav`: score a clip (or a range of it) with the engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from filmscore.engine.errors import RequestError

from .common import add_json_flag, emit, parse_hits, progress_bar, stderr_console


def add_render_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `render` and `demo` (and by batch commands that render)."""
    p.add_argument("--seed", type=int, default=0, help="random seed: same request + seed = identical WAV")
    p.add_argument("--steps", type=int, default=25, help="denoising steps (default 25)")
    p.add_argument("--scheduler", default="dpmpp", help="ddim, dpmpp (DPM-Solver++ 2M) or euler")
    p.add_argument("--guidance", type=float, default=2.0, help="picture guidance scale (0: ignore the picture's "
                   "film tokens; 1: conditioned, no guidance; default 2)")
    p.add_argument("--control-guidance", type=float, default=3.0, help="melody/dynamics guidance scale")
    p.add_argument("--control-strength", type=float, default=1.0, help="ControlNet residual scale")
    p.add_argument("--picture-dynamics", type=float, default=0.5,
                   help="how far the picture's motion and cuts shape a theme's loudness: 0 keeps the theme's own "
                        "dynamics, 1 takes the picture's (default 0.5; without a theme the picture's are used)")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle directory (default: the shipped one)")
    p.add_argument("--backend", default="auto", help="auto, torch, ort or trt")
    p.add_argument("--vocoder", default="auto", choices=["auto", "network", "griffin-lim"])
    p.add_argument("--sample-rate", type=int, default=48000, help="delivered sample rate (Hz)")
    p.add_argument("--lufs", type=float, default=-23.0, help="loudness target (LUFS)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a cue for a video clip")
    p.add_argument("video", type=Path, nargs="?", help="video file (any container PyAV reads); omit with --duration")
    p.add_argument("-o", "--output", type=Path, required=True, help="output WAV")
    p.add_argument("--start", type=float, default=0.0, help="start of the range in the video (s)")
    p.add_argument("--duration", type=float, default=None, help="cue length (s); default: to the end of the video")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--midi", type=Path, help="MIDI theme to follow")
    src.add_argument("--reference", type=Path, help="reference recording whose melody and dynamics to follow")
    src.add_argument("--maestro", help="a master from the built-in library (see `filmscore maestros`)")
    p.add_argument("--theme", help="with --maestro: a theme id (default: picked by the seed)")
    p.add_argument("--track", type=int, default=None, help="with --midi: the track holding the melody")
    p.add_argument("--channel", type=int, default=None, help="with --midi: the channel holding the melody (1-16)")
    p.add_argument("--hits", default="", help="hit points in seconds, comma-separated (default: the picture's cuts)")
    add_render_options(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def request_from_args(args: argparse.Namespace, output: Path, **overrides):
    from filmscore.engine.request import RenderRequest

    kw = dict(output=output, seed=args.seed, steps=args.steps, scheduler=args.scheduler,
              picture_guidance=args.guidance, control_guidance=args.control_guidance,
              control_strength=args.control_strength, picture_dynamics=args.picture_dynamics,
              sample_rate=args.sample_rate, target_lufs=args.lufs, bundle=args.bundle, backend=args.backend, vocoder=args.vocoder)
    kw.update(overrides)
    return RenderRequest(**kw)


def render_with_progress(request, json_mode: bool):
    from filmscore.engine.render import render_cue

    with progress_bar(not json_mode) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, frac: float, msg: str) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=100)
            bar.update(tasks[stage], completed=round(frac * 100))

        return render_cue(request, progress=progress)


def run(args: argparse.Namespace) -> int:
    if args.video is None and args.duration is None:
        raise RequestError("give a VIDEO, or --duration for a cue without picture")
    req = request_from_args(args, args.output, video=args.video, start_s=args.start, duration_s=args.duration,
                            midi=args.midi, reference_audio=args.reference, maestro=args.maestro, theme=args.theme,
                            midi_track=args.track, midi_channel=args.channel, hits_s=parse_hits(args.hits))
    result = render_with_progress(req, args.json)
    summary = {"output": str(result.output), "duration_s": result.duration_s, "n_samples": result.n_samples,
               "sample_rate": result.sample_rate, "seed": result.seed, "controls": str(result.controls_path),
               "bundle": result.metadata["bundle"], "loudness": result.metadata["loudness"],
               "timings_s": {k: round(v, 3) for k, v in result.timings_s.items()}}
    emit(args, summary, lambda: stderr_console.print(
        f"wrote {result.output} ({result.duration_s:.2f} s, {result.sample_rate} Hz, seed {result.seed}, "
        f"bundle {result.metadata['bundle']['name']}); controls: {result.controls_path}", highlight=False))
    return 0
