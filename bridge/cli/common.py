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

from filmscore.engine.errors import FilmscoreError, RequestError
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


PLAN_GROUP_TITLE = "plan overrides (each replaces what the picture would choose)"


def add_render_options(parser: argparse.ArgumentParser, only: Iterable[str] | None = None,
                       notes: dict[str, str] | None = None) -> None:
    """One flag per render option (engine/options.py `RenderOptions`, or the fields named in `only`), derived from
    its metadata: the flag (`Option.flag`, else --name-with-dashes), its type, its help with the range, choices and
    default. Old spellings (`Option.aliases`: --guidance, --lufs, --loudness) still parse into the same field but
    are hidden from --help. Every flag's argparse default is None, so a command knows what was given
    (`options_from_args` fills in the rest from `RenderOptions`); `notes` adds a command's own words to a help."""
    from filmscore.engine.options import PLAN, option_fields

    wanted = None if only is None else set(only)
    plan_group = None
    for f in option_fields():
        if wanted is not None and f.name not in wanted:
            continue
        target: Any = parser
        if f.group == PLAN:
            plan_group = plan_group or parser.add_argument_group(PLAN_GROUP_TITLE)
            target = plan_group
        m = f.meta
        words = [m.help]
        if f.range_text is not None:
            words.append(f.range_text)
        if notes and f.name in notes:
            words.append(notes[f.name])
        text = "; ".join(words)
        if f.default is not None and f.default is not False and "default" not in text:
            text += f" (default: {f.default})"
        kw: dict[str, Any] = {"dest": f.name, "default": None}
        if f.kind is bool:
            kw["action"] = "store_true"
        else:
            kw["type"] = _argument_type(f)
            kw["metavar"] = m.metavar or ("{" + ",".join(m.choices) + "}" if m.choices else f.name.upper())
        target.add_argument(f.flag, help=text, **kw)
        for alias in m.aliases:  # deprecated spellings: same field, hidden
            target.add_argument(alias, help=argparse.SUPPRESS, **kw)


def _argument_type(f) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return f.parse_text(text)
        except FilmscoreError as e:  # argparse reports it as a usage error of this flag
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = f.kind.__name__  # argparse names the type in its messages
    return parse


def options_from_args(args: argparse.Namespace, **overrides: Any):
    """The `RenderOptions` of the flags `add_render_options` added (absent ones at their defaults) and `overrides`,
    validated: an out-of-range value raises the option's error, as the protocol and the engine do."""
    from filmscore.engine.options import RenderOptions, option_fields

    kw = {f.name: getattr(args, f.name) for f in option_fields() if getattr(args, f.name, None) is not None}
    kw.update(overrides)
    options = RenderOptions(**kw)
    options.validate()
    return options


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
