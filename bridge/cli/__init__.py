"""`filmscore` command line: one entry point, one module per subcommand.

Each module in COMMAND_MODULES defines `register(subparsers)`, which adds its parser and sets `run=` to a function
`run(args) -> int`. Modules import heavy libraries (torch, av, ...) inside `run`, so that `filmscore --help` and
the light commands start fast. User errors (`FilmscoreError`) print one line and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from filmscore.engine.errors import FilmscoreError

COMMAND_MODULES: tuple[str, ...] = (
    "render",
    "demo",
    "bundle",
    "bench",
    "export",
    "train",
    "data",
    "cues",
    "score", "conform",
    "serve",
    "client_cmds",
    "midi_in",
    "controls", "maestros",
    "eval",
    "encode",
    "plan",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="filmscore", description="Local film-scoring engine (HPM).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


# Commands that leave without tearing the interpreter down once they succeeded (see `main`).
FAST_EXIT_COMMANDS: tuple[str, ...] = ("render", "demo")


def _exit_now(rc: int) -> None:
    """End the process with `rc` at once: streams and log handlers flushed, no interpreter teardown. A render has
    imported torch and diffusers, whose teardown (thousands of modules and their finalizers) took 1-8 s of wall time
    after the cue was written on the 2-core machine (bench/results/startup.json, `after_stages_s`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        rc = int(args.run(args) or 0)
        # Only for the process's own command line (the console script, `python -m`): a caller that passes argv
        # (tests, scripts) gets the return code back.
        if rc == 0 and argv is None and args.command in FAST_EXIT_COMMANDS:
            _exit_now(rc)
        return rc
    except FilmscoreError as e:
        print(f"filmscore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"filmscore {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `filmscore maestros | head`: the reader left; exit quietly as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141
