"""What a server can do, for the `hello` reply: runtime backends present, the maestro library, the model bundle.

Computed once at start-up without importing torch (the server process stays light; workers load the engine).
Each probe reports what it found or why it found nothing; it never invents an entry.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from filmscore.engine.errors import FilmscoreError

log = logging.getLogger(__name__)


def backends() -> dict[str, Any]:
    """{"torch": bool, "ort": [execution providers], "trt": bool}: the runtimes importable here."""
    out: dict[str, Any] = {"torch": importlib.util.find_spec("torch") is not None, "ort": [], "trt": False}
    if importlib.util.find_spec("onnxruntime") is not None:
        try:
            import onnxruntime

            out["ort"] = list(onnxruntime.get_available_providers())
        except Exception as e:  # noqa: BLE001 - a broken install is reported, not fatal
            log.warning("onnxruntime is installed but does not load: %s", e)
    out["trt"] = importlib.util.find_spec("tensorrt") is not None
    return out


def maestros() -> tuple[list[dict[str, Any]] | None, str | None]:
    """(the maestro library: one {name, display, era, license, themes: [...]} per master, None), or (None, why it
    is not available)."""
    try:
        from filmscore.engine.controls.maestros import masters
    except ImportError as e:
        return None, f"the maestro library is not available in this engine ({e})"
    try:
        items = masters()
    except FilmscoreError as e:
        return None, str(e)
    return [{"name": m.name, "display": m.display, "era": m.era, "license": m.license,
             "themes": [{"id": t.id, "work": t.work, "bars": t.bars, "key": t.key, "meter": t.meter,
                         "tempo_bpm": t.tempo_bpm, "duration_s": round(t.duration_s, 3), "n_notes": t.n_notes,
                         "source": t.source} for t in m.themes]} for m in items], None


def bundle_info(bundle: Path | None) -> dict[str, Any]:
    """Name, version and path of the bundle workers render with, read from its `bundle.json`."""
    if bundle is None:
        spec = importlib.util.find_spec("filmscore.engine")
        if spec is None or spec.origin is None:
            return {"path": None, "error": "filmscore.engine not found"}
        bundle = Path(spec.origin).parent / "default_bundle"
    manifest = bundle / "bundle.json"
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        return {"path": str(bundle), "error": f"no readable bundle.json ({e.__class__.__name__})"}
    return {"path": str(bundle), "name": meta.get("name"), "version": meta.get("version")}
