"""Command-line flags of the render options, derived from engine/options.py `RenderOptions`: one flag per option, its
type, range, choices and default in its help, the old spellings hidden. Standard library only (argparse), so a host
script that imports the bridge client with pyzmq alone (plugin_manifests/resolve) takes the same flags as
`filmscore render` and `score` (bridge/cli/common.py re-exports these for the commands)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from filmscore.engine.options import PLAN, RenderOptions, option_fields

PLAN_GROUP_TITLE = "plan overrides (each replaces what the picture would choose)"


def add_render_options(parser: argparse.ArgumentParser, only: Iterable[str] | None = None,
                       notes: dict[str, str] | None = None) -> None:
    """One flag per render option (engine/options.py `RenderOptions`, or the fields named in `only`), derived from
    its metadata: the flag (`Option.flag`, else --name-with-dashes), its type, its help with the range, choices and
    default. Old spellings (`Option.aliases`: --guidance, --lufs, --loudness) still parse into the same field but
    are hidden from --help. Every flag's argparse default is None, so a command knows what was given
    (`options_from_args` fills in the rest from `RenderOptions`); `notes` adds a command's own words to a help."""
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
        else:  # kept as text: `options_from_args` converts it, so a bad number is the option's own one-line error
            kw["metavar"] = m.metavar or ("{" + ",".join(m.choices) + "}" if m.choices else f.name.upper())
        target.add_argument(f.flag, help=text, **kw)
        for alias in m.aliases:  # deprecated spellings: same field, hidden
            target.add_argument(alias, help=argparse.SUPPRESS, **kw)


def options_from_args(args: argparse.Namespace, **overrides: Any) -> RenderOptions:
    """The `RenderOptions` of the flags `add_render_options` added (absent ones at their defaults) and `overrides`,
    validated: a value that is not a number, or out of range, raises the option's error (`RequestError`,
    `LoudnessError`, `PlanError`: one line from the CLI), as the protocol and the engine do."""
    kw = given_options(args)
    kw.update(overrides)
    options = RenderOptions(**kw)
    options.validate()
    return options


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as their types (a preset's number for `--target-lufs ebu-r128`), not
    yet range-checked; a value that is not a number raises the option's error. For a client that sends only what
    was given (the bridge's defaults are the same `RenderOptions`)."""
    kw = {}
    for f in option_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            kw[f.name] = f.parse_text(value) if isinstance(value, str) and f.kind is not str else value
    return kw
