"""Where a v2 render's time goes, beside v1 in the same run (issue 18: a 60 s cue with stems at RTF <= 0.1 on 2
threads).

Renders a `--seconds` cue (default 60) with the shipped v1 bundle and with a random-weight v2 bundle at the size
`train_v2` trains on 2 CPU cores (engine/bundle_testing_v2.py `default_size`; weights do not change the cost), all
four control groups, a mood and a maestro given, no picture:
- `v2_default`: the default guidance (`GuidanceV2`: style, melody, harmony and rhythm guided: 5 passes a step);
- `v2_one_pass`: every scale 1 (one pass a step);
- `v2_one_pass_steps`: one pass at `--few-steps` steps;
and measures per run the denoising, decoding and vocoding seconds, the model calls (steps x passes x windows) and
the seconds per window-pass (one UNet + ControlNet row). From those it models the RTF of other step counts and
pass counts (denoise scales with steps x passes; decode and vocode do not), and the per-call cost a model would need
to meet RTF 0.1 at each. Every figure is a ratio within the run or a count; the load average is recorded.

    python bench/bench_v2_speed.py --threads 2 -o bench/results/v2_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np


def _controls(n: int):
    from filmscore.engine.models.controls_v2 import ControlsV2

    t = np.arange(n)
    melody = (60 + (t // 50) % 8).astype(np.int16)
    chroma = np.zeros((n, 12), np.uint8)
    for k in (0, 4, 7):
        chroma[:, k] = 1
    beat = (t % 50 == 0).astype(np.uint8)
    return ControlsV2(n, melody_pitch=melody, dynamics_db=np.full(n, -20.0, np.float32), chord_chroma=chroma,
                      bass_pitch=np.full(n, 48, np.int16), beat=beat, downbeat=(t % 200 == 0).astype(np.uint8))


def _run_v2(pipe, seconds: float, steps: int, guidance, threads: int) -> dict:
    from filmscore.engine.constants import CONTROL_FRAME_RATE

    sr = pipe.mel_config.sample_rate
    n = int(seconds * sr)
    t0 = time.perf_counter()
    out = pipe(n_samples=n, controls=_controls(int(seconds * CONTROL_FRAME_RATE)), mood=np.array([0.6, 0.4, 0.5]),
               master="bach", steps=steps, guidance=guidance, threads=threads)
    wall = time.perf_counter() - t0
    passes, windows = len(out.info["passes"]), out.info["n_windows"]
    calls = steps * passes * windows
    tm = out.timings_s
    return {"steps": steps, "passes": out.info["passes"], "windows": windows, "window_passes": calls,
            "wall_s": round(wall, 2), "rtf": round(wall / seconds, 4),
            "timings_s": {k: round(v, 2) for k, v in tm.items()},
            "s_per_window_pass": round(tm["denoise"] / calls, 4),
            "vocode_s_per_stem": round(tm["vocode"] / len(out.stems), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--few-steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2
    from filmscore.engine.bundle_v2 import load_bundle_v2
    from filmscore.engine.pipeline_v2 import FilmScorePipelineV2, GuidanceV2
    from filmscore.engine.render import build_pipeline

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    results: dict = {"seconds": args.seconds, "threads": args.threads, "cpu_count": os.cpu_count()}

    # v1, the shipped bundle, the same cue length and steps, default guidance (its two passes a step)
    v1, _ = build_pipeline(None)
    t0 = time.perf_counter()
    o1 = v1(n_samples=int(args.seconds * v1.mel_config.sample_rate), steps=args.steps, seed=0, threads=args.threads)
    w1 = time.perf_counter() - t0
    results["v1_default"] = {"wall_s": round(w1, 2), "rtf": round(w1 / args.seconds, 4),
                             "timings_s": {k: round(v, 2) for k, v in o1.timings_s.items()}}

    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle_v2(make_tiny_bundle_v2(Path(tmp) / "v2", default_size=True))
        params = {k: int(sum(p.numel() for p in m.parameters())) for k, m in bundle.models.items()}
        pipe = FilmScorePipelineV2(bundle)
        one = GuidanceV2(**{k: 1.0 for k in asdict(GuidanceV2())})
        results["v2_parameters"] = params
        results["v2_default"] = _run_v2(pipe, args.seconds, args.steps, GuidanceV2(), args.threads)
        results["v2_one_pass"] = _run_v2(pipe, args.seconds, args.steps, one, args.threads)
        results["v2_one_pass_steps"] = _run_v2(pipe, args.seconds, args.few_steps, one, args.threads)

    # the model: RTF(steps, passes) = (steps x passes x windows x c + decode + vocode) / seconds
    base = results["v2_one_pass"]
    c, windows = base["s_per_window_pass"], base["windows"]
    fixed = base["timings_s"]["decode"] + base["timings_s"]["vocode"] + base["timings_s"].get("conditioning", 0.0)
    budget = 0.1 * args.seconds
    model = {}
    for steps in (25, 12, 8, 4):
        for passes in (5, 2, 1):
            rtf = (steps * passes * windows * c + fixed) / args.seconds
            need = (budget - fixed) / (steps * passes * windows) if budget > fixed else None
            model[f"{steps} steps x {passes} passes"] = {
                "rtf": round(rtf, 3),
                "s_per_window_pass_for_rtf_0.1": None if need is None else round(need, 5),
                "speedup_of_the_denoiser_needed": None if need is None else round(c / need, 1)}
    results["model"] = {"s_per_window_pass": c, "windows": windows, "decode_vocode_s": round(fixed, 2),
                        "budget_s": budget, "rows": model,
                        "note": "decode + vocode alone are this share of the RTF 0.1 budget: "
                                f"{fixed / budget:.2f}"}
    results["loadavg_start_end"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
