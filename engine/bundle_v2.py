"""Bundle v2 on disk: `bundle.json` (schema `BUNDLE_SCHEMA_V2`) and one `.safetensors` per component, as v1
(engine/bundle.py), with v2's settings: the Mel front-end at the model rate (24 kHz, 100 frames/s), the stems the
UNet generates jointly, and the stereo placement (`stereo_v2.py`: side gain per stem).

Components: `vae` (one Mel VAE shared by the stems), `unet` (stems' latents stacked as channels), `controlnet`
(`ControlsV2` input), `film_head`, `global_cond` (mood, maestro style), `vocoder` (one, at the model rate).
v1's loader refuses this schema and v2's refuses v1's, so neither engine misreads the other's bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .audio.mel import MelConfig
from .bundle_manifest import BUNDLE_SCHEMA_V2, manifest_hash, read_manifest, sha256_file
from .constants import CONTROL_FRAME_RATE
from .errors import BundleError
from .models.controls_v2 import CONTROL_CHANNELS_V2
from .schedulers import DEFAULT_NOISE_SCHEDULE

COMPONENTS_V2 = ("vae", "unet", "controlnet", "film_head", "global_cond", "vocoder")
REQUIRED_V2 = ("vae", "unet", "controlnet", "global_cond")


@dataclass
class BundleV2:
    path: Path
    manifest: dict[str, Any]
    models: dict[str, torch.nn.Module] = field(default_factory=dict)

    @property
    def mel_config(self) -> MelConfig:
        return MelConfig.from_dict(self.manifest["mel"])

    @property
    def stems(self) -> tuple[str, ...]:
        return tuple(self.manifest["stems"])

    @property
    def side_gains(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.manifest["stereo"]["side_gain"].items()}

    @property
    def noise_schedule(self) -> dict[str, Any]:
        return dict(self.manifest.get("noise_schedule", DEFAULT_NOISE_SCHEDULE))

    @property
    def hash(self) -> str:
        return manifest_hash(self.manifest)


def save_bundle_v2(path: str | Path, models: dict[str, torch.nn.Module], *, name: str, version: str,
                   mel: MelConfig, stems: tuple[str, ...], side_gains: dict[str, float],
                   film_layout: str | None = None, provenance: dict[str, Any] | None = None,
                   metrics: dict[str, Any] | None = None, dtype: torch.dtype = torch.float32,
                   data: dict[str, Any] | None = None) -> Path:
    """Write a v2 bundle. `data`: the data manifest (engine/data/data_manifest.py: sources, licences, hours, the
    weights' licence), stored as bundle.json's `data` (not part of the bundle's hash: it describes, it is not
    read by the model)."""
    from safetensors.torch import save_file

    path = Path(path)
    for req in REQUIRED_V2:
        if req not in models:
            raise BundleError(f"a v2 bundle needs a {req!r} component")
    unknown = set(models) - set(COMPONENTS_V2)
    if unknown:
        raise BundleError(f"unknown v2 component(s) {sorted(unknown)}; known: {', '.join(COMPONENTS_V2)}")
    path.mkdir(parents=True, exist_ok=True)
    comps = {}
    for cname, model in models.items():
        fname = f"{cname}.safetensors"
        state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
                 for k, v in model.state_dict().items()}
        save_file(state, str(path / fname), metadata={"component": cname, "class": type(model).__name__})
        cfg = json.loads(json.dumps({k: v for k, v in dict(model.config).items() if not k.startswith("_")}))
        comps[cname] = {"class": type(model).__name__, "config": cfg, "file": fname,
                        "sha256": sha256_file(path / fname), "dtype": str(dtype).removeprefix("torch.")}
    manifest = {"schema": BUNDLE_SCHEMA_V2, "name": name, "version": version, "mel": mel.to_dict(),
                "noise_schedule": dict(DEFAULT_NOISE_SCHEDULE), "stems": list(stems),
                "stereo": {"method": "mid + hall side (engine/stereo_v2.py)", "side_gain": dict(side_gains)},
                "controls": {"channels": CONTROL_CHANNELS_V2, "layout": "engine/models/controls_v2.py"},
                "film_layout": film_layout, "components": comps, "provenance": provenance or {},
                "metrics": metrics or {}, "data": data}
    tmp = path / "bundle.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path / "bundle.json")
    return path


def load_bundle_v2(path: str | Path, verify: bool = True) -> BundleV2:
    """Load a v2 bundle, checking hashes, schema and that the components agree with each other and the settings."""
    from .bundle import check_vocoder_mel, load_components

    path = Path(path)
    mf = path / "bundle.json"
    manifest = read_manifest(path, BUNDLE_SCHEMA_V2)
    try:
        mel = MelConfig.from_dict(manifest["mel"])
        stems = manifest["stems"]
        manifest["stereo"]["side_gain"]
    except (KeyError, TypeError) as e:
        raise BundleError(f"{mf}: missing or bad v2 settings ({e})") from e
    if mel.sample_rate != mel.hop_length * CONTROL_FRAME_RATE:
        raise BundleError(f"{mf}: Mel hop {mel.hop_length} at {mel.sample_rate} Hz is not {CONTROL_FRAME_RATE} "
                          f"frames/s")
    models = load_components(path, manifest, verify)
    for req in REQUIRED_V2:
        if req not in models:
            raise BundleError(f"{mf}: no {req!r} component")
    vae, unet, cn = models["vae"], models["unet"], models["controlnet"]
    if vae.config.latent_channels * len(stems) != unet.config.in_channels:
        raise BundleError(f"{path}: UNet input {unet.config.in_channels} channels != {len(stems)} stems x VAE "
                          f"latent {vae.config.latent_channels}")
    if vae.config.n_mels != mel.n_mels:
        raise BundleError(f"{path}: VAE expects {vae.config.n_mels} Mel bands, bundle says {mel.n_mels}")
    if cn.config.control_channels != CONTROL_CHANNELS_V2:
        raise BundleError(f"{path}: ControlNet reads {cn.config.control_channels} control channels, v2 controls "
                          f"have {CONTROL_CHANNELS_V2}")
    voc = models.get("vocoder")
    if voc is not None:
        check_vocoder_mel(path, voc.config, manifest["mel"])
    return BundleV2(path, manifest, models)
