"""The draft first: when `filmscore render --preview` has a draft of the whole cue, and how close the full render is.

Runs, as a user does, `filmscore render --duration D --maestro M --preview draft.wav -o cue.wav` (default steps)
and the same command with another seed and no preview. Reports: the process's wall time, when the draft file
appeared (seconds after the process started, and as a share of the process's wall time), the cue JSON's stage
timings, and the log-Mel correlation of the draft with its own full render against the correlation of two full
renders with different seeds (the full render should refine the draft, not make another piece).

Then the same cue through the bridge, as the panel asks for it: a `filmscore serve` with one worker on every core
(started as a shell would: until 2026-12-03 it ran on one thread, the test suite's launch default), warmed by a
short render (a running bridge has imported the engine and loaded the model once), gets the render with
`preview: {}`; reported: when `job_preview` arrived and when `job_finished` did, both in seconds after the job
started (the server's own `ready_after_s` and `elapsed_s`), and their ratio. Writes bench/results/preview.json with
the load average before and after.

    python bench/bench_preview.py [--duration 60] [--maestro bach] [--parts cli,bridge] [--bundle B]
                                  [-o bench/results/preview.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _render(folder: Path, seed: int, args: argparse.Namespace, preview: bool) -> dict:
    out = folder / f"cue{seed}.wav"
    cmd = [sys.executable, "-m", "filmscore.bridge.cli", "render", "--duration", str(args.duration), "--maestro",
           args.maestro, "--seed", str(seed), "-o", str(out), "--overwrite", "--json", "--local"] \
        + (["--bundle", str(args.bundle)] if args.bundle else [])
    draft = folder / f"draft{seed}.wav"
    if preview:
        cmd += ["--preview", str(draft)]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if done.returncode != 0:
        raise SystemExit(f"render failed: {done.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(done.stdout)
    row = {"seed": seed, "process_wall_s": round(wall, 2), "startup_s": summary.get("startup_s"),
           "stages_s": summary["timings_s"], "outside_stages_s": round(wall - sum(summary["timings_s"].values()), 2)}
    if preview:
        at = draft.stat().st_mtime - t0
        row.update(draft_after_s=round(at, 2), draft_share_of_wall=round(at / wall, 3), preview=summary["preview"])
    return row


def _mel(path: Path) -> np.ndarray:
    import soundfile as sf

    from filmscore.engine.audio.io import resample
    from filmscore.engine.audio.mel import MelConfig, log_mel

    audio, sr = sf.read(str(path), dtype="float32")
    return log_mel(resample(audio, sr, 16000), MelConfig()).numpy()


def _bridge(folder: Path, args: argparse.Namespace) -> dict:
    """The cue through a warm bridge worker with `preview: {}`: when the draft and the cue were there."""
    from filmscore.bridge.client import BridgeClient
    from filmscore.bridge.server.launch import launch_server

    out = folder / "bridge"
    out.mkdir()
    # started as a shell would (no OMP_NUM_THREADS: its one worker renders on every core, as a user's `filmscore
    # serve` does; launch_server's default of one thread is the test suite's)
    shell_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    with launch_server(folder / "state", output_roots=[out], bundle=args.bundle, env=shell_env) as srv, \
            BridgeClient(srv.info) as c:
        warm = c.render(out / "warm.wav", duration_s=2.0, steps=2, maestro=args.maestro)
        if c.wait(warm, timeout_s=600)["state"] != "finished":
            raise SystemExit("the warm-up render did not finish")
        c.subscribe(wait_s=30)
        job = c.render(out / "cue.wav", duration_s=args.duration, maestro=args.maestro, preview={})
        seen: dict[str, dict] = {}
        for ev in c.events(timeout_s=1800):
            if ev.content.get("job_id") == job and ev.msg_type in ("job_preview", "job_finished", "job_failed"):
                seen[ev.msg_type] = ev.content
                if ev.msg_type != "job_preview":
                    break
        if "job_finished" not in seen or "job_preview" not in seen:
            raise SystemExit(f"the bridge job did not give a draft and a cue: {sorted(seen)}")
        timings = seen["job_finished"]["result"]["timings_s"]
    draft_s, done_s = seen["job_preview"]["ready_after_s"], seen["job_finished"]["elapsed_s"]
    return {"draft_after_s": round(draft_s, 2), "finished_after_s": round(done_s, 2),
            "draft_share": round(draft_s / done_s, 3), "steps": seen["job_preview"]["steps"],
            "stages_s": {k: round(v, 3) for k, v in timings.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--maestro", default="bach")
    ap.add_argument("--parts", default="cli,bridge", help="cli, bridge or both")
    ap.add_argument("--bundle", type=Path, default=None, help="the bundle to render with (a v2 bundle too; default: "
                    "the shipped one), on the command line and the bridge alike")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "preview.json")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        bridge = _bridge(tmp, args) if "bridge" in parts else earlier.get("bridge")
        if "cli" in parts:
            with_preview = _render(tmp, 0, args, preview=True)
            other = _render(tmp, 1, args, preview=False)
            full, draft, full_other = _mel(tmp / "cue0.wav"), _mel(tmp / "draft0.wav"), _mel(tmp / "cue1.wav")

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return round(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), 3)

    result = {"benchmark": "preview", "cue_s": args.duration, "maestro": args.maestro,
              "bundle": str(args.bundle) if args.bundle else "shipped",
              "command": f"filmscore render --duration {args.duration:g} --maestro {args.maestro} "
                         "--preview draft.wav -o cue.wav",
              **({"with_preview": with_preview, "without_preview_other_seed": other,
                  "log_mel_correlation": {"draft_vs_its_full_render": corr(draft, full),
                                          "full_vs_full_other_seed": corr(full, full_other),
                                          "draft_vs_full_other_seed": corr(draft, full_other)}}
                 if "cli" in parts else {k: earlier.get(k) for k in ("with_preview", "without_preview_other_seed",
                                                                      "log_mel_correlation")}),
              "bridge": bridge, "parts_run": sorted(parts),
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    cli = result["with_preview"] or {}
    print(json.dumps({k: result[k] for k in ("log_mel_correlation", "load_avg_before")}),
          f"CLI: draft after {cli.get('draft_after_s')} s of {cli.get('process_wall_s')} s;",
          f"bridge: {(bridge or {}).get('draft_after_s')} s of {(bridge or {}).get('finished_after_s')} s",
          f"-> {args.out}")


if __name__ == "__main__":
    main()
