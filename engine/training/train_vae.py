"""Stage 1: the Mel VAE. L1 reconstruction of log-Mel + a small KL term (latent diffusion's KL-f4 recipe, 1D)."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ..models import MelVAE
from .corpus_data import Corpus, mel_batch
from .loop import EMA, Budget, Run, restore

logger = logging.getLogger(__name__)

KL_WEIGHT = 1e-5
CROP = 256  # 2.56 s


def train_vae(corpus: Corpus, minutes: float, *, batch: int = 16, lr: float = 3e-4, max_steps: int | None = None,
              init: MelVAE | None = None, run: Run | None = None, progress=None, seed: int = 0) -> Run:
    run = run or Run("vae")
    vae = init
    if vae is None:
        vae = MelVAE(n_mels=corpus.mel.n_mels)
        pca_l1 = vae.init_from_patches([c.log_mel for c in corpus.clips[:200]])
        logger.info("vae: initialised from PCA of corpus patches (log-Mel L1 %.3f)", pca_l1)
        run.extra["pca_init_l1"] = pca_l1
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    ema = {"vae": EMA(vae, 0.999)}
    state = run.load()
    if state is not None:
        vae = MelVAE.from_config(state["configs"]["vae"])
        opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
        ema = {"vae": EMA(vae, 0.999)}
        restore(state, {"vae": vae}, opt, ema)
        logger.info("vae: resumed at step %d", run.step)
    rng = np.random.default_rng(seed + run.step)
    budget = Budget(minutes, max_steps)
    vae.train()
    while not budget.done(run.step):
        t0 = time.perf_counter()
        if run.step % 200 == 0:
            corpus.reload()
        x = mel_batch(corpus.sample_crops(rng, batch, CROP), CROP)
        rec, mean, logvar = vae(x)
        l1 = (rec - x).abs().mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        loss = l1 + KL_WEIGHT * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        ema["vae"].update(vae, run.step)
        run.step += 1
        run.seconds += time.perf_counter() - t0
        if run.step % 25 == 0:
            run.log(loss=loss.item(), l1=l1.item(), kl=kl.item(), hours=round(corpus.hours, 2))
            if progress:
                progress(run.step, {"l1": l1.item()})
        if budget.save_due():
            run.save({"vae": vae}, opt, ema)
    run.save({"vae": vae}, opt, ema)
    return run


@torch.no_grad()
def latent_scale(vae: MelVAE, corpus: Corpus, n_clips: int = 64) -> float:
    """1 / std of posterior means over corpus clips: brings latents to unit variance (Rombach et al. 2022)."""
    vals = []
    for c in corpus.clips[:n_clips]:
        mean, _ = vae.encode(torch.from_numpy(c.log_mel.astype(np.float32))[None])
        vals.append(mean.flatten())
    return float(1.0 / torch.cat(vals).std())
