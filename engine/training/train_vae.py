"""Stage 1: the Mel VAE. L1 reconstruction of log-Mel + a small KL term (latent diffusion's KL-f4 recipe, 1D)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..models import MelVAE
from .corpus_data import Corpus, mel_batch
from .loop import EMA, Budget, Run, restore, run_steps

logger = logging.getLogger(__name__)

KL_WEIGHT = 1e-5
CROP = 256  # 2.56 s


def train_vae(corpus: Corpus, minutes: float, *, batch: int = 16, lr: float = 3e-4, max_steps: int | None = None,
              init: MelVAE | None = None, run: Run | None = None, progress=None, seed: int = 0,
              device: torch.device | str = "cpu", cooldown: bool = False) -> Run:
    """Train (or continue, from `run`'s checkpoint) on `device` for `minutes` or up to `max_steps` total steps;
    `cooldown`: decay the learning rate over this call (`loop.Budget`)."""
    run = run or Run("vae")
    device = torch.device(device)
    vae = init
    if vae is None:
        vae = MelVAE(n_mels=corpus.mel.n_mels)
        pca_l1 = vae.init_from_patches([c.log_mel for c in corpus.clips[:200]])
        logger.info("vae: initialised from PCA of corpus patches (log-Mel L1 %.3f)", pca_l1)
        run.extra["pca_init_l1"] = pca_l1
    vae = vae.to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    ema = {"vae": EMA(vae, 0.999)}
    state = run.load()
    if state is not None:
        vae = MelVAE.from_config(state["configs"]["vae"]).to(device)
        opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
        ema = {"vae": EMA(vae, 0.999)}
        restore(state, {"vae": vae}, opt, ema)
        logger.info("vae: resumed at step %d", run.step)
    rng = np.random.default_rng(seed + run.step)

    def loss_fn():
        x = mel_batch(corpus.sample_crops(rng, batch, CROP), CROP).to(device)
        rec, mean, logvar = vae(x)
        l1 = (rec - x).abs().mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        return l1 + KL_WEIGHT * kl, {"l1": l1, "kl": kl}

    return run_steps(run, Budget(minutes, max_steps, cooldown=cooldown), corpus, {"vae": vae}, opt, ema, loss_fn,
                     progress, lr_at=lambda step: lr)


@torch.no_grad()
def latent_scale(vae: MelVAE, corpus: Corpus, n_clips: int = 64) -> float:
    """1 / std of posterior means over corpus clips: brings latents to unit variance (Rombach et al. 2022)."""
    vals = []
    for c in corpus.clips[:n_clips]:
        mean, _ = vae.encode(torch.from_numpy(c.log_mel.astype(np.float32))[None])
        vals.append(mean.flatten())
    return float(1.0 / torch.cat(vals).std())
