"""`filmscore.engine.backends`: torch / ORT / TensorRT behind one interface, "auto" choosing by measured speed and
saying why, `render_cue` honouring `RenderRequest.backend`, the cache's location rules, GPU paths where a GPU is."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from filmscore.engine.backends import cache as ec
from filmscore.engine.backends import load_backend
from filmscore.engine.bundle import load_bundle
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.errors import BackendError, RequestError
from filmscore.export import parity as par


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_bundle(make_tiny_bundle(tmp_path_factory.mktemp("bk") / "tiny", seed=11, feature_dim=16,
                                        feature_layout="test-layout"))


@pytest.fixture(scope="module")
def exported(tiny):
    from filmscore.export.export_bundle import export_bundle

    export_bundle(tiny, check_parity=False, measure=False, threads=1)
    return tiny


def _write_speeds(bundle, speeds: dict[str, float], threads: int = 1) -> None:
    d = ec.bundle_cache_dir(bundle.path, bundle.hash, create=True)
    ec.write_json(d / ec.SPEED, {"schema": ec.CACHE_SCHEMA,
                                 "machines": {ec.speed_key(threads): {"s_per_step": speeds}}})


def test_unknown_backend_is_a_request_error(tiny):
    with pytest.raises(RequestError, match="unknown backend 'cuda'"):
        load_backend("cuda", tiny)


def test_ort_without_export_names_the_command(tmp_path):
    b = load_bundle(make_tiny_bundle(tmp_path / "fresh", seed=12, feature_dim=16, feature_layout="test-layout"))
    with pytest.raises(BackendError, match=r"no fp32 ONNX export of .*run `filmscore export --bundle"):
        load_backend("ort", b, threads=1)


def test_trt_unavailable_says_why(tiny):
    from filmscore.engine.backends.trt_backend import unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present here")
    with pytest.raises(BackendError, match="trt backend: "):
        load_backend("trt", tiny)


def test_auto_without_measurement_is_torch_with_reasons(tmp_path):
    b = load_bundle(make_tiny_bundle(tmp_path / "auto0", seed=13, feature_dim=16, feature_layout="test-layout"))
    be = load_backend("auto", b, threads=1)
    if ec.gpu_name() is None:
        assert be.name == "torch"
        assert "trt" in be.info["skipped"]
    assert be.info["auto"] is True and be.info["chosen_because"]
    assert set(be.info["skipped"]) | {be.name} == {"torch", "ort", "trt"}


@pytest.mark.slow
def test_auto_picks_the_fastest_measured(exported):
    if ec.gpu_name() is not None:
        pytest.skip("with a GPU, TensorRT's measurement takes part; this test is about the CPU pair")
    _write_speeds(exported, {"torch": 0.5, "ort": 0.2})
    be = load_backend("auto", exported, threads=1)
    assert be.name == "ort"
    assert "slower here" in be.info["skipped"]["torch"]
    _write_speeds(exported, {"torch": 0.1, "ort": 0.2})
    be = load_backend("auto", exported, threads=1)
    assert be.name == "torch"
    assert "0.2000 s/step" in be.info["skipped"]["ort"]
    # another thread count has no figures: back to the default order, where an exported bundle runs on ORT
    unmeasured = load_backend("auto", exported, threads=2)
    assert unmeasured.info["chosen_because"].startswith("first available") and unmeasured.name == "ort"


@pytest.mark.slow
def test_ort_pipeline_matches_torch(exported):
    ref = par.run_parity_pipeline(exported, None, dict(par.PARITY_RUN, duration_s=4.0, steps=3))
    be = load_backend("ort", exported, threads=1)
    assert be.info["providers"][0] == "CPUExecutionProvider" and be.info["threads"] == 1
    out = par.run_parity_pipeline(exported, be, dict(par.PARITY_RUN, duration_s=4.0, steps=3))
    assert out.wave.shape == ref.wave.shape
    assert par.snr_db(ref.wave, out.wave) >= 40.0


@pytest.mark.slow
def test_render_cue_honours_backend(exported, tmp_path):
    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    waves = {}
    for name in ("torch", "ort"):
        out = tmp_path / f"{name}.wav"
        res = render_cue(RenderRequest(output=out, duration_s=2.0, steps=2, bundle=exported.path, backend=name,
                                       seed=5))
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["backend"]["name"] == name
        assert res.metadata["backend"]["name"] == name
        waves[name], _ = sf.read(out)
    assert par.snr_db(waves["torch"], waves["ort"]) >= 40.0


def test_cache_dir_beside_bundle_or_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("FILMSCORE_EXPORT_DIR", raising=False)
    bundle_dir = tmp_path / "mine"
    bundle_dir.mkdir()
    assert ec.bundle_cache_dir(bundle_dir, "abc") == bundle_dir.resolve().with_name("mine.exports") / "abc"
    monkeypatch.setenv("FILMSCORE_EXPORT_DIR", str(tmp_path / "elsewhere"))
    assert ec.bundle_cache_dir(bundle_dir, "abc", create=True) == tmp_path / "elsewhere" / "abc"
    assert (tmp_path / "elsewhere" / "abc").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_cache_falls_back_when_bundle_parent_read_only(tmp_path, monkeypatch):
    monkeypatch.delenv("FILMSCORE_EXPORT_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ro = tmp_path / "ro"
    (ro / "b").mkdir(parents=True)
    ro.chmod(0o555)
    try:
        assert ec.bundle_cache_dir(ro / "b", "h") == tmp_path / "home" / ".cache" / "filmscore" / "exports" / "h"
    finally:
        ro.chmod(0o755)


def test_artefact_lookup_ignores_missing_files(tmp_path):
    key = ec.ArtefactKey("vocoder", "dyn", "torch2.0", "fp32", 20)
    ec.write_json(tmp_path / ec.MANIFEST, {"artefacts": [{"kind": "onnx", "file": key.filename(".onnx"),
                                                          "key": key.to_dict()}]})
    assert ec.find_artefact(tmp_path, "vocoder", kind="onnx") is None
    (tmp_path / key.filename(".onnx")).write_bytes(b"x")
    assert ec.find_artefact(tmp_path, "vocoder", kind="onnx")["file"] == "vocoder.dyn-opset20-torch2.0-fp32.onnx"
    assert ec.find_artefact(tmp_path, "vocoder", kind="onnx", precision="int8") is None


@pytest.mark.gpu
def test_ort_cuda_io_binding_matches_cpu(exported):
    from filmscore.engine.backends.ort_backend import available_providers

    if "CUDAExecutionProvider" not in available_providers() or ec.gpu_name() is None:
        pytest.skip("needs onnxruntime-gpu and a CUDA GPU")
    from filmscore.engine.backends.ort_backend import load_ort

    cpu = par.run_parity_pipeline(exported, load_ort(exported, threads=1, ep="cpu"),
                                  dict(par.PARITY_RUN, duration_s=4.0, steps=3))
    be = load_ort(exported, ep="cuda")
    assert be.info["io_binding"] is True and be.info["providers"][0] == "CUDAExecutionProvider"
    gpu = par.run_parity_pipeline(exported, be, dict(par.PARITY_RUN, duration_s=4.0, steps=3))
    assert par.snr_db(cpu.wave, gpu.wave) >= 40.0


@pytest.mark.gpu
def test_trt_backend_renders(exported):
    from filmscore.engine.backends.trt_backend import unavailable_reason
    from filmscore.export.export_bundle import export_bundle

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    export_bundle(exported, backend="trt", check_parity=False, measure=False)
    be = load_backend("trt", exported)
    out = par.run_parity_pipeline(exported, be, dict(par.PARITY_RUN, duration_s=4.0, steps=3))
    ref = par.run_parity_pipeline(exported, None, dict(par.PARITY_RUN, duration_s=4.0, steps=3))
    assert np.isfinite(out.wave).all()
    assert par.snr_db(ref.wave, out.wave) >= 20.0  # fp16 engines
