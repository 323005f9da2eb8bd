"""The whole `filmscore render` as a user runs it: in its own process (`--local`) against handed to a running bridge.

Starts a `filmscore serve` as a shell would (connection file in the runtime folder, no OMP_NUM_THREADS: its one
worker renders on every core), warms it with a 2 s cue (a running bridge has imported the engine and loaded the
bundle once), then runs, alternating in each round so that the machine's load falls on both alike:

    filmscore render --duration D --maestro M --seed S -o cue.wav --json --local            (here)
    filmscore render --duration D --maestro M --seed S -o cue.wav --json                    (on the bridge)
    ... the same two with --preview draft.wav

Reports per run the process's wall time, the cue JSON's stage timings, the model stages' sum (`MODEL_STAGES`: load,
denoise, decode, vocode) and the whole process against it, the delivery's share of the process (and whether the
seed's cue needed the limiter: seed 1's does), the process's CPU seconds, and for --preview runs when
the draft file appeared (seconds after the process started, and its share of the process's wall time). Each round
checks that the two cues of one seed are the same bytes. Writes bench/results/handoff.json with the load average.

    python bench/bench_handoff.py [--rounds 2] [--duration 60] [--maestro bach] [--bundle B] [-o bench/results/handoff.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODEL_STAGES = ("load", "denoise", "decode", "vocode")


def _watch(path: Path, t0: float, seen: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        if path.exists():
            seen["at"] = time.monotonic() - t0
            return
        time.sleep(0.01)


def _run(cmd: list[str], env: dict, draft: Path | None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seen: dict = {}
    stop = threading.Event()
    t0 = time.monotonic()
    watcher = threading.Thread(target=_watch, args=(draft, t0, seen, stop)) if draft else None
    if watcher:
        watcher.start()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    stop.set()
    if watcher:
        watcher.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"render failed: {done.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(done.stdout)
    model = sum(summary["timings_s"].get(k, 0.0) for k in MODEL_STAGES)
    row = {"process_wall_s": round(wall, 2),
           "process_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
           "on_bridge": summary["bridge"] is not None, "startup_s": summary.get("startup_s"),
           "stages_s": summary["timings_s"], "model_stages_s": round(model, 2),
           "whole_over_model_stages": round(wall / model, 3),
           # delivery (mastering, true peak, limiter where the seed's cue needs it, writing) against the process
           "deliver_share_of_wall": round(summary["timings_s"]["deliver"] / wall, 3),
           "limited": summary["loudness"]["limited"]}
    if draft is not None:
        row.update(draft_after_s=round(seen["at"], 2) if "at" in seen else None,
                   draft_share_of_wall=round(seen["at"] / wall, 3) if "at" in seen else None)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--maestro", default="bach")
    ap.add_argument("--bundle", type=Path, default=None,
                    help="the bundle both sides render with (default: the shipped one; a v2 bundle: its stages)")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "handoff.json")
    args = ap.parse_args()
    from filmscore.bridge.server.launch import launch_server

    load_before = os.getloadavg()
    rows: dict[str, list[dict]] = {k: [] for k in ("here", "bridge", "here_preview", "bridge_preview")}
    identical: list[bool] = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        runtime = tmp / "runtime"
        runtime.mkdir(mode=0o700)
        shell_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        env = {**shell_env, "XDG_RUNTIME_DIR": str(runtime)}
        base = [sys.executable, "-m", "filmscore.bridge.cli", "render", "--duration", f"{args.duration:g}",
                "--maestro", args.maestro, "--json", "--overwrite"] + (["--bundle", str(args.bundle)] if args.bundle else [])
        with launch_server(tmp / "state", connection_file=runtime / "filmscore" / "bridge-1.json",
                           output_roots=[tmp], env=shell_env, bundle=args.bundle):
            warm = _run([*base[:4], "--duration", "2", "--steps", "2", "--maestro", args.maestro, "--json",
                         "-o", str(tmp / "warm.wav")] + (["--bundle", str(args.bundle)] if args.bundle else []),
                        env, None)
            if not warm["on_bridge"]:
                raise SystemExit("the warm-up render did not go to the bridge")
            for r in range(args.rounds):
                for preview in (False, True):
                    outs = {}
                    for where in ("here", "bridge"):
                        out = tmp / f"{where}{r}{'p' if preview else ''}.wav"
                        draft = tmp / f"{out.stem}.first.wav" if preview else None
                        cmd = [*base, "--seed", str(r), "-o", str(out)] + (["--local"] if where == "here" else []) \
                            + (["--preview", str(draft)] if draft else [])
                        row = _run(cmd, env, draft)
                        if row["on_bridge"] != (where == "bridge"):
                            raise SystemExit(f"the {where} render ran {'on the bridge' if row['on_bridge'] else 'here'}")
                        rows[f"{where}{'_preview' if preview else ''}"].append({"round": r, **row})
                        outs[where] = out
                    identical.append(outs["here"].read_bytes() == outs["bridge"].read_bytes())

    def med(key: str, field: str) -> float | None:
        vals = [x[field] for x in rows[key] if x.get(field) is not None]
        return round(statistics.median(vals), 3) if vals else None

    result = {"benchmark": "handoff", "cue_s": args.duration, "maestro": args.maestro, "model_stages": MODEL_STAGES,
              "bundle": str(args.bundle or "default"),
              "commands": {"here": "filmscore render --duration D --maestro M -o cue.wav --local",
                           "bridge": "filmscore render --duration D --maestro M -o cue.wav  (a warm filmscore serve "
                                     "running, one worker)"},
              "runs": rows, "same_bytes_here_and_on_bridge": identical,
              "median": {k: {f: med(k, f) for f in ("process_wall_s", "process_cpu_s", "model_stages_s",
                                                    "whole_over_model_stages", "draft_share_of_wall",
                                                    "deliver_share_of_wall")}
                         for k in rows},
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()], "cores": len(os.sched_getaffinity(0)),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    result["median"]["bridge_wall_over_here_wall"] = round(
        result["median"]["bridge"]["process_wall_s"] / result["median"]["here"]["process_wall_s"], 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    m = result["median"]
    print(f"whole render / model stages: here {m['here']['whole_over_model_stages']}, bridge "
          f"{m['bridge']['whole_over_model_stages']}; wall here {m['here']['process_wall_s']} s, bridge "
          f"{m['bridge']['process_wall_s']} s; draft share here {m['here_preview']['draft_share_of_wall']}, bridge "
          f"{m['bridge_preview']['draft_share_of_wall']}; deliver share here {m['here']['deliver_share_of_wall']}, "
          f"bridge {m['bridge']['deliver_share_of_wall']}; same bytes {all(identical)}; load "
          f"{load_before[0]:.1f} -> {args.out}")


if __name__ == "__main__":
    main()
