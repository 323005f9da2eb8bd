"""`filmscore train vae|vocoder|ldm [--minutes N]`, `filmscore train bundle -o DIR`, and
`filmscore train controlnet [--lora RANK] [--where FIELD=VALUE] [--resume] -o DIR` (tune a bundle's ControlNet).

Checkpoints live in --train-dir (default ~/.cache/filmscore/train, outside the work tree) and every stage resumes
from its own checkpoint; without one, `--from-bundle DIR` starts from a bundle's weights (the shipped default bundle
by default when it exists), so training goes on across machines that lost the checkpoint directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from filmscore.engine.options import DEFAULTS

from .common import add_json_flag, emit, stderr_console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the default bundle's models on a corpus (resumable)")
    p.add_argument("stage", choices=["vae", "vocoder", "ldm", "controlnet", "bundle", "evaluate", "info"],
                   help="vae, vocoder, ldm (UNet + ControlNet + film head); controlnet: tune a bundle's ControlNet "
                        "alone (all weights, or LoRA with --lora); bundle: assemble a bundle from the "
                        "checkpoints; evaluate: held-out metrics of a bundle, written into its bundle.json; "
                        "info: where each stage in --train-dir stands (from the logs; safe while training runs)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="corpus directory (default ~/.cache/filmscore/corpus/v1, or .../v2 with --corpus-version 2)")
    p.add_argument("--corpus-version", type=int, choices=[1, 2], default=1,
                   help="2: bundle v2's stages (vae, vocoder, ldm) on corpus v2 (stems at 24 kHz, ControlsV2), "
                        "checkpoints in ~/.cache/filmscore/train_v2 unless --train-dir (docs/training.md, Bundle v2)")
    p.add_argument("--train-dir", type=Path, default=None, help="checkpoint directory")
    p.add_argument("--model-size", choices=["cpu", "gpu"], default="cpu",
                   help="--corpus-version 2: model sizes when a stage starts without a checkpoint (cpu: for 2 CPU "
                        "cores; gpu: the larger model, with --device cuda); train_v2.MODEL_SIZES")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of this invocation")
    p.add_argument("--max-steps", type=int, default=None, help="stop at this many total steps")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="auto",
                   help="vae|vocoder|ldm|controlnet: train on cpu, cuda or cuda:N; auto (default) takes a CUDA GPU "
                        "when PyTorch sees one. Checkpoints move between devices")
    p.add_argument("--from-bundle", type=Path, default=None,
                   help="start from this bundle's weights when no checkpoint exists; controlnet: the bundle whose "
                        "ControlNet is tuned (default: shipped bundle)")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="bundle: output directory; controlnet: write the tuned bundle (adapters merged) here "
                        "after training; evaluate: also write per-clip results to this JSON file")
    p.add_argument("--lora", type=int, default=None, metavar="RANK",
                   help="controlnet: train LoRA adapters of this rank (peft) instead of all ControlNet weights")
    p.add_argument("--lora-targets", choices=["all", "attention"], default="all",
                   help="controlnet: LoRA on every Linear/Conv1d layer (all) or on attention projections only")
    p.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE[,VALUE]",
                   help="controlnet: train only on corpus clips whose index field matches, e.g. "
                        "orchestration=strings or master=bach (repeat to combine)")
    p.add_argument("--resume", action="store_true",
                   help="controlnet: continue the tuning checkpoint in --train-dir (same bundle, rank and data)")
    p.add_argument("--fp16", action="store_true",
                   help="bundle: store weights as float16 (half the size); controlnet -o: float16 also when the base "
                        "bundle is float32 (default: the base's storage)")
    p.add_argument("--cooldown", action="store_true",
                   help="vae|vocoder|ldm|controlnet: decay the learning rate linearly to 5%% over this run's budget "
                        "(--minutes or --max-steps): the last run before a bundle is assembled")
    p.add_argument("--bundle", type=Path, default=None, help="evaluate: the bundle (default: the shipped one)")
    p.add_argument("--n-clips", type=int, default=12, help="evaluate: held-out clips")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps, help="evaluate: denoising steps")
    p.add_argument("--compare-steps", default="", help="evaluate: also these step counts, e.g. 10,12")
    p.add_argument("--clips-from", type=Path, default=None, metavar="FILE",
                   help="evaluate: the held-out clips of an earlier `train evaluate -o FILE` (default: --n-clips "
                        "clips spread over composers and works)")
    p.add_argument("--compare-to", type=Path, default=None, metavar="FILE",
                   help="evaluate: on the clips of an earlier `train evaluate -o FILE`, and report the paired "
                        "differences to it with 95%% bootstrap intervals")
    p.add_argument("--compare-v1", type=Path, default=None, metavar="BUNDLE",
                   help="evaluate --corpus-version 2: also render the same clips with this v1 bundle (e.g. "
                        "engine/default_bundle) and give its FAD-proxy against the same held-out audio, in the same run")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from filmscore.engine.training.loop import DEFAULT_TRAIN_DIR, Run, resolve_device

    torch.set_num_threads(args.threads)
    if args.corpus_version == 2:
        return _run_v2(args)
    train_dir = args.train_dir or DEFAULT_TRAIN_DIR
    if args.stage == "info":
        return _info(args, train_dir)
    if args.stage == "bundle":
        from filmscore.engine.training.assemble import assemble_bundle

        out = args.out
        if out is None:
            from filmscore.engine.bundle import DEFAULT_BUNDLE_DIR

            out = DEFAULT_BUNDLE_DIR
        summary = assemble_bundle(train_dir, out, corpus_dir=args.corpus, fp16=args.fp16)
        emit(args, summary, f"wrote bundle {out} ({summary['size_mb']:.1f} MB)")
        return 0

    from filmscore.engine.training.corpus_data import DEFAULT_CORPUS, Corpus
    from filmscore.engine.training.init_from_bundle import initial_weights

    if args.stage == "evaluate":
        return _evaluate(args, args.corpus or DEFAULT_CORPUS)
    if args.stage == "controlnet":
        return _controlnet(args, args.corpus or DEFAULT_CORPUS, train_dir)
    if args.resume or args.lora is not None or args.where:
        from filmscore.engine.errors import FilmscoreError

        raise FilmscoreError(f"--resume, --lora and --where apply to `train controlnet`; `train {args.stage}` "
                             f"always continues its own checkpoint on the whole corpus")

    device = resolve_device(args.device)
    corpus = Corpus(args.corpus or DEFAULT_CORPUS, "train")
    stderr_console.print(f"corpus: {len(corpus.clips)} clips, {corpus.hours:.2f} h; training on {device}")
    run_state = Run(args.stage, train_dir)
    init = initial_weights(args.stage, args.from_bundle) if not run_state.ckpt.is_file() else None

    def progress(step: int, vals: dict) -> None:
        stderr_console.print(f"{args.stage} step {step} " + " ".join(f"{k}={v:.4f}" for k, v in vals.items()),
                             highlight=False)

    kw = {"minutes": args.minutes, "batch": args.batch, "max_steps": args.max_steps, "run": run_state,
          "progress": progress, "device": device, "cooldown": args.cooldown}
    if args.lr is not None:
        kw["lr"] = args.lr
    if args.stage == "vae":
        from filmscore.engine.training.train_vae import train_vae

        result = train_vae(corpus, init=init, **kw)
    elif args.stage == "vocoder":
        from filmscore.engine.training.train_vocoder import train_vocoder

        result = train_vocoder(corpus, init=init, **kw)
    else:
        from filmscore.engine.film.spec import default_feature_spec
        from filmscore.engine.training.assemble import trained_vae
        from filmscore.engine.training.train_ldm import heldout_corpora, train_ldm

        feature_dim, layout = default_feature_spec()
        vae = trained_vae(train_dir, corpus, fallback=initial_weights("vae", args.from_bundle))
        result = train_ldm(corpus, vae, feature_dim=feature_dim, feature_layout=layout, init=init,
                           heldout=heldout_corpora(corpus.root, corpus.mel), **kw)
    summary = {"stage": args.stage, "step": result.step, "train_seconds": round(result.seconds, 1),
               "checkpoint": str(result.ckpt), "corpus_hours": round(corpus.hours, 3), "device": str(device)}
    curves = result.extra.get("heldout_loss", {})
    if curves:
        summary["heldout_loss"] = curves
    emit(args, summary, f"{args.stage}: step {result.step}, {result.seconds / 60:.1f} min trained, "
                        f"checkpoint {result.ckpt}"
                        + "".join(f"; held-out loss ({k}) " + " -> ".join(f"{v:.4f} @ {s}" for s, v in curve[-2:])
                                  for k, curve in curves.items()))
    return 0


def _run_v2(args: argparse.Namespace) -> int:
    """`--corpus-version 2`: bundle v2's vae, vocoder and ldm stages (engine/training/train_v2.py), and info."""
    from filmscore.engine.errors import FilmscoreError
    from filmscore.engine.training.loop import Run, resolve_device
    from filmscore.engine.training.train_v2 import DEFAULT_TRAIN_DIR_V2

    train_dir = args.train_dir or DEFAULT_TRAIN_DIR_V2
    if args.stage == "info":
        return _info(args, train_dir)
    if args.stage not in ("vae", "vocoder", "ldm", "bundle", "evaluate"):
        raise FilmscoreError(f"`train {args.stage}` is not written for bundle v2 yet; --corpus-version 2 trains "
                             f"vae, vocoder and ldm, assembles a bundle (-o DIR), evaluates one (--bundle DIR) and "
                             f"`info` reports on them")
    if args.stage == "evaluate":
        return _evaluate_v2(args)
    if args.stage == "bundle" and args.out is None:
        raise FilmscoreError("train bundle --corpus-version 2: pass -o DIR (a v2 bundle never replaces the shipped "
                             "v1 bundle)")
    if args.from_bundle is not None or args.resume or args.lora is not None or args.where:
        raise FilmscoreError("--from-bundle, --resume, --lora and --where do not apply to v2 stages; each v2 stage "
                             "continues its own checkpoint in --train-dir")
    from filmscore.engine.training import train_v2
    from filmscore.engine.training.corpus_v2 import DEFAULT_CORPUS_V2, CorpusV2, StemCorpus

    device = resolve_device(args.device)
    corpus = CorpusV2(args.corpus or DEFAULT_CORPUS_V2, "train")
    stderr_console.print(f"corpus v2: {len(corpus.clips)} clips, {corpus.hours:.2f} h at {corpus.mel.sample_rate} Hz; "
                         f"training on {device}", highlight=False)
    run_state = Run(args.stage, train_dir)

    def progress(step: int, vals: dict) -> None:
        stderr_console.print(f"v2 {args.stage} step {step} " + " ".join(f"{k}={v:.4f}" for k, v in vals.items()),
                             highlight=False)

    kw = {"batch": args.batch, "max_steps": args.max_steps, "run": run_state, "progress": progress,
          "device": device, "cooldown": args.cooldown}
    if args.lr is not None:
        kw["lr"] = args.lr
    if args.stage == "bundle":
        from filmscore.engine.training.assemble_v2 import assemble_bundle_v2

        written = assemble_bundle_v2(train_dir, args.out, corpus, fp16=args.fp16)
        emit(args, written, f"wrote v2 bundle {args.out} ({written['size_mb']:.1f} MB, {written['version']})")
        return 0
    kw["model_size"] = args.model_size
    if args.stage == "vae":
        result = train_v2.train_vae_v2(corpus, args.minutes, **kw)
    elif args.stage == "vocoder":
        result = train_v2.train_vocoder_v2(corpus, args.minutes, **kw)
    else:
        from filmscore.engine.film.spec import default_feature_spec
        from filmscore.engine.training.assemble import trained_vae

        feature_dim, layout = default_feature_spec()
        vae = trained_vae(train_dir, StemCorpus(corpus))
        result = train_v2.train_ldm_v2(corpus, vae, args.minutes, feature_dim=feature_dim, feature_layout=layout,
                                       heldout=train_v2.heldout_corpus_v2(corpus.root, corpus.mel), **kw)
    summary = {"stage": args.stage, "corpus_version": 2, "step": result.step,
               "model_size": result.extra.get("model_size"),
               "train_seconds": round(result.seconds, 1), "checkpoint": str(result.ckpt),
               "corpus_hours": round(corpus.hours, 3), "device": str(device),
               "heldout_loss": result.extra.get("heldout_loss", {})}
    emit(args, summary, f"v2 {args.stage}: step {result.step}, {result.seconds / 60:.1f} min trained, "
                        f"checkpoint {result.ckpt}")
    return 0


def _evaluate_v2(args: argparse.Namespace) -> int:
    import json

    from filmscore.engine.errors import FilmscoreError
    from filmscore.engine.training.corpus_v2 import DEFAULT_CORPUS_V2
    from filmscore.engine.training.evaluate_v2 import evaluate_bundle_v2

    if args.bundle is None:
        raise FilmscoreError("train evaluate --corpus-version 2: pass --bundle DIR (a v2 bundle)")
    result = evaluate_bundle_v2(args.bundle, args.corpus or DEFAULT_CORPUS_V2, n_clips=args.n_clips,
                                steps=args.steps, threads=args.threads, compare_v1=args.compare_v1,
                                progress=lambda i, n: stderr_console.print(f"evaluated {i}/{n} held-out clips"))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    emit(args, result, lambda: print(json.dumps(result["summary"], indent=2)))
    return 0


def _info(args: argparse.Namespace, train_dir: Path) -> int:
    from filmscore.engine.errors import FilmscoreError
    from filmscore.engine.training.loop import STAGES, stage_status

    stages = {s: st for s in STAGES if (st := stage_status(train_dir, s)) is not None}
    if not stages:
        raise FilmscoreError(f"{train_dir}: no training logs here (stages write <train-dir>/<stage>/log.jsonl); "
                             f"pass --train-dir, or start one with `filmscore train vae`")

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        t = Table("stage", "step", "train h", "loss", "lr", "corpus h", "held-out loss", "sessions", "last write",
                  title=f"training in {train_dir}", box=None, pad_edge=False)
        for st in stages.values():
            held = " ".join(f"{h['loss']:.4f}@{h['step']}" for h in st["heldout_loss"][-2:]) or "–"
            age = st["last_write_s_ago"]
            t.add_row(st["stage"], str(st["step"]), f"{st['train_hours']:.2f}",
                      "–" if st["loss"] is None else f"{st['loss']:.4f}",
                      "–" if st["lr"] is None else f"{st['lr']:.2e}",
                      "–" if st["corpus_hours"] is None else f"{st['corpus_hours']:.1f}", held,
                      str(len(st["sessions"])), f"{age // 60} min ago" if age < 86400 else f"{age // 86400} d ago")
        Console().print(t)

    emit(args, {"train_dir": str(train_dir), "stages": stages}, human)
    return 0


def _evaluate(args: argparse.Namespace, corpus_root: Path) -> int:
    import json

    from filmscore.engine.bundle import DEFAULT_BUNDLE_DIR, update_metrics
    from filmscore.engine.errors import FilmscoreError
    from filmscore.engine.training.evaluate import (
        clip_ids_from,
        compare_evaluations,
        evaluate_bundle,
    )

    if args.clips_from is not None and args.compare_to is not None:
        raise FilmscoreError("--clips-from and --compare-to both choose the clips; pass one")
    bundle = args.bundle or DEFAULT_BUNDLE_DIR
    compare = tuple(int(s) for s in args.compare_steps.split(",") if s.strip())
    pinned = args.clips_from or args.compare_to
    clip_ids = clip_ids_from(pinned) if pinned is not None else None
    result = evaluate_bundle(bundle, corpus_root, n_clips=args.n_clips, steps=args.steps, compare_steps=compare,
                             clip_ids=clip_ids,
                             progress=lambda i, n: stderr_console.print(f"evaluated {i}/{n} held-out clips"))
    if args.compare_to is not None:
        result["comparison"] = {"to": str(args.compare_to),
                                **compare_evaluations(json.loads(args.compare_to.read_text()), result)}
    update_metrics(bundle, result["summary"])
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    def human() -> None:
        print(json.dumps(result["summary"], indent=2))
        if "comparison" in result:
            print(f"against {args.compare_to} (after - before, 95 % bootstrap interval):")
            for k, m in result["comparison"]["metrics"].items():
                print(f"  {k:28s} {m['before']:.4f} -> {m['after']:.4f}  {m['diff']:+.4f} "
                      f"[{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}]  n={m['n']}")

    emit(args, {k: v for k, v in result.items() if k != "heldout_v_loss_per_crop"}, human)
    return 0


def _controlnet(args: argparse.Namespace, corpus_root: Path, train_dir: Path) -> int:
    from filmscore.engine.training.assemble import assemble_tuned_bundle
    from filmscore.engine.training.corpus_data import Corpus, parse_where
    from filmscore.engine.training.loop import Run, resolve_device
    from filmscore.engine.training.train_controlnet import (
        STAGE,
        check_lora,
        check_resume,
        load_base,
        make_spec,
        train_controlnet,
    )
    from filmscore.engine.training.train_ldm import heldout_corpora

    where = parse_where(args.where)
    device = resolve_device(args.device)  # before anything slow loads
    base = load_base(args.from_bundle)
    if args.lora is not None:  # checked before the corpus loads (minutes on a large corpus)
        check_lora(base.models["controlnet"], args.lora, args.lora_targets)
    spec = make_spec(base, args.lora, args.lora_targets, where)
    run_state = Run(STAGE, train_dir)
    check_resume(run_state, spec, args.resume)  # before the corpus loads
    corpus = Corpus(corpus_root, "train", base.mel_config, where=where)
    stderr_console.print(f"corpus: {len(corpus.clips)} clips, {corpus.hours:.2f} h"
                         + (f" ({' '.join(args.where)})" if args.where else "") + f"; training on {device}",
                         highlight=False)
    heldout = heldout_corpora(corpus_root, base.mel_config, where)
    start_step, start_s = run_state.step, run_state.seconds

    def progress(step: int, vals: dict) -> None:
        rate = (run_state.seconds - start_s) / max(step - start_step, 1)
        stderr_console.print(f"controlnet step {step} " + " ".join(f"{k}={v:.4f}" for k, v in vals.items())
                             + f" {rate:.2f} s/step", highlight=False)

    kw = {"lr": args.lr} if args.lr is not None else {}
    result = train_controlnet(corpus, base, spec, args.minutes, batch=args.batch, max_steps=args.max_steps,
                              run=run_state, resume=args.resume, progress=progress, heldout=heldout,
                              device=device, cooldown=args.cooldown, **kw)
    steps = result.step - start_step
    extra = result.extra
    summary = {"stage": STAGE, "method": spec.method, "rank": spec.rank, "targets": spec.targets,
               "where": spec.where, "step": result.step, "steps_this_run": steps,
               "s_per_step": round((result.seconds - start_s) / steps, 3) if steps else None,
               "train_seconds": round(result.seconds, 1), "trainable_parameters": extra["trainable_parameters"],
               "controlnet_parameters": extra["controlnet_parameters"],
               "trainable_percent": round(100 * extra["trainable_parameters"] / extra["controlnet_parameters"], 3),
               "heldout_loss": extra.get("heldout_loss", {}),
               "heldout_clips": {k: len(c.clips) for k, c in heldout.items()},
               "checkpoint": str(result.ckpt), "corpus_clips": len(corpus.clips),
               "corpus_hours": round(corpus.hours, 3), "base_bundle": str(base.path), "base_hash": base.hash}
    if args.out is not None:
        written = assemble_tuned_bundle(train_dir, args.out, base_dir=base.path, fp16=args.fp16 or None)
        summary["bundle"] = {k: written[k] for k in ("bundle", "version", "size_mb")}
    human = (f"controlnet ({spec.method}{f' rank {spec.rank}' if spec.rank else ''}, "
             f"{summary['trainable_parameters']:,} of {summary['controlnet_parameters']:,} parameters trained): "
             f"step {result.step}, {result.seconds / 60:.1f} min trained, checkpoint {result.ckpt}"
             + "".join(f"; held-out loss ({k}) " + " -> ".join(f"{v:.4f}" for _, v in curve)
                       for k, curve in extra.get("heldout_loss", {}).items())
             + (f"; wrote bundle {args.out}" if args.out is not None else ""))
    emit(args, summary, human)
    return 0
