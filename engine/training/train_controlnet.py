"""Stage 4 (optional): tune a bundle's Film Score ControlNet alone, all its weights or LoRA adapters (peft).

The seed method's option: the VAE, UNet and film token head of a trained bundle stay frozen, and only the
ControlNet learns, with the LDM's loss (`train_ldm.ldm_loss`: v-prediction, cosine schedule, the same condition
dropout) on a corpus or a subset of it (`Corpus(where=...)`, e.g. one orchestration). With `lora_rank`, peft's
LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") wraps the ControlNet's Linear and
Conv1d layers: each weight W becomes W + (alpha / r) B A with A, B of rank r, B starting at zero, so step 0 is the
base ControlNet exactly. Trained adapters are merged into the weights (`merge_and_unload`) when a bundle is written,
so runtimes and exports see a plain `FilmScoreControlNet1D`.

Checkpoints, EMA, JSONL log and resume are the shared ones (`loop.py`) in `<train_dir>/controlnet/`; the run's
settings (`TuningSpec`) sit in the checkpoint and a resume with other settings is refused.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..bundle import DEFAULT_BUNDLE_DIR, Bundle, load_bundle
from ..errors import FilmscoreError
from ..models import FilmScoreControlNet1D
from .corpus_data import Corpus
from .loop import EMA, Budget, Run, restore
from .train_ldm import LatentCache, ldm_steps

logger = logging.getLogger(__name__)

STAGE = "controlnet"
LORA_TARGETS = ("all", "attention")
LoraTargets = Literal["all", "attention"]
DEFAULT_LR = {"lora": 5e-4, "full": 5e-5}  # a fine-tune: full weights move 6x slower than the LDM's 3e-4
WARMUP_STEPS = 50


class ControlNetTuningError(FilmscoreError):
    """A ControlNet tuning run asked with settings that cannot work (bad rank, no ControlNet, resume mismatch)."""


@dataclass(frozen=True)
class TuningSpec:
    """What a tuning run is; stored in its checkpoint and, with the results, in the tuned bundle's provenance."""

    method: Literal["lora", "full"]
    base_bundle: str  # path of the bundle tuned
    base_hash: str  # `Bundle.hash` of that bundle
    base_version: str
    rank: int | None = None  # LoRA only
    alpha: float | None = None
    targets: str | None = None  # LoRA only: "all" or "attention"
    where: dict[str, list[str]] = field(default_factory=dict)  # corpus filter (empty: the whole train split)

    def same_run(self, other: TuningSpec) -> list[str]:
        """Names of the settings that differ from `other` (empty when `other` may resume this run)."""
        keys = ("method", "base_hash", "rank", "alpha", "targets", "where")
        return [k for k in keys if getattr(self, k) != getattr(other, k)]


def lora_target_names(controlnet: nn.Module, targets: LoraTargets = "all") -> list[str]:
    """Module names peft's LoRA wraps: "all" = every nn.Linear and nn.Conv1d of the ControlNet (the control
    embedding, resnet convs and their timestep projections, attention projections, zero convs); "attention" = the
    attention projections (to_q, to_k, to_v, to_out) only."""
    if targets not in LORA_TARGETS:
        raise ControlNetTuningError(f"LoRA targets {targets!r}: expected one of {', '.join(LORA_TARGETS)}")
    names = []
    for name, module in controlnet.named_modules():
        if targets == "attention":
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "to_out"):
                names.append(name)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            names.append(name)
    return names


def max_lora_rank(controlnet: nn.Module, names: list[str]) -> int:
    """The largest rank that is still low-rank for every target: min over layers of min(out, in * kernel)."""
    modules = dict(controlnet.named_modules())
    return min(min(w.shape[0], int(np.prod(w.shape[1:]))) for w in (modules[n].weight for n in names))


def check_lora(controlnet: nn.Module, rank: int, targets: LoraTargets = "all") -> list[str]:
    """The target module names, after checking that `rank` is a usable LoRA rank for them."""
    names = lora_target_names(controlnet, targets)
    limit = max_lora_rank(controlnet, names)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
        raise ControlNetTuningError(f"--lora {rank!r}: the rank must be an integer from 1 to {limit} (the "
                                    f"narrowest of the {len(names)} layers LoRA targets here has {limit} channels; "
                                    f"to tune all ControlNet weights, omit --lora)")
    return names


def add_lora(controlnet: FilmScoreControlNet1D, rank: int, targets: LoraTargets = "all",
             alpha: float | None = None) -> nn.Module:
    """Wrap `controlnet` (in place) with LoRA adapters of `rank`; returns peft's `PeftModel`, called like the
    ControlNet. Only the adapters' A and B matrices require grad."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise ControlNetTuningError("--lora needs peft: pip install 'filmscore[train]' (or omit --lora to tune all "
                                    "ControlNet weights)") from e
    names = check_lora(controlnet, rank, targets)
    cfg = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, target_modules=names,
                     lora_dropout=0.0, bias="none", init_lora_weights=True)
    return get_peft_model(controlnet, cfg)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merged_controlnet(model: nn.Module) -> FilmScoreControlNet1D:
    """A plain ControlNet with the adapters folded into its weights (a copy: `model` keeps its adapters)."""
    if isinstance(model, FilmScoreControlNet1D):
        return copy.deepcopy(model).eval().requires_grad_(False)
    return copy.deepcopy(model).merge_and_unload().eval().requires_grad_(False)


def tunable_controlnet(base: Bundle, spec: TuningSpec) -> nn.Module:
    """The bundle's ControlNet (a fresh float32 copy) made trainable as `spec` says."""
    if "controlnet" not in base.models:
        raise ControlNetTuningError(f"{base.path}: the bundle has no ControlNet to tune")
    src = base.models["controlnet"]
    controlnet = FilmScoreControlNet1D.from_config(src.config)
    controlnet.load_state_dict(src.state_dict())
    if spec.method == "full":
        return controlnet.train().requires_grad_(True)
    return add_lora(controlnet, spec.rank, spec.targets, spec.alpha)


def load_base(path: Path | None) -> Bundle:
    path = Path(path) if path is not None else DEFAULT_BUNDLE_DIR
    bundle = load_bundle(path)
    for name in ("unet", "controlnet", "film_head"):
        if name not in bundle.models:
            raise ControlNetTuningError(f"{path}: the bundle has no {name!r}; ControlNet tuning needs a trained "
                                        f"UNet, ControlNet and film head")
    return bundle


def make_spec(base: Bundle, lora_rank: int | None, targets: LoraTargets = "all",
              where: dict[str, tuple[str, ...]] | None = None) -> TuningSpec:
    where_json = {k: list(v) for k, v in (where or {}).items()}
    common = {"base_bundle": str(base.path), "base_hash": base.hash,
              "base_version": str(base.manifest.get("version")), "where": where_json}
    if lora_rank is None:
        return TuningSpec(method="full", **common)
    return TuningSpec(method="lora", rank=lora_rank, alpha=float(lora_rank), targets=targets, **common)


def check_resume(run: Run, spec: TuningSpec, resume: bool) -> dict[str, Any] | None:
    """The run's checkpoint state (None for a new run), after checking that `resume` and `spec` agree with it:
    a checkpoint is continued only with `resume=True` and the same spec (a tuning run is tied to its base bundle,
    rank and data); `resume=True` without one is an error."""
    state = run.load()
    if state is None and resume:
        raise ControlNetTuningError(f"--resume: no ControlNet tuning checkpoint in {run.dir}")
    if state is not None:
        saved = TuningSpec(**run.extra["tuning"])
        if not resume:
            raise ControlNetTuningError(
                f"{run.dir}: a {saved.method} tuning run is there (step {run.step}); pass --resume to continue it, "
                f"or another --train-dir (or remove that directory) to start over")
        diff = saved.same_run(spec)
        if diff:
            raise ControlNetTuningError(
                f"--resume: the checkpoint in {run.dir} was tuned with other settings ("
                + ", ".join(f"{k}: {getattr(saved, k)!r} there, {getattr(spec, k)!r} now" for k in diff) + ")")
    return state


def train_controlnet(corpus: Corpus, base: Bundle, spec: TuningSpec, minutes: float, *, batch: int = 16,
                     lr: float | None = None, max_steps: int | None = None, run: Run | None = None,
                     resume: bool = False, progress=None, seed: int = 0,
                     heldout: dict[str, Corpus] | None = None, device: torch.device | str = "cpu",
                     cooldown: bool = False) -> Run:
    """Tune `base`'s ControlNet on `corpus` for `minutes` (or up to `max_steps` total steps); a checkpoint in
    `run.dir` is continued as `check_resume` says. Only the ControlNet's trainable parameters reach the optimizer.
    With `heldout` ({name: held-out corpus}, `heldout_corpora`), `heldout_loss` of the EMA ControlNet on each is
    logged at the start and the end of this call (`run.extra["heldout_loss"]`: {name: [[step, loss], ...]}).
    `device`: where the models and batches live (`loop.resolve_device`); checkpoints are device-independent.
    `cooldown`: decay the learning rate over this call (`loop.Budget`)."""
    from diffusers import DDPMScheduler

    run = run or Run(STAGE)
    state = check_resume(run, spec, resume)
    device = torch.device(device)
    unet, head = base.models["unet"].eval().to(device), base.models["film_head"].eval().to(device)
    unet.requires_grad_(False)
    head.requires_grad_(False)
    total = sum(p.numel() for p in base.models["controlnet"].parameters())  # the ControlNet's own, no adapters
    controlnet = tunable_controlnet(base, spec).to(device)
    trainable = trainable_parameters(controlnet)
    lr = lr if lr is not None else DEFAULT_LR[spec.method]
    opt = torch.optim.AdamW([p for p in controlnet.parameters() if p.requires_grad], lr=lr,
                            weight_decay=0.0 if spec.method == "lora" else 1e-2)
    modules = {"controlnet": controlnet}
    ema = {"controlnet": EMA(controlnet, 0.999)}
    if state is not None:
        restore(state, modules, opt, ema)
        logger.info("controlnet: resumed at step %d", run.step)
    run.extra.update({"tuning": asdict(spec), "trainable_parameters": trainable, "controlnet_parameters": total,
                      "lr": lr, "batch": batch, "corpus": str(corpus.root), "clips": len(corpus.clips),
                      "corpus_hours": round(corpus.hours, 3)})
    models = {"unet": unet, "controlnet": controlnet, "film_head": head}
    noise_sched = DDPMScheduler(**base.noise_schedule)
    latents = LatentCache(base.models["vae"].to(device))
    rng = np.random.default_rng(seed + run.step)
    return ldm_steps(run, Budget(minutes, max_steps, cooldown=cooldown), corpus, models, modules, opt, ema,
                     {**models, "controlnet": ema["controlnet"].model}, noise_sched, latents, rng, batch=batch, lr=lr,
                     warmup=WARMUP_STEPS, heldout=heldout, progress=progress)


def tuned_controlnet(run: Run, base_dir: Path | None = None) -> tuple[FilmScoreControlNet1D, TuningSpec, Bundle]:
    """The run's EMA ControlNet with its adapters merged, its spec and its base bundle (from `base_dir`, default
    the path recorded in the checkpoint; its hash must match)."""
    state = run.load()
    if state is None:
        raise ControlNetTuningError(f"{run.dir}: no ControlNet tuning checkpoint; run `filmscore train controlnet`")
    spec = TuningSpec(**run.extra["tuning"])
    base = load_base(Path(base_dir) if base_dir is not None else Path(spec.base_bundle))
    if base.hash != spec.base_hash:
        raise ControlNetTuningError(f"{base.path}: bundle hash {base.hash}, but the checkpoint in {run.dir} was "
                                    f"tuned from {spec.base_hash}; pass the bundle it was tuned from")
    model = tunable_controlnet(base, spec)
    model.load_state_dict(state["ema"]["controlnet"])
    return merged_controlnet(model), spec, base


def tuning_provenance(run: Run, spec: TuningSpec) -> dict[str, Any]:
    """What the tuned bundle's bundle.json records about the tuning."""
    extra = run.extra
    out = {"method": spec.method, "base": {"bundle": spec.base_bundle, "hash": spec.base_hash,
                                           "version": spec.base_version},
           "steps": run.step, "train_hours": round(run.seconds / 3600, 3),
           "s_per_step": round(run.seconds / run.step, 3) if run.step else None,
           "trainable_parameters": extra.get("trainable_parameters"),
           "controlnet_parameters": extra.get("controlnet_parameters"), "lr": extra.get("lr"),
           "heldout_loss": extra.get("heldout_loss", {}),
           "sessions": extra.get("sessions", []),
           "batch": extra.get("batch"),
           "data": {"corpus": extra.get("corpus"), "where": spec.where, "clips": extra.get("clips"),
                    "hours": extra.get("corpus_hours")},
           "loss": "train_ldm.ldm_loss (v-prediction MSE, LDM condition dropout); VAE, UNet, film head frozen"}
    if spec.method == "lora":
        out["lora"] = {"rank": spec.rank, "alpha": spec.alpha, "targets": spec.targets, "merged": True}
    return out
