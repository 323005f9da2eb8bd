"""Originality: how far a generated cue stays from every piece of the training corpus.

Our published reading of HPM's originality (arXiv 2411.07539 names the criterion, not a formula):

    originality(cue) = 1 - max over training pieces p of similarity(cue, p)

with two similarities, each reported on its own:
- **melodic**: n-gram containment of the leading melody. Melodies become pitch-class sequences (frames grouped
  into notes, notes shorter than `MIN_NOTE_FRAMES` dropped, repeated pitch classes merged), then n-grams of
  `NGRAM` successive intervals mod 12 (transposition- and octave-invariant: the corpus is transposed at random);
  similarity = |n-grams(cue) & n-grams(p)| / |n-grams(cue)|, the share of the cue's melodic figures found in p.
- **embedding**: cosine similarity of clip embeddings (mean of the segment embeddings of the self-trained audio
  network, engine/metrics/embedding.py), centred on the mean embedding of the training pieces.

The **copy rate** is the share of cues whose highest similarity exceeds a threshold calibrated on corpus-vs-corpus
pairs: corpus excerpts as long as a cue, transcribed as cues are, and their highest similarity to any clip of
*another* work; the threshold is the `COPY_QUANTILE` quantile of those (so ~5 % of genuinely distinct works count
as copies: the false-alarm rate). The same excerpts' similarity to *their own source clip* gives the detection
rate: how often a verbatim copy of a training piece, rendered as the corpus is, would be flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..constants import N_PITCH_CLASSES

NGRAM = 5
"""Intervals per n-gram (6 notes). Measured on 40 corpus excerpts (basic-pitch): 4 intervals put the 95 % quantile
of other works' containment at 0.90 and flag 29 % of excerpts against their own source; 5 intervals: 0.68 and
47 % (6: 0.62 and 44 %)."""
MIN_NOTE_FRAMES = 5
"""Notes shorter than 50 ms are transcription flicker, not melody."""
COPY_QUANTILE = 0.95
MIN_NGRAMS = 6
"""A cue with fewer distinct n-grams has no measurable melody (noise, a drone): its melodic similarity is nan
rather than a containment of one or two chance figures."""


def pitch_class_sequence(melody: np.ndarray, min_frames: int = MIN_NOTE_FRAMES) -> np.ndarray:
    """`(T, 12)` one-hot melody (all-zero rows = rests) -> `(K,)` int pitch classes of its notes in order: runs of
    one pitch class shorter than `min_frames` dropped, then equal neighbours merged (rests do not split a run)."""
    voiced = melody.sum(axis=1) > 0
    pcs = np.where(voiced, melody.argmax(axis=1), -1)
    if pcs.size == 0:
        return np.zeros(0, np.int64)
    change = np.flatnonzero(np.diff(pcs)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [pcs.size]]))
    vals = pcs[starts]
    keep = (vals >= 0) & (lengths >= min_frames)
    seq = vals[keep]
    if seq.size == 0:
        return seq.astype(np.int64)
    return seq[np.concatenate([[True], seq[1:] != seq[:-1]])].astype(np.int64)


def interval_ngrams(seq: np.ndarray, n: int = NGRAM) -> set[tuple[int, ...]]:
    """The set of n-grams of successive intervals mod 12 of a pitch-class sequence."""
    seq = np.asarray(seq, np.int64)
    if seq.size < n + 1:
        return set()
    iv = np.mod(np.diff(seq), N_PITCH_CLASSES)
    return {tuple(int(x) for x in iv[i:i + n]) for i in range(iv.size - n + 1)}


def melody_ngrams(melody: np.ndarray, n: int = NGRAM) -> frozenset[tuple[int, ...]]:
    return frozenset(interval_ngrams(pitch_class_sequence(melody), n))


def containment(cue: frozenset, piece: frozenset) -> float:
    """|cue & piece| / |cue|; nan when the cue has fewer than `MIN_NGRAMS` n-grams."""
    return len(cue & piece) / len(cue) if len(cue) >= MIN_NGRAMS else float("nan")


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(N, D)`, `(M, D)` -> `(N, M)` cosine similarities."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


@dataclass
class TrainingPieces:
    """The training corpus as originality sees it: per clip its id, work, melodic n-grams and embedding `(D,)`."""

    ids: list[str]
    works: list[str]
    ngrams: list[frozenset]
    embeddings: np.ndarray  # (N, D) float32

    def highest(self, cue_ngrams: frozenset, cue_embedding: np.ndarray | None,
                exclude_work: str | None = None) -> dict:
        """Highest melodic and embedding similarity of one cue to the pieces (optionally leaving out one work),
        with the id of the nearest piece for each."""
        keep = [i for i, w in enumerate(self.works) if w != exclude_work]
        out = {"melodic": float("nan"), "melodic_nearest": None, "embedding": float("nan"),
               "embedding_nearest": None}
        if not keep:
            return out
        if len(cue_ngrams) >= MIN_NGRAMS:
            sims = np.array([containment(cue_ngrams, self.ngrams[i]) for i in keep])
            j = int(sims.argmax())
            out["melodic"], out["melodic_nearest"] = float(sims[j]), self.ids[keep[j]]
        if cue_embedding is not None and self.embeddings.size:
            # centred on the corpus mean: raw embeddings share a large common component that puts every cosine
            # near 1 (measured: 0.99 for the 95 % quantile of different works)
            centre = self.embeddings.mean(axis=0)
            sims = cosine_matrix(cue_embedding[None] - centre, self.embeddings[keep] - centre)[0]
            j = int(sims.argmax())
            out["embedding"], out["embedding_nearest"] = float(sims[j]), self.ids[keep[j]]
        return out


@dataclass(frozen=True)
class CopyCalibration:
    """Thresholds from corpus-vs-corpus pairs. `other_work`: highest similarities of calibration excerpts to clips
    of other works; `own_piece`: each excerpt's similarity to its own source clip (a verbatim copy).
    threshold = COPY_QUANTILE quantile of `other_work`."""

    kind: str
    threshold: float
    other_work: tuple[float, ...]
    own_piece: tuple[float, ...]
    quantile: float = COPY_QUANTILE

    @property
    def false_alarm_rate(self) -> float:
        v = np.asarray(self.other_work)
        v = v[np.isfinite(v)]
        return float(np.mean(v > self.threshold)) if v.size else float("nan")

    @property
    def detection_rate(self) -> float:
        """Share of excerpts flagged against their own source clip (a verbatim copy)."""
        v = np.asarray(self.own_piece)
        v = v[np.isfinite(v)]
        return float(np.mean(v > self.threshold)) if v.size else float("nan")

    def to_json(self) -> dict:
        return {"kind": self.kind, "threshold": self.threshold, "quantile": self.quantile,
                "n_pairs": len(self.other_work), "false_alarm_rate": self.false_alarm_rate,
                "detection_rate_own_piece": self.detection_rate}


def calibrate(kind: str, other_work, own_piece, quantile: float = COPY_QUANTILE) -> CopyCalibration:
    v = np.asarray(other_work, np.float64)
    v = v[np.isfinite(v)]
    thr = float(np.quantile(v, quantile)) if v.size else float("nan")
    return CopyCalibration(kind, thr, tuple(float(x) for x in other_work), tuple(float(x) for x in own_piece),
                           quantile)


@dataclass
class OriginalityScores:
    """Per-cue highest similarities; `originality_*` = 1 - highest similarity."""

    melodic: float
    embedding: float
    melodic_nearest: str | None = None
    embedding_nearest: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def originality_melodic(self) -> float:
        return 1.0 - self.melodic

    @property
    def originality_embedding(self) -> float:
        return 1.0 - self.embedding


def pool_originality(scores: list[OriginalityScores], melodic: CopyCalibration | None,
                     embedding: CopyCalibration | None) -> dict[str, float]:
    """Means of the two originalities and the copy rates (share of cues above each calibrated threshold, over
    the cues where the similarity could be measured)."""
    def _rate(vals, cal):
        v = np.asarray([x for x in vals if np.isfinite(x)])
        if cal is None or not np.isfinite(cal.threshold) or v.size == 0:
            return float("nan")
        return float(np.mean(v > cal.threshold))

    mel = [s.melodic for s in scores]
    emb = [s.embedding for s in scores]
    fin = lambda xs: [x for x in xs if np.isfinite(x)]  # noqa: E731
    return {
        "originality_melodic": float(1 - np.mean(fin(mel))) if fin(mel) else float("nan"),
        "originality_embedding": float(1 - np.mean(fin(emb))) if fin(emb) else float("nan"),
        "copy_rate_melodic": _rate(mel, melodic),
        "copy_rate_embedding": _rate(emb, embedding),
    }
