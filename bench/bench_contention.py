"""Renders under contention: N renders of the same cue at once, against one alone, per backend, in one run.

The load generator is the product itself, reproducible: `filmscore render` processes of one request (same cue, seed,
steps, threads), started together. Each render is a fresh process as a user starts it (imports, model load, the
render, delivery); its wall time comes from the clock around it and its CPU-seconds (user + system) and peak RSS
from `os.wait4`. For each backend the script runs one render alone, then N at once, and reports per render:

- `wall_vs_alone`: wall time under load / alone. With N renders on a machine whose cores one render fills, the fair
  share is N x; issue 23 asks for <= 1.3 x the fair share;
- `cpu_vs_alone`: CPU-seconds under load / alone (1.0: nothing is burnt spinning; issue 23 asks for <= 1.5).

"alone" means no other render of ours: on a shared machine other jobs run too, so the load average is recorded
before and after each phase, and only ratios measured in the same run are reported. `auto` is run on a machine with
no prior measurement: the export cache is a fresh folder (FILMSCORE_EXPORT_DIR), so it chooses by its default
order; the ORT row exports the bundle into that folder first (`filmscore export`, no speed measured).

    python bench/bench_contention.py [--renders 3] [--duration 20] [--steps 10] [--backends auto,torch,ort]
                                     [--threads N] [-o bench/results/contention.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cli() -> list[str]:
    return [sys.executable, "-m", "filmscore.bridge.cli"]


def _start(out: Path, args: argparse.Namespace, backend: str, env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    cmd = _cli() + ["render", "--duration", str(args.duration), "--steps", str(args.steps), "--seed", "0",
                    "--backend", backend, "-o", str(out), "--overwrite", "--json"]
    if args.maestro:
        cmd += ["--maestro", args.maestro]
    if args.bundle:
        cmd += ["--bundle", str(args.bundle)]
    log = open(out.with_suffix(".log"), "w")  # files, not pipes: os.wait4 reaps the child itself
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return proc, time.perf_counter()


def _wait(proc: subprocess.Popen, started: float, out: Path) -> dict:
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    text = out.with_suffix(".log").read_text()
    if code != 0:
        raise RuntimeError(f"render {out.name} exited {code}: {text.strip().splitlines()[-1:]}")
    summary = json.loads(text[text.index("{"):])
    meta = json.loads(out.with_suffix(".json").read_text())
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "stages_s": {k: round(v, 2) for k, v in summary["timings_s"].items()},
            "backend": meta["backend"]["name"], "auto_reason": meta["backend"].get("chosen_because"),
            "threads": meta["pipeline"].get("threads"), "md5": _md5(out)}


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def _phase(n: int, tmp: Path, tag: str, args: argparse.Namespace, backend: str, env: dict[str, str]) -> dict:
    load_before = os.getloadavg()
    procs = [_start(tmp / f"{tag}_{i}.wav", args, backend, env) for i in range(n)]
    runs = [_wait(p, t0, tmp / f"{tag}_{i}.wav") for i, (p, t0) in enumerate(procs)]
    return {"renders": runs, "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renders", type=int, default=3, help="renders at once under load (default 3: two others)")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--maestro", default="bach", help="a theme, so the ControlNet runs ('' for none)")
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--backends", default="auto,torch,ort")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per render (OMP_NUM_THREADS; default: the CLI's own default, all cores)")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "contention.json")
    args = ap.parse_args()

    rows: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        env = dict(os.environ, FILMSCORE_EXPORT_DIR=str(tmp / "exports"))  # no prior measurement, no exports
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            if backend == "ort":
                cmd = _cli() + ["export", "--backend", "ort", "--no-measure", "--no-parity"] + (
                    ["--bundle", str(args.bundle)] if args.bundle else [])
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    skipped[backend] = (done.stderr.strip().splitlines() or ["export failed"])[-1]
                    continue
            alone = _phase(1, tmp, f"{backend}_alone", args, backend, env)
            loaded = _phase(args.renders, tmp, f"{backend}_load", args, backend, env)
            a = alone["renders"][0]
            per = [{"wall_vs_alone": round(r["wall_s"] / a["wall_s"], 2),
                    "cpu_vs_alone": round(r["cpu_s"] / a["cpu_s"], 2)} for r in loaded["renders"]]
            walls = [p["wall_vs_alone"] for p in per]
            rows[backend] = {
                "alone": alone, "loaded": loaded, "per_render": per,
                "wall_vs_alone_median": statistics.median(walls),
                "wall_vs_fair_share_max": round(max(walls) / args.renders, 2),
                "cpu_vs_alone_max": max(p["cpu_vs_alone"] for p in per),
                "same_bytes_alone_and_loaded": len({a["md5"], *(r["md5"] for r in loaded["renders"])}) == 1}
            print(f"{backend:<6} ({a['backend']}): alone {a['wall_s']:.1f} s wall, {a['cpu_s']:.1f} CPU-s; "
                  f"{args.renders} at once: wall x{min(walls):.2f}-{max(walls):.2f} (fair share x{args.renders}), "
                  f"CPU x{rows[backend]['cpu_vs_alone_max']:.2f}; load {alone['load_avg_before'][0]:.1f} -> "
                  f"{loaded['load_avg_after'][0]:.1f}", flush=True)
    result = {"benchmark": "contention", "renders_at_once": args.renders, "cue_s": args.duration,
              "steps": args.steps, "maestro": args.maestro or None, "threads": args.threads or "default",
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["python"] + sys.argv),
              "rows": rows, "skipped": skipped}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
