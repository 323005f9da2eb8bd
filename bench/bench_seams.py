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

from flux import join_report, spectral_flux, window_overlaps


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
    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cue.wav"
        res = render_cue(RenderRequest(output=out, duration_s=args.duration, maestro=args.maestro, seed=args.seed,
                                       steps=args.steps, bundle=args.bundle, sample_rate=16000))
        wave = load_audio(out, 16000)
    flux = spectral_flux(wave)
    join = window_overlaps(flux.shape[0], res.metadata["pipeline"]["n_latent_frames"])
    seams = join_report(flux, join, ~join)
    result = {
        "benchmark": "seams", "duration_s": args.duration, "steps": args.steps, "maestro": args.maestro,
        "bundle": res.metadata["bundle"], "n_windows": res.metadata["pipeline"]["n_windows"],
        "flux_inside": seams["flux_inside_windows"], "flux_at_joins": seams["flux_at_joins"],
        "ratio_mean_join_to_inside": seams["ratio_mean_join_to_inside"],
        "share_join_frames_above_inside_p99": seams["share_join_frames_above_inside_p99"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['n_windows']} windows; spectral flux mean inside {result['flux_inside']['mean']:.4f}, "
          f"at joins {result['flux_at_joins']['mean']:.4f} (ratio {result['ratio_mean_join_to_inside']:.2f}); "
          f"join frames above the inside p99: {result['share_join_frames_above_inside_p99']:.1%} -> {args.out}")


if __name__ == "__main__":
    main()
