"""`filmscore bench render`: real-time factor and peak memory of a cue per scheduler and step count.

Each configuration runs in a fresh subprocess so that its peak RSS is its own (os.wait4's ru_maxrss). Results go
to a JSON file; the printout gives RTF (render seconds / cue seconds) side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .common import add_json_flag, emit

WORKER = r"""
import json, sys, time, torch
from pathlib import Path
from filmscore.engine.request import RenderRequest
from filmscore.engine.render import render_cue
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
req = RenderRequest(output=Path(cfg["out"]), duration_s=cfg["duration"], scheduler=cfg["scheduler"],
                    steps=cfg["steps"], seed=0, bundle=Path(cfg["bundle"]) if cfg["bundle"] else None,
                    vocoder=cfg["vocoder"], maestro=cfg["maestro"], backend=cfg["backend"])
from dataclasses import replace
render_cue(replace(req, duration_s=2.0, steps=1))  # warm-up: loads the bundle and backend, first-call allocations
t0 = time.perf_counter()
res = render_cue(req)
print(json.dumps({"seconds": time.perf_counter() - t0, "timings_s": res.timings_s,
                  "backend": res.metadata.get("backend", {}).get("name", cfg["backend"])}))
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (speed, memory); results written as JSON")
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    r = bsub.add_parser("render", help="RTF and peak RSS of a cue per scheduler/steps")
    r.add_argument("--bundle", type=Path, default=None)
    r.add_argument("--duration", type=float, default=60.0, help="cue length (s)")
    r.add_argument("--schedulers", default="dpmpp,ddim,euler")
    r.add_argument("--steps", default="10,25")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--vocoder", default="auto", choices=["auto", "network", "griffin-lim"])
    r.add_argument("--backend", default="auto", help="auto, torch, ort or trt (`bench backends` compares them)")
    r.add_argument("--maestro", default=None, help="render with a maestro theme (exercises the ControlNet)")
    r.add_argument("-o", "--out", type=Path, default=Path("bench/results/render.json"))
    add_json_flag(r)
    r.set_defaults(run=run_render)
    from .bench_backends import add_bench

    add_bench(bsub)


def _run_one(cfg: dict) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        from filmscore.engine.errors import FilmscoreError

        raise FilmscoreError(f"benchmark run {cfg['scheduler']}/{cfg['steps']} failed: {err.strip().splitlines()[-1]}")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # Linux: kilobytes
    return res


def run_render(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sched in args.schedulers.split(","):
            for steps in (int(s) for s in args.steps.split(",")):
                cfg = {"scheduler": sched, "steps": steps, "duration": args.duration, "threads": args.threads,
                       "bundle": str(args.bundle) if args.bundle else None, "vocoder": args.vocoder,
                       "maestro": args.maestro, "backend": args.backend,
                       "out": str(Path(tmp) / f"{sched}_{steps}.wav")}
                res = _run_one(cfg)
                rows.append({"scheduler": sched, "steps": steps, "render_s": round(res["seconds"], 3),
                             "rtf": round(res["seconds"] / args.duration, 4), "peak_rss_mb": res["peak_rss_mb"],
                             "backend": res["backend"],
                             "timings_s": {k: round(v, 3) for k, v in res["timings_s"].items()}})
    base = rows[0]["render_s"]
    for r in rows:
        r["time_vs_first"] = round(r["render_s"] / base, 3)
    result = {"benchmark": "render", "cue_s": args.duration, "threads": args.threads, "backend": args.backend,
              "bundle": str(args.bundle or "default"), "vocoder": args.vocoder, "maestro": args.maestro,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    def human() -> None:
        print(f"render benchmark: {args.duration:.0f} s cue, {args.threads} threads -> {args.out}")
        print(f"{'scheduler':<10}{'steps':>6}{'backend':>9}{'render s':>10}{'RTF':>8}{'x first':>9}{'peak RSS MB':>13}")
        for r in rows:
            print(f"{r['scheduler']:<10}{r['steps']:>6}{r['backend']:>9}{r['render_s']:>10.2f}{r['rtf']:>8.3f}"
                  f"{r['time_vs_first']:>9.2f}{r['peak_rss_mb']:>13.0f}")

    emit(args, result, human)
    return 0
