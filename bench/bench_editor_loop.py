"""The editor's loop (issue 20): regenerating a range of a cue (--part regenerate), variations (--part variations).

Renders one cue (default bundle, a maestro theme so the ControlNet is active), regenerates a range of it with another
seed (engine/regenerate.py) and measures:

- outside the range: whether the delivered samples are identical to the cue (the guarantee is sample identity), and
  the SNR of the whole outside part (inf when identical);
- inside: the share of samples that differ and the level of the difference against the cue;
- the joins: log-Mel spectral flux (mean positive frame-to-frame change, as bench_seams.py) in the frames around the
  two joins against the flux in the regenerated cue away from the joins and away from the window overlaps;
- adherence inside the range (engine/metrics/adherence.py: melody accuracy, dynamics r against the cue's controls)
  of the regenerated range and of the same range of the full render.

Writes bench/results/editor_loop.json.

    python bench/bench_editor_loop.py [--bundle DIR] [--duration 30] [--range 10:18] [--steps 25]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from flux import join_report, near_times, spectral_flux, window_overlaps


def bench_regenerate(args: argparse.Namespace, tmp: Path) -> dict:
    import soundfile as sf

    from filmscore.engine.audio.io import load_audio
    from filmscore.engine.controls.types import Controls
    from filmscore.engine.metrics.adherence import measure_adherence
    from filmscore.engine.regenerate import CROSSFADE_S, LATENT_MARGIN_S, Regeneration, parse_range, regenerate_cue
    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    a_s, b_s = parse_range(args.range)
    cue = tmp / "cue.wav"
    t0 = time.perf_counter()
    res = render_cue(RenderRequest(output=cue, duration_s=args.duration, maestro=args.maestro, seed=args.seed,
                                   steps=args.steps, bundle=args.bundle, sample_rate=16000))
    t_render = time.perf_counter() - t0
    new = tmp / "new.wav"
    t0 = time.perf_counter()
    reg = regenerate_cue(Regeneration(cue, new, a_s, b_s, seed=args.seed + 100))
    t_regen = time.perf_counter() - t0
    old_pcm = sf.read(str(cue), dtype="int32")[0].astype(np.int64)
    new_pcm = sf.read(str(new), dtype="int32")[0].astype(np.int64)
    a, b = reg.metadata["regenerated"]["range_samples"]
    out_mask = np.ones(old_pcm.shape[0], bool)
    out_mask[a:b] = False
    diff_out = new_pcm[out_mask] - old_pcm[out_mask]
    snr_out = float("inf") if not diff_out.any() else float(
        10 * np.log10(np.sum(old_pcm[out_mask].astype(float) ** 2) / np.sum(diff_out.astype(float) ** 2)))
    inside_old, inside_new = old_pcm[a:b].astype(float), new_pcm[a:b].astype(float)
    diff_in_db = float(10 * np.log10(np.sum((inside_new - inside_old) ** 2) / max(np.sum(inside_old ** 2), 1e-20)))

    # spectral flux: frames within the crossfade + latent margin of a join, against the regenerated cue's frames
    # outside the joins and outside the window overlaps (the "inside windows" distribution of bench_seams)
    old_w, new_w = load_audio(cue, 16000), load_audio(new, 16000)
    flux = spectral_flux(new_w)
    join = near_times(flux.shape[0], (a_s, b_s), CROSSFADE_S + LATENT_MARGIN_S)
    overlap = window_overlaps(flux.shape[0], res.metadata["pipeline"]["n_latent_frames"])
    seams = join_report(flux, join, ~join & ~overlap)

    # adherence of the range: the regenerated audio and the full render's, against the cue's controls there
    ctrl = Controls.load_npz(res.controls_path)
    fa, fb = int(round(a_s * ctrl.frame_rate)), int(round(b_s * ctrl.frame_rate))
    part = Controls(ctrl.melody[fa:fb], ctrl.dynamics[fa:fb], ctrl.melody_present, ctrl.dynamics_present,
                    ctrl.frame_rate)
    sa, sb = int(round(a_s * 16000)), int(round(b_s * 16000))
    adh_full = measure_adherence(part, old_w[sa:sb], 16000)
    adh_regen = measure_adherence(part, new_w[sa:sb], 16000)
    return {
        "command": f"python bench/bench_editor_loop.py --duration {args.duration:g} --range {args.range} "
                   f"--steps {args.steps} --seed {args.seed}",
        "duration_s": args.duration, "range_s": [a_s, b_s], "steps": args.steps, "maestro": args.maestro,
        "bundle": res.metadata["bundle"], "seed": args.seed, "regenerate_seed": args.seed + 100,
        "guarantee": reg.metadata["regenerated"]["guarantee"],
        "outside": {"samples": int(out_mask.sum()), "identical": bool(not diff_out.any()),
                    "n_samples_differing": int(np.count_nonzero(diff_out)), "snr_db": snr_out},
        "inside": {"samples": int(b - a), "share_differing": float(np.mean(inside_new != inside_old)),
                   "difference_db_re_cue": diff_in_db},
        **seams,
        "adherence_in_range": {
            "full_render": {"melody_accuracy": adh_full.melody_accuracy, "dynamics_r": adh_full.dynamics_r},
            "regenerated": {"melody_accuracy": adh_regen.melody_accuracy, "dynamics_r": adh_regen.dynamics_r}},
        "mastering_gain": reg.metadata["regenerated"]["mastering_gain"],
        "range_gain_db": reg.metadata["regenerated"]["range_gain_db"],
        "time_s": {"full_render": round(t_render, 2), "regenerate": round(t_regen, 2),
                   "regenerate_stages": {k: round(v, 2) for k, v in reg.timings_s.items()}},
    }


def bench_variations(args: argparse.Namespace, tmp: Path) -> dict:
    """One take and four takes of the same request in one process (the bundle loaded and warmed first), then each of
    the four re-rendered alone from its JSON's request and compared byte for byte."""
    from filmscore.engine.regenerate import request_from_json
    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    def req(out: Path) -> RenderRequest:
        return RenderRequest(output=out, duration_s=args.duration, maestro=args.maestro, seed=args.seed,
                             steps=args.steps, bundle=args.bundle, sample_rate=16000)

    render_cue(RenderRequest(output=tmp / "warm.wav", duration_s=2.0, bundle=args.bundle, steps=1))  # load once
    t0 = time.perf_counter()
    render_cue(req(tmp / "one.wav"))
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = render_cue(req(tmp / "four.wav"), variations=args.variations)
    t_four = time.perf_counter() - t0
    takes = [Path(t) for t in first.metadata["variations"]["takes"]]
    same = []
    for k, take in enumerate(takes):
        meta = json.loads(take.with_suffix(".json").read_text())
        alone = tmp / f"alone{k + 1}.wav"
        render_cue(request_from_json(dict(meta["request"], output=str(alone)), take))
        same.append(alone.read_bytes() == take.read_bytes())
    return {
        "command": f"python bench/bench_editor_loop.py --part variations --duration {args.duration:g} "
                   f"--steps {args.steps} --seed {args.seed}",
        "duration_s": args.duration, "steps": args.steps, "n_takes": len(takes),
        "seeds": first.metadata["variations"]["seeds"], "time_one_s": round(t_one, 2),
        "time_takes_s": round(t_four, 2), "ratio": round(t_four / t_one, 3),
        "each_take_reproduced_alone_byte_identical": same,
        "distinct_takes": len({t.read_bytes() for t in takes}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--range", default="10:18", help="START:END of the regenerated range (cue seconds)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--maestro", default="bach")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=["regenerate", "variations"], default="regenerate")
    ap.add_argument("--variations", type=int, default=4)
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "editor_loop.json")
    args = ap.parse_args()
    results: dict = {"benchmark": "editor_loop"}
    if args.out.is_file():  # keep the sections another run measured
        results.update(json.loads(args.out.read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        if args.part == "variations":
            results["variations"] = v = bench_variations(args, Path(tmp))
        else:
            results["regenerate"] = r = bench_regenerate(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.part == "variations":
        print(f"{v['n_takes']} takes in {v['time_takes_s']} s against one in {v['time_one_s']} s (ratio {v['ratio']}); "
              f"each reproduced alone: {v['each_take_reproduced_alone_byte_identical']} -> {args.out}")
        return
    print(f"regenerate {r['range_s']}: outside identical {r['outside']['identical']} (SNR {r['outside']['snr_db']} dB), "
          f"inside {r['inside']['share_differing']:.1%} of samples differ ({r['inside']['difference_db_re_cue']:.1f} dB); "
          f"flux at joins {r['flux_at_joins']['mean']:.4f} vs inside windows {r['flux_inside_windows']['mean']:.4f} "
          f"(ratio {r['ratio_mean_join_to_inside']:.2f}); adherence in range full {r['adherence_in_range']['full_render']} "
          f"regenerated {r['adherence_in_range']['regenerated']}; time {r['time_s']} -> {args.out}")


if __name__ == "__main__":
    main()
