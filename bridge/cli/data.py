"""`filmscore data build|features|labels|check|compare-renders|info`: the training corpus (docs/dataset.md)."""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from .common import add_json_flag, emit, progress_bar

DEFAULT_OUT = "~/.cache/filmscore/corpus/v1"
DEFAULT_OUT_V2 = "~/.cache/filmscore/corpus/v2"


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="build and inspect the training corpus (music21 -> film-score clips)")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    b = sub.add_parser("build", help="render corpus clips (resumable; parallel)")
    b.add_argument("--out", help=f"corpus directory (default {DEFAULT_OUT}, or {DEFAULT_OUT_V2} with --version 2)")
    b.add_argument("--hours", type=float, default=70.0, help="stop once the corpus holds this much audio")
    b.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    b.add_argument("--composers", nargs="+", metavar="NAME", help="masters to use (bach, palestrina, folk, ...)")
    b.add_argument("--tiny", action="store_true", help="four clips from two bach and two folk works (smoke test)")
    b.add_argument("--seed", type=int, default=0, help="work order and augmentation seed")
    b.add_argument("--features", action="store_true",
                   help="encode each clip's film with the film encoder as it is built (else: data features)")
    b.add_argument("--version", type=int, choices=(1, 2), default=1,
                   help="1: 16 kHz mono clips; 2: stems (lead, accompaniment, percussion) + stereo mix and frame-exact "
                        "labels (docs/dataset.md)")
    b.add_argument("--sample-rate", type=int, help="version 2: audio rate (default 24000)")
    b.add_argument("--soundfont", help="version 2: SoundFont (default MuseScore_General.sf3 when installed)")
    add_json_flag(b)
    b.set_defaults(run=run_build)

    f = sub.add_parser("features", help="encode every clip's film with the film encoder (features.npz)")
    f.add_argument("--out", default=DEFAULT_OUT, help="corpus directory")
    f.add_argument("--limit", type=int, help="encode at most this many clips")
    add_json_flag(f)
    f.set_defaults(run=run_features)

    lb = sub.add_parser("labels", help="version 2: recompute every clip's labels from its score (no new audio)")
    lb.add_argument("--out", default=DEFAULT_OUT_V2, help=f"corpus directory (default {DEFAULT_OUT_V2})")
    lb.add_argument("--limit", type=int, help="relabel at most this many clips")
    add_json_flag(lb)
    lb.set_defaults(run=run_labels)

    c = sub.add_parser("check", help="version 2: bandwidth, stereo width and stems-sum check of the clips")
    c.add_argument("--out", default=DEFAULT_OUT_V2, help=f"corpus directory (default {DEFAULT_OUT_V2})")
    c.add_argument("--limit", type=int, default=50, help="check the first N v2 clips (default 50)")
    add_json_flag(c)
    c.set_defaults(run=run_check)

    cr = sub.add_parser("compare-renders",
                        help="version 2: render the same clips at several rates and SoundFonts (cost, bandwidth)")
    cr.add_argument("--clips", type=int, default=6, help="clips (first clip of the first build jobs; default 6)")
    cr.add_argument("--rates", type=int, nargs="+", default=[24000, 32000], help="sample rates (default 24000 32000)")
    cr.add_argument("--soundfonts", nargs="+", help="SoundFont files (default FluidR3_GM and MuseScore_General)")
    cr.add_argument("--composers", nargs="+", default=["bach", "folk"], help="masters to draw the clips from")
    add_json_flag(cr)
    cr.set_defaults(run=run_compare_renders)

    i = sub.add_parser("info", help="hours, clips and melody re-extraction agreement per split and master")
    i.add_argument("--out", default=DEFAULT_OUT, help="corpus directory")
    i.add_argument("--pairing", action="store_true",
                   help="also check the pairing rules against the film encoder's cuts and motion")
    add_json_flag(i)
    i.set_defaults(run=run_info)


def run_build(args: argparse.Namespace) -> int:
    from filmscore.engine.data.build import BuildConfig, build_corpus

    out = args.out or (DEFAULT_OUT_V2 if args.version == 2 else DEFAULT_OUT)
    cfg = BuildConfig(Path(out), args.hours, args.workers, tuple(args.composers) if args.composers else None,
                      args.tiny, args.seed, args.features, args.version, args.sample_rate, args.soundfont)
    import sys
    import time

    last_line = [0.0]
    with progress_bar(not args.json and sys.stderr.isatty()) as bar:
        task = bar.add_task("corpus (minutes of audio)", total=round(cfg.hours * 60))

        def on_progress(s) -> None:
            bar.update(task, completed=min(round(s.seconds / 60), round(cfg.hours * 60)),
                       description=f"corpus: {s.clips} clips, {s.hours:.2f} h")
            # no terminal (a background build writing to a log): a progress line at most once a minute
            if not sys.stderr.isatty() and time.monotonic() - last_line[0] >= 60:
                last_line[0] = time.monotonic()
                rate = s.new_seconds / s.wall_s if s.wall_s else 0.0
                print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} corpus {s.corpus_dir}: {s.clips} clips, {s.hours:.3f} h "
                      f"(+{s.new_clips} clips, +{s.new_seconds / 3600:.3f} h in {s.wall_s:.0f} s: {rate:.2f} h of audio "
                      f"per wall hour; {s.failed_jobs} works skipped)", file=sys.stderr, flush=True)

        summary = build_corpus(cfg, on_progress)
    out = summary.to_json()
    emit(args, out, f"{out['corpus_dir']}: {out['clips']} clips, {out['hours']:.2f} h "
                    f"(+{out['new_clips']} clips, +{out['new_hours']:.2f} h in {out['wall_s']:.0f} s; "
                    f"{out['failed_jobs']} works skipped)")
    return 0


def run_features(args: argparse.Namespace) -> int:
    from filmscore.engine.data.features import compute_features

    with progress_bar(not args.json) as bar:
        task = bar.add_task("film features", total=None)
        out = compute_features(Path(args.out), args.limit,
                               lambda i, n: bar.update(task, completed=i, total=n))
    emit(args, out, f"{out['corpus_dir']}: {out['encoded']} clips encoded, {out['n_failed']} failed")
    return 0


def run_labels(args: argparse.Namespace) -> int:
    from filmscore.engine.data.relabel import relabel_corpus

    with progress_bar(not args.json) as bar:
        task = bar.add_task("labels", total=None)
        out = relabel_corpus(Path(args.out), args.limit, lambda i, n: bar.update(task, completed=i, total=n))
    emit(args, out, f"{out['corpus_dir']}: {out['relabelled']} of {out['clips']} clips relabelled, "
                    f"{out['n_mismatched']} whose MIDI the code no longer rebuilds, {out['n_failed']} failed")
    return 0 if not out["n_failed"] else 1


def run_check(args: argparse.Namespace) -> int:
    from filmscore.engine.data.render_check import check_corpus

    out = check_corpus(Path(args.out), args.limit)
    emit(args, out, lambda: print(json.dumps(out, indent=1)))
    return 0


def run_compare_renders(args: argparse.Namespace) -> int:
    from filmscore.engine.data.render_check import compare_renders

    out = compare_renders(args.clips, tuple(args.rates), tuple(args.soundfonts or ()), tuple(args.composers))
    emit(args, out, lambda: print(json.dumps(out, indent=1)))
    return 0


def corpus_info(out_dir: Path) -> dict:
    from filmscore.engine.data.index import read_index

    records = read_index(out_dir)
    by = defaultdict(lambda: {"clips": 0, "hours": 0.0, "works": set(), "agree": []})
    agree: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for key in (f"split:{r['split']}", f"master:{r['master']}", f"orchestration:{r['orchestration']}"):
            by[key]["clips"] += 1
            by[key]["hours"] += r["duration_s"] / 3600
            by[key]["works"].add(r["work"])
            if r.get("melody_agreement") is not None:
                by[key]["agree"].append(r["melody_agreement"])
        if r.get("melody_agreement") is not None:
            agree[r["split"]].append(r["melody_agreement"])
            agree["all"].append(r["melody_agreement"])
    groups = {k: {"clips": v["clips"], "hours": round(v["hours"], 3), "works": len(v["works"]),
                  "melody_agreement": round(sum(v["agree"]) / len(v["agree"]), 4) if v["agree"] else None}
              for k, v in sorted(by.items())}
    return {"corpus_dir": str(Path(out_dir).expanduser()), "clips": len(records), "build": build_speed(out_dir),
            "hours": round(sum(r["duration_s"] for r in records) / 3600, 3),
            "works": len({r["work"] for r in records}),
            "with_features": sum(1 for r in records if r.get("features")),
            "melody_agreement_mean": {k: round(sum(v) / len(v), 4) for k, v in agree.items()},
            "durations_s": dict(Counter(int(r["duration_s"] // 5 * 5) for r in records)),
            "groups": groups}


def build_speed(out_dir: Path, recent_s: float = 1800.0) -> dict:
    """From jobs.jsonl: jobs done and failed, audio seconds per CPU second (workers and FluidSynth), and audio
    hours per wall-clock hour over the last `recent_s` seconds of the build."""
    path = Path(out_dir).expanduser() / "jobs.jsonl"
    jobs = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                jobs.append(json.loads(line))
            except ValueError:
                continue
    timed = [j for j in jobs if "cpu_s" in j]
    cpu = sum(j["cpu_s"] for j in timed)
    audio = sum(j["audio_s"] for j in timed)
    out = {"jobs": len(jobs), "failed_jobs": sum(1 for j in jobs if j.get("error")),
           "audio_s_per_cpu_s": round(audio / cpu, 2) if cpu else None, "recent_audio_h_per_wall_h": None}
    if timed:
        end = max(j["time"] for j in timed)
        recent = [j for j in timed if j["time"] > end - recent_s]
        span = end - min(j["time"] for j in recent)
        if len(recent) > 1 and span > 0:
            out["recent_audio_h_per_wall_h"] = round(sum(j["audio_s"] for j in recent[1:]) / span, 2)
    return out


def run_info(args: argparse.Namespace) -> int:
    info = corpus_info(Path(args.out))
    if args.pairing:
        from filmscore.engine.data.features import pairing_check

        info["pairing"] = pairing_check(Path(args.out))

    def human() -> None:
        print(f"{info['corpus_dir']}: {info['clips']} clips, {info['hours']:.2f} h, {info['works']} works, "
              f"{info['with_features']} with film features")
        print(f"melody re-extraction agreement (real audio vs MIDI lead): {info['melody_agreement_mean']}")
        print(f"build: {info['build']}")
        if "pairing" in info:
            print(f"pairing seen by the film encoder: {info['pairing']}")
        print(f"  {'':32s} {'clips':>6s} {'hours':>8s} {'works':>6s} {'melody agreement':>17s}")
        for k, v in info["groups"].items():
            agree = "" if v["melody_agreement"] is None else f"{v['melody_agreement']:.3f}"
            print(f"  {k:32s} {v['clips']:6d} {v['hours']:8.2f} {v['works']:6d} {agree:>17s}")

    emit(args, info, human)
    return 0
