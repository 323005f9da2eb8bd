"""The command line as the CLI tests run it: `filmscore` in a child process with its output on pipes, and the tiny
bundle the picture-less CLI tests render with."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from filmscore.engine.bundle_testing import make_tiny_bundle

CLI_ARGV = (sys.executable, "-m", "filmscore.bridge.cli")
"""`filmscore` as this interpreter runs it, before its arguments."""


def run_cli(*args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout_s: float = 600) -> subprocess.CompletedProcess:
    """The CLI in a child process with stdout and stderr on pipes (not a terminal), as a script runs it; `env`
    replaces the environment when given; `timeout_s` bounds a hung command (it raises `TimeoutExpired`)."""
    return subprocess.run([*CLI_ARGV, *map(str, args)], capture_output=True, text=True, timeout=timeout_s, cwd=cwd,
                          env=env)


def cli_bundle(path: Path) -> Path:
    """The tiny bundle (8 film features, layout "test") that renders without picture, written to `path`."""
    return make_tiny_bundle(path, feature_dim=8, feature_layout="test")
