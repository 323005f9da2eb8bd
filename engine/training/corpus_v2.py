"""Corpus v2 (engine/data/clip_v2.py, docs/dataset.md) as training arrays: per clip the log-Mels of its stems, the
ControlNet input of its labels (`ControlsV2`), its mood, master and picture features.

- **Mel front-end of bundle v2** (`v2_mel_config`): 100 frames/s at the corpus rate (hop = rate / 100), a 64 ms
  window as v1's 1024 points at 16 kHz, 128 Slaney bands from 0 Hz to the Nyquist frequency (12 kHz at 24 kHz).
- **Stems, mono.** The model generates each stem's mid signal ((L + R) / 2 of the stem as the corpus stores it,
  hall included); stereo is placed afterwards (engine/stereo_v2.py). Each stem's log-Mel is cached beside the corpus
  in `cache/v2-mel<n_mels>-<rate>/<stem>/<clip id>.npy` (float16; computed from the FLAC as written, once, as
  engine/data/mel_cache.py does for v1) and read memory-mapped: a 70 h corpus of three stems is ~19 GB of Mels,
  more than this machine's memory, so the page cache holds what training touches.
- `CorpusV2` is v1's `Corpus` (index reading, `reload` while the build appends, `--where` filters, late picture
  features) with a v2 clip loader. `StemCorpus` presents every (clip, stem) as one v1 `Clip`, so v1's VAE and vocoder
  stages train the shared per-stem VAE and the 24 kHz vocoder unchanged.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.mel import MelConfig, log_mel
from ..constants import CONTROL_FRAME_RATE, LATENT_DOWNSAMPLE
from ..data.labels import load_labels
from ..data.orchestration_v2 import STEMS
from ..errors import FilmscoreError
from ..film.features import FilmFeatures
from ..models.controls_v2 import ControlsV2
from .corpus_data import Clip, Corpus

logger = logging.getLogger(__name__)

DEFAULT_CORPUS_V2 = Path.home() / ".cache" / "filmscore" / "corpus" / "v2"
CORPUS_VERSION = 2
WINDOW_S = 0.064  # v1: 1024 points at 16 kHz


def v2_mel_config(sample_rate: int, n_mels: int = 128) -> MelConfig:
    """Bundle v2's Mel settings at `sample_rate` (module docstring)."""
    if sample_rate % CONTROL_FRAME_RATE:
        raise FilmscoreError(f"{sample_rate} Hz: not a multiple of {CONTROL_FRAME_RATE} (100 Mel frames/s)")
    n_fft = int(round(WINDOW_S * sample_rate / 2)) * 2
    return MelConfig(sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft,
                     hop_length=sample_rate // CONTROL_FRAME_RATE, n_mels=n_mels, f_min=0.0, f_max=sample_rate / 2)


def corpus_settings(root: Path) -> dict:
    """`corpus.json` of a v2 corpus; a clear error for anything else."""
    path = Path(root) / "corpus.json"
    if not path.is_file():
        raise FilmscoreError(f"{root}: no corpus.json; build a v2 corpus with `filmscore data build --version 2`")
    settings = json.loads(path.read_text())
    if settings.get("version") != CORPUS_VERSION:
        raise FilmscoreError(f"{path}: corpus version {settings.get('version')!r}; bundle v2 trains on version 2")
    return settings


def stem_mel_path(root: Path, clip_id: str, stem: str, mel: MelConfig) -> Path:
    return Path(root) / "cache" / f"v2-mel{mel.n_mels}-{mel.sample_rate}" / stem / f"{clip_id}.npy"


def stem_log_mel(root: Path, clip_id: str, stem: str, audio_path: Path, mel: MelConfig) -> np.ndarray:
    """The stem's mid-signal log-Mel `(n_mels, T)` float16 from the cache (memory-mapped), computed and stored
    first when missing (written whole, then renamed)."""
    import soundfile as sf

    path = stem_mel_path(root, clip_id, stem, mel)
    if not path.is_file():
        wave, sr = sf.read(str(audio_path), dtype="float32", always_2d=True)
        if sr != mel.sample_rate:
            raise FilmscoreError(f"{audio_path}: {sr} Hz, the Mel settings say {mel.sample_rate} Hz")
        m = log_mel(wave.mean(axis=1), mel).numpy().astype(np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, m)
        tmp.replace(path)
    return np.load(path, mmap_mode="r")


MOOD_KEYS = ("energy", "valence", "tension")


def mood_of(scalars: dict) -> np.ndarray | None:
    """`(S, 5)` rows [start_s, end_s, energy, valence, tension] per shot of a clip's labels.json `mood`
    (engine/data/labels.py `mood_labels`: {clip: {...}, shots: [{start_s, end_s, ...}]}; a clip-level mood alone is
    one row over the whole clip), or None when the labels carry no mood."""
    mood = scalars.get("mood")
    if not isinstance(mood, dict):
        return None
    try:
        shots = mood.get("shots") or [{"start_s": 0.0, "end_s": float(scalars.get("duration_s", 1e9)),
                                       **mood["clip"]}]
        return np.asarray([[float(s["start_s"]), float(s["end_s"]), *(float(s[k]) for k in MOOD_KEYS)]
                           for s in shots], np.float32)
    except (KeyError, TypeError, ValueError) as e:
        raise FilmscoreError(f"labels mood {mood!r}: expected clip/shots with energy, valence, tension ({e})") from e


@dataclass
class ClipV2:
    id: str
    work: str
    master: str
    split: str
    mels: list[np.ndarray]  # per stem (STEMS order) `(n_mels, T)` float16, memory-mapped; T a multiple of 4
    control_input: np.ndarray  # (CONTROL_CHANNELS_V2, T) float16: ControlsV2.to_model_input() of the whole clip
    mood: np.ndarray | None  # (S, 5) per shot: start_s, end_s, energy, valence, tension; None: no mood labels
    features: np.ndarray | None  # (N, Df) float32 at 10 fps
    feature_layout: str | None
    stem_paths: dict[str, Path]
    present: dict[str, bool]

    @property
    def n_frames(self) -> int:
        return int(self.control_input.shape[1])

    def mood_at(self, start: int, length: int) -> np.ndarray | None:
        """`(3,)` mood of Mel frames [start, start + length): the shots' moods weighted by their overlap with it."""
        if self.mood is None:
            return None
        a, b = start / CONTROL_FRAME_RATE, (start + length) / CONTROL_FRAME_RATE
        w = np.clip(np.minimum(self.mood[:, 1], b) - np.maximum(self.mood[:, 0], a), 0.0, None)
        if w.sum() <= 0:
            return self.mood[:, 2:].mean(axis=0)
        return (w[:, None] * self.mood[:, 2:]).sum(axis=0) / w.sum()


class CorpusV2(Corpus):
    """A v2 corpus split (module docstring). `mel` defaults to `v2_mel_config` at the corpus's rate."""

    def __init__(self, root: str | Path = DEFAULT_CORPUS_V2, split: str = "train", mel: MelConfig | None = None,
                 need_features: bool = False, where: dict[str, tuple[str, ...]] | None = None):
        settings = corpus_settings(Path(root))
        mel = mel or v2_mel_config(int(settings["sample_rate"]))
        if mel.sample_rate != settings["sample_rate"]:
            raise FilmscoreError(f"{root}: corpus at {settings['sample_rate']} Hz, Mel settings at {mel.sample_rate}")
        self.stems = STEMS
        super().__init__(root, split, mel, need_features, where)

    def _load(self, e: dict) -> ClipV2:  # type: ignore[override]
        if e.get("version") != CORPUS_VERSION:
            raise FilmscoreError(f"clip {e.get('id')}: not a v2 clip")
        paths = {s: self.root / e["stems"][s] for s in self.stems}
        mels = [stem_log_mel(self.root, e["id"], s, paths[s], self.mel) for s in self.stems]
        t = min(m.shape[1] for m in mels) // LATENT_DOWNSAMPLE * LATENT_DOWNSAMPLE
        arrays, scalars = load_labels(self.root / Path(e["labels"]).parent)
        ctrl = ControlsV2.from_labels(arrays).fit_length(t).to_model_input().astype(np.float16)
        feats, layout = None, None
        fpath = e.get("features")
        if fpath and (self.root / fpath).is_file():
            ff = FilmFeatures.load_npz(self.root / fpath)
            feats, layout = ff.frame_matrix(), ff.layout
        return ClipV2(e["id"], e.get("work", ""), e.get("master", ""), e["split"], [m[:, :t] for m in mels], ctrl,
                      mood_of(scalars), feats, layout, paths, dict(e.get("stems_present", {})))

    @property
    def hours(self) -> float:
        return sum(c.n_frames for c in self.clips) / self.mel.frame_rate / 3600

    def masters(self) -> tuple[str, ...]:
        return tuple(sorted({c.master for c in self.clips if c.master}))

    def sample_crops(self, rng: np.random.Generator, batch: int, crop: int) -> list[tuple[ClipV2, int]]:
        """`batch` (clip, start Mel frame) pairs, starts on the latent grid, clips at least `crop` long."""
        ok = [c for c in self.clips if c.n_frames >= crop]
        if not ok:
            raise FilmscoreError(f"{self.root}: no {self.split} clip is {crop / 100:.2f} s long")
        out = []
        for _ in range(batch):
            c = ok[rng.integers(len(ok))]
            start = int(rng.integers(0, (c.n_frames - crop) // LATENT_DOWNSAMPLE + 1)) * LATENT_DOWNSAMPLE
            out.append((c, start))
        return out


class StemCorpus:
    """Every (clip, stem) of a `CorpusV2` as a v1 `Clip` (`log_mel` = the stem's Mel, `audio_path` = the stem's
    stereo FLAC, which v1's vocoder stage reads as its channel mean): what v1's VAE and vocoder stages take.
    `present_only` leaves out stems without a note (a silent percussion stem teaches a vocoder nothing)."""

    def __init__(self, corpus: CorpusV2, present_only: bool = False):
        self.corpus, self.present_only = corpus, present_only
        self.clips: list[Clip] = []
        self._done: set[str] = set()
        self._extend()

    def _extend(self) -> None:
        for c in self.corpus.clips:
            if c.id in self._done:
                continue
            self._done.add(c.id)
            for stem, m in zip(self.corpus.stems, c.mels, strict=True):
                if self.present_only and not c.present.get(stem, True):
                    continue
                self.clips.append(Clip(f"{c.id}/{stem}", c.work, c.master, c.split, m, None, None, None, None,
                                       c.stem_paths[stem]))

    def reload(self) -> int:
        added = self.corpus.reload()
        self._extend()
        return added

    @property
    def root(self) -> Path:
        return self.corpus.root

    @property
    def split(self) -> str:
        return self.corpus.split

    @property
    def mel(self) -> MelConfig:
        return self.corpus.mel

    @property
    def hours(self) -> float:
        """Hours of stem audio (three stems of one hour of music: three hours)."""
        return sum(c.log_mel.shape[1] for c in self.clips) / self.mel.frame_rate / 3600

    sample_crops = Corpus.sample_crops
