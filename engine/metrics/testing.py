"""Tiny corpora and evaluation sets made on the spot, for tests and for trying `filmscore eval` without the real
corpus (as `engine/bundle_testing.py` does for bundles). Audio is additive-synthesis melodies (no FluidSynth needed):
each "master" plays in its own register and timbre so that a classifier can learn them in a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..constants import MODEL_SAMPLE_RATE

MASTERS = {"low": (48, (1.0, 0.6, 0.4, 0.3)), "high": (76, (1.0, 0.1))}  # base MIDI pitch, harmonic amplitudes
SCALE = (0, 2, 4, 5, 7, 9, 11, 12)


def melody_audio(pitches: list[int], note_s: float, harmonics=(1.0, 0.5), seed: int = 0,
                 sr: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """`(len(pitches) * note_s * sr,)` float32: one note after another, decaying partials, a little noise."""
    rng = np.random.default_rng(seed)
    n = int(round(note_s * sr))
    t = np.arange(n) / sr
    env = np.exp(-t * 3.0) * np.minimum(1.0, t / 0.01)
    out = []
    for p in pitches:
        f = 440.0 * 2 ** ((p - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * f * (k + 1) * t) for k, a in enumerate(harmonics) if f * (k + 1) < sr / 2)
        out.append(0.2 * env * tone)
    wave = np.concatenate(out) if out else np.zeros(0)
    return (wave + rng.normal(0, 1e-3, wave.size)).astype(np.float32)


def make_tiny_corpus(root: str | Path, works_per_master: int = 3, duration_s: float = 4.0, seed: int = 0) -> Path:
    """A corpus folder with index.jsonl, audio (FLAC) and controls for two masters x `works_per_master` train works
    (two renders each: the second transposed, as the corpus builder does) plus one held-out work per master."""
    import soundfile as sf

    from ..controls.audio import controls_from_audio

    root = Path(root)
    rng = np.random.default_rng(seed)
    lines = []
    n_notes = int(duration_s / 0.25)
    for master, (base, harmonics) in MASTERS.items():
        for w in range(works_per_master + 1):
            split = "heldout" if w == works_per_master else "train"
            tune = [base + SCALE[i] for i in rng.integers(0, len(SCALE), n_notes)]
            for r, shift in enumerate((0, 2) if split == "train" else (0,)):
                cid = f"{master}-w{w}-r{r}"
                d = root / "clips" / master / cid
                d.mkdir(parents=True, exist_ok=True)
                wave = melody_audio([p + shift for p in tune], 0.25, harmonics, seed=w * 10 + r)
                sf.write(str(d / "audio.flac"), wave, MODEL_SAMPLE_RATE, subtype="PCM_16")
                controls_from_audio(wave, MODEL_SAMPLE_RATE).save_npz(d / "controls.npz")
                lines.append({"id": cid, "work": f"{master}/w{w}", "master": master, "split": split,
                              "duration_s": duration_s, "audio": f"clips/{master}/{cid}/audio.flac",
                              "controls": f"clips/{master}/{cid}/controls.npz", "cuts_s": [], "hits_s": []})
    (root / "index.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def make_tiny_set(root: str | Path, duration_s: float = 2.0, with_video: bool = True) -> Path:
    """An evaluation set of two items whose requested controls are re-extracted from their own ground truth (so
    the `ground_truth` system scores melody accuracy 1 and dynamics r 1), the first over a synthetic two-shot film
    with a cut at 1 s and notes starting on it."""
    import soundfile as sf

    from ..controls.audio import controls_from_audio
    from .. import sidecar

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for k, (base, harmonics) in enumerate(MASTERS.values()):
        pitches = [base + SCALE[(i * (k + 2)) % len(SCALE)] for i in range(int(duration_s / 0.25))]
        wave = melody_audio(pitches, 0.25, harmonics, seed=k)
        sf.write(str(root / f"gt{k}.flac"), wave, MODEL_SAMPLE_RATE, subtype="PCM_16")
        controls_from_audio(wave, MODEL_SAMPLE_RATE).save_npz(root / f"controls{k}.npz")
        item = {"id": f"item{k}", "duration_s": duration_s, "controls": f"controls{k}.npz", "audio": f"gt{k}.flac",
                "master": list(MASTERS)[k], "seed": k}
        if with_video and k == 0:
            from ..film.synthetic import Shot, write_edit

            write_edit(root / "film.mp4", [Shot("pan", duration_s / 2, seed=1), Shot("shapes", duration_s / 2,
                                                                                      seed=2)], width=128, height=72)
            item["video"] = "film.mp4"
            item["hits_s"] = [duration_s / 2]
        items.append(item)
    (root / "set.json").write_text(json.dumps(sidecar.stamped(sidecar.EVALSET, {"name": "tiny", "items": items}),
                                              indent=1))
    return root
