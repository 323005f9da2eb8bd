"""A maestro (master-style) classifier on musical statistics of audio, for issue 18's "recognised as that master".

The v1 classifier (engine/metrics/embedding.py) learns from log-Mel crops and reached 0.49 held-out accuracy on
corpus v1: its crops mostly heard the SoundFont's timbre, which every master shares. What differs between the
masters of the corpus is the music: key and mode choices, harmony, melodic range, rhythm and tempo, texture. So
this one describes each 10 s segment by statistics of those (`segment_features`, 96 numbers):
- chroma (CQT-free STFT chroma): mean and standard deviation (24), and the mean rotated to the estimated tonic
  (Krumhansl-Schmuckler key profile correlation) (12) with the major and minor profile correlations (2): key and
  mode, and pitch-class use relative to the key;
- 20 MFCCs: mean and standard deviation (40): timbre and texture;
- spectral contrast, 7 bands, mean (7), and onset-strength mean, deviation, its autocorrelation's peak (pulse
  clarity) and lag (beat period), onsets per second, log tempo (6): rhythm;
- RMS level in dB: deviation and range (2); chroma change between frames (flux) mean and deviation (2), and the
  share of frames whose strongest pitch class has twice the energy of the next (1): dynamics, harmonic rhythm,
  monophony.
A multinomial logistic regression (scikit-learn, balanced class weights, L2) on the z-scored features predicts the
master of each segment; a clip's master is the class of the mean of its segments' probabilities. Training is on
the train split's clips (corpus labels); accuracy is on held-out *works* (`embedding.split_by_work` plus the
corpus's held-out split), so a work never sits on both sides. The model is stored as plain arrays (JSON), no
pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..extras import require

SEGMENT_S = 10.0
ANALYSIS_SR = 22_050
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
FEATURE_NAMES: tuple[str, ...] = (
    *[f"chroma_mean_{i}" for i in range(12)], *[f"chroma_std_{i}" for i in range(12)],
    *[f"chroma_key_{i}" for i in range(12)], "major_r", "minor_r",
    *[f"mfcc_mean_{i}" for i in range(20)], *[f"mfcc_std_{i}" for i in range(20)],
    *[f"contrast_{i}" for i in range(7)], "onset_mean", "onset_std", "pulse_clarity", "beat_period_s",
    "onsets_per_s", "log_tempo", "level_std_db", "level_range_db", "chroma_flux_mean", "chroma_flux_std",
    "monophony")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def segment_features(wave: np.ndarray, sr: int) -> np.ndarray:
    """`(len(FEATURE_NAMES),)` statistics of one mono (or `(n, 2)`, averaged) segment of audio."""
    librosa = require("librosa", "eval", "the maestro classifier")
    from ..audio.io import resample

    x = np.asarray(wave, np.float32)
    y = resample(x.mean(axis=1) if x.ndim == 2 else x, sr, ANALYSIS_SR)
    sr = ANALYSIS_SR
    hop = 512
    spec = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop)) + 1e-10
    power = spec ** 2
    chroma = librosa.feature.chroma_stft(S=power, sr=sr)
    cm = chroma.mean(1)
    r_major = [_corr(np.roll(cm, -k), _MAJOR) for k in range(12)]
    r_minor = [_corr(np.roll(cm, -k), _MINOR) for k in range(12)]
    best_major, best_minor = int(np.argmax(r_major)), int(np.argmax(r_minor))
    tonic = best_major if max(r_major) >= max(r_minor) else best_minor
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr))
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)
    contrast = librosa.feature.spectral_contrast(S=spec, sr=sr)
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr)
    frame_s = hop / sr
    ac = librosa.autocorrelate(onset - onset.mean())
    ac = ac / ac[0] if len(ac) and ac[0] > 0 else np.zeros(1)
    lo, hi = int(0.25 / frame_s), min(len(ac), int(2.0 / frame_s))  # beat periods 0.25-2 s (30-240 bpm)
    lag = lo + int(np.argmax(ac[lo:hi])) if hi > lo else lo
    clarity = float(ac[lag]) if hi > lo else 0.0
    n_onsets = len(librosa.onset.onset_detect(onset_envelope=onset, sr=sr, hop_length=hop))
    dur = max(len(y) / sr, 1e-3)
    level = 20 * np.log10(np.maximum(librosa.feature.rms(S=spec, frame_length=2048)[0], 1e-6))
    loud = level[level >= level.max() - 40] if level.size else np.zeros(1)
    flux = np.abs(np.diff(chroma / np.maximum(chroma.sum(0, keepdims=True), 1e-9), axis=1)).sum(0)
    top2 = np.sort(chroma, axis=0)[-2:]
    mono = float(np.mean(top2[1] >= 2 * top2[0])) if chroma.shape[1] else 0.0
    out = np.concatenate([cm, chroma.std(1), np.roll(cm, -tonic), [max(r_major), max(r_minor)],
                          mfcc.mean(1), mfcc.std(1), contrast.mean(1),
                          [onset.mean(), onset.std(), clarity, lag * frame_s, n_onsets / dur,
                           np.log(60.0 / max(lag * frame_s, 1e-3)), loud.std(), np.ptp(loud),
                           flux.mean() if flux.size else 0.0, flux.std() if flux.size else 0.0, mono]])
    assert out.shape == (len(FEATURE_NAMES),)
    return out.astype(np.float64)


def clip_segments(wave: np.ndarray, sr: int, segment_s: float = SEGMENT_S) -> list[np.ndarray]:
    """A clip cut into whole `segment_s` segments (a clip shorter than one is one segment)."""
    n = int(segment_s * sr)
    if len(wave) <= n:
        return [wave]
    return [wave[a:a + n] for a in range(0, len(wave) - n + 1, n)]


def clip_features(wave: np.ndarray, sr: int, segment_s: float = SEGMENT_S) -> np.ndarray:
    """`(S, F)`: `segment_features` of each segment of a clip."""
    return np.stack([segment_features(s, sr) for s in clip_segments(wave, sr, segment_s)])


@dataclass
class MaestroClassifier:
    """A trained classifier as plain arrays: z-score (`mean`, `scale`) then softmax(`coef` x + `intercept`)."""

    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def proba(self, features: np.ndarray) -> np.ndarray:
        """`(S, C)` class probabilities of `(S, F)` segment features."""
        z = (np.atleast_2d(features) - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict_clip(self, features: np.ndarray) -> tuple[str, np.ndarray]:
        """The master of a clip from its segments' features (mean probability), and that mean `(C,)`."""
        p = self.proba(features).mean(0)
        return self.classes[int(np.argmax(p))], p

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept.tolist(), "features": list(FEATURE_NAMES)}

    @classmethod
    def from_json(cls, d: dict) -> MaestroClassifier:
        return cls(tuple(d["classes"]), np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["coef"]),
                   np.asarray(d["intercept"]))


def train_maestro_classifier(features: list[np.ndarray], masters: list[str], c: float = 0.5) -> MaestroClassifier:
    """Fit on clips' segment features (`clip_features`) with their masters: each segment a sample of its clip's
    master, classes weighted to balance."""
    require("sklearn", "eval", "the maestro classifier")
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate(features)
    y = np.concatenate([[m] * len(f) for f, m in zip(features, masters)])
    classes = tuple(sorted(set(masters)))
    if len(classes) < 2:
        raise ValueError(f"a classifier needs two masters or more; the clips have {classes}")
    mean, scale = X.mean(0), X.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    model.fit((X - mean) / scale, y)
    order = [list(model.classes_).index(k) for k in classes]
    coef, intercept = model.coef_, model.intercept_
    if len(classes) == 2:  # sklearn stores one row for two classes: logit of classes_[1]
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return MaestroClassifier(classes, mean, scale, coef[order], intercept[order])


def heldout_accuracy(model: MaestroClassifier, features: list[np.ndarray], masters: list[str]) -> dict:
    """Clip accuracy, balanced accuracy (mean per-master recall) and the confusion counts on clips whose master
    the model knows; `n` clips counted."""
    known = [(f, m) for f, m in zip(features, masters) if m in model.classes]
    if not known:
        return {"accuracy": float("nan"), "balanced_accuracy": float("nan"), "n": 0, "confusion": {}}
    confusion: dict[str, dict[str, int]] = {}
    hits = []
    for f, m in known:
        pred, _ = model.predict_clip(f)
        confusion.setdefault(m, {}).setdefault(pred, 0)
        confusion[m][pred] += 1
        hits.append(pred == m)
    recalls = [c.get(m, 0) / sum(c.values()) for m, c in confusion.items()]
    return {"accuracy": float(np.mean(hits)), "balanced_accuracy": float(np.mean(recalls)), "n": len(known),
            "chance": 1.0 / len(model.classes), "confusion": confusion}
