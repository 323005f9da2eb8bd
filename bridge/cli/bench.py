"""`filmscore bench render`: real-time factor and peak memory of a cue per length, scheduler and step count.

Each configuration runs in a fresh subprocess so that its peak RSS is its own (os.wait4's ru_maxrss); the worker
also samples its resident memory per stage, so the peak after denoising (decode, vocode, deliver) is set against the
denoising plateau. Results go to a JSON file; the printout gives RTF (render seconds / cue seconds), delivery's
share of the render and the peak against the plateau side by side.
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
import json, os, sys, threading, time, torch
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
# resident memory sampled every 20 ms and kept per stage: the denoising plateau against decode/vocode/deliver
page, stage, peaks, done = os.sysconf("SC_PAGE_SIZE"), ["load"], {}, threading.Event()
def sample():
    while not done.is_set():
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * page / 2**20
        peaks[stage[0]] = max(peaks.get(stage[0], 0.0), rss)
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
after = {"denoise": "decode", "decode": "vocode", "vocode": "deliver"}
def progress(name, frac, msg):
    stage[0] = after[name] if frac >= 1.0 and name in after else name
t0 = time.perf_counter()
res = render_cue(req, progress=progress)
seconds = time.perf_counter() - t0
done.set()
print(json.dumps({"seconds": seconds, "timings_s": res.timings_s, "peak_rss_by_stage_mb": peaks,
                  "backend": res.metadata.get("backend", {}).get("name", cfg["backend"])}))
"""

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (speed, memory); results written as JSON")
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    r = bsub.add_parser("render", help="RTF and peak RSS of a cue per scheduler/steps")
    r.add_argument("--bundle", type=Path, default=None)
    r.add_argument("--duration", default="60", help="cue length (s); a comma list runs each (memory against length)")
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

    from filmscore.engine.errors import RequestError

    try:
        durations = [float(d) for d in str(args.duration).split(",") if d.strip()]
    except ValueError:
        raise RequestError(f"--duration {args.duration!r}: seconds, or a comma list of them") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for duration in durations:
            for sched in args.schedulers.split(","):
                for steps in (int(s) for s in args.steps.split(",")):
                    cfg = {"scheduler": sched, "steps": steps, "duration": duration, "threads": args.threads,
                           "bundle": str(args.bundle) if args.bundle else None, "vocoder": args.vocoder,
                           "maestro": args.maestro, "backend": args.backend,
                           "out": str(Path(tmp) / f"{sched}_{steps}.wav")}
                    res = _run_one(cfg)
                    t = res["timings_s"]
                    models = sum(t.get(k, 0.0) for k in ("conditioning", "denoise", "decode", "vocode"))
                    by_stage = {k: round(v, 1) for k, v in res["peak_rss_by_stage_mb"].items()}
                    rows.append({"duration_s": duration, "scheduler": sched, "steps": steps,
                                 "render_s": round(res["seconds"], 3), "rtf": round(res["seconds"] / duration, 4),
                                 "peak_rss_mb": res["peak_rss_mb"], "peak_rss_by_stage_mb": by_stage,
                                 "peak_vs_denoise_plateau": round(max(by_stage.values()) / by_stage["denoise"], 3)
                                 if by_stage.get("denoise") else None,
                                 "deliver_share": round(t.get("deliver", 0.0) / res["seconds"], 3),
                                 "render_vs_model_stages": round(res["seconds"] / models, 3) if models else None,
                                 "backend": res["backend"], "timings_s": {k: round(v, 3) for k, v in t.items()}})
    base = rows[0]["render_s"]
    for r in rows:
        r["time_vs_first"] = round(r["render_s"] / base, 3)
    result = {"benchmark": "render", "cue_s": durations[0] if len(durations) == 1 else durations,
              "threads": args.threads, "backend": args.backend, "load_avg": [round(x, 2) for x in os.getloadavg()],
              "bundle": str(args.bundle or "default"), "vocoder": args.vocoder, "maestro": args.maestro,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    def human() -> None:
        print(f"render benchmark: {args.threads} threads, load average {result['load_avg'][0]} -> {args.out}")
        print(f"{'cue s':>6} {'scheduler':<10}{'steps':>6}{'backend':>9}{'render s':>10}{'RTF':>8}{'x first':>9}"
              f"{'deliver':>9}{'peak RSS MB':>13}{'x plateau':>10}")
        for r in rows:
            print(f"{r['duration_s']:>6.0f} {r['scheduler']:<10}{r['steps']:>6}{r['backend']:>9}{r['render_s']:>10.2f}"
                  f"{r['rtf']:>8.3f}{r['time_vs_first']:>9.2f}{r['deliver_share']:>9.1%}{r['peak_rss_mb']:>13.0f}"
                  f"{r['peak_vs_denoise_plateau'] or float('nan'):>10.2f}")

    emit(args, result, human)
    return 0
