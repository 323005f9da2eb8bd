"""The export cache: where exported ONNX files and TensorRT engines of a bundle live, and what keys them.

Layout (DESIGN.md, "Model bundles": beside the bundle, keyed by its hash):

    <bundle dir>.exports/<bundle hash>/
        manifest.json                 what was exported: one entry per artefact (component, file, key, parity)
        parity.json                   parity of every component and of the whole pipeline against PyTorch
        speed.json                    seconds per denoising step per backend, per machine and thread count (auto)
        <component>.<key>.onnx        e.g. denoise_control.dyn-opset20-torch2.13.0-fp32.onnx
        <component>.<key>.engine      e.g. denoise_control.b1-12.l4-256-trt10.9-NVIDIA_H100.engine

A key names everything that makes an artefact stale: the shape profile, the exporter's (torch) or runtime's
(ONNX Runtime, TensorRT) version, the precision, and for engines the GPU. The bundle's hash is the folder. Where
the bundle's parent folder is read-only (a bundle inside an installed package), the cache falls back to
`~/.cache/filmscore/exports/<bundle hash>/`; `FILMSCORE_EXPORT_DIR` overrides the root.
This module is shared by `engine/backends` (which reads the cache) and `filmscore.export` (which writes it).
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import sidecar

MANIFEST = "manifest.json"
PARITY = "parity.json"
SPEED = "speed.json"
CACHE_SCHEMA = sidecar.EXPORTS.tag

# Components a bundle exports (the graph names double as file stems).
DENOISE_CONTROL = "denoise_control"  # fused ControlNet + UNet: one session call per guided pass with controls
DENOISE_PLAIN = "denoise_plain"  # UNet alone: the passes without controls
VAE_DECODER = "vae_decoder"
VOCODER = "vocoder"
FILM_HEAD = "film_head"
MEL = "mel"
FILM_BACKBONE = "film_backbone"
COMPONENTS = (DENOISE_CONTROL, DENOISE_PLAIN, VAE_DECODER, VOCODER, FILM_HEAD, MEL, FILM_BACKBONE)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]+", "_", text).strip("_")


def bundle_cache_dir(bundle_path: Path, bundle_hash: str, *, create: bool = False) -> Path:
    """The cache folder of one bundle version. With `create`, make it (falling back to the user cache when the
    bundle's parent is read-only)."""
    root_env = os.environ.get("FILMSCORE_EXPORT_DIR")
    if root_env:
        d = Path(root_env) / bundle_hash
    else:
        bundle_path = Path(bundle_path).resolve()
        d = bundle_path.with_name(bundle_path.name + ".exports") / bundle_hash
        fallback = Path.home() / ".cache" / "filmscore" / "exports" / bundle_hash
        if not d.is_dir() and (fallback.is_dir() or not os.access(bundle_path.parent, os.W_OK)):
            d = fallback
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def cpu_name() -> str:
    """The CPU model name (Linux /proc/cpuinfo), else platform's best guess: speed measurements are per machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The first CUDA GPU's name, or None (no torch CUDA, no GPU)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # a broken CUDA install counts as "no GPU" here
        return None
    return None


@dataclass(frozen=True)
class ArtefactKey:
    """What an exported file depends on besides the bundle. `profile`: "dyn" (dynamic batch and time) or the
    TensorRT optimisation profile, e.g. "b1-12.l4-256"; `runtime`: "torch2.13.0" for ONNX files (the exporter),
    "trt10.9" for engines; `precision`: fp32, fp16, int8; `opset` for ONNX; `device`: the GPU for engines."""

    component: str
    profile: str
    runtime: str
    precision: str = "fp32"
    opset: int | None = None
    device: str | None = None

    def tag(self) -> str:
        parts = [self.profile]
        if self.opset is not None:
            parts.append(f"opset{self.opset}")
        parts += [self.runtime, self.precision]
        if self.device:
            parts.append(self.device)
        return _safe("-".join(parts))

    def filename(self, suffix: str) -> str:
        return f"{self.component}.{self.tag()}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_json(path: Path) -> dict[str, Any]:
    """A cache JSON file, or {} when missing or unreadable (a broken cache is rebuilt, never fatal)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic write: a concurrent reader (a bridge worker) never sees half a manifest."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def speed_key(threads: int, device: str | None = None) -> str:
    """Speed figures are per machine (CPU or GPU name) and thread count."""
    return _safe(f"{device or cpu_name()}|threads{threads}")


def record_artefact(manifest: dict[str, Any], kind: str, key: ArtefactKey, file: str, **extra: Any) -> None:
    """Enter `file` (`kind` "onnx", "ort" or "engine", made for `key`) in `manifest`, replacing an older entry of the
    same file; `extra` (timings, sizes, inputs) is kept with it."""
    arts = [a for a in manifest.setdefault("artefacts", []) if a.get("file") != file]
    arts.append({"kind": kind, "file": file, "key": key.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 **extra})
    manifest["artefacts"] = arts


def has_artefact(cache_dir: Path, manifest: dict[str, Any], file: str) -> bool:
    """`file` exists in `cache_dir` and `manifest` lists it (a file without an entry is a leftover: made again)."""
    return (cache_dir / file).is_file() and any(a.get("file") == file for a in manifest.get("artefacts", []))


def find_artefact(cache_dir: Path, component: str, *, kind: str, precision: str = "fp32",
                  runtime_prefix: str | None = None, device: str | None = None) -> dict[str, Any] | None:
    """The manifest entry of an artefact (`kind` "onnx" or "engine") matching component, precision, runtime
    prefix (e.g. "torch" for ONNX files, "trt10.9" for engines) and device, whose file exists; else None."""
    manifest = read_json(cache_dir / MANIFEST)
    for entry in manifest.get("artefacts", []):
        key = entry.get("key", {})
        if entry.get("kind") != kind or key.get("component") != component or key.get("precision") != precision:
            continue
        if runtime_prefix is not None and not str(key.get("runtime", "")).startswith(runtime_prefix):
            continue
        if device is not None and key.get("device") != _safe(device):
            continue
        if (cache_dir / entry["file"]).is_file():
            return entry
    return None
