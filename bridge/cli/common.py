"""Small pieces the subcommands share: the `--json` flag, JSON summaries on stdout, progress bars on stderr."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from filmscore.engine.errors import RequestError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stderr_console = Console(stderr=True)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")


def emit(args: argparse.Namespace, summary: dict[str, Any], human: str | Callable[[], None]) -> None:
    """With --json print `summary` as one JSON document on stdout; else print the human form."""
    if getattr(args, "json", False):
        json.dump(summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif callable(human):
        human()
    else:
        print(human)


def progress_bar(enabled: bool = True) -> Progress:
    """A rich progress bar on stderr (stdout stays clean for --json); `enabled=False` turns it off (--json).
    rich itself draws no live bar when stderr is not a terminal."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=stderr_console, transient=True,
                    disable=not enabled)


def parse_hits(text: str) -> tuple[float, ...]:
    if not text.strip():
        return ()
    try:
        hits = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as e:
        raise RequestError(f"--hits {text!r}: expected seconds separated by commas") from e
    if any(not math.isfinite(h) or h < 0 for h in hits):
        raise RequestError(f"--hits {text!r}: hit points must be finite seconds >= 0")
    return hits
