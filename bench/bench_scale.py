"""Scale-out: cues per minute with 1 and 2 Ray actors on this machine, where a cue's time goes, and a model of N
workers built from those measurements.

One generated reel (PyAV media, `--cues` marked cues of `--cue-seconds` each) is scored three times in one run, with
the same bundle, seed and steps: in this process (the local executor, one torch thread), on one Ray actor (one CPU)
and on two Ray actors (one CPU each) of a local Ray with two CPUs. Throughput counts from the first cue handed out to
the last one delivered; the actors' start-up (Ray worker start + bundle load) is measured apart, once per actor, as
a cluster pays it once per batch. Every cue's manifest entry says where its time went: picture (decode + film
encoder, on the worker), render (the rest of `render_cue`, on the worker), transfer (inputs and result bytes
through the object store), deliver (loudness, BWF, sidecars: on the submitting side); the manifest write is timed
on the submitting side too ("journal"), and separately for manifests of 10 to 10 000 cues.

The model: a worker renders a cue in t_w (three ways: the wall time of picture + render here; the actor's CPU time
for them, which is what the cue costs an idle core; that plus a 1080p picture's decode and encode); the
submitting side spends t_s = transfer + deliver + journal(M) per cue, one cue at a time; the head's link carries
each cue's result bytes, shared storage (or the object store, with --ship-inputs) each cue's picture. Cues per
second with N workers = min(N / t_w, 1 / t_s, link / result bytes, storage / picture bytes); the smallest term
is where it stops growing. Picture bytes and the 1080p decode cost come from stated assumptions and from
bench/results/encode.json (the film encoder on 60 s of 1080p H.264), not from the small test media.

    python bench/bench_scale.py [--cues 8] [--cue-seconds 8] [--steps 10] [--bundle DIR] [-o bench/results/scale.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

# Assumptions of the model (stated in the result and in docs/scale_out.md)
LINK_BYTES_S = 10e9 / 8  # the head node's network link: 10 Gbit/s
STORAGE_BYTES_S = 10e9 / 8  # shared storage (NAS) or object-store transfer of inputs: 10 Gbit/s in aggregate
PICTURE_BYTES_PER_S = 10e6 / 8  # a 1080p H.264 proxy at 10 Mbit/s
WORKERS = (1, 2, 8, 32, 128)
BATCH_SIZES = (120, 5000)  # a feature's cues; a library's stems overnight


def make_reel(folder: Path, n_cues: int, cue_s: float) -> Path:
    """Generated media (a new shot every 4 s) cut into one clip, with `n_cues` back-to-back cue markers."""
    import opentimelineio as otio

    from filmscore.engine.film.synthetic import Shot, write_edit

    RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
    total = n_cues * cue_s + 1.0
    kinds = ("pan", "shapes")
    shots = [Shot(kinds[i % 2], 4.0, seed=i) for i in range(int(total // 4.0) + 1)]
    write_edit(folder / "media.mp4", shots, width=160, height=96, fps=25)
    tl = otio.schema.Timeline(name="scale reel", global_start_time=RT(86400, 24))
    track = otio.schema.Track(name="V1")
    track.append(otio.schema.Clip(name="A", media_reference=otio.schema.ExternalReference(target_url="media.mp4"),
                                  source_range=TR(RT(0, 24), RT(round(total * 24), 24))))
    tl.tracks.append(track)
    frames = round(cue_s * 24)
    for i in range(n_cues):
        tl.tracks.markers.append(otio.schema.Marker(name=f"1M{i + 1:02d}", color="GREEN",
                                                    marked_range=TR(RT(i * frames, 24), RT(frames, 24))))
    path = folder / "reel.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def score(cl, out: Path, options, executor=None) -> tuple[float, list]:
    from filmscore.bridge.timelines.batch import score_timeline

    t0 = time.perf_counter()
    result = score_timeline(cl, cl.cues, out, options, executor=executor)
    wall = time.perf_counter() - t0
    bad = [o.message for o in result.outcomes if o.status != "done"]
    if bad:
        raise SystemExit(f"bench_scale: cues failed: {bad}")
    manifest = json.loads((out / "filmscore-batch.json").read_text())
    rows = []
    for o in result.outcomes:
        run = manifest["cues"][o.file_stem]["run"]
        rows.append({"cue": o.name, "worker": run["worker"], **{k: round(v, 4) for k, v in o.timings_s.items()},
                     "bytes_returned": run["bytes_returned"]})
    return wall, rows


def summary(rows: list, wall: float) -> dict:
    keys = ("picture", "render", "transfer", "deliver", "journal", "worker_cpu")
    return {"wall_s": round(wall, 3), "cues_per_min": round(len(rows) / wall * 60, 2),
            "mean_s": {k: round(statistics.fmean(r[k] for r in rows), 4) for k in keys},
            "bytes_returned_mean": round(statistics.fmean(r["bytes_returned"] for r in rows)),
            "workers": sorted({r["worker"] for r in rows})}


def journal_cost(folder: Path) -> dict:
    """Seconds per manifest write with M cues already in it (a real entry's shape, copied M times)."""
    from filmscore.bridge.timelines.batch import Manifest

    entry = {"status": "done", "key": "0" * 20, "name": "1M01", "wav": "1M01.wav", "n_samples": 384000,
             "loudness": {"target_lufs": -23.0, "integrated_lufs": -23.0, "true_peak_dbtp": -1.02,
                          "loudness_range_lu": 3.1, "gain_db": 0.1, "limited": False, "input_lufs": -23.1},
             "missing_picture": [], "seconds": 2.5,
             "run": {"worker": "host:1234", "attempt": 1, "bytes_returned": 1200000,
                     "timings_s": {"picture": 0.5, "render": 2.0, "transfer": 0.01, "deliver": 0.05}}}
    out = {}
    for m in (10, 100, 1000, 10000):
        d = folder / f"journal-{m}"
        d.mkdir()
        man = Manifest(d, "reel.otio")
        man.data["cues"] = {f"c{i:05d}": dict(entry, name=f"c{i:05d}") for i in range(m)}
        reps = max(3, 2000 // m)
        t0 = time.perf_counter()
        for i in range(reps):
            man.record(f"c{i:05d}", dict(entry))
        out[m] = (time.perf_counter() - t0) / reps
    return out


def model(variants: list[tuple[str, float]], t_serial_fixed: float, journal: dict, result_bytes: float,
          cue_s: float) -> dict:
    """Cues per minute for N workers and which limit binds (module doc), for each (label, t_worker) variant."""
    ms = sorted(journal)
    slope = (journal[ms[-1]] - journal[ms[0]]) / (ms[-1] - ms[0])
    base = journal[ms[0]] - slope * ms[0]
    out = {"journal_fit": {"base_s": base, "per_cue_s": slope}, "rows": []}
    for label, tw in variants:
        for m in BATCH_SIZES:
            t_s = t_serial_fixed + base + slope * m / 2  # the manifest grows during the batch: its mean size
            limits = {"submitting side (deliver + journal)": 1 / t_s, "head link (result bytes)":
                      LINK_BYTES_S / result_bytes, "storage (picture bytes)": STORAGE_BYTES_S /
                      (PICTURE_BYTES_PER_S * cue_s)}
            for n in WORKERS:
                terms = {"workers (render + picture)": n / tw, **limits}
                bind = min(terms, key=terms.get)
                out["rows"].append({"worker": label, "t_worker_s": round(tw, 3), "batch_cues": m, "workers": n,
                                    "cues_per_min": round(terms[bind] * 60, 1), "limited_by": bind})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cues", type=int, default=8)
    ap.add_argument("--cue-seconds", type=float, default=8.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--bundle", type=Path, default=None, help="default: the shipped bundle")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "results" / "scale.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import ray
    import torch

    from filmscore.bridge.executors.ray_executor import RayExecutor, RayOptions
    from filmscore.bridge.timelines.batch import ScoreOptions
    from filmscore.bridge.timelines.cues import read_cues
    from filmscore.bridge.timelines.files import read_timeline

    torch.set_num_threads(1)  # the local run on one core, as each actor
    load_before = os.getloadavg()
    res: dict = {"what": "cues per minute, local vs 1 and 2 Ray actors (1 CPU each), and a model of N workers",
                 "command": "python bench/bench_scale.py " + " ".join(
                     f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out" and v is not None),
                 "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before]},
                 "cues": args.cues, "cue_seconds": args.cue_seconds, "steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cl = read_cues(read_timeline(make_reel(tmp, args.cues, args.cue_seconds)))
        options = ScoreOptions(seed=5, steps=args.steps, bundle=args.bundle)
        score(cl, tmp / "warm", options)  # imports, bundle and film encoder loaded in this process once
        wall, rows = score(cl, tmp / "local", options)
        res["local"] = summary(rows, wall)
        res["local"]["cues"] = rows
        print(f"local: {res['local']['cues_per_min']} cues/min", flush=True)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
        try:
            for n in (1, 2):
                ex = RayExecutor(RayOptions(num_cpus=1, actors=n), bundle=args.bundle)
                t0 = time.perf_counter()
                ex.connect()
                ray.get([s.ready_ref for s in ex.slots])  # every actor started and holding the bundle
                startup = time.perf_counter() - t0
                try:
                    wall, rows = score(cl, tmp / f"ray{n}", options, executor=ex)
                finally:
                    ex.close()
                key = f"ray_{n}_actor" + ("s" if n > 1 else "")
                res[key] = summary(rows, wall)
                res[key].update(actor_startup_s=round(startup, 2), cues=rows)
                print(f"{key}: {res[key]['cues_per_min']} cues/min (start-up {startup:.1f} s)", flush=True)
        finally:
            ray.shutdown()
        res["ratio_2_vs_1_actor"] = round(res["ray_2_actors"]["cues_per_min"] / res["ray_1_actor"]["cues_per_min"], 3)
        res["journal_write_s_by_manifest_cues"] = {str(k): v for k, v in journal_cost(tmp).items()}
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    one = res["ray_1_actor"]["mean_s"]
    encode = Path(__file__).parent / "results" / "encode.json"
    picture_rate = None
    if encode.is_file():  # CPU seconds of `filmscore encode` on 60 s of 1080p H.264: one core's cost per second
        speed = json.loads(encode.read_text()).get("speed", {})
        if speed.get("cli_cpu_s") and str(speed.get("material", "")).startswith("60 s"):
            picture_rate = speed["cli_cpu_s"] / 60.0
    journal = {int(k): v for k, v in res["journal_write_s_by_manifest_cues"].items()}
    # A worker's time per cue three ways: wall time on this loaded machine; the actor's CPU time (what the cue costs
    # an idle core); that plus decoding a 1080p proxy instead of the small test media (encode.json's CPU rate).
    variants = [("this machine, loaded: wall picture + render", one["picture"] + one["render"]),
                ("an idle core: worker CPU time", one["worker_cpu"])]
    if picture_rate is not None:
        variants.append(("an idle core, 1080p picture: worker CPU + encode.json rate", one["worker_cpu"] +
                         picture_rate * args.cue_seconds))
    res["model"] = {
        "assumptions": {"worker": "one core of this machine per worker (the 1-actor figures); a GPU worker is "
                                  "faster, which moves every row to a smaller N before it stops growing",
                        "head_link_bits_s": LINK_BYTES_S * 8, "storage_bits_s": STORAGE_BYTES_S * 8,
                        "picture_bits_s": PICTURE_BYTES_PER_S * 8,
                        "picture_s_per_picture_s_1080p": picture_rate},
        "t_submitting_fixed_s": one["transfer"] + one["deliver"],
        **model(variants, one["transfer"] + one["deliver"], journal, res["ray_1_actor"]["bytes_returned_mean"],
                args.cue_seconds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"ratio 2/1 actors: {res['ratio_2_vs_1_actor']}; wrote {args.out}")


if __name__ == "__main__":
    main()
