"""`filmscore cues`: list a timeline's cue regions and hit points, rendering nothing.

    filmscore cues TIMELINE [--cue-pattern RE] [--cue-color COLOR] [--in TC --out TC] [--search-root DIR ...] [--json]

TIMELINE: .otio, .otioz, FCP 7 .xml, .fcpxml, CMX 3600 .edl or .aaf. Cues come from markers with a duration named
like spotting numbers (1M1, M3) or "cue ...", or of --cue-color; else from --in/--out; else the whole timeline
(docs/timelines.md). Each cue: name, record start (timecode and rational), duration (seconds and rational), hit
points (picture cuts, point markers) and its clips whose media is offline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_json_flag

COLORS = ("PINK", "RED", "ORANGE", "YELLOW", "GREEN", "CYAN", "BLUE", "PURPLE", "MAGENTA", "BLACK", "WHITE")


def add_cue_options(p: argparse.ArgumentParser) -> None:
    """The options `cues` and `score` share: how cues are found and where media is searched."""
    p.add_argument("timeline", type=Path, help="timeline file (.otio .otioz .xml .fcpxml .edl .aaf)")
    # default None, resolved in load_cue_list: importing the timelines package for its default pattern cost every
    # command ~0.3 s of start-up (numpy, OpenTimelineIO)
    p.add_argument("--cue-pattern", default=None, metavar="RE",
                   help="regular expression (case-insensitive, matched at the start) a marker's name must match "
                        "to be a cue (default: spotting numbers like 1M1 or names starting with 'cue')")
    p.add_argument("--cue-color", type=str.upper, choices=COLORS, default=None,
                   help="also make a cue of every marker with a duration of this colour")
    p.add_argument("--in", dest="in_point", default=None, metavar="TC",
                   help="with --out, the cue range when no marker makes a cue: timecode as the timeline shows it "
                        "(HH:MM:SS:FF) or seconds from its start")
    p.add_argument("--out", dest="out_point", default=None, metavar="TC", help="end of the --in range (exclusive)")
    p.add_argument("--search-root", action="append", type=Path, default=[], metavar="DIR",
                   help="a folder to look for offline media in, by relative path and by file name (repeatable)")


def load_cue_list(args: argparse.Namespace):
    from filmscore.bridge.timelines.cues import DEFAULT_CUE_PATTERN, CueError, parse_time, read_cues
    from filmscore.bridge.timelines.files import read_timeline

    loaded = read_timeline(args.timeline)
    in_out = None
    if (args.in_point is None) != (args.out_point is None):
        raise CueError("give --in and --out together")
    if args.in_point is not None:
        tl = loaded.timeline
        rate = tl.duration().rate
        g0 = tl.global_start_time if tl.global_start_time is not None else type(tl.duration())(0, rate)
        in_out = (parse_time(args.in_point, rate, g0), parse_time(args.out_point, rate, g0))
    return read_cues(loaded, pattern=args.cue_pattern or DEFAULT_CUE_PATTERN, cue_color=args.cue_color, in_out=in_out,
                     search_roots=args.search_root)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cues", help="list a timeline's cue regions and hit points",
                              description="List the cue regions of an editor's timeline and their hit points, "
                                          "without rendering.")
    add_cue_options(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def _rational(t) -> str:
    return f"{t.value:g}/{t.rate:g}"


def run(args: argparse.Namespace) -> int:
    from filmscore.bridge.timelines.timing import format_time

    from .common import emit

    cl = load_cue_list(args)

    def human() -> None:
        tl = cl.timeline.timeline
        print(f"{cl.timeline.path}: {tl.name!r}, {tl.duration().to_seconds():.3f} s at {tl.duration().rate:g} fps, "
              f"{len(cl.cues)} cue(s)")
        for note in cl.timeline.notes + cl.notes:
            print(f"  note: {note}")
        for c in cl.cues:
            print(f"{c.name}  [{c.origin}]  start {format_time(c.record_timecode_start)} "
                  f"({c.record_start.to_seconds():.3f} s = {_rational(c.record_start)})  "
                  f"duration {c.duration.to_seconds():.3f} s = {_rational(c.duration)}")
            for h in c.hits:
                print(f"    hit {h.kind:6s} +{h.time.to_seconds():8.3f} s  {_rational(h.time)}  {h.name}")
            for m in c.offline():
                print(f"    no picture: {m}")
            for w in c.warnings:
                print(f"    warning: {w}")

    emit(args, cl.to_json(), human)
    return 0
