"""Bridge deliverables besides the audio: JSON sidecars, manifests and timelines, written atomically.

The audio itself (mastering, 24-bit WAV or BWF with `bext` and `iXML`) is the engine's: `filmscore.engine.audio.
delivery`, one path for `render`, `score` and the bridge's jobs. Every file here is written to a temporary file in
the target folder and renamed: a failed write leaves no half file, and a missing, unwritable or full destination is
a `DeliveryError` naming the path.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from filmscore.engine.errors import FilmscoreError


class DeliveryError(FilmscoreError):
    """A deliverable (WAV, sidecar, timeline) that cannot be written: missing or unwritable folder, full disk."""


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, fsync and rename. Raises
    `DeliveryError` naming `path` when the folder cannot be made or written or the disk is full."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a deliverable gets what open() would give it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise DeliveryError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def _umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> Path:
    """A JSON sidecar, atomically (see `atomic_write_bytes`)."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8"))
