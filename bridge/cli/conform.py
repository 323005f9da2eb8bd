"""`filmscore conform`: follow a changed cut with the cues `filmscore score` delivered for the old one.

    filmscore conform OLD NEW --scored DIR -o DIR2 [--cue-pattern RE] [--cue-color C] [--search-root DIR ...]
                      [--overwrite] [--json]

OLD and NEW are two versions of the edit (any timeline format `filmscore score` reads); DIR is the folder
`filmscore score OLD` wrote (its manifest names the request every cue was rendered with). For each cue of NEW
(bridge/timelines/conform.py, docs/editor_loop.md): an unchanged cue's files are copied, its WAV's audio bytes as
they were and its BWF time reference set to its new record position; a changed cue keeps its old samples along the
stretches whose picture is the same, time-shifted, and takes a fresh render of the new cue (same request and seed)
in the ranges around moved cuts and inserted shots; a new or unrepairable cue is rendered as score renders it; a
deleted cue is reported. DIR2 gets the cues, filmscore-batch.json (each entry with what conform did) and
NEW.scored.otio (.xml too for XML/EDL input). Exit 0 when every cue of NEW was delivered, 1 when some failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import HelpFormatter, add_json_flag, add_overwrite_flag, check_outputs

_SUFFIXES = (".wav", ".json", ".controls.npz", ".theme.mid", ".plan.json", ".plan.mid", ".latent.npy")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("conform", help="follow a changed cut: keep what the old cues still fit, re-render "
                                              "what changed",
                              description="Conform the cues scored for OLD to the edit NEW, into a new folder.",
                              formatter_class=HelpFormatter)
    p.add_argument("old", type=Path, help="the edit the cues were scored for")
    p.add_argument("new", type=Path, help="the changed edit")
    p.add_argument("--scored", type=Path, required=True, help="the folder `filmscore score OLD` wrote")
    p.add_argument("-o", "--outdir", type=Path, required=True, help="new output folder (made if missing)")
    p.add_argument("--cue-pattern", default=None, metavar="RE", help="marker names that are cues (as `cues`)")
    p.add_argument("--cue-color", type=str.upper, default=None, help="only markers of this colour are cues")
    p.add_argument("--search-root", action="append", type=Path, default=[], metavar="DIR",
                   help="a folder to look for offline media in (repeatable)")
    p.add_argument("--no-inpaint", dest="inpaint", action="store_false",
                   help="new music for a changed cue from a fresh render of the whole cue, spliced in, instead of "
                        "inpainting its ranges with the old cue's latent held")
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from filmscore.bridge.timelines.batch import MANIFEST_NAME
    from filmscore.bridge.timelines.conform import conform_scored
    from filmscore.bridge.timelines.cues import DEFAULT_CUE_PATTERN, read_cues
    from filmscore.bridge.timelines.files import read_timeline
    from filmscore.bridge.timelines.scored import scored_outputs

    def cues_of(path: Path):
        return read_cues(read_timeline(path), pattern=args.cue_pattern or DEFAULT_CUE_PATTERN,
                         cue_color=args.cue_color, search_roots=args.search_root)

    old, new = cues_of(args.old), cues_of(args.new)
    inputs = {"old timeline": args.old, "new timeline": args.new, "scored manifest": args.scored / MANIFEST_NAME}
    outputs = [args.outdir / f"{c.file_stem}{s}" for c in new.cues for s in _SUFFIXES]
    outputs += scored_outputs(new.timeline, args.outdir, f"{new.timeline.path.stem}.scored")
    if args.outdir.is_dir():  # a new folder is made by conform and holds nothing to keep
        check_outputs(outputs, inputs, args.overwrite)
    result = conform_scored(old, new, args.scored, args.outdir, inpaint=args.inpaint)

    def human() -> None:
        for o in result.outcomes:
            line = f"{o.action:9s} {o.name}  [{o.status}]"
            if o.wav and o.action != "failed":
                line += f"  {args.outdir / o.wav}"
            if o.action in ("spliced", "trimmed"):
                line += f"  {o.kept_samples} old samples kept, {o.rendered_samples} new"
            if o.reason:
                line += f"  ({o.reason})"
            if o.message:
                line += f"  error: {o.message}"
            print(line)
        for p in result.timelines:
            print(f"scored timeline: {p}")
        for n in result.timeline_notes:
            print(f"note: {n}")

    from .common import emit

    emit(args, result.to_json(), human)
    return 0 if result.ok else 1
