"""Conform against a full re-render (issue 20): time of `conform_scored` (bridge/timelines/conform.py) against a
full `score_timeline` of the new edit, in one process, after the old edit was scored (which also warms up).

The edit pair is the tests' (tests/test_timelines_conform_render.py): three cues over generated media; the new edit
cuts 0.5 s of picture out of cue 1M2 (the cue after it moves 0.5 s earlier, unchanged) and removes cue 1M1. So
conform copies one cue, renders one and reports one; the full score renders two.

    python bench/bench_conform.py [--bundle DIR] [--steps 25] [--seed 0]

Writes bench/results/conform.json. `--pair long` times the case conform is for: one 30 s cue over three 10 s shots
of generated media (`--shots N`: N shots, an N x 10 s cue), the cut between the last two moved 12 frames later (0.5 s: a 2.5 s range to regenerate), and
conform both ways: inpainting the range (the old cue's latent, the one score stored or its request re-run and
verified, held outside it) and a fresh render of the whole cue spliced in (`--no-inpaint`), against a full score of
the new edit, and the spectral flux at the range's joins in each (bench/flux.py: against the cue's flux inside
windows, and the full render's at the same frames); writes bench/results/conform_long.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="default bench/results/conform[_long].json")
    ap.add_argument("--pair", choices=("tests", "long"), default="tests")
    ap.add_argument("--shots", type=int, default=3, help="--pair long: the cue's length in 10 s shots (>= 3)")
    ap.add_argument("--repeats", type=int, default=3, help="--pair long: runs of each method, alternated (median)")
    args = ap.parse_args()
    if args.pair == "long":
        return long_pair(args)
    args.out = args.out or ROOT / "bench" / "results" / "conform.json"
    from filmscore.bridge.timelines.batch import ScoreOptions, score_timeline
    from filmscore.bridge.timelines.conform import conform_scored
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.edit_testing import make_edit, make_new_edit  # the edit pair the tests use
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


def _long_edit(folder: Path, cut_frames: int, n_shots: int = 3) -> Path:
    """Shots 1..n-1 and n+1 of a generated media file of n+1 10 s shots, cut into a 24 fps timeline, one cue over
    all n x 10 s; the cut between the last two moved `cut_frames` later (shot n-1 runs on, shot n+1 loses its
    head)."""
    import opentimelineio as otio

    from filmscore.engine.film.synthetic import Shot, write_edit

    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    media = folder / "media" / f"long{n_shots}.mp4"
    if not media.is_file():
        media.parent.mkdir(parents=True, exist_ok=True)
        write_edit(media, [Shot(("pan", "shapes")[i % 2], 10.0, seed=i + 1) for i in range(n_shots + 1)],
                   width=96, height=64, fps=25)
    tl = otio.schema.Timeline(name=f"long{cut_frames}", global_start_time=rt(86400, 24))
    track = otio.schema.Track(name="V1")
    k = cut_frames
    clips = [(f"S{i + 1}", 240 * i, 240) for i in range(n_shots - 2)]
    clips += [(f"S{n_shots - 1}", 240 * (n_shots - 2), 240 + k), (f"S{n_shots + 1}", 240 * n_shots + k, 240 - k)]
    for name, src, dur in clips:
        track.append(otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(
            target_url=str(media)), source_range=tr(rt(src, 24), rt(dur, 24))))
    tl.tracks.append(track)
    tl.tracks.markers.append(otio.schema.Marker(name="1M1", marked_range=tr(rt(0, 24), rt(240 * n_shots, 24)),
                                                color="GREEN"))
    path = folder / f"long{n_shots}_{cut_frames}.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def long_pair(args) -> None:
    from filmscore.bridge.timelines.batch import ScoreOptions, score_timeline
    from filmscore.bridge.timelines.conform import conform_scored
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.files import read_timeline

    n_s = 10 * args.shots
    out = args.out or ROOT / "bench" / "results" / ("conform_long.json" if args.shots == 3 else
                                                    f"conform_long_{n_s}s.json")
    opts = ScoreOptions(seed=args.seed, steps=args.steps, bundle=args.bundle, maestro="bach")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old, new = (read_cues(read_timeline(_long_edit(tmp, k, args.shots))) for k in (0, 12))
        t0 = time.perf_counter()
        assert score_timeline(old, old.cues, tmp / "old", opts).ok  # also the warm-up
        t_old = time.perf_counter() - t0
        # the three alternate, `--repeats` times, each in its own folder: medians, so that a busy spell of the
        # machine falls on one run of each rather than on one method
        times: dict[str, list[float]] = {"inpaint": [], "fresh_render": [], "full": []}
        runs = {}
        for r in range(args.repeats):
            for name, inpaint in (("inpaint", True), ("fresh_render", False)):
                t0 = time.perf_counter()
                res = conform_scored(old, new, tmp / "old", tmp / f"{name}{r or ''}", inpaint=inpaint)
                times[name].append(time.perf_counter() - t0)
                runs[name] = (None, res)
                assert res.ok, res.to_json()
            t0 = time.perf_counter()
            assert score_timeline(new, new.cues, tmp / f"full{r or ''}", opts).ok
            times["full"].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        runs = {k: (med[k], runs[k][1]) for k in runs}
        t_full = med["full"]
        meta = json.loads((tmp / "inpaint" / "1M1.json").read_text())
        seams = _join_flux(tmp, meta)
    how = meta["conform"]["new_audio"]
    (o,) = runs["inpaint"][1].outcomes
    result = {"pair": f"long: one {n_s} s cue, the cut at {n_s - 10} s moved 12 frames (0.5 s) later",
              "command": f"python bench/bench_conform.py --pair long --shots {args.shots} --steps {args.steps} "
                         f"--seed {args.seed} --repeats {args.repeats}", "steps": args.steps,
              "seed": args.seed, "bundle": str(args.bundle or "default"), "score_old_s": round(t_old, 2),
              "score_new_full_s": round(t_full, 2),
              "conform_inpaint_s": round(runs["inpaint"][0], 2),
              "conform_inpaint_split_s": {k: round(v, 2) for k, v in how["timings_s"].items()},
              "conform_fresh_render_s": round(runs["fresh_render"][0], 2),
              "ratio_inpaint_to_full": round(runs["inpaint"][0] / t_full, 3),
              "ratio_fresh_render_to_full": round(runs["fresh_render"][0] / t_full, 3),
              "ratio_inpaint_step_to_full": round(how["timings_s"]["inpaint"] / t_full, 3),
              "regenerate_s": meta["conform"]["regenerate_s"], "kept_samples": o.kept_samples,
              "rendered_samples": o.rendered_samples, "n_samples": o.n_samples,
              "windows_denoised": f"{how['n_windows_denoised']} of {how['n_windows']}",
              "original_latent": how["original_latent"], "repeats": args.repeats,
              "times_s": {k: [round(x, 2) for x in v] for k, v in times.items()}, "seams": seams}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _join_flux(tmp: Path, meta: dict) -> dict:
    """Spectral flux at the joins of the regenerated range (those inside the cue) of the inpainted and the
    fresh-render conform, against each cue's own flux inside windows away from the joins; the full render of the
    new edit at the same frames is the reference (music may change at a cut whatever the joins)."""
    from flux import join_report, near_times, spectral_flux, window_overlaps

    from filmscore.bridge.timelines.conform import CROSSFADE_S
    from filmscore.engine.audio.io import load_audio
    from filmscore.engine.regenerate import LATENT_MARGIN_S

    n_s = meta["n_samples"] / meta["sample_rate"]
    joins = [t for a, b in meta["conform"]["regenerate_s"] for t in (a, b) if 0.0 < t < n_s]
    out = {"joins_s": joins, "half_width_s": CROSSFADE_S + LATENT_MARGIN_S}
    for name in ("inpaint", "fresh_render", "full"):
        flux = spectral_flux(load_audio(tmp / name / "1M1.wav", 16000))
        join = near_times(flux.shape[0], joins, CROSSFADE_S + LATENT_MARGIN_S)
        overlap = window_overlaps(flux.shape[0], meta["pipeline"]["n_latent_frames"])
        out[name] = join_report(flux, join, ~join & ~overlap)
    return out


if __name__ == "__main__":
    main()
