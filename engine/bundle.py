"""Model bundles: a directory with `bundle.json` and one `.safetensors` per component (DESIGN.md, "Model bundles").

bundle.json holds the schema version, name, version, Mel settings, noise schedule, and for each component its class,
diffusers config, file and sha256; plus training provenance and metrics. The loader verifies every hash and setting
and names the faulty file. The bundle's identity (`Bundle.hash`) keys the export/engine cache beside it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .audio.mel import MelConfig
from .bundle_manifest import (BUNDLE_SCHEMA, DEFAULT_BUNDLE_DIR, OPTIONAL_COMPONENTS,  # noqa: F401 (re-exported)
                              REQUIRED_COMPONENTS, bundle_dir, component_file, describe_bundle, manifest_hash,
                              read_manifest, sha256_file)
from .constants import MODEL_SAMPLE_RATE
from .errors import BundleError
from .schedulers import DEFAULT_NOISE_SCHEDULE

logger = logging.getLogger(__name__)

@dataclass
class Bundle:
    """A loaded bundle: its directory, parsed bundle.json and the models (eval mode, float32, CPU)."""

    path: Path
    manifest: dict[str, Any]
    models: dict[str, torch.nn.Module] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def mel_config(self) -> MelConfig:
        return MelConfig.from_dict(self.manifest["mel"])

    @property
    def noise_schedule(self) -> dict[str, Any]:
        return dict(self.manifest.get("noise_schedule", DEFAULT_NOISE_SCHEDULE))

    @property
    def hash(self) -> str:
        """sha256 over the component weights' hashes, their configs and the settings (`manifest_hash`)."""
        return manifest_hash(self.manifest)

    def info(self) -> dict[str, Any]:
        """A summary for `filmscore bundle info` (`bundle_manifest.describe_bundle`; hashes were checked on load)."""
        info = describe_bundle(self.path, verify=False)
        info["noise_schedule"] = self.noise_schedule
        return info


def save_bundle(path: str | Path, models: dict[str, torch.nn.Module], *, name: str, version: str,
                mel: MelConfig = MelConfig(), noise_schedule: dict[str, Any] | None = None,
                film_layout: str | None = None, provenance: dict[str, Any] | None = None,
                metrics: dict[str, Any] | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Write `models` (names from REQUIRED_COMPONENTS + OPTIONAL_COMPONENTS) as a bundle; fp16 halves the size."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for req in REQUIRED_COMPONENTS:
        if req not in models:
            raise BundleError(f"a bundle needs a {req!r} component")
    comps = {}
    for cname, model in models.items():
        if cname not in REQUIRED_COMPONENTS + OPTIONAL_COMPONENTS:
            raise BundleError(f"unknown component {cname!r}")
        fname = f"{cname}.safetensors"
        state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
                 for k, v in model.state_dict().items()}
        save_file(state, str(path / fname), metadata={"component": cname, "class": type(model).__name__})
        cfg = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
        comps[cname] = {"class": type(model).__name__, "config": _jsonable(cfg), "file": fname,
                        "sha256": sha256_file(path / fname), "dtype": str(dtype).removeprefix("torch.")}
    manifest = {"schema": BUNDLE_SCHEMA, "name": name, "version": version, "mel": mel.to_dict(),
                "noise_schedule": noise_schedule or dict(DEFAULT_NOISE_SCHEDULE), "film_layout": film_layout,
                "components": comps, "provenance": provenance or {}, "metrics": metrics or {}}
    tmp = path / "bundle.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(path / "bundle.json")
    return path


def update_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Replace a bundle's `metrics` (not part of its hash: weights and settings are unchanged)."""
    path = Path(path)
    manifest = read_manifest(path)
    manifest["metrics"] = _jsonable(metrics)
    tmp = path / "bundle.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path / "bundle.json")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _check_settings(path: Path, manifest: dict[str, Any]) -> None:
    try:
        mel = MelConfig.from_dict(manifest["mel"])
    except TypeError as e:
        raise BundleError(f"{path / 'bundle.json'}: bad Mel settings ({e})") from e
    if mel.sample_rate != MODEL_SAMPLE_RATE or mel.hop_length * 100 != MODEL_SAMPLE_RATE:
        raise BundleError(f"{path / 'bundle.json'}: Mel settings {mel} break the contract "
                          f"({MODEL_SAMPLE_RATE} Hz, 100 frames/s)")
    for req in REQUIRED_COMPONENTS:
        if req not in manifest["components"]:
            raise BundleError(f"{path / 'bundle.json'}: no {req!r} component")


def load_bundle(path: str | Path | None = None, verify: bool = True) -> Bundle:
    """Load a bundle (default: the one shipped in the package), verifying hashes and settings."""
    path = bundle_dir(path)
    manifest = read_manifest(path)
    _check_settings(path, manifest)
    models = load_components(path, manifest, verify)
    vae, unet = models["vae"], models["unet"]
    if vae.config.latent_channels != unet.config.in_channels:
        raise BundleError(f"{path}: VAE latent channels {vae.config.latent_channels} != UNet input channels "
                          f"{unet.config.in_channels}")
    if vae.config.n_mels != manifest["mel"]["n_mels"]:
        raise BundleError(f"{path}: VAE expects {vae.config.n_mels} Mel bands, bundle says {manifest['mel']['n_mels']}")
    voc = models.get("vocoder")
    if voc is not None:
        check_vocoder_mel(path, voc.config, manifest["mel"])
    logger.info("loaded bundle %s from %s", manifest.get("name"), path)
    return Bundle(path, manifest, models)


def load_components(path: Path, manifest: dict[str, Any], verify: bool = True) -> dict[str, torch.nn.Module]:
    """Every component the manifest lists, built from its config and loaded from its weights file (sha256-checked
    with `verify`), as float32 eval-mode models; the one loader of v1 and v2 bundles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import MODEL_CLASSES

    models: dict[str, torch.nn.Module] = {}
    for cname, comp in manifest["components"].items():
        f = component_file(path, cname, comp, verify)
        cls = MODEL_CLASSES.get(comp.get("class", ""))
        if cls is None:
            raise BundleError(f"{path / 'bundle.json'}: component {cname!r} has unknown class {comp.get('class')!r}")
        try:
            model = cls.from_config(comp["config"])
            state = load_file(str(f))
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        except (SafetensorError, RuntimeError, TypeError, KeyError, ValueError) as e:
            raise BundleError(f"{f}: cannot load component {cname!r} ({str(e).splitlines()[0]})") from e
        models[cname] = model.eval().requires_grad_(False)
    return models


def check_vocoder_mel(path: Path, cfg: Any, mel: dict[str, Any]) -> None:
    """The vocoder reads the bundle's Mels: its band count and hop, and (with the magnitude prior, which inverts
    the filterbank) the filterbank itself, must be the bundle's."""
    pairs = [("n_mels", "n_mels"), ("hop_length", "hop_length")]
    if cfg.get("mag_prior"):
        pairs += [("mel_n_fft", "n_fft"), ("sample_rate", "sample_rate"), ("f_min", "f_min"), ("f_max", "f_max")]
    for vkey, mkey in pairs:
        if cfg.get(vkey) != mel.get(mkey):
            raise BundleError(f"{path}: vocoder {vkey}={cfg.get(vkey)} but the bundle's Mel {mkey}={mel.get(mkey)}")


_LOADED: dict[tuple[str, float], Bundle] = {}


def load_bundle_cached(path: str | Path | None = None) -> Bundle:
    """Per-process cache (bridge workers render many cues with one bundle); reloads when bundle.json changes."""
    p = Path(path) if path is not None else DEFAULT_BUNDLE_DIR
    mf = p / "bundle.json"
    key = (str(p.resolve()), mf.stat().st_mtime if mf.is_file() else 0.0)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load_bundle(p)
    return _LOADED[key]
