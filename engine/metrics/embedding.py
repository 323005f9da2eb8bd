"""A self-trained audio embedding and master-style classifier, trained on corpus renders.

One small network serves three metrics: its class output recognises the master (recognizability), its penultimate
layer is the audio embedding of the FAD-proxy (quality) and of the embedding similarity (originality). It is *not*
VGGish or any published embedding: numbers made with it compare systems within one report, not across papers.

Network: log-Mel `(B, 128, T)` (level-normalised, see `prepare_log_mel`) -> 1D convolutions over time with the Mel
bands as channels (4 layers, 3 of them stride 2) -> mean and standard deviation over time -> linear -> embedding
`(B, EMBED_DIM)` -> linear -> master logits. Trained on random 3 s crops, classes sampled evenly, with
cross-entropy on the master plus SimCLR's contrastive loss between two crops of each clip (Chen et al. 2020): the
class term alone collapses the embedding onto a few class directions (measured: every clip's nearest other work at
cosine 0.99), the contrastive term keeps clips apart, which originality's embedding similarity and the FAD-proxy
need. Tested on works it never saw (split by work, as the corpus's own held-out split is).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..audio.mel import MelConfig, log_mel
from ..constants import MEL_FRAME_RATE, MODEL_SAMPLE_RATE
from ..errors import FilmscoreError

logger = logging.getLogger(__name__)

CROP_FRAMES = 3 * MEL_FRAME_RATE  # 3 s crops for training and for segment embeddings
SEGMENT_HOP_FRAMES = MEL_FRAME_RATE  # segment embeddings every 1 s
EMBED_DIM = 32
CONTRASTIVE_WEIGHT = 1.0
CONTRASTIVE_TEMPERATURE = 0.1
TARGET_RMS_DB = -26.0
"""Audio is scaled to this RMS level before the Mel front-end: renders, model output and ground truth arrive at
different levels, and the embedding should not tell them apart by level alone."""


@dataclass(frozen=True)
class EmbedderConfig:
    n_mels: int = 128
    width: int = 96
    embed_dim: int = EMBED_DIM
    classes: tuple[str, ...] = ()


class AudioEmbedder(nn.Module):
    def __init__(self, config: EmbedderConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.convs = nn.Sequential(
            nn.Conv1d(config.n_mels, w, 5, padding=2), nn.GELU(),
            nn.Conv1d(w, w, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(w, w, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(w, w, 5, stride=2, padding=2), nn.GELU())
        self.norm = nn.LayerNorm(2 * w)
        self.embed = nn.Linear(2 * w, config.embed_dim)
        self.head = nn.Linear(config.embed_dim, max(1, len(config.classes)))

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, n_mels, T)` normalised log-Mel -> embedding `(B, D)`, logits `(B, n_classes)`."""
        h = self.convs(mel)
        h = self.norm(torch.cat([h.mean(-1), h.std(-1)], dim=1))
        e = self.embed(h)
        return e, self.head(torch.nn.functional.gelu(e))

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / "embedder.safetensors"))
        (directory / "embedder.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> AudioEmbedder:
        from safetensors.torch import load_file

        try:
            cfg = json.loads((directory / "embedder.json").read_text())
            cfg["classes"] = tuple(cfg["classes"])
            model = cls(EmbedderConfig(**cfg))
            model.load_state_dict(load_file(str(directory / "embedder.safetensors")))
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
            raise FilmscoreError(f"audio embedder in {directory}: cannot load ({e})") from e
        return model.eval()


def prepare_log_mel(wave: np.ndarray, sr: int = MODEL_SAMPLE_RATE, mel: MelConfig = MelConfig()) -> np.ndarray:
    """Mono `(n,)` audio -> `(n_mels, T)` float32 log-Mel of the audio scaled to `TARGET_RMS_DB`."""
    from ..audio.io import resample

    y = resample(np.asarray(wave, np.float32), sr, mel.sample_rate)
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) if y.size else 0.0
    if rms > 1e-8:
        y = y * (10 ** (TARGET_RMS_DB / 20) / rms)
    return log_mel(y, mel).numpy().astype(np.float32)


def normalise_log_mel(m: np.ndarray) -> np.ndarray:
    """Centre a log-Mel `(n_mels, T)` as the network sees it (the AudioLDM log floor is -11.5)."""
    return ((np.asarray(m, np.float32) + 5.0) / 3.0).astype(np.float32)


def segments(m: np.ndarray, crop: int = CROP_FRAMES, hop: int = SEGMENT_HOP_FRAMES) -> np.ndarray:
    """`(n_mels, T)` -> `(S, n_mels, crop)` windows every `hop` frames (one zero-padded window if T < crop)."""
    t = m.shape[1]
    if t < crop:
        out = np.full((m.shape[0], crop), m.min() if m.size else 0.0, np.float32)
        out[:, :t] = m
        return out[None]
    starts = list(range(0, t - crop + 1, hop))
    return np.stack([m[:, s:s + crop] for s in starts]).astype(np.float32)


@torch.no_grad()
def embed_log_mel(model: AudioEmbedder, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment embeddings `(S, D)` and segment logits `(S, K)` of a level-normalised log-Mel `(n_mels, T)`."""
    x = torch.from_numpy(normalise_log_mel(segments(m)))
    embs, logits = [], []
    for a in range(0, x.shape[0], 64):
        e, lg = model(x[a:a + 64])
        embs.append(e)
        logits.append(lg)
    return torch.cat(embs).numpy(), torch.cat(logits).numpy()


@dataclass
class TrainedClassifier:
    model: AudioEmbedder
    heldout_accuracy: float  # clip level, works never seen in training
    heldout_balanced_accuracy: float
    chance: float  # 1 / number of classes
    n_train_clips: int
    n_heldout_clips: int
    confusion: list[list[int]]  # [true][predicted]
    steps: int

    def summary(self) -> dict:
        return {"heldout_accuracy": self.heldout_accuracy, "heldout_balanced_accuracy": self.heldout_balanced_accuracy,
                "chance": self.chance, "n_train_clips": self.n_train_clips, "n_heldout_clips": self.n_heldout_clips,
                "classes": list(self.model.config.classes), "confusion": self.confusion, "steps": self.steps}


def _nt_xent(emb: torch.Tensor, picks: list[int], temperature: float = CONTRASTIVE_TEMPERATURE) -> torch.Tensor:
    """SimCLR's NT-Xent over `(2B, D)` embeddings whose rows i and i + B are two crops of clip `picks[i]`: each
    crop must find its twin among the others; crops of the same clip drawn twice are not counted as negatives."""
    b = len(picks)
    z = nn.functional.normalize(emb, dim=1)
    sim = z @ z.T / temperature
    ids = torch.tensor(picks * 2)
    same = ids[:, None] == ids[None, :]
    twin = torch.arange(2 * b).roll(b)
    mask = same.clone()
    mask[torch.arange(2 * b), twin] = False  # keep the twin as the positive
    sim = sim.masked_fill(mask, float("-inf"))
    return nn.functional.cross_entropy(sim, twin)


def split_by_work(works: list[str], masters: list[str], fraction: float, seed: int) -> set[str]:
    """Works held out from classifier training: about `fraction` of each master's works, at least one, and only
    for masters with two works or more."""
    rng = np.random.default_rng(seed)
    by_master: dict[str, list[str]] = {}
    for w, m in sorted(set(zip(works, masters))):
        by_master.setdefault(m, []).append(w)
    out: set[str] = set()
    for m, ws in sorted(by_master.items()):
        if len(ws) < 2:
            continue
        k = max(1, int(round(fraction * len(ws))))
        out.update(rng.choice(ws, size=min(k, len(ws) - 1), replace=False).tolist())
    return out


def train_classifier(mels: list[np.ndarray], masters: list[str], works: list[str], *, steps: int = 400,
                     batch: int = 32, heldout_fraction: float = 0.25, extra_heldout: list[tuple[np.ndarray, str]]
                     = (), seed: int = 0, progress=None) -> TrainedClassifier:
    """Train on level-normalised log-Mels `(n_mels, T)` of corpus clips labelled with their master and work.

    Classes: masters with at least two works (one to learn, one to test). `extra_heldout`: (log-Mel, master) of
    the corpus's own held-out split, added to the test clips. Raises FilmscoreError with fewer than two classes."""
    if not (len(mels) == len(masters) == len(works)):
        raise ValueError("mels, masters and works must have one entry per clip")
    n_works = {m: len({w for w, mm in zip(works, masters) if mm == m}) for m in set(masters)}
    classes = tuple(sorted(m for m, n in n_works.items() if n >= 2))
    if len(classes) < 2:
        raise FilmscoreError(f"master classifier: need two masters with two works each, corpus has {n_works}")
    test_works = split_by_work(works, masters, heldout_fraction, seed)
    cls_of = {m: i for i, m in enumerate(classes)}
    train = [(normalise_log_mel(x), cls_of[m]) for x, m, w in zip(mels, masters, works)
             if m in cls_of and w not in test_works]
    test = [(x, cls_of[m]) for x, m, w in zip(mels, masters, works) if m in cls_of and w in test_works]
    test += [(x, cls_of[m]) for x, m in extra_heldout if m in cls_of]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AudioEmbedder(EmbedderConfig(n_mels=int(mels[0].shape[0]), classes=classes))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    by_class = [[i for i, (_, c) in enumerate(train) if c == k] for k in range(len(classes))]
    by_class = [b for b in by_class if b]
    model.train()

    def crop(x: np.ndarray) -> np.ndarray:
        if x.shape[1] <= CROP_FRAMES:
            return segments(x, CROP_FRAMES, CROP_FRAMES)[0]
        s = int(rng.integers(0, x.shape[1] - CROP_FRAMES + 1))
        return x[:, s:s + CROP_FRAMES] + rng.normal(0.0, 0.15)  # +-~4 dB level jitter (normalised log domain)

    for step in range(steps):
        picks = []
        for _ in range(batch):
            pool = by_class[rng.integers(len(by_class))]
            picks.append(pool[rng.integers(len(pool))])
        views = np.stack([crop(train[i][0]) for i in picks] + [crop(train[i][0]) for i in picks])
        ys = torch.tensor([train[i][1] for i in picks] * 2)
        emb, logits = model(torch.from_numpy(views.astype(np.float32)))
        loss = nn.functional.cross_entropy(logits, ys) + CONTRASTIVE_WEIGHT * _nt_xent(emb, picks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress((step + 1) / steps, f"classifier step {step + 1}/{steps} loss {loss.item():.3f}")
    model.eval()
    k = len(classes)
    conf = np.zeros((k, k), np.int64)
    for x, c in test:
        _, lg = embed_log_mel(model, x)
        conf[c, int(lg.mean(axis=0).argmax())] += 1
    n = int(conf.sum())
    acc = float(np.trace(conf) / n) if n else float("nan")
    per = [conf[i, i] / conf[i].sum() for i in range(k) if conf[i].sum()]
    return TrainedClassifier(model, acc, float(np.mean(per)) if per else float("nan"), 1.0 / k, len(train), n,
                             conf.tolist(), steps)


def predict_master(model: AudioEmbedder, m: np.ndarray) -> tuple[str, np.ndarray]:
    """The recognised master of a clip (mean segment logits) and the class probabilities `(K,)`."""
    _, lg = embed_log_mel(model, m)
    z = lg.mean(axis=0)
    p = np.exp(z - z.max())
    p /= p.sum()
    return model.config.classes[int(p.argmax())], p
