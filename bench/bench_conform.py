"""Conform against a full re-render (issue 20): time of `conform_scored` (bridge/timelines/conform.py) against a
full `score_timeline` of the new edit, in one process, after the old edit was scored (which also warms up).

The edit pair is the tests' (tests/test_timelines_conform_render.py): three cues over generated media; the new edit
cuts 0.5 s of picture out of cue 1M2 (the cue after it moves 0.5 s earlier, unchanged) and removes cue 1M1. So
conform copies one cue, renders one and reports one; the full score renders two.

    python bench/bench_conform.py [--bundle DIR] [--steps 25] [--seed 0]

Writes bench/results/conform.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "conform.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))  # the generated edit pair the tests use
    from test_timelines_batch import make_edit
    from test_timelines_conform_render import make_new_edit

    from filmscore.bridge.timelines.batch import ScoreOptions, score_timeline
    from filmscore.bridge.timelines.conform import conform_scored
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.files import read_timeline

    opts = ScoreOptions(seed=args.seed, steps=args.steps, bundle=args.bundle, maestro="bach")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_path = make_edit(tmp)
        new_path = make_new_edit(old_path)
        old, new = read_cues(read_timeline(old_path)), read_cues(read_timeline(new_path))
        t0 = time.perf_counter()
        assert score_timeline(old, old.cues, tmp / "old", opts).ok
        t_old = time.perf_counter() - t0
        t0 = time.perf_counter()
        conformed = conform_scored(old, new, tmp / "old", tmp / "conformed")
        t_conform = time.perf_counter() - t0
        assert conformed.ok
        t0 = time.perf_counter()
        assert score_timeline(new, new.cues, tmp / "full", opts).ok
        t_full = time.perf_counter() - t0
    result = {"steps": args.steps, "seed": args.seed, "bundle": str(args.bundle or "default"),
              "score_old_s": round(t_old, 2), "conform_s": round(t_conform, 2),
              "conform_render_s": round(conformed.render_seconds, 2), "score_new_full_s": round(t_full, 2),
              "ratio_conform_to_full": round(t_conform / t_full, 3),
              "cues": {o.name: {"status": o.status, "action": o.action, "kept_samples": o.kept_samples,
                                "rendered_samples": o.rendered_samples} for o in conformed.outcomes}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
