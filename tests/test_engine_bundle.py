"""Bundles: save/load round trip with real safetensors, hashes, fp16, settings checks."""

from __future__ import annotations

import json

import pytest
import torch

from filmscore.engine.bundle import load_bundle, save_bundle
from filmscore.engine.errors import BundleError
from filmscore.engine.models import FilmScoreUNet1D, MelVAE


def _models():
    torch.manual_seed(0)
    return {"vae": MelVAE(latent_channels=4, hidden_channels=16, refine_blocks=1),
            "unet": FilmScoreUNet1D(in_channels=4, block_out_channels=(16, 16, 32), token_dim=8, heads=2)}


def test_round_trip_preserves_weights_and_config(tmp_path):
    models = _models()
    save_bundle(tmp_path / "b", models, name="t", version="1")
    b = load_bundle(tmp_path / "b")
    for name, m in models.items():
        for (k, v), (k2, v2) in zip(m.state_dict().items(), b.models[name].state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
    assert b.models["unet"].config.block_out_channels == [16, 16, 32] or \
        tuple(b.models["unet"].config.block_out_channels) == (16, 16, 32)
    info = b.info()
    assert info["components"]["vae"]["parameters"] == sum(p.numel() for p in models["vae"].parameters())


def test_fp16_halves_size_and_loads_as_float32(tmp_path):
    models = _models()
    save_bundle(tmp_path / "a", models, name="t", version="1")
    save_bundle(tmp_path / "h", models, name="t", version="1", dtype=torch.float16)
    size = lambda d: sum(f.stat().st_size for f in d.glob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "h") < 0.6 * size(tmp_path / "a")
    b = load_bundle(tmp_path / "h")
    w = next(b.models["vae"].parameters())
    assert w.dtype == torch.float32


def test_hash_changes_with_weights(tmp_path):
    models = _models()
    save_bundle(tmp_path / "a", models, name="t", version="1")
    with torch.no_grad():
        next(models["unet"].parameters()).add_(1.0)
    save_bundle(tmp_path / "b", models, name="t", version="1")
    assert load_bundle(tmp_path / "a").hash != load_bundle(tmp_path / "b").hash


def test_settings_and_schema_are_checked(tmp_path):
    save_bundle(tmp_path / "b", _models(), name="t", version="1")
    mf = tmp_path / "b" / "bundle.json"
    data = json.loads(mf.read_text())
    data["mel"]["hop_length"] = 256
    mf.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="break the contract"):
        load_bundle(tmp_path / "b")
    data["schema"] = "other/9"
    mf.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="schema"):
        load_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nowhere")
