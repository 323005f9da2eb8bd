"""The draft first: when `filmscore render --preview` has a draft of the whole cue, and how close the full render is.

Runs, as a user does, `filmscore render --duration D --maestro M --preview draft.wav -o cue.wav` (default steps)
and the same command with another seed and no preview. Reports: the process's wall time, when the draft file
appeared (seconds after the process started, and as a share of the process's wall time), the cue JSON's stage
timings, and the log-Mel correlation of the draft with its own full render against the correlation of two full
renders with different seeds (the full render should refine the draft, not make another piece). Writes
bench/results/preview.json with the load average before and after.

    python bench/bench_preview.py [--duration 60] [--maestro bach] [-o bench/results/preview.json]
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
           args.maestro, "--seed", str(seed), "-o", str(out), "--overwrite", "--json"]
    draft = folder / f"draft{seed}.wav"
    if preview:
        cmd += ["--preview", str(draft)]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if done.returncode != 0:
        raise SystemExit(f"render failed: {done.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(done.stdout)
    row = {"seed": seed, "process_wall_s": round(wall, 2), "stages_s": summary["timings_s"],
           "outside_stages_s": round(wall - sum(summary["timings_s"].values()), 2)}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--maestro", default="bach")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "preview.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with_preview = _render(tmp, 0, args, preview=True)
        other = _render(tmp, 1, args, preview=False)
        full, draft, full_other = _mel(tmp / "cue0.wav"), _mel(tmp / "draft0.wav"), _mel(tmp / "cue1.wav")

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return round(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), 3)

    result = {"benchmark": "preview", "cue_s": args.duration, "maestro": args.maestro,
              "command": f"filmscore render --duration {args.duration:g} --maestro {args.maestro} "
                         "--preview draft.wav -o cue.wav",
              "with_preview": with_preview, "without_preview_other_seed": other,
              "log_mel_correlation": {"draft_vs_its_full_render": corr(draft, full),
                                      "full_vs_full_other_seed": corr(full, full_other),
                                      "draft_vs_full_other_seed": corr(draft, full_other)},
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("log_mel_correlation", "load_avg_before")}),
          f"draft after {with_preview['draft_after_s']} s of {with_preview['process_wall_s']} s", f"-> {args.out}")


if __name__ == "__main__":
    main()
