"""`filmscore encode VIDEO`: run the film encoder on a clip; print cuts, affect, faces and timing; save features or
a plot.

    filmscore encode VIDEO [--start S] [--duration S] [--json] [-o features.npz] [--plot PNG] [--no-cache]
                           [--backbone DIR]

With --json the summary on stdout holds at least `cuts` (seconds from --start) and `duration` (seconds);
`faces` gives the share of frames showing a face and the dominant facial expression, overall and per shot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import HelpFormatter, add_json_flag, add_overwrite_flag, check_outputs, emit, stage_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="film encoder: cuts, motion, affect and per-frame features of a clip",
                       description="Decode a clip at 10 frames/s and compute the film encoder's features.",
                       formatter_class=HelpFormatter)
    p.add_argument("video", type=Path, help="video file (any container/codec FFmpeg reads)")
    p.add_argument("--start", type=float, default=0.0, help="range start in seconds (default 0)")
    p.add_argument("--duration", type=float, default=None, help="range length in seconds (default: to the end)")
    p.add_argument("-o", "--output", type=Path, default=None, help="write the features to this .npz file")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG: frames, cuts, motion and affect")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    p.add_argument("--backbone", default=None, metavar="DIR",
                   help="semantic backbone: a directory holding a CLIP image encoder in transformers format "
                        "(default: $FILMSCORE_FILM_BACKBONE, else the shipped efficientnet-lite0)")
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def summarize(feats, elapsed_s: float) -> dict:
    """The JSON summary of a FilmFeatures (cuts and hit points in seconds from the range start)."""
    import numpy as np

    emo = feats.emotion
    cols = feats.extras.get("emotion_columns", ["valence", "arousal"])
    affect = {}
    for name in ("valence", "arousal"):
        if name in cols and emo.shape[0]:
            x = emo[:, cols.index(name)]
            affect[name] = {"mean": round(float(x.mean()), 4), "min": round(float(x.min()), 4),
                            "max": round(float(x.max()), 4)}
    return {
        "video": feats.extras.get("source"),
        "start": feats.extras.get("start_s", 0.0),
        "duration": round(feats.duration_s, 4),
        "frames": feats.n_frames,
        "fps": feats.fps,
        "cuts": [round(c, 3) for c in feats.cuts_s],
        "cut_kinds": feats.extras.get("cut_kinds", []),
        "hit_points": [round(h, 3) for h in feats.hit_points_s],
        "hit_kinds": feats.extras.get("hit_kinds", []),
        "affect": affect,
        "motion_mean": round(float(np.mean(feats.motion)) if feats.motion.size else 0.0, 4),
        "faces": summarize_faces(feats),
        "layout": feats.layout,
        "feature_dim": feats.feature_dim,
        "elapsed_s": round(elapsed_s, 3),
    }


def summarize_faces(feats) -> dict:
    """Face presence and the dominant facial expression, over the range and per shot (the face block's columns:
    face area, then expression probabilities; engine/film/faces.py). `status` says why there is none."""
    from filmscore.engine.film.faces import dominant_expression

    status = feats.extras.get("faces", "off" if feats.faces is None else "on")
    if feats.faces is None:
        return {"status": status}
    fc = feats.faces
    dom, share = dominant_expression(fc)
    bounds = [0] + [int(round(c * feats.fps)) for c in feats.cuts_s] + [fc.shape[0]]
    shots = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        d, sh = dominant_expression(fc[a:b])
        shots.append({"start": round(a / feats.fps, 3), "end": round(b / feats.fps, 3),
                      "face_frames": round(sh, 3), "dominant": d,
                      "max_face_area": round(float(fc[a:b, 0].max()), 4)})
    has = fc[:, 0] > 0
    names = feats.extras.get("face_columns", [])[1:]
    mean = {n: round(float(v), 4) for n, v in zip(names, fc[has, 1:].mean(axis=0))} if has.any() else {}
    return {"status": status, "face_frames": round(share, 4), "dominant": dom, "expressions": mean,
            "shots": shots}


def _human(summary: dict) -> None:
    print(f"{summary['video']}: {summary['duration']:.2f} s from {summary['start']:.2f} s, "
          f"{summary['frames']} frames at {summary['fps']}/s ({summary['elapsed_s']:.2f} s)")
    cuts = ", ".join(f"{t:.2f}" + ("" if k == "cut" else f" ({k})")
                     for t, k in zip(summary["cuts"], summary["cut_kinds"]))
    print(f"cuts ({len(summary['cuts'])}): {cuts or 'none'}")
    for name, s in summary["affect"].items():
        print(f"{name}: mean {s['mean']:.2f} (min {s['min']:.2f}, max {s['max']:.2f})")
    print(f"motion: mean {summary['motion_mean']:.2f}; hit points ({len(summary['hit_points'])}): "
          + ", ".join(f"{t:.2f}" for t in summary["hit_points"][:20])
          + (" ..." if len(summary["hit_points"]) > 20 else ""))
    fs = summary["faces"]
    if "face_frames" not in fs:
        print(f"faces: {fs['status']}")
    else:
        per_shot = "; ".join(f"{s['start']:.1f}-{s['end']:.1f} s "
                             + (f"{s['dominant']} ({100 * s['face_frames']:.0f}%)" if s["dominant"] else "none")
                             for s in fs["shots"][:12])
        print(f"faces: in {100 * fs['face_frames']:.0f}% of frames"
              + (f", mostly {fs['dominant']}" if fs["dominant"] else "")
              + f"; per shot: {per_shot}" + (" ..." if len(fs["shots"]) > 12 else ""))
    print(f"layout: {summary['layout']} ({summary['feature_dim']} dims per frame)")


def plot_features(feats, video: Path, start_s: float, out: Path, n_thumbs: int = 8) -> None:
    """A PNG: a strip of frames, the motion envelope with cuts and hit points, valence and arousal, and (when the
    face branch ran) face area with the facial-expression probabilities stacked under it."""
    from filmscore.engine.extras import require

    matplotlib = require("matplotlib", "plot", "--plot")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from filmscore.engine.film.decode import iter_frames

    dur = feats.duration_s
    times = (np.arange(n_thumbs) + 0.5) * dur / n_thumbs
    thumbs = []
    for t in times:
        batch = next(iter_frames(video, start_s + float(t), min(0.1, dur - float(t))), None)
        if batch is not None:
            thumbs.append(batch.rgb[0])
    rows = 3 if feats.faces is None else 4
    fig = plt.figure(figsize=(12, 7 if rows == 3 else 9), constrained_layout=True)
    gs = fig.add_gridspec(rows, n_thumbs, height_ratios=[1.0, 1.2, 1.2, 1.2][:rows])
    for i, im in enumerate(thumbs):
        ax = fig.add_subplot(gs[0, i])
        ax.imshow(im)
        ax.set_title(f"{times[i]:.1f} s", fontsize=8)
        ax.axis("off")
    t100 = np.arange(feats.motion.shape[0]) / 100.0
    ax = fig.add_subplot(gs[1, :])
    ax.plot(t100, feats.motion, lw=0.8, color="tab:blue", label="motion (100/s)")
    for j, c in enumerate(feats.cuts_s):
        ax.axvline(c, color="tab:red", lw=1.0, alpha=0.8, label="cut" if j == 0 else None)
    if feats.hit_points_s:
        hp = np.asarray(feats.hit_points_s)
        ax.plot(hp, np.interp(hp, t100, feats.motion) if t100.size else hp * 0, "v", color="tab:orange",
                ms=5, label="hit point")
    ax.set_xlim(0, dur)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("motion")
    ax.legend(loc="upper right", fontsize=8)
    ax2 = fig.add_subplot(gs[2, :], sharex=ax)
    tf = (np.arange(feats.n_frames) + 0.5) / feats.fps
    cols = feats.extras.get("emotion_columns", ["valence", "arousal"])
    for name, color in (("valence", "tab:green"), ("arousal", "tab:purple")):
        if name in cols:
            ax2.plot(tf, feats.emotion[:, cols.index(name)], color=color, label=name)
    for c in feats.cuts_s:
        ax2.axvline(c, color="tab:red", lw=1.0, alpha=0.5)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("scene affect")
    ax2.legend(loc="upper right", fontsize=8)
    if feats.faces is not None:
        ax3 = fig.add_subplot(gs[3, :], sharex=ax)
        names = feats.extras.get("face_columns", [])[1:] or [f"expr {i}" for i in range(feats.faces.shape[1] - 1)]
        # each frame's bar: expression probabilities stacked, scaled to 1 where a face shows (0 elsewhere)
        shown = (feats.faces[:, 0] > 0)[:, None] * feats.faces[:, 1:]
        ax3.stackplot(tf, shown.T, labels=names, step="mid", alpha=0.85,
                      colors=plt.get_cmap("tab10").colors[:shown.shape[1]])
        ax3.plot(tf, np.minimum(1.0, 4 * feats.faces[:, 0]), color="black", lw=0.8, label="face area x4")
        for c in feats.cuts_s:
            ax3.axvline(c, color="tab:red", lw=1.0, alpha=0.5)
        ax3.set_ylim(0, 1)
        ax3.set_ylabel("faces")
        ax3.legend(loc="upper right", fontsize=7, ncol=4)
        ax3.set_xlabel("seconds from range start")
    else:
        ax2.set_xlabel("seconds from range start")
    fig.suptitle(f"{video.name}: {len(feats.cuts_s)} cuts, {dur:.1f} s")
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from filmscore.engine.film.decode import check_range

    # before the encoder (and torch) is imported: the outputs rule, then the range decodes at both ends
    check_outputs([args.output, args.plot], {"video": args.video}, args.overwrite)
    if args.plot is not None:  # before the encoding, not after it
        from filmscore.engine.extras import require

        require("matplotlib", "plot", "--plot")
    check_range(args.video, args.start, args.duration)

    from filmscore.engine.film.encoder import encode_video
    from filmscore.engine.film.semantic import shared_backbone

    with stage_progress("filmscore encode", enabled=not args.json) as report:
        t0 = time.perf_counter()
        feats = encode_video(args.video, args.start, args.duration, cache=not args.no_cache,
                             progress=lambda fraction, message="": report("encoding", fraction, message),
                             backbone=shared_backbone(args.backbone))
        elapsed = time.perf_counter() - t0
    if args.output is not None:
        feats.save_npz(args.output)
    if args.plot is not None:
        plot_features(feats, args.video, args.start, args.plot)
    summary = summarize(feats, elapsed)
    if args.output is not None:
        summary["output"] = str(args.output)
    if args.plot is not None:
        summary["plot"] = str(args.plot)
    emit(args, summary, lambda: _human(summary))
    return 0
