"""`filmscore eval --set DIR|default -o REPORT_DIR`: measure a bundle and its baselines on an evaluation set.

Writes REPORT_DIR/report.json, report.md, plots/ and audio/SYSTEM/ITEM.wav. `--make-set DIR` instead builds an
evaluation set from a corpus's held-out split (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .common import add_json_flag, add_render_options, emit, options_from_args, progress_bar, stderr_console

EVAL_OPTIONS = ("steps", "scheduler", "picture_guidance", "control_guidance", "control_strength", "vocoder", "backend")
"""The render options `eval` takes: how the model systems sample (no delivery: cues are measured at 16 kHz)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a bundle against baselines on an evaluation set (report + plots)")
    p.add_argument("--set", dest="set", default="default", help="evaluation set folder, or 'default' (shipped)")
    p.add_argument("-o", "--output", type=Path, help="report folder (created)")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle directory (default: the shipped one)")
    p.add_argument("--systems", default=",".join(("model", "no_control", "shuffled", "ground_truth",
                                                   "gt_vae_vocoder", "griffin_lim", "plan")),
                   help="comma-separated systems: model, no_control, shuffled, ground_truth, gt_vae_vocoder, "
                        "griffin_lim, plan (the model rendering each item's cue plan); every cue is also measured "
                        "against its item's plan (hits on beats, tempo and mode)")
    p.add_argument("--items", type=int, default=None, help="evaluate only the first N items")
    # the render options an evaluation samples with (engine/options.py); --backend runs the model systems
    add_render_options(p, only=EVAL_OPTIONS, notes={"backend": "runs the model systems"})
    p.add_argument("--corpus", type=Path, default=None,
                   help="corpus for originality, recognizability and FAD-proxy (default ~/.cache/filmscore/corpus/v1)")
    p.add_argument("--no-reference", action="store_true", help="skip the corpus-based metrics")
    p.add_argument("--classifier-steps", type=int, default=600, help="training steps of the master classifier")
    p.add_argument("--calibration-clips", type=int, default=40, help="corpus clips for the copy threshold")
    p.add_argument("--transcriber", default="auto", choices=["auto", "basic-pitch", "chroma"])
    p.add_argument("--no-audio", action="store_true", help="do not keep the cues' audio in REPORT_DIR/audio")
    p.add_argument("--make-set", type=Path, default=None, metavar="DIR",
                   help="build an evaluation set in DIR from the corpus's held-out split, then stop")
    p.add_argument("--set-items", type=int, default=6, help="with --make-set: held-out clips to take")
    p.add_argument("--duration", type=float, default=10.0, help="with --make-set: seconds per item")
    add_json_flag(p)
    p.set_defaults(run=run)


def _make_set(args) -> int:
    from filmscore.engine.metrics.evalset import build_from_corpus
    from filmscore.engine.training.corpus_data import DEFAULT_CORPUS

    out = build_from_corpus(args.corpus or DEFAULT_CORPUS, args.make_set, n_items=args.set_items,
                            duration_s=args.duration)
    emit(args, {"set": str(out)}, f"wrote evaluation set {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from filmscore.engine.errors import FilmscoreError, RequestError

    if args.make_set is not None:
        return _make_set(args)
    if args.output is None:
        raise RequestError("give a report folder with -o REPORT_DIR")
    if args.items is not None and args.items < 1:
        raise RequestError(f"--items must be >= 1, got {args.items}")
    from filmscore.engine.metrics.evalset import load_set
    from filmscore.engine.metrics.reference import ReferenceSettings, build_reference
    from filmscore.engine.metrics.report import write_report
    from filmscore.engine.metrics.runner import EvalOptions, evaluate
    from filmscore.engine.training.corpus_data import DEFAULT_CORPUS

    evalset = load_set(args.set)
    if args.items is not None:
        evalset.items = evalset.items[:args.items]
    opts = EvalOptions(bundle=args.bundle, systems=tuple(s.strip() for s in args.systems.split(",") if s.strip()),
                       render=options_from_args(args), transcriber=args.transcriber)
    opts.validate()
    with progress_bar(not args.json) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, frac: float, msg: str = "") -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=100)
            bar.update(tasks[stage], completed=round(frac * 100), description=f"{stage}: {msg}"[:60])

        reference, missing = None, None
        if args.no_reference:
            missing = "--no-reference given"
        else:
            corpus = args.corpus or DEFAULT_CORPUS
            # calibration excerpts as long as the cues: n-gram containment and cosine depend on length
            excerpt_s = round(sum(it.duration_s for it in evalset.items) / len(evalset.items), 1)
            try:
                reference = build_reference(corpus, ReferenceSettings(classifier_steps=args.classifier_steps,
                                                                      calibration_clips=args.calibration_clips,
                                                                      excerpt_s=excerpt_s,
                                                                      transcriber=args.transcriber),
                                            progress=progress)
            except FilmscoreError as e:
                if args.corpus is not None:  # asked for explicitly: its failure is the user's to fix
                    raise
                missing = f"no usable corpus at {corpus} ({e})"
        args.output.mkdir(parents=True, exist_ok=True)
        audio_dir = None if args.no_audio else args.output / "audio"
        run_ = evaluate(evalset, opts, reference, missing, progress=progress, audio_dir=audio_dir)
    command = "filmscore " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    doc = write_report(run_, args.output, command)

    def human() -> None:
        from filmscore.engine.metrics.report import METRICS, fmt_metric

        systems = list(doc["systems"])
        stderr_console.print(f"wrote {args.output / 'report.md'} ({len(run_.cues)} cues, {run_.seconds:.0f} s)",
                             highlight=False)
        print("metric".ljust(44) + "".join(s[:14].rjust(15) for s in systems))
        for key, label, _ in METRICS:
            vals = [doc["systems"][s].get(key) for s in systems]
            if all(v is None for v in vals):
                continue
            print(label[:43].ljust(44) + "".join(fmt_metric(v).rjust(15) for v in vals))

    emit(args, {"report": str(args.output / "report.json"), "systems": doc["systems"],
                "reference": doc["reference"]}, human)
    return 0
