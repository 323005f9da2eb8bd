"""`filmscore score`: render a timeline's cues in one resumable batch and deliver them.

    filmscore score TIMELINE -o OUTDIR [--cues all|NAME,NAME] [--maestro NAME | --midi FILE | --reference FILE]
                    [--seed N] [--steps N] [--bundle DIR] [--sample-rate HZ]
                    [--target-lufs ebu-r128|atsc-a85|streaming|LUFS] [render options, plan overrides]
                    [--search-root DIR ...] [--json]
                    [--executor local|ray [--address ADDR] [--num-cpus N] [--num-gpus N] [--actors N]
                     [--ship-inputs]]

Per cue: OUTDIR/NAME.wav (24-bit BWF, bext time reference = record start in samples, iXML, loudness-normalised),
NAME.json (request, seed, bundle, controls, cue), NAME.controls.npz, NAME.theme.mid (the fitted theme, when there
is one); then TIMELINE.scored.otio (and .xml for XML/EDL input) with the cues on a new audio track. A rerun skips
the cues already done with the same settings (OUTDIR/filmscore-batch.json). Exit 0 when every cue is done, 1
when some failed (the others are delivered). `--executor ray` renders the cues on Ray actors (this machine or a
cluster, docs/scale_out.md); the files, the manifest and the seeds are the same as with the default local executor.

Outputs rule (`common.check_outputs`), checked for every selected cue before the first render: no file the batch
writes is one of its inputs (the timeline, its picture media, --midi, --reference); a cue's files that exist but
were not delivered by this batch with the same settings are kept unless --overwrite. The scored timelines are the
batch's own running product and are rewritten on each run of a batch folder (one holding filmscore-batch.json).
Progress goes to stderr: a bar on a terminal, plain lines ("filmscore score: CUE (2/5) denoise 40% ...") otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (HelpFormatter, PlainProgress, add_json_flag, add_overwrite_flag, add_render_options,
                     check_outputs, given_options, options_from_args)
from .cues import add_cue_options, load_cue_list
from .executor_options import add_executor_options, executor_from_args

CUE_SUFFIXES = (".wav", ".json", ".controls.npz", ".theme.mid")  # what batch delivers per cue (timelines/batch.py)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("score", help="render a timeline's cues (resumable batch) and write a scored timeline",
                              description="Render every cue of a timeline, deliver broadcast WAVs and a scored "
                                          "timeline. Resumable: a rerun renders only the missing cues.",
                              formatter_class=HelpFormatter)
    add_cue_options(p)
    p.add_argument("-o", "--outdir", type=Path, required=True, help="output folder (made if missing)")
    p.add_argument("--cues", default="all", help="'all' (default) or cue names, comma-separated")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--maestro", default=None, help="a maestro from the built-in library guides every cue")
    src.add_argument("--midi", type=Path, default=None, help="a MIDI theme every cue follows")
    src.add_argument("--reference", type=Path, default=None, help="a reference audio whose melody/dynamics guide")
    p.add_argument("--theme", default=None, help="a named theme of the maestro library")
    # every render option (engine/options.py), the plan overrides included: with them each cue renders its plan
    add_render_options(p, notes={"sample_rate": "default: the sequence's audio rate where the timeline records "
                                                "it, else 48000"})
    p.add_argument("--bundle", type=Path, default=None, help="model bundle folder (default: the shipped one)")
    add_overwrite_flag(p)
    add_executor_options(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def check_batch_outputs(cl, cues, options, outdir: Path, overwrite: bool) -> None:
    """The outputs rule for a batch (module doc), before the first render."""
    from filmscore.bridge.timelines.batch import MANIFEST_NAME, Manifest, cue_key
    from filmscore.bridge.timelines.scored import scored_outputs

    inputs: dict[str, Path | None] = {"timeline": cl.timeline.path, "midi": options.midi,
                                      "reference": options.reference_audio}
    for cue in cues:
        for i, seg in enumerate(cue.picture):
            if seg.media_path is not None:
                inputs[f"picture media of cue {cue.name} ({i})"] = seg.media_path
    manifest = Manifest(outdir, str(cl.timeline.path))
    ours = (outdir / MANIFEST_NAME).is_file()
    outputs: list[Path] = []
    for cue in cues:
        if manifest.finished(cue, cue_key(cue, options), outdir) is None:  # a cue the batch will (re)write
            outputs += [outdir / f"{cue.file_stem}{suffix}" for suffix in CUE_SUFFIXES]
    timelines = scored_outputs(cl.timeline, outdir, f"{cl.timeline.path.stem}.scored")
    check_outputs(outputs, inputs, overwrite)
    check_outputs(timelines, inputs, overwrite or ours)


def run(args: argparse.Namespace) -> int:
    from filmscore.bridge.timelines.batch import ScoreOptions, score_timeline
    from filmscore.bridge.timelines.files import timeline_sample_rate
    from filmscore.engine.constants import DELIVERY_SAMPLE_RATE

    from .common import stderr_console

    options_from_args(args)  # a bad option fails before the timeline is even read
    cl = load_cue_list(args)
    names = [n.strip() for n in args.cues.split(",") if n.strip()]
    cues = cl.select(None if names == ["all"] else names)
    sample_rate = (given_options(args).get("sample_rate") or timeline_sample_rate(cl.timeline.timeline)
                   or DELIVERY_SAMPLE_RATE)
    options = ScoreOptions(midi=args.midi, maestro=args.maestro, reference_audio=args.reference, theme=args.theme,
                           bundle=args.bundle, search_roots=tuple(args.search_root),
                           **options_from_args(args, sample_rate=sample_rate).option_values())
    if args.outdir.is_dir():  # a new folder is made by the batch and holds nothing to keep
        check_batch_outputs(cl, cues, options, args.outdir, args.overwrite)
    import functools

    with executor_from_args(args, options.bundle) as executor:  # its workers stop when the batch ends
        score = functools.partial(score_timeline, executor=executor)
        if not stderr_console.is_terminal:
            result = _score_plain(cl, cues, args.outdir, options, score)
        else:
            result = _score_with_bar(cl, cues, args.outdir, options, score)
    _emit(args, result)
    return 0 if result.ok else 1


def _score_plain(cl, cues, outdir, options, score_timeline):
    """Progress as plain lines (stderr is not a terminal): one per cue event, the stages as `PlainProgress`."""
    import sys

    state = {"lines": PlainProgress("filmscore score")}

    def on_cue(event, cue, index, total, message):
        if event == "start":
            state["lines"] = PlainProgress(f"filmscore score: {cue.name} ({index + 1}/{total})")
        print(f"filmscore score: {cue.name} ({index + 1}/{total}) {event}" + (f": {message}" if message else ""),
              file=sys.stderr, flush=True)

    return score_timeline(cl, cues, outdir, options, on_cue=on_cue,
                          progress=lambda stage, frac, message: state["lines"](stage, frac, message))


def _score_with_bar(cl, cues, outdir, options, score_timeline):
    from .common import progress_bar, stderr_console

    with progress_bar() as bar:
        batch_task = bar.add_task("cues", total=len(cues))
        stage_task = bar.add_task("", total=1.0)

        def on_cue(event, cue, index, total, message):
            if event == "start":
                bar.update(stage_task, description=f"{cue.name}", completed=0.0)
            elif event == "fail":
                stderr_console.print(f"[red]cue {cue.name}: {message}[/red]")
            elif event == "retry":  # its Ray actor died; another renders it
                stderr_console.print(f"[yellow]cue {cue.name}: {message}[/yellow]")
            if event in ("skip", "done", "fail"):
                bar.update(batch_task, advance=1)

        def progress(stage, frac, message):
            bar.update(stage_task, description=f"{stage}", completed=frac)

        return score_timeline(cl, cues, outdir, options, on_cue=on_cue, progress=progress)


def _emit(args: argparse.Namespace, result) -> None:
    from .common import emit

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
