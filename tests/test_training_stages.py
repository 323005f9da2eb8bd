"""Training stages on a tiny real corpus: each stage steps, logs, checkpoints and resumes; the checkpoints assemble
into a bundle that loads and renders."""

from __future__ import annotations

import json
import shutil

import pytest

from filmscore.engine.bundle import load_bundle
from filmscore.engine.models import VocosVocoder
from filmscore.engine.training.assemble import assemble_bundle, trained_vae
from filmscore.engine.training.corpus_data import Corpus
from filmscore.engine.training.loop import Run
from filmscore.engine.training.train_ldm import train_ldm
from filmscore.engine.training.train_vae import train_vae
from filmscore.engine.training.train_vocoder import train_vocoder


@pytest.mark.slow
def test_stages_resume_and_assemble_a_bundle(tmp_path, monkeypatch):
    if shutil.which("fluidsynth") is None:
        pytest.skip("FluidSynth is not installed (scripts/setup.sh installs it)")
    from filmscore.engine.data.build import BuildConfig, build_corpus
    from filmscore.engine.film.spec import default_feature_spec

    monkeypatch.setattr("filmscore.engine.training.loop.LOG_EVERY", 1)
    corpus_dir = tmp_path / "corpus"
    build_corpus(BuildConfig(corpus_dir, hours=1.0, workers=1, tiny=True, features=True))
    corpus = Corpus(corpus_dir, "train")
    assert corpus.clips and corpus.feature_dim() is not None
    train_dir = tmp_path / "train"

    first = train_vae(corpus, minutes=5, batch=2, max_steps=2, run=Run("vae", train_dir))
    assert first.step == 2 and first.ckpt.is_file() and "pca_init_l1" in first.extra
    resumed = train_vae(corpus, minutes=5, batch=2, max_steps=3, run=Run("vae", train_dir))
    assert resumed.step == 3  # went on from the checkpoint, not from zero

    vae = trained_vae(train_dir, corpus)
    assert vae.config.scaling_factor > 0 and (train_dir / "ldm" / "vae_frozen.pt").is_file()
    dim, layout = default_feature_spec()
    ldm = train_ldm(corpus, vae, minutes=5, batch=2, max_steps=2, feature_dim=dim, feature_layout=layout,
                    run=Run("ldm", train_dir), model_kwargs={"block_out_channels": (32, 32, 64)},
                    heldout={"train": corpus})
    assert ldm.step == 2
    curve = ldm.extra["heldout_loss"]["train"]  # measured on the EMA weights as the call starts and ends
    assert [s for s, _ in curve] == [0, 2] and all(v > 0 for _, v in curve)
    ldm_log = [json.loads(line) for line in (train_dir / "ldm" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ldm_log if "heldout_loss_train" in r] == [0, 2]
    assert Run("ldm", train_dir).load()["extra"]["heldout_loss"] == ldm.extra["heldout_loss"]  # saved with it
    voc = train_vocoder(corpus, minutes=5, batch=2, max_steps=1, run=Run("vocoder", train_dir),
                        init=VocosVocoder(dim=32, n_blocks=1))
    assert voc.step == 1
    log = [json.loads(line) for line in (train_dir / "vae" / "log.jsonl").read_text().splitlines()]
    assert all(r["step"] > 0 for r in log)

    summary = assemble_bundle(train_dir, tmp_path / "bundle", corpus_dir=corpus_dir, fp16=True)
    assert summary["components"] == ["controlnet", "film_head", "unet", "vae", "vocoder"]
    bundle = load_bundle(tmp_path / "bundle")
    corpus_prov = bundle.manifest["provenance"]["corpus"]
    assert corpus_prov["clips"] == len(corpus.clips) + corpus_prov["splits"].get("heldout", {}).get("clips", 0)
    assert corpus_prov["works"] == 4 and corpus_prov["hours"] > 0
    stages = bundle.manifest["provenance"]["stages"]
    assert stages["ldm"]["steps"] == 2
    # every invocation is on record: the VAE trained in two (2 steps, then 1 more), on this corpus, on the CPU
    assert [(r["from_step"], r["to_step"]) for r in stages["vae"]["sessions"]] == [(0, 2), (2, 3)]
    assert all(r["device"] == "cpu" and r["corpus_hours_from"] == r["corpus_hours_to"] == round(corpus.hours, 2)
               for r in stages["vae"]["sessions"])
    assert stages["vae"]["corpus_hours_seen"] == [round(corpus.hours, 2)] * 2
    assert bundle.manifest["film_layout"] == layout

    from filmscore.engine.render import render_cue
    from filmscore.engine.request import RenderRequest

    res = render_cue(RenderRequest(output=tmp_path / "cue.wav", duration_s=2.0, steps=2, bundle=tmp_path / "bundle",
                                   backend="torch"))
    assert res.n_samples == 96000 and res.metadata["pipeline"]["vocoder"] == "network"


def test_frozen_vae_keeps_its_scaling_factor_even_with_diffusers_private_keys(tmp_path):
    """A frozen VAE saved with diffusers' `_use_default_values` (as files made before model_config() existed are)
    must not come back with the default scaling factor 1.0: the LDM's latents are scaled by it."""
    import torch
    from filmscore.engine.models import MelVAE
    from filmscore.engine.training.assemble import trained_vae

    vae = MelVAE(n_mels=16, latent_channels=4, hidden_channels=8, refine_blocks=1)
    vae.register_to_config(scaling_factor=1.5)
    config = dict(vae.config)
    config["_use_default_values"] = ["scaling_factor"]
    (tmp_path / "ldm").mkdir()
    torch.save({"config": config, "weights": vae.state_dict()}, tmp_path / "ldm" / "vae_frozen.pt")
    assert trained_vae(tmp_path, None).config.scaling_factor == 1.5
