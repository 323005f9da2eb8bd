"""Test helpers for bundle v2: `make_tiny_bundle_v2` (tiny random-weight v2 bundle, real safetensors, renders real
audio that is not music) and `write_tiny_corpus_v2` (a few seconds of corpus v2 in the build's file layout: stem
FLACs that sum to the mix, labels through engine/data/labels.py's writer, index.jsonl, corpus.json), so the v2
reader and stages run on real files in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .bundle_v2 import save_bundle_v2
from .data.labels import LABELS_SCHEMA, save_labels
from .data.orchestration_v2 import STEMS
from .models import FilmScoreControlNet1D, FilmScoreUNet1D, FilmTokenHead, GlobalConditionV2, MelVAE
from .models.controls_v2 import CONTROL_CHANNELS_V2

TINY_SAMPLE_RATE = 24_000


def make_tiny_bundle_v2(path: str | Path, seed: int = 0, *, feature_dim: int = 16, feature_layout: str = "tiny",
                        masters: tuple[str, ...] = ("bach", "folk"), sample_rate: int = TINY_SAMPLE_RATE,
                        n_mels: int = 32, default_size: bool = False) -> Path:
    """A random-weight v2 bundle: tiny (tests), or with `default_size` the sizes `train_v2` trains on 2 CPU cores
    (128 bands, 32 latent channels per stem, UNet (128, 192, 256), vocoder 256 x 6, film head at `feature_dim`):
    for measuring speed before a trained model exists."""
    from .training.corpus_v2 import v2_mel_config
    from .training.train_v2 import V2_LATENT_CHANNELS, build_v2_models, v2_vocoder

    torch.manual_seed(seed)
    if default_size:
        mel = v2_mel_config(sample_rate)
        vae = MelVAE(n_mels=mel.n_mels, latent_channels=V2_LATENT_CHANNELS)
        models = build_v2_models(V2_LATENT_CHANNELS, len(STEMS), feature_dim, feature_layout, masters)
        models.update(vae=vae, vocoder=v2_vocoder(mel))
        _perturb_zero_convs(models["controlnet"])
    else:
        mel = v2_mel_config(sample_rate, n_mels)
        latent = 4
        vae = MelVAE(n_mels=n_mels, latent_channels=latent, hidden_channels=16, refine_blocks=1)
        unet = FilmScoreUNet1D(in_channels=latent * len(STEMS), block_out_channels=(16, 32, 32), token_dim=16,
                               n_null_tokens=2, heads=2)
        controlnet = FilmScoreControlNet1D.from_unet(unet, control_channels=CONTROL_CHANNELS_V2)
        _perturb_zero_convs(controlnet)
        head = FilmTokenHead(feature_dim=feature_dim, token_dim=16, n_tokens=2, hidden_dim=16,
                             feature_layout=feature_layout)
        glob = GlobalConditionV2(masters=masters, token_dim=16, hidden_dim=8)
        models = {"vae": vae, "unet": unet, "controlnet": controlnet, "film_head": head, "global_cond": glob,
                  "vocoder": v2_vocoder(mel, dim=16, n_blocks=1)}
    return save_bundle_v2(path, models, name="tiny-test-v2" if not default_size else "random-v2", version="0",
                          mel=mel, stems=STEMS, side_gains={"lead": 0.3, "accompaniment": 0.6, "percussion": 0.3},
                          film_layout=feature_layout, provenance={"trained": False, "purpose": "tests"})


def _perturb_zero_convs(controlnet: FilmScoreControlNet1D) -> None:
    """`from_unet` leaves the ControlNet's output convs at zero: perturb them so tests can see the controls act."""
    with torch.no_grad():
        for p in list(controlnet.zero_convs.parameters()) + list(controlnet.mid_zero_conv.parameters()) + \
                list(controlnet.control_embedding.out.parameters()):
            p.normal_(0.0, 0.05)


def _tone(pitch: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """A harmonic tone following a per-frame MIDI pitch (0: silence), continuous phase."""
    f = np.repeat(np.where(pitch > 0, 440.0 * 2 ** ((pitch - 69) / 12.0), 0.0), hop)
    phase = 2 * np.pi * np.cumsum(f) / sr
    return (np.sin(phase) + 0.3 * np.sin(2 * phase)) * np.repeat(pitch > 0, hop)


def write_tiny_corpus_v2(root: str | Path, n_clips: int = 4, seconds: float = 6.0, seed: int = 0,
                         sample_rate: int = TINY_SAMPLE_RATE, heldout: int = 1) -> Path:
    """`n_clips` clips (the last `heldout` in the held-out split) of a scale melody over a I-IV-V-I bass and triads,
    clicks on the beats at 120 bpm; masters alternate bach / folk."""
    import soundfile as sf

    root = Path(root)
    rng = np.random.default_rng(seed)
    hop = sample_rate // 100
    n = int(round(seconds * 100))
    (root / "clips").mkdir(parents=True, exist_ok=True)
    (root / "corpus.json").write_text(json.dumps({"version": 2, "sample_rate": sample_rate}))
    lines = []
    for i in range(n_clips):
        cid = f"tiny{i}.p0.c0"
        master = ("bach", "folk")[i % 2]
        d = root / "clips" / master / cid
        d.mkdir(parents=True, exist_ok=True)
        tonic = 60 + int(rng.integers(0, 7))
        scale = tonic + np.array([0, 2, 4, 5, 7, 9, 11, 12])
        melody = np.repeat(scale[rng.integers(0, 8, n // 25 + 1)], 25)[:n].astype(np.int16)
        melody[rng.random(n) < 0.05] = 0
        roots = np.repeat(np.array([0, 5, 7, 0])[np.arange(n // 50 + 1) % 4], 50)[:n]
        bass = (tonic - 24 + roots).astype(np.int16)
        chroma = np.zeros((n, 12), np.uint8)
        for k in (0, 4, 7):
            chroma[np.arange(n), (tonic + roots + k) % 12] = 1
        beat = np.zeros(n, np.uint8)
        beat[::50] = 1
        downbeat = np.zeros(n, np.uint8)
        downbeat[::200] = 1
        dyn = (-30 + 6 * np.sin(np.arange(n) / 80.0)).astype(np.float32)
        gain = np.repeat(10 ** ((dyn + 20) / 20), hop)
        lead = 0.2 * _tone(melody, sample_rate, hop) * gain
        acc = (0.15 * _tone(bass, sample_rate, hop) + 0.1 * _tone(bass + 24 + 4, sample_rate, hop)) * gain
        perc = np.zeros(n * hop)
        for f in np.nonzero(beat)[0]:
            a = f * hop
            burst = rng.standard_normal(min(hop * 3, n * hop - a)) * np.exp(-np.arange(min(hop * 3, n * hop - a)) / 200)
            perc[a:a + len(burst)] += 0.3 * burst
        stems = {"lead": lead, "accompaniment": acc, "percussion": perc}
        mix = np.zeros((n * hop, 2))
        for s, w in stems.items():
            pan = {"lead": 0.0, "accompaniment": -0.3, "percussion": 0.4}[s]
            st = np.stack([w * (1 - pan), w * (1 + pan)], 1) * 0.5
            sf.write(str(d / f"{s}.flac"), st.astype(np.float32), sample_rate, subtype="PCM_16")
            mix += st
        sf.write(str(d / "mix.flac"), mix.astype(np.float32), sample_rate, subtype="PCM_16")
        arrays = {"melody_pitch": melody, "dynamics_db": dyn, "dynamics_level": np.zeros(n, np.float32),
                  "chord_chroma": chroma, "chord_root": ((tonic + roots) % 12).astype(np.int8), "bass_pitch": bass,
                  "beat": beat, "downbeat": downbeat}
        scalars = {"schema": LABELS_SCHEMA, "frame_rate": 100, "n_frames": n, "sample_rate": sample_rate,
                   "master": master}
        if i % 2 == 0:
            half = round(n / 200, 4)  # two shots of different mood, as engine/data/labels.py `mood_labels` writes
            scalars["mood"] = {"clip": {"energy": 0.5, "valence": 0.5, "tension": 0.5},
                               "shots": [{"start_s": 0.0, "end_s": half, "energy": 0.7, "valence": 0.3,
                                          "tension": 0.6},
                                         {"start_s": half, "end_s": n / 100, "energy": 0.3, "valence": 0.7,
                                          "tension": 0.4}]}
        save_labels(d, arrays, scalars)
        rel = d.relative_to(root).as_posix()
        lines.append({"id": cid, "version": 2, "work": f"tiny{i}", "master": master,
                      "split": "heldout" if i >= n_clips - heldout else "train", "duration_s": n / 100,
                      "sample_rate": sample_rate, "audio": f"{rel}/mix.flac",
                      "stems": {s: f"{rel}/{s}.flac" for s in STEMS}, "stems_present": {s: True for s in STEMS},
                      "labels": f"{rel}/labels.npz", "labels_meta": f"{rel}/labels.json"})
    with open(root / "index.jsonl", "w") as f:
        for rec in lines:
            f.write(json.dumps(rec) + "\n")
    return root
