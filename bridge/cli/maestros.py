"""`filmscore maestros [NAME] [--json]`: the masters of the built-in theme library and their themes."""

from __future__ import annotations

import argparse

from .common import add_json_flag, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("maestros", help="list the built-in maestro library (masters and their themes)")
    p.add_argument("name", nargs="?", help="one master: list its themes")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from filmscore.engine.controls.maestros import MaestroError, masters

    lib = masters()
    if args.name is not None:
        chosen = [m for m in lib if m.name == args.name.strip().lower()]
        if not chosen:
            raise MaestroError(f"unknown maestro {args.name!r}; choose one of {', '.join(m.name for m in lib)}")
        lib = chosen

    summary = {"masters": [{
        "name": m.name, "display": m.display, "era": m.era, "license": m.license, "n_themes": len(m.themes),
        "themes": [{"id": t.id, "work": t.work, "bars": t.bars, "key": t.key, "meter": t.meter,
                    "tempo_bpm": t.tempo_bpm, "duration_s": round(t.duration_s, 2), "notes": t.n_notes,
                    "source": t.source} for t in m.themes],
    } for m in lib]}

    def human() -> None:
        if args.name is None:
            print_table(("maestro", "master", "style", "themes"),
                        [(m.name, m.display, m.era, f"{len(m.themes)} ({m.themes[0].id}..{m.themes[-1].id})")
                         for m in lib])
            print("use: filmscore render --maestro NAME [--theme ID]; filmscore maestros NAME lists themes")
        else:
            m = lib[0]
            print_table(("theme", "work", "bars", "key", "meter", "BPM", "s"),
                        [(t.id, t.work, t.bars, t.key, t.meter, f"{t.tempo_bpm:g}", f"{t.duration_s:.1f}")
                         for t in m.themes], title=f"{m.display} ({m.era})")

    emit(args, summary, human)
    return 0


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], title: str | None = None) -> None:
    """A rich table on a terminal; plain left-aligned columns otherwise, never cut (rich would cut a piped table to
    80 columns) and without trailing blanks, so that `cut`, `grep` and `awk` read it."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        from rich.table import Table

        table = Table(*header, box=None, pad_edge=False, title=title)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    if title:
        print(title)
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
