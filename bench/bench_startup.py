"""CLI start-up: how long `filmscore render` takes to reach the engine's first stage, as a user runs it.

Starts `filmscore render --duration D --maestro M -o cue.wav` (the shipped bundle) `--runs` times, each in a fresh
process that stops the moment the engine reports its first stage (`bridge/cli/startup.py` is the hook the CLI's
`startup_s` uses). Reports per run the wall seconds since the process started (the interpreter, every import, the
argument parsing and the request's checks) and the CPU seconds the process used by then (on a busy machine the wall
figure grows with the load; the CPU figure is what an idle machine's wall time would be), which heavy libraries were
already imported (none should be: torch and diffusers belong to the load stage), and the load average. Then one
full render's `timings_s` (its `import` entry is the runtime's import, inside the first stage). Writes
bench/results/startup.json.

    python bench/bench_startup.py [--runs 5] [--duration 60] [--maestro bach] [-o bench/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "diffusers", "scipy.signal", "scipy.ndimage", "onnxruntime", "av")

# Runs the real CLI; the hook the CLI calls at the engine's first stage report prints the figures and exits.
PROBE = """
import json, os, resource, sys
import filmscore.bridge.cli.startup as st
age = st.process_age_s
def at_first_stage():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall_s": round(age(), 3), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
                      "imported": [m for m in HEAVY if m in sys.modules]}), flush=True)
    os._exit(0)
HEAVY = %r
st.process_age_s = at_first_stage
from filmscore.bridge.cli import main
sys.exit(main(["render", *sys.argv[1:]]))
""" % (HEAVY,)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--maestro", default="bach")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "startup.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        cue = Path(tmp) / "cue.wav"
        # --local: this process's own start-up and render, even when a bridge runs here (bench_handoff.py measures
        # the render handed to one)
        flags = ["--duration", f"{args.duration:g}", "--maestro", args.maestro, "--local", "-o", str(cue), "--json"]
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, "-c", PROBE, *flags], capture_output=True, text=True)
            if done.returncode != 0 or not done.stdout.strip():
                raise SystemExit(f"probe failed: {done.stderr.strip().splitlines()[-1:]}")
            runs.append({**json.loads(done.stdout.strip().splitlines()[-1]), "load_avg_1min": round(os.getloadavg()[0], 2)})
        t0 = time.time()
        full = subprocess.run([sys.executable, "-m", "filmscore.bridge.cli", "render", *flags], capture_output=True,
                              text=True)
        wall = time.time() - t0
        if full.returncode != 0:
            raise SystemExit(f"render failed: {full.stderr.strip().splitlines()[-1:]}")
        summary = json.loads(full.stdout)
    result = {"benchmark": "startup", "command": "filmscore render " + " ".join(flags[:-3]) + " -o cue.wav --json",
              "runs": runs, "median_wall_s": statistics.median(r["wall_s"] for r in runs),
              "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
              "full_render": {"process_wall_s": round(wall, 2), "startup_s": summary.get("startup_s"),
                              "timings_s": summary["timings_s"],
                              "after_stages_s": round(wall - (summary.get("startup_s") or 0)
                                                      - sum(summary["timings_s"].values()), 2)},
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"first stage after {result['median_wall_s']} s wall, {result['median_cpu_s']} s CPU (median of "
          f"{args.runs}; load {load_before[0]:.1f}); full render {wall:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
