"""Seconds per training step of ControlNet tuning: LoRA adapters vs all ControlNet weights, interleaved.

Both variants start from the same bundle and train on the same crops with `train_ldm.ldm_loss` (AdamW, gradient
clipping, EMA update, as `loop.run_steps` does); they alternate in rounds of a few steps so that load from other
processes on a shared machine falls on both alike. Reports the median seconds per step of each and the trainable
parameter counts. Writes bench/results/controlnet_tuning.json.

    python bench/bench_controlnet_tuning.py [--bundle DIR] [--rank 8] [--where orchestration=strings] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--where", action="append", default=[])
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps-per-round", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "controlnet_tuning.json")
    args = ap.parse_args()

    import torch
    from diffusers import DDPMScheduler
    from filmscore.engine.training.corpus_data import (
        DEFAULT_CORPUS,
        Corpus,
        parse_where,
    )
    from filmscore.engine.training.loop import EMA
    from filmscore.engine.training.train_controlnet import (
        DEFAULT_LR,
        load_base,
        make_spec,
        trainable_parameters,
        tunable_controlnet,
    )
    from filmscore.engine.training.train_ldm import CROP, LatentCache, ldm_loss

    torch.set_num_threads(args.threads)
    base = load_base(args.bundle)
    where = parse_where(args.where)
    corpus = Corpus(args.corpus or DEFAULT_CORPUS, "train", base.mel_config, where=where)
    sched, latents = DDPMScheduler(**base.noise_schedule), LatentCache(base.models["vae"])
    feature_dim = base.models["film_head"].config.feature_dim
    variants = {}
    for name, rank in (("lora", args.rank), ("full", None)):
        spec = make_spec(base, rank, "all", where)
        net = tunable_controlnet(base, spec)
        params = [p for p in net.parameters() if p.requires_grad]
        variants[name] = {"net": net, "params": params, "ema": EMA(net),
                          "opt": torch.optim.AdamW(params, lr=DEFAULT_LR[spec.method]), "times": [],
                          "trainable": trainable_parameters(net)}
    rng = np.random.default_rng(0)
    for r in range(args.rounds + 1):  # round 0 warms up (latent cache, allocator) and is not counted
        crops = [corpus.sample_crops(rng, args.batch, CROP) for _ in range(args.steps_per_round)]
        for v in variants.values():
            models = {"unet": base.models["unet"], "controlnet": v["net"], "film_head": base.models["film_head"]}
            step_rng = np.random.default_rng(r)
            for c in crops:
                t0 = time.perf_counter()
                loss = ldm_loss(models, sched, latents, c, step_rng, CROP, feature_dim)
                v["opt"].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(v["params"], 1.0)
                v["opt"].step()
                v["ema"].update(v["net"], r)
                if r > 0:
                    v["times"].append(time.perf_counter() - t0)
    total = sum(p.numel() for p in base.models["controlnet"].parameters())
    result = {"bundle": str(base.path), "bundle_hash": base.hash, "where": {k: list(x) for k, x in where.items()},
              "batch": args.batch, "crop_frames": CROP, "threads": args.threads, "steps_timed": len(
                  variants["lora"]["times"]), "hardware": f"{platform.machine()} CPU", "torch": torch.__version__,
              "controlnet_parameters": total}
    for name, v in variants.items():
        result[name] = {"s_per_step_median": round(float(np.median(v["times"])), 3),
                        "s_per_step_p90": round(float(np.percentile(v["times"], 90)), 3),
                        "trainable_parameters": v["trainable"],
                        "trainable_percent": round(100 * v["trainable"] / total, 2)}
    result["lora"]["rank"] = args.rank
    result["lora_over_full_time"] = round(result["lora"]["s_per_step_median"] / result["full"]["s_per_step_median"], 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
