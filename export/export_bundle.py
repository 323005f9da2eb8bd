"""`export_bundle`: every graph of a bundle to ONNX (and TensorRT engines), cached, parity-checked, timed.

Steps: (1) export each graph once per bundle hash, exporter version and opset (a second run finds them and only
loads); (2) ORT offline optimisation per ORT version; optional int8 (MatMul/Gemm) and fp16 variants; (3) the film
encoder's backbone through its own exporter (engine/film/semantic.py); (4) TensorRT engines when asked;
(5) seconds per denoising step of each backend on this machine and which graphs int8 speeds up, written to
`speed.json` (what `--backend auto` and ORT's int8 read); (6) parity against PyTorch on real pipeline inputs,
whole-pipeline SNR, written to `parity.json`.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from filmscore.engine.backends import Backend
from filmscore.engine.backends import cache as ec
from filmscore.engine.bundle import Bundle

from . import onnx_export as ox
from . import parity as par

logger = logging.getLogger(__name__)

HEAVY = (ec.DENOISE_CONTROL, ec.DENOISE_PLAIN, ec.VOCODER)  # graphs worth an int8 / fp16 variant
Log = Callable[[str], None]


@dataclass
class ExportResult:
    cache_dir: Path
    exported: list[str] = field(default_factory=list)  # files written in this run
    reused: list[str] = field(default_factory=list)  # files found in the cache
    parity: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.parity.get("pass", True))

    def to_json(self) -> dict[str, Any]:
        return {"cache_dir": str(self.cache_dir), "exported": self.exported, "reused": self.reused,
                "seconds": round(self.seconds, 3), "parity": self.parity, "speed": self.speed, "ok": self.ok}


def export_bundle(bundle: Bundle, *, backend: Literal["ort", "trt"] = "ort", int8: bool = False, fp16: bool = False,
                  film_backbone: bool = False, check_parity: bool = True, measure: bool = True,
                  threads: int | None = None, force: bool = False, log: Log | None = None) -> ExportResult:
    """Export `bundle` into its cache (see engine/backends/cache.py); returns what was written and measured."""
    import onnxruntime as ort

    say = log or (lambda msg: logger.info("%s", msg))
    t_start = time.perf_counter()
    threads = threads or torch.get_num_threads()
    cache_dir = ec.bundle_cache_dir(bundle.path, bundle.hash, create=True)
    manifest = ec.read_json(cache_dir / ec.MANIFEST) or {"schema": ec.CACHE_SCHEMA}
    manifest["bundle"] = {"name": bundle.name, "hash": bundle.hash, "path": str(bundle.path)}
    res = ExportResult(cache_dir)
    torch_tag = f"torch{torch.__version__.split('+')[0]}"
    ort_tag = f"ort{ort.__version__}"

    # 1-2. graphs -> ONNX -> ORT-optimised (+ int8 / fp16)
    specs = ox.graph_specs(bundle)
    for spec in specs:
        key = ec.ArtefactKey(spec.component, "dyn", torch_tag, "fp32", ox.OPSET)
        raw = key.filename(".onnx")
        if ec.has_artefact(cache_dir, manifest, raw) and not force:
            res.reused.append(raw)
        else:
            say(f"exporting {spec.component} ...")
            info = ox.export_graph(spec, cache_dir / raw)
            ec.record_artefact(manifest, "onnx", key, raw, inputs=list(spec.inputs), output=spec.output, **info,
                               **spec.info)
            res.exported.append(raw)
        variants = [(ec.ArtefactKey(spec.component, "dyn", ort_tag, "fp32", ox.OPSET), "ort", ox.optimise_for_ort)]
        if int8 and spec.component in HEAVY:
            variants.append((ec.ArtefactKey(spec.component, "dyn", ort_tag, "int8", ox.OPSET), "ort", ox.quantize_int8))
        if (fp16 or backend == "trt") and spec.component in HEAVY + (ec.VAE_DECODER,):
            variants.append((ec.ArtefactKey(spec.component, "dyn", torch_tag, "fp16", ox.OPSET), "onnx",
                             ox.convert_fp16))
        for vkey, kind, make in variants:
            f = vkey.filename(".onnx")
            if ec.has_artefact(cache_dir, manifest, f) and not force:
                res.reused.append(f)
                continue
            t0 = time.perf_counter()
            make(cache_dir / raw, cache_dir / f)
            ec.record_artefact(manifest, kind, vkey, f, inputs=list(spec.inputs), output=spec.output, source=raw,
                               make_s=round(time.perf_counter() - t0, 3), bytes=(cache_dir / f).stat().st_size)
            res.exported.append(f)
        ec.write_json(cache_dir / ec.MANIFEST, manifest)  # after each graph: an interrupted export keeps its work

    # 3. the film encoder's backbone (engine/film, through the same exporter, engine/onnx_io.py)
    bb = None
    if film_backbone:
        from filmscore.engine.film import semantic

        bb = semantic.load_backbone()  # the PyTorch backbone (no ONNX cache): the reference and the source
        key = ec.ArtefactKey(ec.FILM_BACKBONE, "dyn", torch_tag, "fp32", ox.OPSET, None)
        f = key.filename(".onnx")
        if ec.has_artefact(cache_dir, manifest, f) and not force:
            res.reused.append(f)
        else:
            say("exporting film_backbone ...")
            t0 = time.perf_counter()
            semantic.export_onnx(bb, cache_dir / f)
            ec.record_artefact(manifest, "onnx", key, f, inputs=["frames"], output="features", backbone=bb.name,
                               export_s=round(time.perf_counter() - t0, 3), bytes=(cache_dir / f).stat().st_size)
            res.exported.append(f)
        ec.write_json(cache_dir / ec.MANIFEST, manifest)

    # 4. TensorRT engines
    if backend == "trt":
        from . import tensorrt_build

        built, reused = tensorrt_build.build_engines(bundle, cache_dir, manifest, force=force, log=say)
        res.exported += built
        res.reused += reused
        ec.write_json(cache_dir / ec.MANIFEST, manifest)

    # 5. speed per backend, for "auto"; which graphs int8 makes faster here
    if measure:
        say("measuring seconds per denoising step ...")
        res.speed = measure_backends(bundle, threads=threads, int8=int8, trt=backend == "trt")
        record_speeds(cache_dir, res.speed)

    # 6. parity (int8 as the backend would run it: on the graphs it speeds up here)
    if check_parity:
        say("checking parity against PyTorch ...")
        res.parity = check_bundle_parity(bundle, cache_dir, threads=threads, int8=int8, fp16=fp16,
                                         trt=backend == "trt", backbone=bb)
        ec.write_json(cache_dir / ec.PARITY, res.parity)
    res.seconds = time.perf_counter() - t_start
    return res


def _graph_sessions(cache_dir: Path, threads: int, precision: str) -> dict[str, Any]:
    """ORT CPU sessions of every graph exported at `precision` (ORT-optimised file preferred), by component."""
    from filmscore.engine.backends.ort_backend import OrtGraph, graph_file, session_options

    so = session_options(threads)
    out = {}
    for comp in ec.COMPONENTS:
        f = graph_file(cache_dir, comp, precision)
        if f is not None:
            out[comp] = OrtGraph(f, so, ["CPUExecutionProvider"], io_binding=False)
    return out


def check_bundle_parity(bundle: Bundle, cache_dir: Path, *, threads: int, int8: bool = False, fp16: bool = False,
                        trt: bool = False, backbone=None) -> dict[str, Any]:
    """Per-graph and whole-pipeline parity; `pass` is the fp32 verdict (<= 1e-3 abs, >= 40 dB)."""
    from filmscore.engine.backends import load_backend

    cap = par.capture_inputs(bundle)
    refs = par.torch_callables(bundle)
    report: dict[str, Any] = {"thresholds": {"max_abs_err_fp32": par.MAX_ABS_ERR_FP32,
                                             "min_pipeline_snr_db": par.MIN_PIPELINE_SNR_DB},
                              "run": par.PARITY_RUN, "bundle": bundle.hash, "components": {}, "pipeline": {}}
    ok = True
    precisions = ["fp32"] + (["int8"] if int8 else []) + (["fp16"] if fp16 else [])
    for prec in precisions:
        graphs = _graph_sessions(cache_dir, threads, prec)
        for comp, fn in refs.items():
            inputs = getattr(cap, comp)
            if comp not in graphs or not inputs:
                continue
            if prec != "fp32" and comp not in HEAVY:
                continue
            r = par.compare(fn, graphs[comp], inputs)
            r["file"] = graphs[comp].path.name
            if prec == "fp32":
                r["pass"] = "error" not in r and r["max_abs_err"] <= par.MAX_ABS_ERR_FP32
                ok = ok and r["pass"]
            report["components"].setdefault(comp, {})[prec] = r
    if backbone is not None:
        report["components"][ec.FILM_BACKBONE] = {"fp32": backbone_parity(backbone, cache_dir, threads)}
        ok = ok and report["components"][ec.FILM_BACKBONE]["fp32"]["pass"]
    ref_wave = cap.output.wave
    runs: list[tuple[str, Backend]] = [("ort-fp32", load_backend("ort", bundle, threads=threads, precision="fp32"))]
    if int8:
        runs.append(("ort-int8", load_backend("ort", bundle, threads=threads, precision="int8")))
    if fp16:
        runs.append(("ort-fp16", load_backend("ort", bundle, threads=threads, precision="fp16")))
    if trt:
        runs.append(("trt-fp16", load_backend("trt", bundle, precision="fp16")))
    for name, backend in runs:
        out = par.run_parity_pipeline(bundle, backend)
        snr = par.snr_db(ref_wave, out.wave)
        entry: dict[str, Any] = {"snr_db": snr if snr != float("inf") else "inf",
                                 "max_abs_err": float(abs(out.wave - ref_wave).max()),
                                 "log_mel_max_abs_err": float(abs(out.log_mel - cap.output.log_mel).max())}
        if name == "ort-int8":
            entry["int8_graphs"] = backend.info.get("int8_graphs", [])
        if name == "ort-fp32":
            entry["pass"] = snr >= par.MIN_PIPELINE_SNR_DB
            ok = ok and entry["pass"]
        report["pipeline"][name] = entry
    report["pass"] = ok
    return report


def backbone_parity(backbone, cache_dir: Path, threads: int) -> dict[str, Any]:
    """The film backbone on frames decoded from a real (synthetic, H.264) edit: ORT against torch."""
    import tempfile

    import numpy as np

    from filmscore.engine.backends.ort_backend import OrtGraph, session_options
    from filmscore.engine.film.decode import iter_frames
    from filmscore.engine.film.synthetic import Shot, write_edit

    entry = ec.find_artefact(cache_dir, ec.FILM_BACKBONE, kind="onnx")
    graph = OrtGraph(cache_dir / entry["file"], session_options(threads), ["CPUExecutionProvider"], False)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "edit.mp4"
        write_edit(video, [Shot("forest", 1.0, seed=1), Shot("city", 1.0, seed=2)])
        rgb = np.concatenate([b.rgb for b in iter_frames(video, fps=4)])
    x = torch.as_tensor(np.asarray(backbone.preprocess(rgb), np.float32))
    with torch.no_grad():
        ref = backbone.module(x)
    r = par.compare(lambda frames: ref, graph, [{"frames": x}])
    r["file"] = entry["file"]
    r["pass"] = r["max_abs_err"] <= par.MAX_ABS_ERR_FP32
    return r


def step_inputs(bundle: Bundle, window_batch: int = 4) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One denoising step of a cue with picture and controls, as the pipeline batches it: a plain call over
    the u and p passes (2 x window_batch windows of 256 latent frames) and a controlled call (window_batch)."""
    from filmscore.engine.constants import WINDOW_MEL_FRAMES

    cfg = bundle.models["unet"].config
    L = WINDOW_MEL_FRAMES // 4
    g = torch.Generator().manual_seed(0)
    b = window_batch
    plain = {"sample": torch.randn(2 * b, cfg.in_channels, L, generator=g), "timestep": torch.full((2 * b,), 500.0),
             "tokens": torch.randn(2 * b, cfg.n_null_tokens, cfg.token_dim, generator=g)}
    ctrl = {k: v[:b] for k, v in plain.items()}
    ctrl["controls"] = par.melody_controls(4 * L).fit_length(4 * L).to_model_input()
    ctrl["controls"] = torch.from_numpy(ctrl["controls"])[None].expand(b, -1, -1).contiguous()
    return plain, ctrl


def time_step(backend: Backend, plain: dict, ctrl: dict, has_control: bool, reps: int = 3) -> float:
    """Median seconds of one denoising step (after one warm-up)."""
    def step():
        backend.denoiser(plain["sample"], plain["timestep"], plain["tokens"], None, 1.0)
        if has_control:
            backend.denoiser(ctrl["sample"], ctrl["timestep"], ctrl["tokens"], ctrl["controls"], 1.0)

    with torch.no_grad():
        step()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_backends(bundle: Bundle, *, threads: int, int8: bool = False, trt: bool = False) -> dict[str, Any]:
    """Seconds per denoising step for torch and ORT (and int8, TensorRT) at `threads`, on this machine."""
    from filmscore.engine.backends import load_backend

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        plain, ctrl = step_inputs(bundle)
        has_control = bundle.models.get("controlnet") is not None
        cpu: dict[str, float] = {}
        cpu["torch"] = time_step(load_backend("torch", bundle), plain, ctrl, has_control)
        cpu["ort"] = time_step(load_backend("ort", bundle, threads=threads), plain, ctrl, has_control)
        out: dict[str, Any] = {"threads": threads, "cpu": ec.cpu_name(), "s_per_step": cpu,
                               "shape": {"plain": list(plain["sample"].shape), "control": list(ctrl["sample"].shape)}}
        if int8:
            out["int8_graphs"] = int8_speedups(bundle, threads, plain, ctrl)
            record_speeds(ec.bundle_cache_dir(bundle.path, bundle.hash), out)  # the int8 backend reads it
            cpu["ort-int8"] = time_step(load_backend("ort", bundle, threads=threads, precision="int8"), plain, ctrl,
                                        has_control)
        if trt:
            out["gpu"] = ec.gpu_name()
            out["gpu_s_per_step"] = {"trt": time_step(load_backend("trt", bundle), plain, ctrl, has_control)}
        return out
    finally:
        torch.set_num_threads(prev)


INT8_MIN_GAIN = 0.9  # int8 must be >= 10 % faster: smaller differences are noise on a shared machine


def int8_speedups(bundle: Bundle, threads: int, plain: dict, ctrl: dict, reps: int = 5) -> dict[str, dict]:
    """Per heavy graph: median seconds fp32 and int8 on its pipeline shape (denoisers: one step's call;
    vocoder: one 1152-frame chunk), and whether int8 is faster here. Measured, because it differs per graph:
    MatMul-heavy graphs gain, Conv-heavy ones lose to the activations' dynamic quantisation."""
    from filmscore.engine.backends.ort_backend import OrtGraph, graph_file, session_options
    from filmscore.engine.pipeline import VOCODE_CHUNK_MEL, VOCODE_MARGIN_MEL

    cache_dir = ec.bundle_cache_dir(bundle.path, bundle.hash)
    so = session_options(threads)
    feeds = {ec.DENOISE_PLAIN: plain,
             ec.DENOISE_CONTROL: dict(ctrl, control_scale=torch.tensor([1.0]))}
    if "vocoder" in bundle.models:
        n = bundle.models["vocoder"].config.n_mels
        feeds[ec.VOCODER] = {"log_mel": torch.randn(1, n, VOCODE_CHUNK_MEL + 2 * VOCODE_MARGIN_MEL) - 5.0}
    out: dict[str, dict] = {}
    for comp, f in feeds.items():
        times = {}
        for prec in ("fp32", "int8"):
            path = graph_file(cache_dir, comp, prec)
            if path is None or (prec == "int8" and "int8" not in path.name):
                break
            g = OrtGraph(path, so, ["CPUExecutionProvider"], io_binding=False)
            g(**f)
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                g(**f)
                ts.append(time.perf_counter() - t0)
            times[prec] = statistics.median(ts)
        if len(times) == 2:
            out[comp] = {"fp32_s": round(times["fp32"], 4), "int8_s": round(times["int8"], 4),
                         "int8_faster": times["int8"] < INT8_MIN_GAIN * times["fp32"]}
    return out


def record_speeds(cache_dir: Path, speed: dict[str, Any]) -> None:
    """Merge a measurement into speed.json under this machine's key (reduced precisions are kept out of the
    fp32 figures "auto" compares: choosing int8 is the user's call)."""
    data = ec.read_json(cache_dir / ec.SPEED) or {"schema": ec.CACHE_SCHEMA, "machines": {}}
    fp32 = {k: v for k, v in speed["s_per_step"].items() if k in ("torch", "ort")}
    key = ec.speed_key(speed["threads"])
    old = data["machines"].get(key, {})
    data["machines"][key] = {
        "s_per_step": fp32, "variants": speed["s_per_step"], "shape": speed.get("shape"),
        "int8_graphs": speed.get("int8_graphs", old.get("int8_graphs", {})),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if speed.get("gpu_s_per_step"):
        data["machines"][ec.speed_key(speed["threads"], speed["gpu"])] = {
            "s_per_step": speed["gpu_s_per_step"], "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    ec.write_json(cache_dir / ec.SPEED, data)
