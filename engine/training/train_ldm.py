"""Stage 3: the latent diffusion model: UNet + Film Score ControlNet + film token head, trained jointly on VAE
latents (the VAE frozen).

v-prediction with the cosine schedule (what MEASURED.md found to work on this CPU). Condition dropout makes
classifier-free guidance possible: picture tokens -> learned null tokens (15 %), ControlNet residuals dropped
(15 %: the UNet learns the "no control" prediction), melody or dynamics alone zeroed (10 % each). There is no
pretrained base here to freeze, so the ControlNet (initialised as a copy of the UNet's encoder, zero convs at 0)
learns alongside the UNet. Tuning the ControlNet alone afterwards, in full or with LoRA (the seed method's option),
is `train_controlnet.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio.mel import MelConfig
from ..constants import LATENT_DOWNSAMPLE, N_PITCH_CLASSES
from ..errors import FilmscoreError
from ..models import FilmScoreControlNet1D, FilmScoreUNet1D, FilmTokenHead, MelVAE
from ..schedulers import DEFAULT_NOISE_SCHEDULE
from .corpus_data import Corpus, control_batch, feature_batch
from .loop import EMA, Budget, Run, restore, run_steps

logger = logging.getLogger(__name__)

CROP = 512  # Mel frames: 5.12 s = 128 latent frames
P_DROP_PICTURE = 0.15
P_DROP_CONTROL = 0.15
P_DROP_MELODY = 0.10
P_DROP_DYNAMICS = 0.10
WARMUP_STEPS = 200


def build_models(latent_channels: int, feature_dim: int, feature_layout: str, *, token_dim: int = 128,
                 n_tokens: int = 4, block_out_channels=(128, 192, 256), layers_per_block: int = 1):
    unet = FilmScoreUNet1D(in_channels=latent_channels, block_out_channels=tuple(block_out_channels),
                           layers_per_block=layers_per_block, token_dim=token_dim, n_null_tokens=n_tokens)
    controlnet = FilmScoreControlNet1D.from_unet(unet)
    head = FilmTokenHead(feature_dim=feature_dim, token_dim=token_dim, n_tokens=n_tokens, feature_layout=feature_layout)
    return {"unet": unet, "controlnet": controlnet, "film_head": head}


class LatentCache:
    """Scaled VAE posterior means per clip `(C, T / 4)`, computed once (the VAE is frozen), kept on the VAE's
    device."""

    def __init__(self, vae: MelVAE):
        self.vae = vae.eval()
        self.z: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def get(self, clip) -> torch.Tensor:
        if clip.id not in self.z:
            device = next(self.vae.parameters()).device
            mean, _ = self.vae.encode(torch.from_numpy(clip.log_mel.astype(np.float32))[None].to(device))
            self.z[clip.id] = mean[0] * self.vae.config.scaling_factor
        return self.z[clip.id]


def ldm_loss(models, noise_sched, latents: LatentCache, crops, rng: np.random.Generator, crop: int,
             feature_dim: int, train: bool = True, per_sample: bool = False) -> torch.Tensor:
    """v-prediction MSE of a batch of crops; `train`: with condition dropout; `per_sample`: one value per crop."""
    unet, controlnet, head = models["unet"], models["controlnet"], models["film_head"]
    b = len(crops)
    lat = crop // LATENT_DOWNSAMPLE
    z0 = torch.stack([latents.get(c)[:, s // LATENT_DOWNSAMPLE:s // LATENT_DOWNSAMPLE + lat] for c, s in crops])
    device = z0.device
    ctrl = control_batch(crops, crop).to(device)
    feats, has_pic = (x.to(device) for x in feature_batch(crops, crop, feature_dim))
    # Timesteps, noise and dropout draws come from a CPU generator, so a seed gives the same batch on any device.
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    t = torch.randint(0, noise_sched.config.num_train_timesteps, (b,), generator=g).to(device)
    eps = torch.randn(z0.shape, generator=g).to(device)
    zt = noise_sched.add_noise(z0, eps, t)
    target = noise_sched.get_velocity(z0, eps, t)
    u = (torch.rand(4, b, generator=g) if train else torch.ones(4, b)).to(device)
    use_pic = has_pic & (u[0] >= P_DROP_PICTURE)
    keep_ctrl = (u[1] >= P_DROP_CONTROL).float()
    ctrl = ctrl.clone()
    ctrl[u[2] < P_DROP_MELODY, :N_PITCH_CLASSES] = 0.0
    ctrl[u[3] < P_DROP_DYNAMICS, N_PITCH_CLASSES] = 0.0
    null = unet.null_context(b)
    tokens = torch.where(use_pic[:, None, None], head(feats), null)
    down, mid = controlnet(zt, t, tokens, ctrl)
    m = keep_ctrl[:, None, None]
    pred = unet(zt, t, tokens, tuple(d * m for d in down), mid * m)
    if per_sample:
        return (pred - target).pow(2).mean(dim=tuple(range(1, pred.ndim)))
    return F.mse_loss(pred, target)



def heldout_corpora(root: Path, mel: MelConfig | None = None,
                    where: dict[str, tuple[str, ...]] | None = None) -> dict[str, Corpus]:
    """The held-out split as a whole ("all") and, with a filter, under it ("subset"): what training should
    improve and what a tuning may cost elsewhere. Splits without a clip long enough for a crop are left out."""
    out = {}
    for name, w in (("all", None), ("subset", where)) if where else (("all", None),):
        try:
            corpus = Corpus(root, "heldout", mel or MelConfig(), where=w)
        except FilmscoreError:
            continue
        if any(c.log_mel.shape[1] >= CROP for c in corpus.clips):
            out[name] = corpus
    return out


@torch.no_grad()
def heldout_crop_losses(models: dict[str, nn.Module], corpus: Corpus, noise_sched, latents: LatentCache, *,
                        n_crops: int = 64, batch: int = 16, seed: int = 1234) -> list[float]:
    """`ldm_loss` per crop, without condition dropout, on a fixed set of crops, timesteps and noise from `corpus`
    (the held-out split, same filter): the same draw every call, so values of two models, or of one before and
    after training, compare crop by crop. The models are put in eval mode for it and then restored."""
    rng = np.random.default_rng(seed)
    feature_dim = models["film_head"].config.feature_dim
    was_training = {k: m.training for k, m in models.items()}
    for m in models.values():
        m.eval()
    losses = []
    for _ in range(max(1, n_crops // batch)):
        crops = corpus.sample_crops(rng, batch, CROP)
        losses += ldm_loss(models, noise_sched, latents, crops, rng, CROP, feature_dim, train=False,
                           per_sample=True).tolist()
    for k, m in models.items():
        m.train(was_training[k])
    return losses


def heldout_loss(models: dict[str, nn.Module], corpus: Corpus, noise_sched, latents: LatentCache, *, n_crops: int = 64,
                 batch: int = 16, seed: int = 1234) -> float:
    """The mean of `heldout_crop_losses`."""
    return round(float(np.mean(heldout_crop_losses(models, corpus, noise_sched, latents, n_crops=n_crops,
                                                   batch=batch, seed=seed))), 5)


def measure_heldout(run: Run, heldout: dict[str, Corpus] | None, models: dict[str, nn.Module], noise_sched,
                    latents: LatentCache) -> bool:
    """`heldout_loss` of `models` (the EMA weights, what ships) on each held-out corpus at the run's step, unless
    already measured there; appended to `run.extra["heldout_loss"]` ({name: [[step, loss], ...]}) and the log.
    True when something new was measured (then the caller saves the checkpoint)."""
    curves = run.extra.setdefault("heldout_loss", {})
    values = {}
    for name, held in (heldout or {}).items():
        curve = curves.setdefault(name, [])
        if not curve or curve[-1][0] != run.step:
            values[name] = heldout_loss(models, held, noise_sched, latents)
            curve.append([run.step, values[name]])
    if values:
        run.log(**{f"heldout_loss_{k}": v for k, v in values.items()})
    return bool(values)


def train_ldm(corpus: Corpus, vae: MelVAE, minutes: float, *, feature_dim: int, feature_layout: str,
              batch: int = 16, lr: float = 3e-4, max_steps: int | None = None, run: Run | None = None,
              progress=None, seed: int = 0, init: dict | None = None, model_kwargs: dict | None = None,
              heldout: dict[str, Corpus] | None = None, device: torch.device | str = "cpu",
              cooldown: bool = False) -> Run:
    """Train (or continue, from `run`'s checkpoint) for `minutes` or up to `max_steps` total steps. With
    `heldout` ({name: held-out corpus}, `heldout_corpora`), `heldout_loss` of the EMA models is logged at the start
    and the end of this call, so a continuation on a grown corpus shows what it changed. `device`: where the models
    and batches live (`loop.resolve_device`); checkpoints are device-independent.
    `cooldown`: decay the learning rate over this call (`loop.Budget`)."""
    from diffusers import DDPMScheduler

    run = run or Run("ldm")
    models = init or build_models(vae.config.latent_channels, feature_dim, feature_layout, **(model_kwargs or {}))
    state = run.load()
    if state is not None:
        cfgs = state["configs"]
        models = {"unet": FilmScoreUNet1D.from_config(cfgs["unet"]),
                  "controlnet": FilmScoreControlNet1D.from_config(cfgs["controlnet"]),
                  "film_head": FilmTokenHead.from_config(cfgs["film_head"])}
    device = torch.device(device)
    models = {k: m.to(device) for k, m in models.items()}
    vae = vae.to(device)
    params = [p for m in models.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    ema = {k: EMA(m, 0.999) for k, m in models.items()}
    if state is not None:
        restore(state, models, opt, ema)
        logger.info("ldm: resumed at step %d", run.step)
    noise_sched = DDPMScheduler(**DEFAULT_NOISE_SCHEDULE)
    latents = LatentCache(vae)
    rng = np.random.default_rng(seed + run.step)
    return ldm_steps(run, Budget(minutes, max_steps, cooldown=cooldown), corpus, models, models, opt, ema,
                     {k: e.model for k, e in ema.items()}, noise_sched, latents, rng, batch=batch, lr=lr,
                     warmup=WARMUP_STEPS, heldout=heldout, progress=progress)


def ldm_steps(run: Run, budget: Budget, corpus: Corpus, models: dict[str, nn.Module], trained: dict[str, nn.Module],
              opt: torch.optim.Optimizer, ema: dict, ema_models: dict[str, nn.Module], noise_sched,
              latents: LatentCache, rng: np.random.Generator, *, batch: int, lr: float, warmup: int,
              heldout: dict[str, Corpus] | None, progress=None) -> Run:
    """The loop of every stage trained on `ldm_loss` (the LDM, the ControlNet tuning): `models` make the loss,
    `trained` are stepped (with `ema`), `ema_models` (the weights that ship) give the held-out loss at the start
    and the end; linear warm-up over `warmup` steps."""
    feature_dim = models["film_head"].config.feature_dim

    def loss_fn():
        crops = corpus.sample_crops(rng, batch, CROP)
        return ldm_loss(models, noise_sched, latents, crops, rng, CROP, feature_dim), {}

    measure_heldout(run, heldout, ema_models, noise_sched, latents)
    run = run_steps(run, budget, corpus, trained, opt, ema, loss_fn, progress,
                    lr_at=lambda step: lr * min(1.0, (step + 1) / warmup))
    if measure_heldout(run, heldout, ema_models, noise_sched, latents):
        run.save(trained, opt, ema)
    return run
