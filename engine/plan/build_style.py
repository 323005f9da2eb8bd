"""Build `engine/plan/style_stats.json`: each master's chord statistics from its music21 corpus pieces.

    python -m filmscore.engine.plan.build_style              # writes the shipped file (minutes, one core)
    python -m filmscore.engine.plan.build_style --max-works 8 -o /tmp/s.json   # a quick, smaller build

Per master of the maestro library (`engine/maestros/build.py`'s MASTERS: the works its themes come from first,
then more works of the same corpus label, up to `--max-works` or until `MAX_SLOTS` slots), each piece is parsed by
`engine.data.music21_source.parse_work` (key, mode, bars, parts), cut into half-bar slots (whole bars of an odd
number of beats), and each slot labelled with the diatonic triad `engine.data.harmony.chords_per_bar` picks from
all parts. Counted per mode: the first chord (`start`), chord-to-chord transitions (`trans`), and the melody's
pitch classes relative to the tonic over each chord (`emit`, duration-weighted, onsets on the slot start doubled:
the weighting `harmony.slot_pc_weights` uses at decoding). "all" pools every master. Nothing runs at render time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .harmony import STYLE_FILE, STYLE_FORMAT, label_slots


def half_bar_slots(bars: np.ndarray, end_ql: float) -> np.ndarray:
    edges = np.append(bars, end_ql)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        out.append(a)
        n = b - a
        if n >= 2 and abs(n / 2 - round(n / 2)) < 1e-6 and round(n) % 2 == 0:
            out.append(a + n / 2)
    return np.asarray(out)


def count_piece(parsed, counts: dict) -> int:
    slots = half_bar_slots(parsed.bars, parsed.end_ql)
    if len(slots) < 2:
        return 0
    all_notes = np.concatenate([p.notes for p in parsed.parts])
    degrees = label_slots(all_notes, slots, parsed.end_ql, parsed.tonic, parsed.mode)
    c = counts[parsed.mode]
    c["start"][degrees[0]] += 1
    for a, b in zip(degrees[:-1], degrees[1:]):
        c["trans"][a][b] += 1
    edges = np.append(slots, parsed.end_ql)
    for on, dur, pitch in parsed.melody.notes:
        i0 = max(0, int(np.searchsorted(slots, on, side="right")) - 1)
        for i in range(i0, len(slots)):
            a, b = edges[i], edges[i + 1]
            if a >= on + dur:
                break
            ov = min(on + dur, b) - max(on, a)
            if ov > 0:
                c["emit"][degrees[i]][(int(pitch) - parsed.tonic) % 12] += ov * (2.0 if abs(on - a) < 1e-6 else 1.0)
    c["slots"] += len(slots)
    c["pieces"] += 1
    return len(slots)


def _empty() -> dict:
    return {m: {"start": [0] * 6, "trans": [[0] * 6 for _ in range(6)], "emit": [[0.0] * 12 for _ in range(6)],
                "slots": 0, "pieces": 0} for m in ("major", "minor")}


def works_of(master, max_works: int):
    from ..data.music21_source import iter_works

    label = "folk" if master.name in ("folk", "celtic") else master.name
    works = list(iter_works([label]))
    srcs = [s.removesuffix(".mxl") for s in master.sources]

    def from_sources(w) -> bool:
        p = w.path.rsplit(".", 1)[0]
        return any(p == s or p.startswith(s + "/") for s in srcs)

    first = [w for w in works if from_sources(w)]
    if master.name == "celtic":  # the fiddle tunes' own collection, not the whole folk label
        rest = [w for w in works if w.path.startswith("ryansMammoth/") and w not in first]
    elif master.name == "folk":
        rest = [w for w in works if w.path.startswith("essenFolksong/") and w not in first]
    else:
        rest = [w for w in works if w not in first]
    return (first + rest)[:max_works]


MAX_SLOTS = 2000
"""Per master, works are added until this many slots are counted (a quartet movement holds hundreds, a chorale
tens): enough for 6 x 6 transitions and 6 x 12 emissions, and the build stays within minutes."""


def build(max_works: int = 40, log=sys.stderr, max_slots: int = MAX_SLOTS) -> dict:
    from ..data.music21_source import SourceError, parse_work
    from ..maestros.build import MASTERS

    styles: dict[str, dict] = {}
    pooled = _empty()
    for master in MASTERS:
        counts = _empty()
        ok = 0
        for w in works_of(master, max_works):
            if counts["major"]["slots"] + counts["minor"]["slots"] >= max_slots:
                break
            try:
                parsed = parse_work(w)
            except SourceError as e:
                print(f"  skip {w.work_id}: {e}", file=log)
                continue
            ok += count_piece(parsed, counts) > 0
        for mode in ("major", "minor"):
            c, p = counts[mode], pooled[mode]
            p["start"] = [x + y for x, y in zip(p["start"], c["start"])]
            p["trans"] = [[x + y for x, y in zip(r, s)] for r, s in zip(p["trans"], c["trans"])]
            p["emit"] = [[x + y for x, y in zip(r, s)] for r, s in zip(p["emit"], c["emit"])]
            p["slots"] += c["slots"]
            p["pieces"] += c["pieces"]
            c["emit"] = [[round(x, 3) for x in r] for r in c["emit"]]
        styles[master.name] = counts
        print(f"{master.name}: {ok} pieces, {counts['major']['slots']} major / {counts['minor']['slots']} minor "
              "slots", file=log, flush=True)
    for mode in ("major", "minor"):
        pooled[mode]["emit"] = [[round(x, 3) for x in r] for r in pooled[mode]["emit"]]
    styles["all"] = pooled
    return {"format": STYLE_FORMAT, "max_works": max_works, "max_slots": max_slots,
            "vocabulary": {"major": ["I", "V", "IV", "vi", "ii", "iii"], "minor": ["i", "V", "iv", "VI", "III", "VII"]},
            "built_by": "python -m filmscore.engine.plan.build_style", "styles": styles}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-works", type=int, default=40, help="works per master (default 40)")
    ap.add_argument("-o", "--output", type=Path, default=STYLE_FILE)
    args = ap.parse_args(argv)
    data = build(args.max_works)
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
