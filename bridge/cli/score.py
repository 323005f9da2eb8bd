"""`filmscore score`: render a timeline's cues in one resumable batch and deliver them.

    filmscore score TIMELINE -o OUTDIR [--cues all|NAME,NAME] [--maestro NAME | --midi FILE | --reference FILE]
                    [--seed N] [--steps N] [--bundle DIR] [--sample-rate HZ]
                    [--loudness ebu-r128|atsc-a85|streaming|LUFS]
                    [--search-root DIR ...] [--json]

Per cue: OUTDIR/NAME.wav (24-bit BWF, bext time reference = record start in samples, iXML, loudness-normalised),
NAME.json (request, seed, bundle, controls, cue), NAME.controls.npz, NAME.theme.mid (the fitted theme, when there
is one); then TIMELINE.scored.otio (and .xml for XML/EDL input) with the cues on a new audio track. A rerun skips
the cues already done with the same settings (OUTDIR/filmscore-batch.json). Exit 0 when every cue is done, 1
when some failed (the others are delivered).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_json_flag
from .cues import add_cue_options, load_cue_list


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("score", help="render a timeline's cues (resumable batch) and write a scored timeline",
                              description="Render every cue of a timeline, deliver broadcast WAVs and a scored "
                                          "timeline. Resumable: a rerun renders only the missing cues.")
    add_cue_options(p)
    p.add_argument("-o", "--outdir", type=Path, required=True, help="output folder (made if missing)")
    p.add_argument("--cues", default="all", help="'all' (default) or cue names, comma-separated")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--maestro", default=None, help="a maestro from the built-in library guides every cue")
    src.add_argument("--midi", type=Path, default=None, help="a MIDI theme every cue follows")
    src.add_argument("--reference", type=Path, default=None, help="a reference audio whose melody/dynamics guide")
    p.add_argument("--theme", default=None, help="a named theme of the maestro library")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same audio; default 0)")
    p.add_argument("--steps", type=int, default=25, help="denoising steps (default 25)")
    p.add_argument("--scheduler", default="dpmpp", choices=("ddim", "dpmpp", "euler"))
    p.add_argument("--picture-guidance", type=float, default=2.0)
    p.add_argument("--control-guidance", type=float, default=3.0)
    p.add_argument("--picture-dynamics", type=float, default=0.5,
                   help="0..1: how far each cue's picture shapes the theme's loudness (0: the theme's own dynamics)")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle folder (default: the shipped one)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "ort", "trt"))
    p.add_argument("--sample-rate", type=int, default=None,
                   help="delivered sample rate (default: the sequence's audio rate where the timeline records it, "
                        "else 48000)")
    p.add_argument("--loudness", default="ebu-r128",
                   help="target: ebu-r128 (-23 LUFS, default), atsc-a85 (-24 LKFS), streaming (-16 LUFS) or a "
                        "number in LUFS; true peak is kept at or under -1 dBTP")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from filmscore.bridge.deliverables import resolve_target
    from filmscore.bridge.timelines.batch import ScoreOptions, score_timeline
    from filmscore.bridge.timelines.files import timeline_sample_rate
    from filmscore.engine.constants import DELIVERY_SAMPLE_RATE

    from .common import emit, progress_bar, stderr_console

    resolve_target(args.loudness)  # a bad target fails before the timeline is even read
    cl = load_cue_list(args)
    names = [n.strip() for n in args.cues.split(",") if n.strip()]
    cues = cl.select(None if names == ["all"] else names)
    sample_rate = args.sample_rate or timeline_sample_rate(cl.timeline.timeline) or DELIVERY_SAMPLE_RATE
    options = ScoreOptions(seed=args.seed, midi=args.midi, maestro=args.maestro, reference_audio=args.reference,
                           theme=args.theme, steps=args.steps, scheduler=args.scheduler,
                           picture_guidance=args.picture_guidance, control_guidance=args.control_guidance,
                           picture_dynamics=args.picture_dynamics,
                           bundle=args.bundle, backend=args.backend, sample_rate=sample_rate,
                           loudness=args.loudness, search_roots=tuple(args.search_root))
    with progress_bar() as bar:
        batch_task = bar.add_task("cues", total=len(cues))
        stage_task = bar.add_task("", total=1.0)

        def on_cue(event, cue, index, total, message):
            if event == "start":
                bar.update(stage_task, description=f"{cue.name}", completed=0.0)
            elif event == "fail":
                stderr_console.print(f"[red]cue {cue.name}: {message}[/red]")
            if event in ("skip", "done", "fail"):
                bar.update(batch_task, advance=1)

        def progress(stage, frac, message):
            bar.update(stage_task, description=f"{stage}", completed=frac)

        result = score_timeline(cl, cues, args.outdir, options, on_cue=on_cue, progress=progress)

    def human() -> None:
        for o in result.outcomes:
            line = f"{o.status:8s} {o.name}"
            if o.wav:
                line += f"  {args.outdir / o.wav}"
            if o.loudness:
                line += f"  {o.loudness['integrated_lufs']:.1f} LUFS, {o.loudness['true_peak_dbtp']:.1f} dBTP"
            if o.message and o.status == "failed":
                line += f"  ({o.message})"
            print(line)
            for m in o.missing_picture:
                print(f"         no picture: {m}")
        for p in result.timelines:
            print(f"scored timeline: {p}")
        for n in result.timeline_notes:
            print(f"note: {n}")

    emit(args, result.to_json(), human)
    return 0 if result.ok else 1
