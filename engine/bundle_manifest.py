"""A bundle's manifest without its weights: `bundle.json`, the component files' hashes and tensor sizes.

Torch-free on purpose: `filmscore bundle info` and the render's up-front checks read a bundle through this module in
a fraction of a second, while `bundle.load_bundle` (which builds the models) imports torch and reads every weight.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from . import sidecar
from .errors import BundleError

BUNDLE_SCHEMA = sidecar.BUNDLE.tag
BUNDLE_SCHEMA_V2 = sidecar.BUNDLE_V2.tag  # engine/bundle_v2.py; here so a cheap reader can tell them apart
_SCHEMAS = {BUNDLE_SCHEMA: sidecar.BUNDLE, BUNDLE_SCHEMA_V2: sidecar.BUNDLE_V2}
REQUIRED_COMPONENTS = ("vae", "unet")
OPTIONAL_COMPONENTS = ("controlnet", "film_head", "vocoder")
DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parent / "default_bundle"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_dir(path: str | Path | None) -> Path:
    """The bundle folder a request names (None: the shipped default); BundleError when the default is missing."""
    p = Path(path) if path is not None else DEFAULT_BUNDLE_DIR
    if path is None and not (p / "bundle.json").is_file():
        raise BundleError("no default bundle installed; pass --bundle DIR (a trained bundle directory)")
    return p


def schema_of(path: str | Path | None) -> str:
    """`BUNDLE_SCHEMA_V2` when the bundle.json at `path` (default bundle when None) is tagged as a v2 bundle (any
    minor), else `BUNDLE_SCHEMA`: which reader to check it with, from the file's tag alone (no weights read). An
    unreadable file counts as v1, whose reader then names what is wrong."""
    try:
        tag = sidecar.parse_tag(json.loads((bundle_dir(path) / "bundle.json").read_text()).get(sidecar.KEY))
    except (OSError, ValueError, AttributeError, BundleError):
        return BUNDLE_SCHEMA
    v2 = sidecar.BUNDLE_V2
    return BUNDLE_SCHEMA_V2 if tag is not None and tag[:2] == (v2.kind, v2.major) else BUNDLE_SCHEMA


def read_manifest(path: Path, schema: str = BUNDLE_SCHEMA) -> dict[str, Any]:
    """The parsed bundle.json of the bundle at `path`, checked to be of `schema` (v1's unless a reader of another
    bundle format asks for its own) and to hold the settings and components every bundle has."""
    mf = path / "bundle.json"
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle directory")
    if not mf.is_file():
        raise BundleError(f"{path}: not a bundle (no bundle.json)")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BundleError(f"{mf}: unreadable ({e})") from e
    got, want = sidecar.parse_tag(manifest.get(sidecar.KEY)), _SCHEMAS[schema]
    if got is None or got[:2] != (want.kind, want.major):  # v1 and v2 are two formats, not versions of one
        raise BundleError(f"{mf}: schema {manifest.get(sidecar.KEY)!r}, this reader takes {schema!r}")
    try:  # the same major: a newer minor (keys added) reads as this one (engine/sidecar.py)
        manifest = sidecar.read(want, manifest, mf)
    except sidecar.SchemaError as e:
        raise BundleError(str(e)) from None
    for key in ("mel", "components"):
        if key not in manifest:
            raise BundleError(f"{mf}: missing {key!r}")
    return manifest


def manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 over the component weights' hashes, their configs and the settings: changes whenever any weight,
    model setting (e.g. the VAE's latent scale) or Mel setting does."""
    ident = {k: manifest[k] for k in ("schema", "mel", "noise_schedule") if k in manifest}
    ident["components"] = {n: {"sha256": c["sha256"], "config": c.get("config")}
                           for n, c in sorted(manifest["components"].items())}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def safetensors_elements(path: Path) -> int:
    """Number of weights stored in a .safetensors file, from its JSON header alone (8-byte little-endian length,
    then the header): what the component's parameters and persistent buffers hold, with no tensor read."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: not a readable safetensors file ({e})") from e
    total = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for d in t["shape"]:
            count *= int(d)
        total += count
    return total


def component_file(path: Path, name: str, comp: dict[str, Any], verify: bool = True) -> Path:
    """The weights file of component `name` of the bundle at `path`; BundleError when it is missing or (`verify`)
    its sha256 is not the manifest's."""
    f = path / comp.get("file", "")
    if not f.is_file():
        raise BundleError(f"{f}: component {name!r} file is missing")
    if verify and sha256_file(f) != comp.get("sha256"):
        raise BundleError(f"{f}: sha256 does not match bundle.json (corrupted or replaced file)")
    return f


def describe_bundle(path: str | Path | None = None, *, verify: bool = True) -> dict[str, Any]:
    """What a bundle holds, for `filmscore bundle info`: name, version, hash, settings, each component's class,
    dtype, stored weights and sha256 (checked against its file when `verify`), provenance and metrics."""
    p = bundle_dir(path)
    manifest = read_manifest(p, schema_of(p))  # a v2 bundle is described too, checked against its own schema
    comps = {}
    for name, comp in manifest["components"].items():
        f = component_file(p, name, comp, verify)
        comps[name] = {"class": comp["class"], "file": comp["file"], "sha256": comp["sha256"],
                       "dtype": comp.get("dtype", "float32"), "parameters": safetensors_elements(f),
                       "bytes": f.stat().st_size}
    return {"name": str(manifest.get("name", p.name)), "version": manifest.get("version"), "path": str(p),
            "hash": manifest_hash(manifest), "schema": manifest["schema"], "mel": manifest["mel"],
            "noise_schedule": manifest.get("noise_schedule"), "film_layout": manifest.get("film_layout"),
            "components": comps, "provenance": manifest.get("provenance", {}),
            "metrics": manifest.get("metrics", {}), "verified": verify, "stems": manifest.get("stems"),
            "data": manifest.get("data")}
