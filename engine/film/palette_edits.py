"""Same-palette edits (shot / reverse-shot in one room: the same colours, a new texture and structure at each cut):
generated H.264 edits with known cuts, one-frame flashes and pans from still to fast, and how well the film encoder's
timing finds their cuts (`score_edits`).

Shared by tests/test_plan_cuts.py (recall and precision >= 0.95 on 4 edits) and bench/bench_encode.py (`--only cuts`,
20 edits), so both measure the same edits the same way (engine/film/cut_eval.py holds the scoring rule).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .cut_eval import match


def _texture(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A luminance structure `(h, w)` with a standard normal marginal (rank-transformed), so every kind has the same
    grey-level histogram: only structure tells shots apart."""
    from scipy.special import ndtri

    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    if kind == "grating":
        th, f = rng.uniform(0, np.pi), rng.uniform(6, 20)
        x = np.sin(2 * np.pi * f * (np.cos(th) * xx + np.sin(th) * yy) + rng.uniform(0, 6))
        x = x + 0.3 * rng.standard_normal((h, w))
    elif kind == "blobs":
        from scipy.ndimage import gaussian_filter

        x = gaussian_filter(rng.standard_normal((h, w)), rng.uniform(3, 9))
    elif kind == "fine":
        from scipy.ndimage import gaussian_filter

        x = gaussian_filter(rng.standard_normal((h, w)), rng.uniform(0.6, 1.5))
    else:  # "bricks": horizontal courses of blocks
        bh, bw = int(rng.integers(8, 20)), int(rng.integers(16, 40))
        row = (np.arange(h)[:, None] // bh)
        col = (np.arange(w)[None, :] + (row % 2) * bw // 2) // bw
        x = ((row * 7 + col * 13) % 5).astype(float) + 0.8 * rng.standard_normal((h, w))
        x[(np.arange(h) % bh) < 2, :] = -3
    r = np.argsort(np.argsort(x.ravel())).reshape(h, w)
    return ndtri((r + 0.5) / r.size).astype(np.float32)


def same_palette_edit(seed: int, n_shots: int = 8) -> dict:
    """An edit spec: one base colour for every shot (a second palette for a quarter of them), shot textures drawn
    from four structures, pans from still to fast (up to a frame width a second), one-frame flashes inside some
    shots. Returns {"shots": [...], "colour": ...}."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.7, 3)
    other = rng.uniform(0.3, 0.7, 3)
    shots = []
    for i in range(n_shots):
        shots.append({"kind": str(rng.choice(["grating", "blobs", "fine", "bricks"])),
                      "duration": float(rng.uniform(2.0, 4.5)), "speed": float(rng.choice([0, 0.05, 0.3, 1.0])),
                      "colour": (other if rng.random() < 0.25 else base).tolist(), "seed": int(rng.integers(1e6)),
                      "flash": bool(rng.random() < 0.3)})
    return {"shots": shots}


def write_palette_edit(path: str | Path, spec: dict, width: int = 256, height: int = 144,
                       fps: int = 25) -> list[float]:
    """Render `spec` to H.264 at `path`; returns the true cut instants (first frame of each new shot)."""
    import av
    from fractions import Fraction

    cuts, frames = [], []
    t = 0
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(fps))
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        for i, s in enumerate(spec["shots"]):
            rng = np.random.default_rng(s["seed"])
            tex = _texture(s["kind"], rng, height * 2, width * 3)
            colour = np.asarray(s["colour"], np.float32)
            n = int(round(s["duration"] * fps))
            if i:
                cuts.append(t / fps)
            flash_at = int(rng.integers(n // 4, 3 * n // 4)) if s["flash"] else -1
            for k in range(n):
                x = int(round(s["speed"] * width * k / fps)) % (4 * width)
                x = x if x <= 2 * width else 4 * width - x  # the camera pans back and forth: no jump
                y = int(round(0.1 * height * np.sin(0.8 * k / fps))) + height // 2
                lum = tex[y:y + height, x:x + width]
                img = colour[None, None, :] * (1.0 + 0.35 * lum[..., None])
                if k == flash_at:
                    img = img * 1.8 + 0.15
                f = av.VideoFrame.from_ndarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), format="rgb24")
                for p in st.encode(f):
                    out.mux(p)
                t += 1
        for p in st.encode():
            out.mux(p)
    return cuts


def score_edits(seeds: Iterable[int], tmp: Path) -> dict:
    """Each seed's edit written under `tmp` and run through the film encoder (no faces, no cache): precision and
    recall of its cuts at +-1 frame of the 10/s grid (`cut_eval.match`), with the counts behind them."""
    from .encoder import encode_video  # pulls in torch: only when measuring

    tp = n_det = n_true = 0
    for seed in seeds:
        path = tmp / f"palette{seed}.mp4"
        true = write_palette_edit(path, same_palette_edit(seed))
        det = encode_video(path, faces=False, cache=False).cuts_s
        a, b, c = match(det, true)
        tp, n_det, n_true = tp + a, n_det + b, n_true + c
    return {"precision": tp / max(n_det, 1), "recall": tp / max(n_true, 1), "tp": tp, "detected": n_det,
            "true": n_true}
