"""Seams between the windows of a long cue: spectral flux at the window joins against inside the windows.

Renders one cue (default 60 s, the default bundle, a maestro theme so that the ControlNet is active), computes the
log-Mel spectral flux (mean positive frame-to-frame change) of the delivered audio, and compares the flux in the
overlap regions where neighbouring windows are fused with the flux everywhere else. No seam means the joins sit
inside the distribution measured within windows. Writes bench/results/seams.json.

    python bench/bench_seams.py [--bundle DIR] [--duration 60] [--steps 25]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--maestro", default="bach")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "seams.json")
    args = ap.parse_args()

    from filmscore.engine.audio.io import load_audio
    from filmscore.engine.audio.mel import log_mel
    from filmscore.engine.constants import LATENT_DOWNSAMPLE, WINDOW_MEL_FRAMES, WINDOW_OVERLAP_MEL_FRAMES
    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest
    from filmscore.engine.windowed import plan_windows

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cue.wav"
        res = render_cue(RenderRequest(output=out, duration_s=args.duration, maestro=args.maestro, seed=args.seed,
                                       steps=args.steps, bundle=args.bundle, sample_rate=16000))
        wave = load_audio(out, 16000)
    mel = log_mel(wave).numpy()
    flux = np.maximum(np.diff(mel, axis=1), 0).mean(axis=0)  # (T - 1,)
    n_latent = res.metadata["pipeline"]["n_latent_frames"]
    windows = plan_windows(n_latent, WINDOW_MEL_FRAMES // LATENT_DOWNSAMPLE,
                           WINDOW_OVERLAP_MEL_FRAMES // LATENT_DOWNSAMPLE, 8)
    join = np.zeros(flux.shape[0], bool)
    for prev, nxt in zip(windows, windows[1:]):
        a, b = nxt.start * LATENT_DOWNSAMPLE, (prev.start + prev.length) * LATENT_DOWNSAMPLE
        join[a:min(b, flux.shape[0])] = True
    inside, at_join = flux[~join], flux[join]
    result = {
        "benchmark": "seams", "duration_s": args.duration, "steps": args.steps, "maestro": args.maestro,
        "bundle": res.metadata["bundle"], "n_windows": len(windows),
        "flux_inside": {"mean": float(inside.mean()), "p50": float(np.percentile(inside, 50)),
                        "p95": float(np.percentile(inside, 95)), "p99": float(np.percentile(inside, 99))},
        "flux_at_joins": {"mean": float(at_join.mean()), "p50": float(np.percentile(at_join, 50)),
                          "p95": float(np.percentile(at_join, 95)), "max": float(at_join.max())},
        "ratio_mean_join_to_inside": float(at_join.mean() / inside.mean()),
        "share_join_frames_above_inside_p99": float((at_join > np.percentile(inside, 99)).mean()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(windows)} windows; spectral flux mean inside {result['flux_inside']['mean']:.4f}, "
          f"at joins {result['flux_at_joins']['mean']:.4f} (ratio {result['ratio_mean_join_to_inside']:.2f}); "
          f"join frames above the inside p99: {result['share_join_frames_above_inside_p99']:.1%} -> {args.out}")


if __name__ == "__main__":
    main()
