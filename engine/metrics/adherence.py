"""Control adherence, as Music ControlNet (Wu et al. 2023, arXiv 2311.07069, sec. 5.2) defines it.

- Melody accuracy: frame-wise agreement of the pitch class between the requested melody and the melody re-extracted
  from the generated audio, over the frames where the request has a note (voiced frames). A generated frame that
  the extractor finds unvoiced counts as a miss.
- Dynamics correlation: Pearson r between the requested dynamics curve and the one re-extracted from the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..controls.types import Controls


def melody_accuracy(requested: np.ndarray, extracted: np.ndarray) -> float:
    """`(T, 12)` one-hot (all-zero rows = rest) each; nan when the request has no voiced frame."""
    n = min(requested.shape[0], extracted.shape[0])
    req, ext = requested[:n], extracted[:n]
    voiced = req.sum(axis=1) > 0
    if not voiced.any():
        return float("nan")
    hit = (req[voiced].argmax(axis=1) == ext[voiced].argmax(axis=1)) & (ext[voiced].sum(axis=1) > 0)
    return float(hit.mean())


def dynamics_correlation(requested: np.ndarray, extracted: np.ndarray) -> float:
    """Pearson r of two `(T,)` dB curves (trimmed to the shorter); nan when either is constant."""
    n = min(requested.shape[0], extracted.shape[0])
    a, b = requested[:n].astype(np.float64), extracted[:n].astype(np.float64)
    if n < 2 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


# -- per cue and pooled, by re-extraction --------------------------------------------------------------------------
@dataclass(frozen=True)
class CueAdherence:
    """Adherence of one cue. melody_hits / melody_voiced: frame counts behind `melody_accuracy` (for pooling);
    requested_db / extracted_db: the two dynamics curves `(T,)` in dB (kept for pooling and plots);
    extracted_melody: `(T, 12)` the re-extracted melody (for plots)."""

    melody_accuracy: float
    dynamics_r: float
    melody_hits: int
    melody_voiced: int
    requested_db: np.ndarray
    extracted_db: np.ndarray
    extracted_melody: np.ndarray


def measure_adherence(requested: Controls, wave: np.ndarray, sr: int) -> CueAdherence:
    """Re-extract melody and dynamics from `wave` `(n,)` at `sr` Hz with the reference-audio recipe
    (`controls_from_audio`, Music ControlNet's) and compare with `requested`. A control the request does not
    carry (`melody_present` / `dynamics_present` False) scores nan."""
    from ..controls.audio import controls_from_audio

    ext = controls_from_audio(np.asarray(wave, np.float32), sr, requested.n_frames)
    n = requested.n_frames
    if requested.melody_present:
        voiced = requested.melody.sum(axis=1) > 0
        hit = (requested.melody.argmax(axis=1) == ext.melody.argmax(axis=1)) & (ext.melody.sum(axis=1) > 0)
        n_voiced, n_hit = int(voiced.sum()), int((hit & voiced).sum())
        acc = melody_accuracy(requested.melody, ext.melody)
    else:
        n_voiced, n_hit, acc = 0, 0, float("nan")
    r = dynamics_correlation(requested.dynamics, ext.dynamics) if requested.dynamics_present else float("nan")
    return CueAdherence(acc, r, n_hit, n_voiced, requested.dynamics[:n].astype(np.float32),
                        ext.dynamics[:n].astype(np.float32), ext.melody)


def pool_adherence(cues: list[CueAdherence]) -> dict[str, float]:
    """Aggregate over cues. Melody: `melody_accuracy_pooled` = all hits / all voiced frames, and the mean of the
    per-cue accuracies. Dynamics: `dynamics_r_micro` = mean of per-cue r (Music ControlNet's micro), and
    `dynamics_r_macro` = one r over the frames of all cues (macro), each cue's two curves centred on their own mean
    first (the model sees centred dynamics: `Controls.to_model_input`). nan where nothing can be measured."""
    voiced = sum(c.melody_voiced for c in cues)
    accs = [c.melody_accuracy for c in cues if np.isfinite(c.melody_accuracy)]
    rs = [c.dynamics_r for c in cues if np.isfinite(c.dynamics_r)]
    with_dyn = [c for c in cues if np.isfinite(c.dynamics_r)]
    macro = float("nan")
    if with_dyn:
        a = np.concatenate([c.requested_db - c.requested_db.mean() for c in with_dyn])
        b = np.concatenate([c.extracted_db - c.extracted_db.mean() for c in with_dyn])
        macro = dynamics_correlation(a, b)
    return {
        "melody_accuracy_pooled": sum(c.melody_hits for c in cues) / voiced if voiced else float("nan"),
        "melody_accuracy_mean": float(np.mean(accs)) if accs else float("nan"),
        "dynamics_r_micro": float(np.mean(rs)) if rs else float("nan"),
        "dynamics_r_macro": macro,
        "n_cues": len(cues),
    }
