"""`filmscore.export.onnx_export`: single graphs (the cheap ones) through the dynamo exporter: dynamic axes that
really are dynamic (film head over any frame count, decoder over any length), and named errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from filmscore.engine.backends import cache as ec
from filmscore.engine.bundle import load_bundle
from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.export import onnx_export as ox


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", seed=5, feature_dim=20,
                                        feature_layout="test-layout"))


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_film_head_any_frame_count(bundle, tmp_path):
    spec = ox.graph_specs(bundle, (ec.FILM_HEAD,))[0]
    ox.export_graph(spec, tmp_path / "head.onnx")
    sess = _session(tmp_path / "head.onnx")
    head = bundle.models["film_head"]
    for n in (1, 2, 5, 103, 257):  # adaptive pooling: segments of unequal size, fewer frames than tokens
        x = torch.randn(3, n, 20, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            ref = head(x).numpy()
        np.testing.assert_allclose(sess.run(None, {"frames": x.numpy()})[0], ref, atol=1e-5)


@pytest.mark.slow
def test_vae_decoder_dynamic_length_and_ort_optimised(bundle, tmp_path):
    spec = ox.graph_specs(bundle, (ec.VAE_DECODER,))[0]
    info = ox.export_graph(spec, tmp_path / "dec.onnx")
    assert info["bytes"] > 0
    ox.optimise_for_ort(tmp_path / "dec.onnx", tmp_path / "dec.opt.onnx")
    vae = bundle.models["vae"]
    for path in (tmp_path / "dec.onnx", tmp_path / "dec.opt.onnx"):
        sess = _session(path)
        for b, length in ((1, 3), (2, 64), (1, 320)):
            z = torch.randn(b, vae.config.latent_channels, length)
            with torch.no_grad():
                ref = vae.decode(z).numpy()
            out = sess.run(None, {"latent": z.numpy()})[0]
            assert out.shape == (b, vae.config.n_mels, 4 * length)
            assert np.abs(out - ref).max() <= 1e-3


def test_export_failure_is_a_named_error(bundle, tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.export refuses it
                return x * 2
            return x

    spec = ox.GraphSpec("broken_graph", Broken(), {"x": torch.ones(2, 3)}, {"x": None}, "y")
    with pytest.raises(ox.ExportError, match="broken_graph: ONNX export failed"):
        ox.export_graph(spec, tmp_path / "broken.onnx")
    assert not list(tmp_path.glob("*broken*"))  # no half-written file left behind


def test_specs_cover_bundle_components(bundle):
    names = [s.component for s in ox.graph_specs(bundle)]
    assert names == [ec.DENOISE_PLAIN, ec.DENOISE_CONTROL, ec.VAE_DECODER, ec.VOCODER, ec.FILM_HEAD, ec.MEL]
    spec = next(s for s in ox.graph_specs(bundle) if s.component == ec.DENOISE_CONTROL)
    L = spec.inputs["sample"].shape[-1]
    assert L % bundle.models["unet"].downsample_factor == 0
    assert spec.inputs["controls"].shape[-1] == 4 * L


def test_bundle_without_vocoder_exports_no_vocoder(tmp_path):
    b = load_bundle(make_tiny_bundle(tmp_path / "nv", seed=1, feature_dim=8, feature_layout="t", with_vocoder=False))
    assert ec.VOCODER not in [s.component for s in ox.graph_specs(b)]
