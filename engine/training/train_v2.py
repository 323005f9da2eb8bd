"""Bundle v2's training stages on corpus v2 (docs/training.md, "Bundle v2"): `vae`, `vocoder`, `ldm`.

- **vae**: one Mel VAE shared by the three stems (v1's `MelVAE` and v1's stage, `train_vae`, on `StemCorpus`),
  `V2_LATENT_CHANNELS` channels per stem, started from whitened PCA of stem patches.
- **vocoder**: v1's `VocosVocoder` and stage (`train_vocoder`) at the corpus rate: hop = rate / 100, iSTFT of 4 hops
  (40 ms, as v1's 640 points at 16 kHz), the magnitude prior over the 24 kHz filterbank, on stems with notes.
- **ldm**: v1's `FilmScoreUNet1D` denoising the three stems' latents stacked as channels (so they are generated
  jointly and stay coherent), v1's `FilmScoreControlNet1D` fed `ControlsV2` (melody with register, dynamics,
  harmony, rhythm), v1's `FilmTokenHead` and `GlobalConditionV2` (mood, maestro style). The UNet cross-attends to
  `[film tokens | mood token | style token]`. Condition dropout per group (`P_DROP`, one independent draw per group
  and crop) teaches every "group absent" prediction, so the sampler guides each group with its own scale.
  Randomness of step k (crops, timesteps, noise, dropout) is drawn from `(seed, k)` alone, so a run stopped and
  resumed from its checkpoint takes the same steps as one that never stopped.

Checkpoints, EMA, budget, logs are v1's (`loop.py`), under `DEFAULT_TRAIN_DIR_V2` (`<dir>/<stage>/`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import LATENT_DOWNSAMPLE
from ..models import FilmScoreControlNet1D, FilmScoreUNet1D, FilmTokenHead, GlobalConditionV2, MelVAE, VocosVocoder
from ..models.controls_v2 import CONTROL_CHANNELS_V2, CONTROL_GROUPS_V2, drop_groups
from ..schedulers import DEFAULT_NOISE_SCHEDULE
from .corpus_data import feature_batch
from .corpus_v2 import ClipV2, CorpusV2, StemCorpus
from .loop import EMA, Budget, Run, restore, run_steps

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_DIR_V2 = Path(os.environ.get("FILMSCORE_TRAIN_DIR_V2",
                                           Path.home() / ".cache" / "filmscore" / "train_v2"))
V2_LATENT_CHANNELS = 32  # per stem: three stems stack to 96 UNet channels (v1: one mix at 64)
CROP = 512  # Mel frames: 5.12 s = 128 latent frames
WARMUP_STEPS = 200
GLOBAL_GROUPS = ("picture", "mood", "style")
GROUPS = GLOBAL_GROUPS + tuple(CONTROL_GROUPS_V2)
P_DROP = {g: 0.15 for g in GROUPS}  # each group absent in 15 % of crops, independently
# Model sizes by name: "cpu" trains on this project's 2 cores (v1's sizes, engine/default_bundle/bundle.json, with
# the UNet's input widened to three stems); "gpu" is the larger model the same code trains where a CUDA GPU is lent
# (`--device cuda --model-size gpu`). A size is read when a stage starts without a checkpoint; a checkpoint keeps its
# own configs, and the run records the size's name (`run.extra["model_size"]`, carried into the bundle).
MODEL_SIZES: dict[str, dict[str, dict]] = {
    "cpu": {"vae": {"latent_channels": V2_LATENT_CHANNELS, "hidden_channels": 256, "refine_blocks": 3},
            "vocoder": {"dim": 256, "n_blocks": 6},
            "ldm": {"block_out_channels": (128, 192, 256), "layers_per_block": 1, "token_dim": 128, "heads": 4}},
    # ~2.2x the parameters (44 M): as large as the 100 MB bundle limit allows in fp16
    "gpu": {"vae": {"latent_channels": V2_LATENT_CHANNELS, "hidden_channels": 384, "refine_blocks": 3},
            "vocoder": {"dim": 384, "n_blocks": 6},
            "ldm": {"block_out_channels": (160, 256, 320), "layers_per_block": 2, "token_dim": 192, "heads": 8}},
}
MODEL_CLASSES_V2 = {"unet": FilmScoreUNet1D, "controlnet": FilmScoreControlNet1D, "film_head": FilmTokenHead,
                    "global_cond": GlobalConditionV2}


# -- models -----------------------------------------------------------------------------------------------------

def build_v2_models(latent_channels: int, n_stems: int, feature_dim: int, feature_layout: str,
                    masters: tuple[str, ...], *, token_dim: int = 128, n_tokens: int = 4,
                    block_out_channels=(128, 192, 256), layers_per_block: int = 1, heads: int = 4
                    ) -> dict[str, nn.Module]:
    """The LDM side of bundle v2. The ControlNet starts as a copy of the UNet's encoder (zero convs at 0)."""
    unet = FilmScoreUNet1D(in_channels=latent_channels * n_stems, block_out_channels=tuple(block_out_channels),
                           layers_per_block=layers_per_block, token_dim=token_dim, n_null_tokens=n_tokens,
                           heads=heads)
    controlnet = FilmScoreControlNet1D.from_unet(unet, control_channels=CONTROL_CHANNELS_V2)
    head = FilmTokenHead(feature_dim=feature_dim, token_dim=token_dim, n_tokens=n_tokens,
                         feature_layout=feature_layout)
    glob = GlobalConditionV2(masters=tuple(masters), token_dim=token_dim)
    return {"unet": unet, "controlnet": controlnet, "film_head": head, "global_cond": glob}


def style_vocabulary(corpus: CorpusV2) -> tuple[str, ...]:
    """The masters the style embedding has rows for: every composer label the corpus sources can yield
    (`music21_source.list_masters`) and any other in `corpus`, so an LDM started on a young corpus still has a row
    for each master the build adds later."""
    from ..data.music21_source import list_masters

    return tuple(sorted(set(list_masters()) | set(corpus.masters())))


def v2_vocoder(mel, dim: int = 256, n_blocks: int = 6) -> VocosVocoder:
    """v1's vocoder at `mel`'s rate (module docstring)."""
    return VocosVocoder(n_mels=mel.n_mels, dim=dim, n_blocks=n_blocks, n_fft=4 * mel.hop_length,
                        hop_length=mel.hop_length, mag_prior=True, mel_n_fft=mel.n_fft, sample_rate=mel.sample_rate,
                        f_min=mel.f_min, f_max=mel.f_max, bin_phase_advance=True)


def v2_vae(stems: StemCorpus, latent_channels: int = V2_LATENT_CHANNELS, hidden_channels: int = 256,
           refine_blocks: int = 3, max_clips: int = 200) -> tuple[MelVAE, float]:
    """A fresh shared stem VAE, linear maps set to whitened PCA of stem patches; (vae, PCA log-Mel L1)."""
    vae = MelVAE(n_mels=stems.mel.n_mels, latent_channels=latent_channels, hidden_channels=hidden_channels,
                 refine_blocks=refine_blocks)
    l1 = vae.init_from_patches([np.asarray(c.log_mel) for c in stems.clips[:max_clips]])
    return vae, l1


# -- stages that need audio only ----------------------------------------------------------------------------------

def train_vae_v2(corpus: CorpusV2, minutes: float, *, run: Run | None = None, init: MelVAE | None = None,
                 model_size: str = "cpu", **kw) -> Run:
    """v1's VAE stage on every stem of `corpus`; keyword arguments as `train_vae`."""
    from .train_vae import train_vae

    run = run or Run("vae", DEFAULT_TRAIN_DIR_V2)
    stems = StemCorpus(corpus)
    if init is None and not run.ckpt.is_file():
        run.extra["model_size"] = model_size
        init, l1 = v2_vae(stems, **MODEL_SIZES[model_size]["vae"])
        run.extra["pca_init_l1"] = l1
        logger.info("vae v2: initialised from PCA of stem patches (log-Mel L1 %.3f)", l1)
    return train_vae(stems, minutes, run=run, init=init, **kw)


def train_vocoder_v2(corpus: CorpusV2, minutes: float, *, run: Run | None = None, init: VocosVocoder | None = None,
                     model_size: str = "cpu", **kw) -> Run:
    """v1's vocoder stage at the corpus rate on every stem with notes; keyword arguments as `train_vocoder`."""
    from .train_vocoder import train_vocoder

    run = run or Run("vocoder", DEFAULT_TRAIN_DIR_V2)
    if init is None and not run.ckpt.is_file():
        run.extra["model_size"] = model_size
        init = v2_vocoder(corpus.mel, **MODEL_SIZES[model_size]["vocoder"])
    return train_vocoder(StemCorpus(corpus, present_only=True), minutes, run=run,
                         init=init if init is not None else v2_vocoder(corpus.mel), **kw)


# -- the latent diffusion stage -----------------------------------------------------------------------------------

class LatentCacheV2:
    """Scaled VAE posterior means of a clip's stems stacked as channels `(n_stems * C, T / 4)`, computed once (the
    VAE is frozen), on the VAE's device."""

    def __init__(self, vae: MelVAE):
        self.vae = vae.eval()
        self.z: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def get(self, clip: ClipV2) -> torch.Tensor:
        if clip.id not in self.z:
            device = next(self.vae.parameters()).device
            mels = torch.from_numpy(np.stack([np.asarray(m, np.float32) for m in clip.mels])).to(device)
            mean, _ = self.vae.encode(mels)  # (n_stems, C, L)
            self.z[clip.id] = (mean * self.vae.config.scaling_factor).reshape(-1, mean.shape[-1])
        return self.z[clip.id]


def condition_keep(g: torch.Generator, b: int, train: bool = True) -> dict[str, torch.Tensor]:
    """`{group: (B,) bool}`: True where the group is kept. Training: each group dropped with `P_DROP[group]`,
    independently; otherwise everything kept."""
    if not train:
        return {k: torch.ones(b, dtype=torch.bool) for k in GROUPS}
    u = torch.rand(len(GROUPS), b, generator=g)
    return {k: u[i] >= P_DROP[k] for i, k in enumerate(GROUPS)}


def global_tokens(models: dict[str, nn.Module], feats: torch.Tensor | None, use_pic: torch.Tensor,
                  mood: torch.Tensor, use_mood: torch.Tensor, master: torch.Tensor) -> torch.Tensor:
    """`(B, K + 2, D)`: film tokens (or the UNet's null tokens where `use_pic` is False), mood, style."""
    unet, head = models["unet"], models["film_head"]
    b = mood.shape[0]
    null = unet.null_context(b)
    film = torch.where(use_pic[:, None, None], head(feats), null) if feats is not None else null
    return torch.cat([film, models["global_cond"](mood, use_mood, master)], dim=1)


def batch_conditions(models: dict[str, nn.Module], crops: list[tuple[ClipV2, int]], crop: int, feature_dim: int,
                     keep: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens `(B, K + 2, D)`, ControlNet input `(B, CONTROL_CHANNELS_V2, crop)`) of `crops` with the groups
    `keep` says are absent left out; a crop without picture / mood / a known master has that group absent."""
    glob: GlobalConditionV2 = models["global_cond"]
    feats, has_pic = feature_batch(crops, crop, feature_dim)
    moods = [c.mood_at(s, crop) for c, s in crops]
    mood = torch.from_numpy(np.stack([m if m is not None else np.full(3, 0.5) for m in moods]).astype(np.float32))
    has_mood = torch.tensor([m is not None for m in moods])
    known = set(glob.config.masters)
    master = torch.tensor([glob.master_index(c.master) if c.master in known else 0 for c, _ in crops])
    master = torch.where(keep["style"], master, torch.zeros_like(master))
    tokens = global_tokens(models, feats.to(device), (has_pic & keep["picture"]).to(device), mood.to(device),
                           (has_mood & keep["mood"]).to(device), master.to(device))
    ctrl = torch.from_numpy(np.stack([c.control_input[:, s:s + crop] for c, s in crops]).astype(np.float32))
    ctrl = drop_groups(ctrl, {k: keep[k] for k in CONTROL_GROUPS_V2}).to(device)
    return tokens, ctrl


def ldm_loss_v2(models: dict[str, nn.Module], noise_sched, latents: LatentCacheV2, crops, g: torch.Generator,
                crop: int, train: bool = True, per_sample: bool = False) -> torch.Tensor:
    """v-prediction MSE over the stacked stem latents of `crops`; `train`: with condition dropout; `g`: the CPU
    generator every draw comes from (timesteps, noise, dropout), so a seed means the same batch on any device."""
    unet, controlnet = models["unet"], models["controlnet"]
    b = len(crops)
    lat = crop // LATENT_DOWNSAMPLE
    z0 = torch.stack([latents.get(c)[:, s // LATENT_DOWNSAMPLE:s // LATENT_DOWNSAMPLE + lat] for c, s in crops])
    device = z0.device
    t = torch.randint(0, noise_sched.config.num_train_timesteps, (b,), generator=g).to(device)
    eps = torch.randn(z0.shape, generator=g).to(device)
    zt = noise_sched.add_noise(z0, eps, t)
    target = noise_sched.get_velocity(z0, eps, t)
    keep = condition_keep(g, b, train)
    tokens, ctrl = batch_conditions(models, crops, crop, models["film_head"].config.feature_dim, keep, device)
    down, mid = controlnet(zt, t, tokens, ctrl)
    pred = unet(zt, t, tokens, down, mid)
    if per_sample:
        return (pred - target).pow(2).mean(dim=tuple(range(1, pred.ndim)))
    return F.mse_loss(pred, target)


def step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """The draws of training step `step`: a function of (seed, step) only (resume = uninterrupted)."""
    rng = np.random.default_rng([seed, step])
    return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))


@torch.no_grad()
def heldout_loss_v2(models: dict[str, nn.Module], corpus: CorpusV2, noise_sched, latents: LatentCacheV2, *,
                    n_crops: int = 32, batch: int = 8, seed: int = 1234, crop: int = CROP) -> float:
    """Mean `ldm_loss_v2` without dropout on a fixed draw of held-out crops, timesteps and noise (the same every
    call: values before and after training compare crop by crop). Models are restored to their mode after."""
    was = {k: m.training for k, m in models.items()}
    for m in models.values():
        m.eval()
    losses = []
    for i in range(max(1, n_crops // batch)):
        rng, g = step_generators(seed, i)
        crops = corpus.sample_crops(rng, batch, crop)
        losses += ldm_loss_v2(models, noise_sched, latents, crops, g, crop, train=False, per_sample=True).tolist()
    for k, m in models.items():
        m.train(was[k])
    return round(float(np.mean(losses)), 5)


def heldout_corpus_v2(root: Path, mel=None) -> CorpusV2 | None:
    """The held-out split, or None while it has no clip long enough for a crop."""
    from ..errors import FilmscoreError

    try:
        corpus = CorpusV2(root, "heldout", mel)
    except FilmscoreError:
        return None
    return corpus if any(c.n_frames >= CROP for c in corpus.clips) else None


def train_ldm_v2(corpus: CorpusV2, vae: MelVAE, minutes: float, *, feature_dim: int, feature_layout: str,
                 batch: int = 16, lr: float = 3e-4, max_steps: int | None = None, run: Run | None = None,
                 progress=None, seed: int = 0, init: dict[str, nn.Module] | None = None,
                 model_size: str = "cpu", heldout: CorpusV2 | None = None,
                 device: torch.device | str = "cpu", cooldown: bool = False, crop: int = CROP,
                 clock=None) -> Run:
    """Train (or continue, from `run`'s checkpoint) the UNet, ControlNet, film head and global conditions on the
    frozen `vae`'s stem latents for `minutes` or up to `max_steps` total steps. The style vocabulary is
    `style_vocabulary` when the models are built. With `heldout`, `heldout_loss_v2` of the EMA models is logged at
    the start and the end of the call."""
    from diffusers import DDPMScheduler

    run = run or Run("ldm", DEFAULT_TRAIN_DIR_V2)
    state = run.load()
    if state is not None:
        models = {k: cls.from_config(state["configs"][k]) for k, cls in MODEL_CLASSES_V2.items()}
    else:
        models = init or build_v2_models(vae.config.latent_channels, len(corpus.stems), feature_dim, feature_layout,
                                         style_vocabulary(corpus), **MODEL_SIZES[model_size]["ldm"])
        run.extra["model_size"] = model_size if init is None else "given"
    if models["unet"].config.in_channels != vae.config.latent_channels * len(corpus.stems):
        raise ValueError(f"UNet input {models['unet'].config.in_channels} channels != {len(corpus.stems)} stems x "
                         f"{vae.config.latent_channels} VAE latent channels")
    device = torch.device(device)
    models = {k: m.to(device) for k, m in models.items()}
    vae = vae.to(device)
    opt = torch.optim.AdamW([p for m in models.values() for p in m.parameters()], lr=lr, weight_decay=1e-2)
    ema = {k: EMA(m, 0.999) for k, m in models.items()}
    if state is not None:
        restore(state, models, opt, ema)
        logger.info("ldm v2: resumed at step %d", run.step)
    run.extra.update({"stems": list(corpus.stems), "crop": crop, "batch": batch, "p_drop": P_DROP})
    noise_sched = DDPMScheduler(**DEFAULT_NOISE_SCHEDULE)
    latents = LatentCacheV2(vae)
    ema_models = {k: e.model for k, e in ema.items()}

    def measure() -> bool:
        if heldout is None:
            return False
        curve = run.extra.setdefault("heldout_loss", {}).setdefault("all", [])
        if curve and curve[-1][0] == run.step:
            return False
        value = heldout_loss_v2(ema_models, heldout, noise_sched, latents, crop=crop)
        curve.append([run.step, value])
        run.log(heldout_loss_all=value)
        return True

    def loss_fn():
        rng, g = step_generators(seed, run.step)
        crops = corpus.sample_crops(rng, batch, crop)
        return ldm_loss_v2(models, noise_sched, latents, crops, g, crop), {}

    measure()
    run = run_steps(run, Budget(minutes, max_steps, cooldown=cooldown, clock=clock), corpus, models, opt, ema,
                    loss_fn, progress, lr_at=lambda step: lr * min(1.0, (step + 1) / WARMUP_STEPS))
    if measure():
        run.save(models, opt, ema)
    return run
