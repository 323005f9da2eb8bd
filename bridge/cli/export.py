"""`filmscore export [--bundle DIR] [--backend ort|trt]`: a bundle's graphs to ONNX (and TensorRT engines), cached
beside the bundle, parity-checked against PyTorch and timed (what `--backend auto` reads). A second run finds
everything in the cache and only checks and loads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_json_flag, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a bundle to ONNX / TensorRT, with parity checks and timings")
    p.add_argument("--bundle", type=Path, default=None, help="bundle directory (default: the shipped one)")
    p.add_argument("--backend", choices=["ort", "trt"], default="ort",
                   help="ort: ONNX graphs for ONNX Runtime; trt: also TensorRT engines (NVIDIA GPU + tensorrt)")
    p.add_argument("--int8", action="store_true", help="also a dynamic int8 (MatMul/Gemm) variant, with its error")
    p.add_argument("--fp16", action="store_true", help="also an fp16 variant (GPU runtimes), with its error")
    p.add_argument("--film-backbone", action="store_true",
                   help="also export the film encoder's image backbone (EfficientNet-Lite0) and check it")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for parity and timing (default: torch's)")
    p.add_argument("--no-parity", dest="parity", action="store_false", help="skip the parity check")
    p.add_argument("--no-measure", dest="measure", action="store_false", help="skip timing the backends")
    p.add_argument("--force", action="store_true", help="export again even when the cache has the files")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from filmscore.engine.bundle import load_bundle
    from filmscore.engine.errors import RequestError
    from filmscore.export.export_bundle import export_bundle

    if args.threads is not None:
        if args.threads < 1:
            raise RequestError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    quiet = args.json
    res = export_bundle(bundle, backend=args.backend, int8=args.int8, fp16=args.fp16,
                        film_backbone=args.film_backbone, check_parity=args.parity, measure=args.measure,
                        threads=args.threads, force=args.force,
                        log=None if quiet else (lambda m: print(m, file=sys.stderr)))
    summary = {"bundle": {"name": bundle.name, "hash": bundle.hash, "path": str(bundle.path)}, **res.to_json()}

    def human() -> None:
        print(f"{bundle.name} ({bundle.hash}) -> {res.cache_dir}")
        print(f"  {len(res.exported)} files written, {len(res.reused)} found in the cache, {res.seconds:.1f} s")
        for comp, by_prec in res.parity.get("components", {}).items():
            for prec, r in by_prec.items():
                verdict = "" if "pass" not in r else ("  ok" if r["pass"] else "  FAIL")
                err = r.get("max_abs_err", r.get("error"))
                print(f"  parity {comp:<16}{prec:<5} max abs err {err:.3g} (|ref| {r.get('max_abs_ref', 0):.3g})"
                      f"{verdict}" if isinstance(err, float) else f"  parity {comp} {prec}: {err}")
        for name, r in res.parity.get("pipeline", {}).items():
            verdict = "" if "pass" not in r else ("  ok" if r["pass"] else "  FAIL")
            snr = r["snr_db"]
            print(f"  whole pipeline {name:<9} audio SNR {snr if isinstance(snr, str) else f'{snr:.1f}'} dB{verdict}")
        if res.speed:
            sp = res.speed["s_per_step"]
            line = ", ".join(f"{k} {v:.4f}" for k, v in sp.items())
            print(f"  s per denoising step ({res.speed['threads']} threads): {line}")
            for k, v in res.speed.get("gpu_s_per_step", {}).items():
                print(f"  s per denoising step on {res.speed.get('gpu')}: {k} {v:.4f}")

    emit(args, summary, human)
    return 0 if res.ok else 1
