"""The corpus as training arrays: log-Mel, control inputs and picture features per clip, cropped at random.

Reads `index.jsonl` of a corpus built by `filmscore data build` (engine/data). Log-Mels are computed once per clip
and cached beside the corpus (`cache/mel<n_mels>/ID.npy`, float16). `reload()` picks up clips appended while the
corpus is still being built. `where` keeps only the clips whose index fields match (e.g. one orchestration or
master), so a stage can be tuned on a subset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio.mel import MelConfig
from ..constants import LATENT_DOWNSAMPLE, VIDEO_FPS
from ..controls.types import Controls
from ..data.mel_cache import cached_log_mel
from ..errors import FilmscoreError
from ..film.features import FilmFeatures

logger = logging.getLogger(__name__)

DEFAULT_CORPUS = Path.home() / ".cache" / "filmscore" / "corpus" / "v1"


@dataclass
class Clip:
    id: str
    work: str
    master: str
    split: str
    log_mel: np.ndarray  # (n_mels, T) float16, T a multiple of 4
    control_input: np.ndarray  # (14, T) float32: Controls.to_model_input() over the whole clip
    controls: Controls
    features: np.ndarray | None  # (N, Df) float32 at 10 fps, or None when not yet encoded
    feature_layout: str | None
    audio_path: Path


def parse_where(items: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """`["orchestration=strings,brass", "master=bach"]` -> {field: allowed values}: a clip is kept when every
    field's value (as text) is one of its allowed values."""
    where: dict[str, tuple[str, ...]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        values = tuple(v.strip() for v in value.split(",") if v.strip())
        if not sep or not key.strip() or not values:
            raise FilmscoreError(f"--where {item!r}: expected FIELD=VALUE[,VALUE...], e.g. orchestration=strings")
        where[key.strip()] = where.get(key.strip(), ()) + values
    return where


class Corpus:
    def __init__(self, root: str | Path = DEFAULT_CORPUS, split: str = "train", mel: MelConfig = MelConfig(),
                 need_features: bool = False, where: dict[str, tuple[str, ...]] | None = None):
        self.root = Path(root)
        if not (self.root / "index.jsonl").is_file():
            raise FilmscoreError(f"{self.root}: no corpus here (no index.jsonl); build one with `filmscore data build`")
        self.split, self.mel, self.need_features = split, mel, need_features
        self.where = dict(where or {})
        self.clips: list[Clip] = []
        self._seen: set[str] = set()
        self._fields: dict[str, set[str]] = {}  # index field -> values seen in this split (for the error below)
        self.reload()
        if self.where and not self.clips:
            raise FilmscoreError(f"{self.root}: no {split} clip matches {self._describe_where()}; "
                                 + self._field_hint())

    def _describe_where(self) -> str:
        return " ".join(f"{k}={','.join(v)}" for k, v in self.where.items())

    def _field_hint(self) -> str:
        for key in self.where:
            if key not in self._fields:
                return f"no clip has a field {key!r} (fields: {', '.join(sorted(self._fields))})"
        key = next(iter(self.where))
        return f"{key} values here: {', '.join(sorted(self._fields[key])[:20])}"

    def _matches(self, entry: dict) -> bool:
        for key, value in entry.items():
            if isinstance(value, (str, int, float, bool)):
                self._fields.setdefault(key, set()).add(str(value))
        return all(str(entry.get(k)) in values for k, values in self.where.items())

    def reload(self) -> int:
        """Load clips appended to the index since the last call; returns how many were added."""
        added = 0
        with open(self.root / "index.jsonl") as f:
            for line in f:
                if not line.strip():
                    continue
                entry = json.loads(line)
                if entry["split"] != self.split or (self.where and not self._matches(entry)):
                    continue
                if entry["id"] in self._seen:
                    self._refresh_features(entry)
                    continue
                if self.need_features and not entry.get("features"):
                    continue
                try:
                    clip = self._load(entry)
                except (FilmscoreError, OSError, KeyError, ValueError) as e:
                    logger.warning("skipping clip %s: %s", entry.get("id"), e)
                    self._seen.add(entry["id"])
                    continue
                self._seen.add(entry["id"])
                self.clips.append(clip)
                added += 1
        return added

    def _refresh_features(self, e: dict) -> None:
        """Picture features are encoded after the audio (`filmscore data features`): attach them when they land."""
        fpath = e.get("features")
        if not fpath or not (self.root / fpath).is_file():
            return
        for c in self.clips:
            if c.id == e["id"] and c.features is None:
                ff = FilmFeatures.load_npz(self.root / fpath)
                c.features, c.feature_layout = ff.frame_matrix(), ff.layout

    def _load(self, e: dict) -> Clip:
        audio_path = self.root / e["audio"]
        m = cached_log_mel(self.root, e["id"], audio_path, self.mel)
        t = (m.shape[1] // LATENT_DOWNSAMPLE) * LATENT_DOWNSAMPLE
        controls = Controls.load_npz(self.root / e["controls"]).fit_length(t)
        feats, layout = None, None
        fpath = e.get("features")
        if fpath and (self.root / fpath).is_file():
            ff = FilmFeatures.load_npz(self.root / fpath)
            feats, layout = ff.frame_matrix(), ff.layout
        return Clip(e["id"], e.get("work", ""), e.get("master", ""), e["split"], m[:, :t],
                    controls.to_model_input(), controls, feats, layout, audio_path)

    @property
    def hours(self) -> float:
        return sum(c.log_mel.shape[1] for c in self.clips) / self.mel.frame_rate / 3600

    def feature_dim(self) -> int | None:
        for c in self.clips:
            if c.features is not None:
                return int(c.features.shape[1])
        return None

    def sample_crops(self, rng: np.random.Generator, batch: int, crop: int) -> list[tuple[Clip, int]]:
        """`batch` (clip, start Mel frame) pairs, starts on the latent grid, clips longer than `crop` only."""
        ok = [c for c in self.clips if c.log_mel.shape[1] >= crop]
        if not ok:
            raise FilmscoreError(f"{self.root}: no {self.split} clip is {crop / 100:.2f} s long")
        out = []
        for _ in range(batch):
            c = ok[rng.integers(len(ok))]
            start = int(rng.integers(0, (c.log_mel.shape[1] - crop) // LATENT_DOWNSAMPLE + 1)) * LATENT_DOWNSAMPLE
            out.append((c, start))
        return out


def mel_batch(crops: list[tuple[Clip, int]], crop: int) -> torch.Tensor:
    """`(B, n_mels, crop)` float32."""
    return torch.from_numpy(np.stack([c.log_mel[:, s:s + crop] for c, s in crops]).astype(np.float32))


def control_batch(crops: list[tuple[Clip, int]], crop: int) -> torch.Tensor:
    """`(B, 14, crop)` float32."""
    return torch.from_numpy(np.stack([c.control_input[:, s:s + crop] for c, s in crops]))


def feature_batch(crops: list[tuple[Clip, int]], crop: int, feature_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, N, Df)` picture frames of each crop (N = crop duration at 10 fps) and a `(B,)` bool "has picture"."""
    n = max(1, round(crop / 100 * VIDEO_FPS))
    out = np.zeros((len(crops), n, feature_dim), np.float32)
    has = np.zeros(len(crops), bool)
    for i, (c, s) in enumerate(crops):
        if c.features is None or c.features.shape[1] != feature_dim:
            continue
        a = min(int(round(s / 100 * VIDEO_FPS)), max(c.features.shape[0] - n, 0))
        f = c.features[a:a + n]
        out[i, :f.shape[0]] = f
        has[i] = f.shape[0] > 0
    return torch.from_numpy(out), torch.from_numpy(has)
