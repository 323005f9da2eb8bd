"""`write_atomically`: every file the engine delivers is written through a temporary file and renamed, so a reader
never sees half a file and a failure names the file at fault (a full disk says so)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import FilmscoreError


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temp file in the same directory, then rename: a reader never sees half a file. A failure is
    a FilmscoreError naming `path` (not the temp file); a full disk says so, whatever the writer raised (libsndfile
    reports ENOSPC as "System error")."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # soundfile's LibsndfileError is a RuntimeError
        _remove(tmp)
        full = getattr(e, "errno", None) == errno.ENOSPC or _free_bytes(path.parent) < (1 << 20)
        why = "no space left on device" if full else (getattr(e, "strerror", None) or str(e))
        raise FilmscoreError(f"{path}: cannot write ({why})") from None
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    """Remove a temp file if it is there; a folder that is missing or not a folder has none to remove."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _free_bytes(folder: Path) -> int:
    """Free bytes where `folder` is; unknown (a folder that is not there) counts as plenty."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62
