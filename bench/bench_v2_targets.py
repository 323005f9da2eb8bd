"""Issue 23's targets re-measured on bundle v2, in one run: delivery against the render, and the denoiser's
throughput against the machine's measured peak.

The render: a random-weight v2 bundle at the size `train_v2` trains (engine/bundle_testing_v2.py `default_size`:
the model stages cost what a trained bundle's will), a `--seconds` cue at the default settings with a maestro,
in-process after a warm-up. Delivery is measured on two contents:

- `random`: that render's own output. Loud noise, which the look-ahead limiter works on almost everywhere and the
  true-peak bound cannot skip (engine/audio/loudness.py): a worst case for delivery.
- `music`: the same delivery (three stems placed in stereo, resampled to 48 kHz, mastered) of music: three cues of
  the shipped v1 bundle, one per stem, at the v2 model rate. What a trained v2 bundle's stems will look like to
  mastering (peaks here and there), which a random bundle cannot show.

Each content is delivered as the mix alone (a render's default) and as the mix and its three stems (`--stems`).
Shares: delivery (`deliver`) and stereo placement (`stereo`) over the v2 render's wall, that render's own delivery
replaced by the one measured on the content.

Throughput: the denoiser's FLOPs per step (every window and guidance pass of this cue, counted on one thread with
torch.utils.flop_counter over a one-step render) times the steps, over the render's denoising seconds, against the
fp32 GEMM peak measured here at the render's thread count (`filmscore bench backends`' `peak_gflops`). v2 renders
with PyTorch only (no ONNX export of its graphs yet). Every figure is from this run; the load average is recorded.

    python bench/bench_v2_targets.py [--seconds 60] [--bundle V2_BUNDLE] [--threads 2] -o bench/results/v2_targets.json
    python bench/bench_v2_targets.py --make-bundle /tmp/random-v2   # the same bundle, for the other benchmarks' --bundle
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

STEMS = ("lead", "accompaniment", "percussion")


def _deliver(mids: dict, side_gains: dict, sr_in: int, seconds: float, stems: bool, folder: Path,
             threads: int) -> dict:
    """A v2 render's delivery (engine/render_v2.py) of `mids`: placed, mastered on the stage pool, written."""
    from filmscore.engine.audio.delivery import write_wav
    from filmscore.engine.audio.stem_mastering import master_stems
    from filmscore.engine.stereo_v2 import StereoStems
    from filmscore.engine.threads import model_threads

    sr_out, n_out = 48_000, int(round(seconds * 48_000))
    t0 = time.perf_counter()
    with model_threads(threads) as pool, master_stems(StereoStems(mids, side_gains, sr_in), STEMS if stems else (),
                                                      sr_in, sr_out, n_out, folder=folder, workers=pool.map) as m:
        for name, s in m.stems.items():
            write_wav(folder / f"cue.{name}.wav", s, sr_out)
        write_wav(folder / "cue.wav", m.mix, sr_out, loudness=m.report)
    total = time.perf_counter() - t0
    return {"stereo_s": round(m.placed_s, 3), "deliver_s": round(total - m.placed_s, 3), "limited": m.report["limited"],
            "input_lufs": round(m.report["input_lufs"], 2), "integrated_lufs": round(m.report["integrated_lufs"], 2),
            "true_peak_dbtp": round(m.report["true_peak_dbtp"], 2)}


def random_v2(path: Path) -> Path:
    """A random-weight v2 bundle at the size `train_v2` trains, its film head reading the film encoder's features
    as the shipped bundle's does (so a render with a picture runs too)."""
    from filmscore.engine.bundle_manifest import DEFAULT_BUNDLE_DIR
    from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2

    head = json.loads((DEFAULT_BUNDLE_DIR / "bundle.json").read_text())["components"]["film_head"]["config"]
    return make_tiny_bundle_v2(path, default_size=True, feature_dim=head["feature_dim"],
                               feature_layout=head["feature_layout"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--bundle", type=Path, default=None, help="a v2 bundle (default: a random one at the cpu size)")
    ap.add_argument("--make-bundle", type=Path, default=None, metavar="DIR",
                    help="only write the random v2 bundle to DIR (for bench_handoff/contention/memory --bundle DIR)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--out", type=Path, default=Path("bench/results/v2_targets.json"))
    args = ap.parse_args()
    if args.make_bundle is not None:
        print(random_v2(args.make_bundle))
        return
    import torch

    from filmscore.bridge.cli.bench_backends import flop_counted, peak_gflops

    torch.set_num_threads(args.threads)

    from filmscore.engine.audio.io import resample
    from filmscore.engine.options import DEFAULTS
    from filmscore.engine.render import render_cue
    from filmscore.engine.render_v2 import load_bundle_v2_cached
    from filmscore.engine.request import RenderRequest

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = args.bundle or random_v2(tmp / "random-v2")
        b2, pipe = load_bundle_v2_cached(bundle)
        sr = b2.mel_config.sample_rate
        render_cue(RenderRequest(output=tmp / "warm.wav", duration_s=2.0, steps=1, bundle=bundle, maestro="bach"))
        # the v2 render, default settings: its model stages and its own delivery (random content)
        captured = {}
        call = type(pipe).__call__

        def keep(self, **kw):
            out = call(self, **kw)
            captured["mids"] = {k: np.array(v) for k, v in out.mids.items()}
            return out

        type(pipe).__call__ = keep
        try:
            t0 = time.perf_counter()
            res = render_cue(RenderRequest(output=tmp / "v2.wav", duration_s=args.seconds, bundle=bundle,
                                           maestro="bach"))
            render_s = time.perf_counter() - t0
        finally:
            type(pipe).__call__ = call
        timings = {k: round(v, 3) for k, v in res.timings_s.items()}
        # the denoiser's FLOPs per step of this cue: one step on one thread (the counter is per thread), counted
        pipe._denoise, flops = flop_counted(pipe._denoise)
        torch.set_num_threads(1)
        try:
            render_cue(RenderRequest(output=tmp / "count.wav", duration_s=args.seconds, bundle=bundle,
                                     maestro="bach", steps=1))
        finally:
            del pipe._denoise
            torch.set_num_threads(args.threads)
        flops_step = float(sum(flops))
        peak = peak_gflops(args.threads)
        achieved = flops_step * DEFAULTS.steps / res.timings_s["denoise"] / 1e9
        # music at the v2 model rate: three cues of the shipped v1 bundle, one per stem
        music = {}
        for k, name in enumerate(STEMS):
            out = tmp / f"v1_{name}.wav"
            r = render_cue(RenderRequest(output=out, duration_s=args.seconds, seed=k, steps=10,
                                         maestro="bach" if name == "lead" else None))
            import soundfile as sf

            x, rate = sf.read(str(out), dtype="float32")
            music[name] = resample(x, rate, sr)[:len(captured["mids"][name])] * 0.5
        own = timings.get("stereo", 0.0) + timings["deliver"]
        rows = {}
        for content, mids in (("random", captured["mids"]), ("music", music)):
            for stems in (False, True):
                d = tmp / f"{content}_{stems}"
                d.mkdir()
                row = _deliver(mids, b2.side_gains, sr, args.seconds, stems, d, args.threads)
                wall = render_s - own + row["stereo_s"] + row["deliver_s"]
                row["render_s"] = round(wall, 3)
                row["deliver_share"] = round(row["deliver_s"] / wall, 4)
                row["stereo_share"] = round(row["stereo_s"] / wall, 4)
                rows[f"{content}{'+stems' if stems else ''}"] = row
    models = sum(timings.get(k, 0.0) for k in ("load", "denoise", "decode", "vocode"))
    result = {"benchmark": "v2_targets", "seconds": args.seconds, "steps": DEFAULTS.steps,
              "bundle": str(args.bundle or "random v2, cpu size"), "load_avg": [round(x, 2) for x in os.getloadavg()],
              "threads": args.threads,
              "v2_render": {"wall_s": round(render_s, 3), "timings_s": timings, "model_stages_s": round(models, 3),
                            "render_vs_model_stages": round(render_s / models, 3),
                            "passes": res.metadata["pipeline"]["passes"],
                            "limited": res.metadata["loudness"]["limited"]},
              "denoiser": {"gflops_per_step": round(flops_step / 1e9, 2), "achieved_gflops": round(achieved, 2),
                           "peak_gflops_measured": round(peak, 1), "share_of_peak": round(achieved / peak, 3),
                           "backend": res.metadata["backend"]["name"]},
              "deliveries": rows, "date": time.strftime("%Y-%m-%d")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"v2 render of {args.seconds:g} s ({DEFAULTS.steps} steps): {render_s:.2f} s, model stages {models:.2f} s, "
          f"load {result['load_avg'][0]} -> {args.out}")
    print(f"render / model stages {render_s / models:.2f}x; denoiser {achieved:.1f} GFLOP/s = "
          f"{achieved / peak:.0%} of the GEMM peak measured here ({peak:.1f}, {args.threads} threads)")
    print(f"{'content':<16}{'stereo s':>10}{'deliver s':>11}{'share':>8}{'limited':>9}{'LUFS in':>9}")
    for k, r in rows.items():
        print(f"{k:<16}{r['stereo_s']:>10.2f}{r['deliver_s']:>11.2f}{r['deliver_share']:>8.1%}"
              f"{str(r['limited']):>9}{r['input_lufs']:>9.1f}")


if __name__ == "__main__":
    main()
