"""`filmscore.export.export_bundle` and `filmscore export`: a tiny real bundle exported once (dynamo, opset 20,
dynamic axes), parity against PyTorch on real pipeline inputs (asserted: <= 1e-3 per graph, >= 40 dB audio), the
cache reused on a second run, int8's quality cost recorded, the speed measurement `auto` reads."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from filmscore.engine.backends import cache as ec
from filmscore.engine.bundle import load_bundle
from filmscore.engine.bundle_testing import make_tiny_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from filmscore.export.export_bundle import export_bundle

    path = make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=3, feature_dim=24,
                            feature_layout="test-layout")
    bundle = load_bundle(path)
    res = export_bundle(bundle, int8=True, threads=1)
    return bundle, res


def test_every_graph_exported_with_dynamic_axes_and_opset(exported):
    bundle, res = exported
    manifest = json.loads((res.cache_dir / ec.MANIFEST).read_text())
    raw = {a["key"]["component"]: a for a in manifest["artefacts"] if a["kind"] == "onnx"
           and a["key"]["precision"] == "fp32"}
    assert set(raw) == {ec.DENOISE_CONTROL, ec.DENOISE_PLAIN, ec.VAE_DECODER, ec.VOCODER, ec.FILM_HEAD, ec.MEL}
    model = onnx.load(str(res.cache_dir / raw[ec.DENOISE_CONTROL]["file"]), load_external_data=False)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert isinstance(dims["sample"][0], str) and isinstance(dims["sample"][2], str)  # batch, time symbolic
    assert isinstance(dims["controls"][2], str)
    assert dims["sample"][1] == bundle.models["unet"].config.in_channels
    # cache key names bundle hash (folder), profile, exporter version, opset, precision
    assert res.cache_dir.name == bundle.hash
    assert raw[ec.VOCODER]["file"].startswith("vocoder.dyn-opset20-torch")


def test_parity_recorded_and_within_thresholds(exported):
    _, res = exported
    parity = json.loads((res.cache_dir / ec.PARITY).read_text())
    assert parity["pass"] is True
    for comp in (ec.DENOISE_CONTROL, ec.DENOISE_PLAIN, ec.VAE_DECODER, ec.VOCODER, ec.FILM_HEAD, ec.MEL):
        r = parity["components"][comp]["fp32"]
        assert r["n_inputs"] >= 1
        assert r["max_abs_err"] <= 1e-3, comp
        assert r["max_abs_ref"] > 0.01, comp  # real signals, not zeros
    assert parity["pipeline"]["ort-fp32"]["snr_db"] == "inf" or parity["pipeline"]["ort-fp32"]["snr_db"] >= 40.0
    # both guidance kinds were exercised on real inputs: controlled passes and plain ones
    assert parity["components"][ec.DENOISE_CONTROL]["fp32"]["shapes"][0]["controls"][1] == 14


def test_int8_quality_cost_is_measured_not_hidden(exported):
    _, res = exported
    parity = json.loads((res.cache_dir / ec.PARITY).read_text())
    q = parity["components"][ec.DENOISE_PLAIN]["int8"]
    assert 0 < q["max_abs_err"] < 0.1 * q["max_abs_ref"]  # quantised: some error, bounded
    assert "pass" not in q
    run = parity["pipeline"]["ort-int8"]
    speed = json.loads((res.cache_dir / ec.SPEED).read_text())["machines"][ec.speed_key(1)]
    faster = sorted(c for c, v in speed["int8_graphs"].items() if v["int8_faster"])
    assert run["int8_graphs"] == faster  # int8 only on the graphs it measurably speeds up here
    if faster:
        assert isinstance(run["snr_db"], float) and 10.0 < run["snr_db"] < parity["pipeline"]["ort-fp32"]["snr_db"]
    else:
        assert run["snr_db"] == parity["pipeline"]["ort-fp32"]["snr_db"]


def test_speed_measured_for_auto(exported):
    from filmscore.export.export_bundle import INT8_MIN_GAIN

    _, res = exported
    speed = json.loads((res.cache_dir / ec.SPEED).read_text())
    entry = speed["machines"][ec.speed_key(1)]
    assert set(entry["s_per_step"]) == {"torch", "ort"}
    assert all(v > 0 for v in entry["s_per_step"].values())
    assert "ort-int8" in entry["variants"]
    for comp in (ec.DENOISE_PLAIN, ec.DENOISE_CONTROL, ec.VOCODER):
        g = entry["int8_graphs"][comp]
        assert g["fp32_s"] > 0 and g["int8_s"] > 0
        assert g["int8_faster"] == (g["int8_s"] < INT8_MIN_GAIN * g["fp32_s"])


def test_second_run_loads_from_cache(exported):
    from filmscore.export.export_bundle import export_bundle

    bundle, first = exported
    again = export_bundle(bundle, int8=True, check_parity=False, measure=False, threads=1)
    assert again.exported == []
    assert sorted(again.reused) == sorted(first.exported)


def test_other_weights_other_cache_folder(tmp_path):
    a = load_bundle(make_tiny_bundle(tmp_path / "a", seed=3, feature_dim=24, feature_layout="test-layout"))
    b = load_bundle(make_tiny_bundle(tmp_path / "b", seed=4, feature_dim=24, feature_layout="test-layout"))
    assert a.hash != b.hash
    assert ec.bundle_cache_dir(a.path, a.hash) != ec.bundle_cache_dir(b.path, b.hash)


def test_cli_export_json_reuses_cache(exported, capsys):
    from filmscore.bridge.cli import main

    bundle, _ = exported
    code = main(["export", "--bundle", str(bundle.path), "--threads", "1", "--no-measure", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["exported"] == [] and out["ok"] is True
    assert out["parity"]["pipeline"]["ort-fp32"]["pass"] is True


def test_cli_export_trt_without_tensorrt_is_one_line_error(exported, capsys):
    pytest.importorskip("onnxruntime")
    from filmscore.bridge.cli import main
    from filmscore.engine.backends.trt_backend import unavailable_reason

    if unavailable_reason() is None:
        pytest.skip("TensorRT and a GPU are present here: the GPU tests cover the engine build")
    bundle, _ = exported
    code = main(["export", "--bundle", str(bundle.path), "--backend", "trt", "--no-parity", "--no-measure"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("filmscore export: error: --backend trt:")


def test_cli_bench_backends_side_by_side(exported, tmp_path, capsys):
    from filmscore.bridge.cli import main

    bundle, _ = exported
    out = tmp_path / "b.json"
    code = main(["bench", "backends", "--bundle", str(bundle.path), "--duration", "3", "--steps", "2",
                 "--threads", "1", "--backends", "torch,ort,ort-int8,trt", "-o", str(out), "--json"])
    assert code == 0
    res = json.loads(out.read_text())
    rows = res["rows"]
    assert set(rows) >= {"torch", "ort", "ort-int8"}
    assert rows["torch"]["time_vs_torch"] == 1.0 and rows["torch"]["snr_vs_torch_db"] == "inf"
    assert rows["ort"]["snr_vs_torch_db"] == "inf" or rows["ort"]["snr_vs_torch_db"] >= 40
    for r in rows.values():
        assert r["rtf"] > 0 and r["peak_rss_mb"] > 50 and r["gflops_per_step"] > 0
        assert set(r["timings_s"]) >= {"denoise", "decode", "vocode"}
    assert res["machine"]["peak_gflops_measured"] > 0
    if "trt" not in rows:
        assert "trt" in res["skipped"]


def test_flops_per_step_counts_every_model_call_of_the_step(exported):
    """A step of the parity run makes several denoiser calls (windows x guidance passes): its FLOPs are their sum,
    each call counted on its own (a FlopCounterMode entered again starts from zero: counting with one counter kept
    only the last call's FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from filmscore.bridge.cli.bench_backends import flops_per_step
    from filmscore.export import parity as par

    bundle, _ = exported
    pipe = par.make_pipeline(bundle)
    den, calls = pipe.denoiser, []

    def record(*a):
        calls.append(a)
        return den(*a)

    pipe.denoiser, pipe.parallel_calls = record, False
    with torch.no_grad():
        par.run_pipeline(pipe, bundle, dict(par.PARITY_RUN, duration_s=30.0, steps=1))
    per_call = []
    for a in calls:
        with FlopCounterMode(display=False) as c, torch.no_grad():
            den(*a)
        per_call.append(c.get_total_flops())
    assert len(calls) > 1 and flops_per_step(bundle, 30.0) == pytest.approx(sum(per_call))


@pytest.mark.gpu
def test_tensorrt_engines_build_and_match(exported):
    from filmscore.engine.backends.trt_backend import unavailable_reason
    from filmscore.export.export_bundle import export_bundle

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    bundle, _ = exported
    res = export_bundle(bundle, backend="trt", threads=1)
    pipe = res.parity["pipeline"]["trt-fp16"]
    assert pipe["snr_db"] == "inf" or pipe["snr_db"] >= 20.0  # fp16 engines: reported, loosely bounded
    assert np.isfinite(pipe["max_abs_err"])
