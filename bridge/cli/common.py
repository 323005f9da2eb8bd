"""Small pieces the subcommands share: the `--json` and `--overwrite` flags, help that shows defaults, JSON summaries on
stdout, progress on stderr (a bar on a terminal, plain lines otherwise), the outputs rule.

The outputs rule, for every command that writes files: an output is never one of the command's inputs (compared as
files, not as spellings); an existing output, or a side file it would replace, is kept unless `--overwrite` is given
(the bridge's `overwrite` flag is the same rule); the output folder must take a real file before any work starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from filmscore.bridge.option_flags import add_render_options, given_options, options_from_args  # noqa: F401
from filmscore.engine.errors import RequestError
from filmscore.engine.preflight import OutputError, probe_writable, refuse_input_overwrite
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stderr_console = Console(stderr=True, soft_wrap=True)  # a message stays one line in a log (rich wraps at 80 there)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows each option's default as "(default: X)", unless its help already says it, or the default is
    None or False (an absent option: its help says what happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        absent = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if absent or "default" in help_text or not action.option_strings:
            return help_text
        return super()._get_help_string(action)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")


def add_overwrite_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (without it an existing output is an error, as in the "
                             "bridge)")


def check_outputs(outputs: Iterable[Path | None], inputs: dict[str, Path | None], overwrite: bool) -> None:
    """The outputs rule (module doc): OutputError when an output is an input, exists without `overwrite`, or its
    folder does not take a file. Call it before any work."""
    outs = [Path(o) for o in outputs if o is not None]
    refuse_input_overwrite(outs, {k: Path(v) for k, v in inputs.items() if v is not None})
    existing = [o for o in outs if o.exists()]
    if existing and not overwrite:
        more = f" (and {', '.join(str(o) for o in existing[1:])})" if len(existing) > 1 else ""
        raise OutputError(f"output {existing[0]} exists{more}; give --overwrite to replace it")
    for folder in dict.fromkeys(o.resolve().parent for o in outs):
        probe_writable(folder)


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


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class PlainProgress:
    """Progress as plain lines, for a stderr that is not a terminal (a script, a render farm, a CI log): a line when
    a stage starts, at every `step` percent and when it completes, with the ETA of that stage from its pace so far.

        filmscore render: denoise  40% (ETA 12 s)
    """

    def __init__(self, prefix: str, stream: TextIO | None = None, step: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix, self.stream, self.step, self.clock = prefix, stream, step, clock
        self.stage: str | None = None
        self.started = 0.0
        self.shown = -1  # the last percent bucket printed for the current stage

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        now = self.clock()
        if stage != self.stage:
            self.stage, self.started, self.shown = stage, now, -1
        pct = max(0, min(100, int(fraction * 100 + 1e-9)))
        bucket = 100 if pct == 100 else pct // self.step * self.step
        if bucket <= self.shown:
            return
        self.shown = bucket
        line = f"{self.prefix}: {stage} {pct:3d}%"
        if 0 < fraction < 1 and now > self.started:
            line += f" (ETA {_clock_text((now - self.started) * (1 - fraction) / fraction)})"
        if message and pct == 100:
            line += f" {message}"
        print(line, file=self.stream or sys.stderr, flush=True)


@contextlib.contextmanager
def stage_progress(prefix: str, enabled: bool = True) -> Iterator[Callable[[str, float, str], None]]:
    """A `progress(stage, fraction, message)` callback for the engine: a rich bar per stage when stderr is a
    terminal and `enabled` (not under --json), plain lines (`PlainProgress`) when stderr is not a terminal."""
    if not stderr_console.is_terminal:
        yield PlainProgress(prefix)
        return
    with progress_bar(enabled) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, fraction: float, message: str = "") -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=100)
            bar.update(tasks[stage], completed=round(fraction * 100))

        yield progress


def bridge_path(p: str | Path | None) -> str | None:
    """A path as a request to the bridge carries it: absolute (the bridge refuses relative paths; its working folder
    is not the caller's). None stays None."""
    return None if p is None else str(Path(p).expanduser().resolve())


def print_draft_ready(prefix: str, path: Path, seconds: float) -> None:
    """The line a render prints when its draft (`--preview`) is in place."""
    stderr_console.print(f"{prefix}: draft ready: {path} ({seconds:.1f} s); rendering the full cue", highlight=False)


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
