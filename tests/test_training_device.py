"""Training devices: `--device` resolves to a device this machine has or fails with a clear error, every stage
trains with its models and batches on the device asked for, and a checkpoint written on one device continues on
another. The CUDA runs need a GPU and are skipped without one."""

from __future__ import annotations

import pytest
import torch
from filmscore.bridge.cli import main
from filmscore.engine.metrics.testing import make_tiny_corpus
from filmscore.engine.models import MelVAE, VocosVocoder
from filmscore.engine.training.corpus_data import Corpus
from filmscore.engine.training.loop import Run, TrainingDeviceError, resolve_device
from filmscore.engine.training.train_ldm import heldout_corpora, train_ldm
from filmscore.engine.training.train_vae import train_vae
from filmscore.engine.training.train_vocoder import train_vocoder

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (PyTorch sees none here)")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def test_resolve_device_names_what_is_missing(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(TrainingDeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(TrainingDeviceError, match="cpu or cuda"):
        resolve_device("meta")
    with pytest.raises(TrainingDeviceError, match="not a device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(TrainingDeviceError, match="only 1 CUDA device"):
        resolve_device("cuda:3")


def test_cli_refuses_a_missing_gpu_before_loading_anything(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["train", "ldm", "--device", "cuda", "--corpus", str(tmp_path / "no-corpus"),
               "--train-dir", str(tmp_path / "train")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "no CUDA GPU" in err and "no corpus" not in err
    assert not (tmp_path / "train").exists()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return make_tiny_corpus(tmp_path_factory.mktemp("corpus"), works_per_master=1, duration_s=6.0)


def _on(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_every_stage_trains_on_the_device_and_resumes_on_the_cpu(corpus_dir, tmp_path, device):
    from filmscore.engine.film.spec import default_feature_spec

    corpus = Corpus(corpus_dir, "train")
    train_dir = tmp_path / "train"
    dev = torch.device(device)

    vae = MelVAE(n_mels=corpus.mel.n_mels, latent_channels=8, hidden_channels=16, refine_blocks=1)
    first = train_vae(corpus, minutes=5, batch=2, max_steps=2, init=vae, run=Run("vae", train_dir), device=device)
    assert first.step == 2 and _on(vae).type == dev.type
    again = train_vae(corpus, minutes=5, batch=2, max_steps=3, run=Run("vae", train_dir), device="cpu")
    assert again.step == 3  # the checkpoint written on `device` continues on the CPU

    voc = VocosVocoder(n_mels=corpus.mel.n_mels, dim=16, n_blocks=1, mag_prior=True, bin_phase_advance=True)
    assert train_vocoder(corpus, minutes=5, batch=2, max_steps=1, init=voc, run=Run("vocoder", train_dir),
                         device=device).step == 1
    assert _on(voc).type == dev.type

    vae.register_to_config(scaling_factor=1.0)
    dim, layout = default_feature_spec()
    kwargs = {"feature_dim": dim, "feature_layout": layout, "model_kwargs": {"block_out_channels": (16, 16, 32)},
              "heldout": heldout_corpora(corpus_dir)}
    ldm = train_ldm(corpus, vae.cpu(), minutes=5, batch=2, max_steps=2, run=Run("ldm", train_dir), device=device,
                    **kwargs)
    assert ldm.step == 2 and _on(vae).type == dev.type  # the frozen VAE moved with the LDM
    on_device = ldm.extra["heldout_loss"]["all"]
    resumed = train_ldm(corpus, vae.cpu(), minutes=5, batch=2, max_steps=3, run=Run("ldm", train_dir),
                        device="cpu", **kwargs)
    curve = resumed.extra["heldout_loss"]["all"]
    assert [s for s, _ in curve] == [0, 2, 3] and curve[:2] == on_device and _on(vae).type == "cpu"
