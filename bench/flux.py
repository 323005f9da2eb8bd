"""Spectral flux, the benches' measure of a seam (bench_seams.py, bench_editor_loop.py, bench_conform.py): the mean
positive frame-to-frame change of the delivered audio's log-Mel, at 100 frames/s. A join that is heard stands out of
the flux measured inside windows, where nothing was joined."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def spectral_flux(wave: np.ndarray) -> np.ndarray:
    """(T - 1,) flux of `wave` (mono, the model's rate) frame to frame."""
    from filmscore.engine.audio.mel import log_mel

    mel = log_mel(wave).numpy()
    return np.maximum(np.diff(mel, axis=1), 0).mean(axis=0)


def stats(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(x.mean()), "p50": float(np.percentile(x, 50)), "p95": float(np.percentile(x, 95)),
            "p99": float(np.percentile(x, 99)), "max": float(x.max()), "n_frames": int(x.size)}


def near_times(n_frames: int, times_s: Iterable[float], half_width_s: float) -> np.ndarray:
    """Mask of the flux frames within `half_width_s` of any of `times_s`."""
    from filmscore.engine.constants import MEL_FRAME_RATE

    mask = np.zeros(n_frames, bool)
    near = int(round(half_width_s * MEL_FRAME_RATE))
    for t in times_s:
        f = int(round(t * MEL_FRAME_RATE))
        mask[max(0, f - near):min(n_frames, f + near)] = True
    return mask


def window_overlaps(n_frames: int, n_latent: int) -> np.ndarray:
    """Mask of the flux frames where neighbouring denoising windows of a cue of `n_latent` latent frames overlap
    (and are fused): the joins every long cue has, which `bench_seams.py` measures."""
    from filmscore.engine.constants import LATENT_DOWNSAMPLE, WINDOW_MEL_FRAMES, WINDOW_OVERLAP_MEL_FRAMES
    from filmscore.engine.windowed import plan_windows

    windows = plan_windows(n_latent, WINDOW_MEL_FRAMES // LATENT_DOWNSAMPLE,
                           WINDOW_OVERLAP_MEL_FRAMES // LATENT_DOWNSAMPLE, 8)
    mask = np.zeros(n_frames, bool)
    for prev, nxt in zip(windows, windows[1:]):
        mask[nxt.start * LATENT_DOWNSAMPLE:min((prev.start + prev.length) * LATENT_DOWNSAMPLE, n_frames)] = True
    return mask


def join_report(flux: np.ndarray, at_join: np.ndarray, inside: np.ndarray) -> dict:
    """Flux at the join frames against the frames `inside` (masks over `flux`)."""
    j, i = flux[at_join], flux[inside]
    return {"flux_inside_windows": stats(i), "flux_at_joins": stats(j),
            "ratio_mean_join_to_inside": float(j.mean() / i.mean()),
            "share_join_frames_above_inside_p99": float((j > np.percentile(i, 99)).mean())}
