"""Peak memory of a render against the cue's length: the denoising plateau against the tail (decode, vocode, deliver).

Each cue length renders in a fresh subprocess (after a 2 s warm-up render: bundle, backend and first-call
allocations), so that no peak carries over from another length. The worker reads its resident memory two ways:
`VmHWM` from /proc/self/status at every stage change (the exact high-water mark up to then, so each stage's own
peak when it rises) and `VmRSS` sampled every 10 ms (the plateau a stage holds). Stages: "denoise" from the
controls' end to the last denoising step, "tail" after it (decode, vocode and deliver, which interleave when
streamed). The overall peak is the child's
`ru_maxrss` from os.wait4. Rows report, per length, the denoising plateau (the highest RSS sampled while denoising),
the peak after it, their ratio (issue 21: <= 1.5x) and the growth of the overall peak from one length to the next
(issue 23: <= 10 % from 5 to 10 minutes), with the stage timings.

`--tree DIR` also renders each length from another source tree (DIR/engine, DIR/bridge, DIR/export, e.g.
`git archive <commit> engine bridge export | tar -x -C DIR`), interleaved with this tree's runs in the same
invocation: the before/after rows of a change, memory and render time, under the same load.

    python bench/bench_memory.py [--durations 60,300,600] [--steps 4] [--maestro bach] [--threads 2]
                                 [--tree DIR] [--this-tree DIR] [-o bench/results/memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import json, os, sys, threading, time
cfg = json.loads(sys.argv[1])
import torch
from pathlib import Path
from dataclasses import replace
from filmscore.engine.request import RenderRequest
from filmscore.engine.render import render_cue
torch.set_num_threads(cfg["threads"])
req = RenderRequest(output=Path(cfg["out"]), duration_s=cfg["duration"], scheduler="dpmpp", steps=cfg["steps"],
                    seed=0, bundle=Path(cfg["bundle"]) if cfg["bundle"] else None, maestro=cfg["maestro"],
                    backend=cfg["backend"])
render_cue(replace(req, duration_s=2.0, steps=1))

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024  # kB -> MB
page = os.sysconf("SC_PAGE_SIZE")
stage, rss, hwm, done = ["start"], {}, {}, threading.Event()
def sample():
    while not done.is_set():
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[1]) * page / 2**20
        rss[stage[0]] = max(rss.get(stage[0], 0.0), now)
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
def progress(name, frac, msg):
    # "denoise" runs from the controls' end to the last step (the first step reports when it ends); "tail" is
    # everything after it (decode, vocode, deliver: streamed, they interleave)
    if name == "controls" and frac >= 1.0:
        name = "denoise"
    elif name == "denoise" and frac >= 1.0 or stage[0] == "tail" or name in ("decode", "vocode", "deliver"):
        name = "tail"
    if name != stage[0]:
        hwm[stage[0]] = status("VmHWM")
        stage[0] = name
start_hwm = status("VmHWM")
t0 = time.perf_counter()
res = render_cue(req, progress=progress)
seconds = time.perf_counter() - t0
hwm[stage[0]] = status("VmHWM")
done.set()
print(json.dumps({"seconds": seconds, "timings_s": res.timings_s, "rss_by_stage_mb": rss, "hwm_at_stage_end_mb": hwm,
                  "hwm_before_render_mb": start_hwm, "loudness": res.metadata["loudness"],
                  "backend": res.metadata.get("backend", {}).get("name")}))
"""


def _shim(tree: Path, root: Path) -> Path:
    """A folder holding `filmscore/` whose engine, bridge and export are `tree`'s: on PYTHONPATH it is imported
    before the editable install of this checkout."""
    pkg = root / "filmscore"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("engine", "bridge", "export"):
        (pkg / name).symlink_to(tree.resolve() / name)
    return root


def _run_one(cfg: dict, shim: Path | None) -> dict:
    env = dict(os.environ)
    if shim is not None:
        env["PYTHONPATH"] = str(shim) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # files, not pipes: os.wait4 reaps the child itself for its own ru_maxrss
        proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(cfg)], stdout=out, stderr=err, env=env,
                                text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cfg['duration']} s cue ({cfg['tree']}) failed: {errors.strip().splitlines()[-3:]}")
    res = json.loads(text.strip().splitlines()[-1])
    res["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    res["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    return res


def _row(duration: float, tree: str, res: dict) -> dict:
    rss = res["rss_by_stage_mb"]
    plateau = rss.get("denoise", 0.0)
    tail = rss.get("tail", 0.0)
    t = res["timings_s"]
    return {"duration_s": duration, "tree": tree, "render_s": round(res["seconds"], 2), "cpu_s": res["cpu_s"],
            "peak_rss_mb": res["peak_rss_mb"], "denoise_plateau_mb": round(plateau, 1),
            "tail_peak_sampled_mb": round(tail, 1),
            "peak_vs_plateau": round(res["peak_rss_mb"] / plateau, 3) if plateau else None,
            "rss_by_stage_mb": {k: round(v, 1) for k, v in rss.items()},
            "hwm_at_stage_end_mb": {k: round(v, 1) for k, v in res["hwm_at_stage_end_mb"].items()},
            "hwm_before_render_mb": round(res["hwm_before_render_mb"], 1),
            "timings_s": {k: round(v, 3) for k, v in t.items()},
            "integrated_lufs": res["loudness"]["integrated_lufs"], "true_peak_dbtp": res["loudness"]["true_peak_dbtp"],
            "backend": res["backend"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--durations", default="60,300,600", help="cue lengths in seconds, comma separated")
    p.add_argument("--steps", type=int, default=4, help="denoising steps (memory does not depend on them)")
    p.add_argument("--maestro", default="bach", help="a maestro theme: the ControlNet and its controls run too")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backend", default="torch")
    p.add_argument("--bundle", type=Path, default=None)
    p.add_argument("--tree", type=Path, default=None, help="another source tree to render each length from too")
    p.add_argument("--this-tree", type=Path, default=None,
                   help="render 'this' from a snapshot (git archive HEAD ...) instead of the working tree, which "
                        "others may be editing while the benchmark runs")
    p.add_argument("-o", "--out", type=Path, default=Path("bench/results/memory.json"))
    args = p.parse_args(argv)
    durations = [float(d) for d in args.durations.split(",") if d.strip()]
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        trees: list[tuple[str, Path | None]] = [
            ("this", None if args.this_tree is None else _shim(args.this_tree, Path(tmp) / "shim_this"))]
        if args.tree is not None:
            trees.insert(0, (str(args.tree), _shim(args.tree, Path(tmp) / "shim")))
        for duration in durations:
            for name, shim in trees:
                cfg = {"duration": duration, "steps": args.steps, "threads": args.threads, "maestro": args.maestro,
                       "backend": args.backend, "bundle": str(args.bundle) if args.bundle else None, "tree": name,
                       "out": str(Path(tmp) / f"cue_{duration:g}.wav")}
                rows.append(_row(duration, name, _run_one(cfg, shim)))
                r = rows[-1]
                print(f"{duration:>6.0f} s  {name:<24} render {r['render_s']:>7.2f} s  plateau "
                      f"{r['denoise_plateau_mb']:>6.0f} MB  peak {r['peak_rss_mb']:>6.0f} MB  "
                      f"x{r['peak_vs_plateau']:.2f}  {r['integrated_lufs']:.2f} LUFS {r['true_peak_dbtp']:.2f} dBTP",
                      flush=True)
    growth = {}
    for name, _ in trees:
        mine = [r for r in rows if r["tree"] == name]
        for a, b in zip(mine, mine[1:]):
            growth[f"{name}: {a['duration_s']:g} -> {b['duration_s']:g} s"] = round(b["peak_rss_mb"] / a["peak_rss_mb"] - 1, 4)
    speed = {}
    if args.tree is not None:
        for d in durations:
            before = next(r for r in rows if r["duration_s"] == d and r["tree"] != "this")
            after = next(r for r in rows if r["duration_s"] == d and r["tree"] == "this")
            speed[f"{d:g}"] = round(after["render_s"] / before["render_s"], 3)
    result = {"benchmark": "memory", "durations_s": durations, "steps": args.steps, "threads": args.threads,
              "maestro": args.maestro, "backend": args.backend, "bundle": str(args.bundle or "default"),
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()],
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d %H:%M"), "peak_growth": growth,
              "render_time_this_vs_tree": speed, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in growth.items():
        print(f"peak growth {k}: {v:+.1%}")
    for k, v in speed.items():
        print(f"render time, this tree / {args.tree}, {k} s cue: {v:.3f}")
    print(f"load average before/after: {result['load_avg_before'][0]:.2f} / {result['load_avg_after'][0]:.2f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
