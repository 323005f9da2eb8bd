"""`make_tiny_bundle`: a tiny bundle with real (randomly initialised, seeded) safetensors weights, for tests and
for trying the whole pipeline without a trained model. It renders real audio through every stage; the audio is
not music (the weights are untrained)."""

from __future__ import annotations

from pathlib import Path

import torch

from .audio.mel import MelConfig
from .bundle import save_bundle
from .models import FilmScoreControlNet1D, FilmScoreUNet1D, FilmTokenHead, MelVAE, VocosVocoder


def make_tiny_bundle(path: str | Path, seed: int = 0, *, feature_dim: int | None = None,
                     feature_layout: str | None = None, with_vocoder: bool = True, n_mels: int = 128) -> Path:
    """Write a tiny bundle to `path` and return it. `feature_dim`/`feature_layout` default to the film encoder's."""
    if feature_dim is None or feature_layout is None:
        from .film.spec import default_feature_spec

        feature_dim, feature_layout = default_feature_spec()
    torch.manual_seed(seed)
    latent = 8
    vae = MelVAE(n_mels=n_mels, latent_channels=latent, hidden_channels=32, refine_blocks=1)
    unet = FilmScoreUNet1D(in_channels=latent, block_out_channels=(16, 32, 32), token_dim=16, n_null_tokens=2,
                           heads=2)
    controlnet = FilmScoreControlNet1D.from_unet(unet)
    # A ControlNet straight from `from_unet` has zero output convs: perturb them so tests can see controls act.
    with torch.no_grad():
        for p in list(controlnet.zero_convs.parameters()) + list(controlnet.mid_zero_conv.parameters()) + \
                list(controlnet.control_embedding.out.parameters()):
            p.normal_(0.0, 0.05)
    head = FilmTokenHead(feature_dim=feature_dim, token_dim=16, n_tokens=2, hidden_dim=16,
                         feature_layout=feature_layout)
    models: dict[str, torch.nn.Module] = {"vae": vae, "unet": unet, "controlnet": controlnet, "film_head": head}
    if with_vocoder:
        models["vocoder"] = VocosVocoder(n_mels=n_mels, dim=32, n_blocks=2, mag_prior=True, bin_phase_advance=True)
    return save_bundle(path, models, name="tiny-test", version="0", mel=MelConfig(n_mels=n_mels),
                       film_layout=feature_layout, provenance={"trained": False, "purpose": "tests"})
