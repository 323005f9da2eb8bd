"""`filmscore bench backends`: the same cue, scheduler and steps on every available backend, side by side.

Each backend renders in a fresh subprocess (its peak RSS is its own, from os.wait4) after a short warm-up; the
table gives per-component seconds (conditioning, denoise, decode, vocode), seconds per step, RTF, peak memory and
every ratio against PyTorch, plus the audio SNR of each backend's output against PyTorch's (the quality cost of
int8 / fp16). FLOPs per step are counted on the PyTorch denoiser (torch.utils.flop_counter) and set against this
machine's peak, measured here as the best fp32 GEMM rate at the same thread count. Results go to a JSON file.
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

from .common import add_json_flag, emit

VARIANTS = ("torch", "ort", "ort-int8", "ort-fp16", "trt")


def add_bench(bench_sub: argparse._SubParsersAction) -> None:
    """Add `filmscore bench backends` to the `bench` command's subparsers (bench.py owns that command)."""
    p = bench_sub.add_parser("backends", help="one cue on every backend: per-component times, RTF, memory, ratios")
    p.add_argument("--bundle", type=Path, default=None)
    p.add_argument("--untrained-fullsize", action="store_true",
                   help="time a bundle with the default architecture and random weights (made once under "
                        "~/.cache/filmscore/bench-fullsize); speed only: its audio is not music")
    p.add_argument("--duration", type=float, default=60.0, help="cue length (s)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--scheduler", default="dpmpp", choices=["dpmpp", "ddim", "euler"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backends", default="torch,ort,ort-int8,trt",
                   help=f"comma list of {', '.join(VARIANTS)}; unavailable ones are skipped with the reason")
    p.add_argument("-o", "--out", type=Path, default=Path("bench/results/backends.json"))
    add_json_flag(p)
    p.set_defaults(run=run)


def _worker() -> None:
    """Subprocess body: argv[1] is the config JSON; prints one JSON line."""
    import numpy as np
    import torch

    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    from filmscore.engine.backends import load_backend
    from filmscore.engine.bundle import load_bundle
    from filmscore.export import parity as par

    bundle = load_bundle(cfg["bundle"])
    name = cfg["variant"]
    t0 = time.perf_counter()
    if name == "torch":
        backend = load_backend("torch", bundle)
    elif name.startswith("ort"):
        backend = load_backend("ort", bundle, threads=cfg["threads"], precision=name.partition("-")[2] or "fp32")
    else:
        backend = load_backend("trt", bundle)
    load_s = time.perf_counter() - t0
    run = dict(par.PARITY_RUN, duration_s=cfg["duration"], steps=cfg["steps"], scheduler=cfg["scheduler"])
    par.run_parity_pipeline(bundle, backend, dict(run, duration_s=min(cfg["duration"], 4.0), steps=1))  # warm-up
    t0 = time.perf_counter()
    out = par.run_parity_pipeline(bundle, backend, run)
    total = time.perf_counter() - t0
    np.save(cfg["wave"], out.wave)
    gpu_mb = None
    if name == "trt" and torch.cuda.is_available():
        gpu_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps({"seconds": total, "timings_s": out.timings_s, "load_s": load_s, "backend": backend.summary(),
                      "gpu_peak_mb": gpu_mb}, default=str))


def _run_variant(cfg: dict) -> dict:
    code = "from filmscore.bridge.cli.bench_backends import _worker; _worker()"
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]))
    # Output to files, not pipes: os.wait4 (for the child's own ru_maxrss) must reap the child itself.
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg)], stdout=fo, stderr=fe, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        lines = err.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {code}"}
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return res


def _unavailable(variant: str) -> str | None:
    from filmscore.engine.backends.trt_backend import unavailable_reason

    if variant == "trt":
        return unavailable_reason()
    if variant == "ort-fp16":
        from filmscore.engine.backends.ort_backend import available_providers

        if "CUDAExecutionProvider" not in available_providers():
            return "fp16 graphs need a GPU execution provider (ORT's CPU EP runs fp16 through casts, slower)"
    return None


def fullsize_bundle() -> Path:
    """A bundle with the architecture `filmscore train` builds (the default MelVAE, UNet (128, 192, 256),
    ControlNet, film head over the default film features, Vocos 256 x 6) and seeded random weights."""
    import torch

    from filmscore.engine.bundle import load_bundle, save_bundle
    from filmscore.engine.errors import BundleError
    from filmscore.engine.models import FilmScoreControlNet1D, FilmScoreUNet1D, FilmTokenHead, MelVAE, VocosVocoder

    path = Path.home() / ".cache" / "filmscore" / "bench-fullsize"
    if (path / "bundle.json").is_file():
        try:
            load_bundle(path)
            return path
        except BundleError:  # made by an older model definition: make it again
            pass
    torch.manual_seed(0)
    vae = MelVAE(n_mels=128)
    unet = FilmScoreUNet1D(in_channels=vae.config.latent_channels, block_out_channels=(128, 192, 256), token_dim=128,
                           n_null_tokens=4)
    cn = FilmScoreControlNet1D.from_unet(unet)
    with torch.no_grad():  # non-zero residuals, as after training
        for p in list(cn.zero_convs.parameters()) + list(cn.mid_zero_conv.parameters()):
            p.normal_(0.0, 0.02)
    models = {"vae": vae, "unet": unet, "controlnet": cn,
              "film_head": FilmTokenHead(feature_dim=1294, token_dim=128, n_tokens=4, feature_layout="untrained"),
              "vocoder": VocosVocoder(n_mels=128)}
    return save_bundle(path, models, name="untrained-fullsize", version="0", film_layout="untrained",
                       provenance={"trained": False, "purpose": "speed benchmark"})


def peak_gflops(threads: int, seconds: float = 1.0) -> float:
    """Best fp32 GEMM rate (GFLOP/s) at `threads`: the machine's practical FMA peak, measured, not looked up."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        n = 1024
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best, t_end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
        return best
    finally:
        torch.set_num_threads(prev)


def flop_counted(fn):
    """`fn` wrapped so that each call's FLOPs are counted (torch.utils.flop_counter, a mode of the calling thread) and
    appended to the list returned beside it. A FlopCounterMode entered again starts from zero: one per call."""
    from torch.utils.flop_counter import FlopCounterMode

    flops: list[int] = []

    def counted(*a):
        counter = FlopCounterMode(display=False)
        with counter:
            out = fn(*a)
        flops.append(counter.get_total_flops())
        return out

    return counted, flops


def flops_per_step(bundle, duration_s: float) -> float:
    """FLOPs of one denoising step of this cue (all windows, all guidance passes), counted on the torch model."""
    import torch

    from filmscore.export import parity as par

    pipe = par.make_pipeline(bundle)
    pipe.denoiser, flops = flop_counted(pipe.denoiser)
    pipe.parallel_calls = False  # the calls on this thread: the counter is a thread-local dispatch mode
    with torch.no_grad():
        par.run_pipeline(pipe, bundle, dict(par.PARITY_RUN, duration_s=duration_s, steps=1))
    return float(sum(flops))


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from filmscore.engine.bundle import load_bundle
    from filmscore.engine.errors import RequestError
    from filmscore.export.export_bundle import export_bundle
    from filmscore.export.parity import snr_db

    variants = [v.strip() for v in args.backends.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise RequestError(f"unknown backend {v!r}; choose from {', '.join(VARIANTS)}")
    if args.threads < 1 or args.steps < 1 or not 1.0 <= args.duration <= 600.0:
        raise RequestError("--threads and --steps must be >= 1 and --duration 1..600 s")
    torch.set_num_threads(args.threads)
    bundle = load_bundle(fullsize_bundle() if args.untrained_fullsize else args.bundle)
    skipped = {v: r for v in variants if (r := _unavailable(v))}
    run_list = [v for v in variants if v not in skipped]
    # exports come from the cache (made once, the first time)
    export_bundle(bundle, backend="trt" if "trt" in run_list else "ort", int8="ort-int8" in run_list,
                  fp16="ort-fp16" in run_list, check_parity=False, measure=False, threads=args.threads)
    peak = peak_gflops(args.threads)
    flops = flops_per_step(bundle, args.duration)
    rows: dict[str, dict] = {}
    waves: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in run_list:
            cfg = {"variant": v, "bundle": str(bundle.path), "duration": args.duration, "steps": args.steps,
                   "scheduler": args.scheduler, "threads": args.threads, "wave": str(Path(tmp) / f"{v}.npy")}
            res = _run_variant(cfg)
            if "error" in res:
                skipped[v] = res["error"]
                continue
            waves[v] = np.load(cfg["wave"])
            t = res["timings_s"]
            s_step = t["denoise"] / args.steps
            rows[v] = {"render_s": round(res["seconds"], 3), "rtf": round(res["seconds"] / args.duration, 4),
                       "s_per_step": round(s_step, 4), "gflops_per_step": round(flops / 1e9, 2),
                       "achieved_gflops": round(flops / s_step / 1e9, 1),
                       "load_s": round(res["load_s"], 3), "peak_rss_mb": res["peak_rss_mb"],
                       "gpu_peak_mb": res["gpu_peak_mb"], "timings_s": {k: round(x, 3) for k, x in t.items()},
                       "backend": res["backend"]}
            if v != "trt":
                rows[v]["pct_of_cpu_peak"] = round(100 * flops / s_step / 1e9 / peak, 1)
    base = rows.get("torch")
    for v, r in rows.items():
        if base is not None:
            r["time_vs_torch"] = round(r["render_s"] / base["render_s"], 3)
            r["components_vs_torch"] = {k: round(x / base["timings_s"][k], 3) for k, x in r["timings_s"].items()
                                        if base["timings_s"].get(k)}
            s = snr_db(waves["torch"], waves[v])
            r["snr_vs_torch_db"] = "inf" if s == float("inf") else round(s, 1)
    result = {"benchmark": "backends", "bundle": {"name": bundle.name, "hash": bundle.hash, "path": str(bundle.path)},
              "cue_s": args.duration, "steps": args.steps, "scheduler": args.scheduler, "threads": args.threads,
              "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "peak_gflops_measured": round(peak, 1),
                          "gpu": _gpu()},
              "torch": torch.__version__, "onnxruntime": _ort(), "date": time.strftime("%Y-%m-%d"),
              "rows": rows, "skipped": skipped}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    _record_auto(bundle, args.threads, rows)

    def human() -> None:
        print(f"backends: {args.duration:.0f} s cue, {args.scheduler} x {args.steps} steps, {args.threads} threads, "
              f"{flops / 1e9:.1f} GFLOP/step, CPU peak {peak:.0f} GFLOP/s (measured) -> {args.out}")
        print(f"{'backend':<10}{'render s':>9}{'RTF':>7}{'x torch':>8}{'s/step':>8}{'GFLOP/s':>9}{'%peak':>7}"
              f"{'denoise':>9}{'decode':>8}{'vocode':>8}{'RSS MB':>8}{'SNR dB':>8}")
        for v, r in rows.items():
            t = r["timings_s"]
            print(f"{v:<10}{r['render_s']:>9.2f}{r['rtf']:>7.3f}{r.get('time_vs_torch', float('nan')):>8.2f}"
                  f"{r['s_per_step']:>8.3f}{r['achieved_gflops']:>9.1f}{r.get('pct_of_cpu_peak', float('nan')):>7.1f}"
                  f"{t.get('denoise', 0):>9.2f}{t.get('decode', 0):>8.2f}{t.get('vocode', 0):>8.2f}"
                  f"{r['peak_rss_mb']:>8.0f}{r.get('snr_vs_torch_db', '')!s:>8}")
        for v, why in skipped.items():
            print(f"{v:<10} skipped: {why}")

    emit(args, result, human)
    return 0


def _record_auto(bundle, threads: int, rows: dict) -> None:
    """The fp32 seconds per step measured here feed `--backend auto` (speed.json in the export cache)."""
    from filmscore.engine.backends import cache as ec
    from filmscore.export.export_bundle import record_speeds

    cpu = {k: r["s_per_step"] for k, r in rows.items() if k in ("torch", "ort")}
    if cpu:
        speed = {"threads": threads, "s_per_step": cpu, "shape": "bench backends cue"}
        if "trt" in rows:
            speed.update(gpu=ec.gpu_name(), gpu_s_per_step={"trt": rows["trt"]["s_per_step"]})
        record_speeds(ec.bundle_cache_dir(bundle.path, bundle.hash, create=True), speed)


def _cpu() -> str:
    from filmscore.engine.backends.cache import cpu_name

    return cpu_name()


def _gpu() -> str | None:
    from filmscore.engine.backends.cache import gpu_name

    return gpu_name()


def _ort() -> str:
    import onnxruntime

    return onnxruntime.__version__
