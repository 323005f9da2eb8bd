"""Turn training checkpoints into a bundle: EMA weights of each stage, the VAE snapshot the LDM was trained on,
provenance (corpus, steps, hours, hardware) and held-out metrics; or a base bundle with a tuned ControlNet
(`assemble_tuned_bundle`)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..backends.cache import cpu_name
from ..data.index import corpus_summary
from ..errors import FilmscoreError
from ..models import (
    FilmScoreControlNet1D,
    FilmScoreUNet1D,
    FilmTokenHead,
    MelVAE,
    VocosVocoder,
)
from .corpus_data import DEFAULT_CORPUS, Corpus
from .loop import Run, model_config
from .train_vae import latent_scale

logger = logging.getLogger(__name__)


def ema_model(run: Run, name: str, cls):
    """Component `name` of `run`'s latest checkpoint with its EMA weights (the ones a bundle ships), and the
    checkpoint; (None, None) when the run has none."""
    state = run.load()
    if state is None:
        return None, None
    model = cls.from_config(state["configs"][name])
    model.load_state_dict(state["ema"][name])
    return model.eval(), state


def trained_vae(train_dir: Path, corpus: Corpus | None, fallback: MelVAE | None = None) -> MelVAE:
    """The VAE the LDM trains on: frozen once (ldm/vae_frozen.pt) so latents keep one scale across resumes.
    Without a frozen copy or a VAE checkpoint, `fallback` (a bundle's VAE, scale included) is frozen instead."""
    frozen = train_dir / "ldm" / "vae_frozen.pt"
    if frozen.is_file():
        state = torch.load(frozen, map_location="cpu", weights_only=False)
        # files frozen before model_config() dropped diffusers' private keys still carry `_use_default_values`,
        # which would reset the scaling factor to 1.0
        vae = MelVAE.from_config({k: v for k, v in state["config"].items() if not k.startswith("_")})
        vae.load_state_dict(state["weights"])
        return vae.eval().requires_grad_(False)
    vae, _ = ema_model(Run("vae", train_dir), "vae", MelVAE)
    if vae is None and fallback is not None:
        vae = fallback
    elif vae is None:
        raise FilmscoreError(f"{train_dir / 'vae'}: no VAE checkpoint; run `filmscore train vae` first")
    elif corpus is None:
        raise FilmscoreError("the VAE's latent scale is computed on the corpus: pass --corpus")
    else:
        vae.register_to_config(scaling_factor=latent_scale(vae, corpus))
    scale = vae.config.scaling_factor
    frozen.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model_config(vae), "weights": vae.state_dict()}, frozen)
    logger.info("froze VAE for the LDM (latent scaling factor %.4f)", scale)
    return vae.eval().requires_grad_(False)


def stage_provenance(run: Run) -> dict[str, Any]:
    """Steps and hours of a loaded run, its training sessions (`loop.run_steps` records them; checkpoints older than
    that have none) and the corpus sizes its log saw (the corpus may grow while a stage trains)."""
    out: dict[str, Any] = {"steps": run.step, "train_hours": round(run.seconds / 3600, 3)}
    hours = [float(r["hours"]) for r in run.read_log() if isinstance(r.get("hours"), (int, float))]
    if hours:
        out["corpus_hours_seen"] = [min(hours), max(hours)]
    if run.extra.get("sessions"):
        out["sessions"] = run.extra["sessions"]
    return out


def assemble_bundle(train_dir: Path, out: Path, *, corpus_dir: Path | None = None, fp16: bool = True,
                    metrics: dict[str, Any] | None = None, name: str = "filmscore-default",
                    version: str | None = None) -> dict[str, Any]:
    from ..bundle import save_bundle

    models: dict[str, torch.nn.Module] = {}
    # where it was assembled; each stage's `sessions` say on which host, device and threads it trained
    provenance: dict[str, Any] = {"hardware": f"{cpu_name()} ({os.cpu_count()} cores)", "torch": torch.__version__,
                                  "stages": {}}
    models["vae"] = trained_vae(train_dir, None if not corpus_dir else Corpus(corpus_dir))
    layout = None
    for stage, names in (("ldm", (("unet", FilmScoreUNet1D), ("controlnet", FilmScoreControlNet1D),
                                  ("film_head", FilmTokenHead))), ("vocoder", (("vocoder", VocosVocoder),))):
        run = Run(stage, train_dir)
        state = run.load()
        if state is None:
            if stage == "ldm":
                raise FilmscoreError(f"{run.dir}: no LDM checkpoint; run `filmscore train ldm` first")
            continue
        for cname, cls in names:
            m = cls.from_config(state["configs"][cname])
            m.load_state_dict(state["ema"][cname])
            models[cname] = m.eval()
        provenance["stages"][stage] = stage_provenance(run)
    vae_run = Run("vae", train_dir)
    if vae_run.load() is not None:
        provenance["stages"]["vae"] = stage_provenance(vae_run)
    layout = models["film_head"].config.feature_layout
    corpus_root = corpus_dir or DEFAULT_CORPUS
    # the corpus as it stands now; each stage's `corpus_hours_seen` says what it held while that stage trained
    provenance["corpus"] = {"path": str(corpus_root)}
    if (corpus_root / "index.jsonl").is_file():
        provenance["corpus"].update(corpus_summary(corpus_root))
    info = corpus_root / "corpus.json"
    if info.is_file():
        provenance["corpus"].update(json.loads(info.read_text()))
    stages = provenance["stages"]
    version = version or f"0.1.{stages['ldm']['steps']}" + (f"+voc.{stages['vocoder']['steps']}" if "vocoder" in stages
                                                            else "")
    save_bundle(out, models, name=name, version=version, film_layout=layout, provenance=provenance,
                metrics=metrics or {}, dtype=torch.float16 if fp16 else torch.float32)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 1e6
    return {"bundle": str(out), "version": version, "size_mb": round(size, 2), "components": sorted(models),
            "provenance": provenance}


def assemble_tuned_bundle(train_dir: Path, out: Path, *, base_dir: Path | None = None, fp16: bool | None = None,
                          name: str | None = None) -> dict[str, Any]:
    """A bundle = the base bundle of a ControlNet tuning run (`train_controlnet.py`) with the run's EMA ControlNet,
    LoRA adapters merged in: a plain bundle that every runtime and export reads unchanged. Its provenance keeps the
    base's and adds `controlnet_tuning`; its metrics start empty (`filmscore train evaluate` fills them).
    `fp16=None` keeps the base's storage (fp16 when all its components are): measured on the shipped bundle, fp16
    rounds a LoRA rank-8 tuning's weight change by 0.1 % of that change."""
    from ..bundle import DEFAULT_BUNDLE_DIR, save_bundle
    from .train_controlnet import STAGE, tuned_controlnet, tuning_provenance

    if Path(out).resolve() == DEFAULT_BUNDLE_DIR.resolve():
        raise FilmscoreError(f"{out}: a tuned bundle is written beside the shipped one, never over it; pass -o DIR")
    run = Run(STAGE, train_dir)
    controlnet, spec, base = tuned_controlnet(run, base_dir)
    models = dict(base.models)
    models["controlnet"] = controlnet
    provenance = dict(base.manifest.get("provenance", {}))
    provenance["controlnet_tuning"] = tuning_provenance(run, spec)
    provenance["controlnet_tuning"]["base"]["metrics"] = base.manifest.get("metrics", {})
    if fp16 is None:
        fp16 = all(c.get("dtype") == "float16" for c in base.manifest["components"].values())
    tag = f"lora{spec.rank}" if spec.method == "lora" else "full"
    version = f"{base.manifest.get('version')}+cn.{tag}.{run.step}"
    save_bundle(out, models, name=name or f"{base.name}-controlnet-tuned", version=version, mel=base.mel_config,
                noise_schedule=base.noise_schedule, film_layout=base.manifest.get("film_layout"),
                provenance=provenance, metrics={}, dtype=torch.float16 if fp16 else torch.float32)
    size = sum(f.stat().st_size for f in Path(out).iterdir() if f.is_file()) / 1e6
    return {"bundle": str(out), "version": version, "size_mb": round(size, 2), "components": sorted(models),
            "provenance": provenance}
