"""A small or read-only file system for a test's child process: a fresh tmpfs mounted in a user+mount namespace
(`unshare -rm`), so a full or read-only disk is a real one and nothing outside the namespace sees it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def run_in_small_fs(folder: Path, size: str, args: list[str], ro: bool = False) -> subprocess.CompletedProcess:
    """Run `args` in a user+mount namespace where `folder` is a fresh tmpfs of `size` (read-only with `ro`); the
    test skips, naming why, where this machine cannot mount one."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): cannot mount a small file system for this test")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs '{folder}'"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")
    opts = f"size={size}" + (",ro" if ro else "")
    script = f'mount -t tmpfs -o {opts} tmpfs "$0" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, str(folder), *args], capture_output=True, text=True,
                          timeout=600)
