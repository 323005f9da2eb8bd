"""`CorpusReference`: what the corpus-based metrics compare against, built once per corpus state and cached.

From a corpus built by `filmscore data build` (index.jsonl: clips with audio, controls, master, work, split):
1. the master classifier / audio embedding, trained on train-split renders, tested on held-out works
   (engine/metrics/embedding.py);
2. the training pieces for originality: every train clip's melodic n-grams (from its controls file: the lead
   voice of its score, exact) and its embedding (from its render);
3. the copy thresholds, calibrated on corpus-vs-corpus pairs (engine/metrics/originality.py): a sample of train
   clips, cut to `excerpt_s` like a cue and transcribed like a cue, against clips of other works (and against their
   own source clip: the verbatim copy the threshold should catch);
4. the quality reference: embedding and handcrafted segment features of the held-out split's renders, each
   segment labelled with its clip and start time, so that an evaluation leaves out the stretches its own items
   come from (`quality_mask`: the shipped set's ground truths are the first 10 s of held-out clips).

Saved under `cache_root/<digest>/` (digest of the clip list, the settings and `REFERENCE_VERSION`), so a second
evaluation on the same corpus starts in seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import load_audio
from ..constants import CONTROL_FRAME_RATE, MEL_FRAME_RATE, MODEL_SAMPLE_RATE
from ..controls.types import Controls
from ..errors import FilmscoreError
from .embedding import (CROP_FRAMES, SEGMENT_HOP_FRAMES, AudioEmbedder, embed_log_mel, prepare_log_mel,
                        train_classifier)
from .originality import CopyCalibration, TrainingPieces, calibrate, cosine_matrix, melody_ngrams
from .quality import SEGMENT_S, handcrafted_features
from .transcription import melody_from_audio, resolve

logger = logging.getLogger(__name__)

REFERENCE_VERSION = "eval-reference-4"
DEFAULT_CACHE = Path.home() / ".cache" / "filmscore" / "eval"


class ReferenceError(FilmscoreError):
    """A corpus that cannot serve as the evaluation reference (missing, empty, too few masters)."""


@dataclass(frozen=True)
class ReferenceSettings:
    classifier_steps: int = 400
    max_classifier_clips: int = 600  # train clips the classifier sees (sampled evenly over masters)
    calibration_clips: int = 40
    excerpt_s: float = 10.0
    transcriber: str = "auto"
    seed: int = 0


@dataclass
class CorpusReference:
    path: Path
    embedder: AudioEmbedder
    classifier: dict  # TrainedClassifier.summary()
    pieces: TrainingPieces
    calibration: dict[str, CopyCalibration]
    quality_embedding: np.ndarray  # (S, D) held-out segment embeddings
    quality_handcrafted: np.ndarray  # (S2, 57)
    quality_embedding_at: list[tuple[str, float, float]]  # (clip id, start s, end s) per embedding segment
    quality_handcrafted_at: list[tuple[str, float, float]]
    transcriber: str
    info: dict

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self) -> None:
        d = self.path
        d.mkdir(parents=True, exist_ok=True)
        self.embedder.save(d)
        np.savez_compressed(d / "pieces.npz", ids=np.array(self.pieces.ids), works=np.array(self.pieces.works),
                            embeddings=self.pieces.embeddings, quality_embedding=self.quality_embedding,
                            quality_handcrafted=self.quality_handcrafted)
        (d / "quality_segments.json").write_text(json.dumps({"embedding": self.quality_embedding_at,
                                                             "handcrafted": self.quality_handcrafted_at}))
        (d / "ngrams.json").write_text(json.dumps([sorted(list(g)) for g in self.pieces.ngrams]))
        cal = {k: {"kind": c.kind, "threshold": c.threshold, "other_work": c.other_work, "own_piece": c.own_piece,
                   "quantile": c.quantile} for k, c in self.calibration.items()}
        (d / "reference.json").write_text(json.dumps({"version": REFERENCE_VERSION, "classifier": self.classifier,
                                                      "calibration": cal, "transcriber": self.transcriber,
                                                      "info": self.info}, indent=1) + "\n")

    @classmethod
    def load(cls, d: Path) -> CorpusReference:
        try:
            meta = json.loads((d / "reference.json").read_text())
            with np.load(d / "pieces.npz") as z:
                ids, works = [str(x) for x in z["ids"]], [str(x) for x in z["works"]]
                emb, qe, qh = z["embeddings"], z["quality_embedding"], z["quality_handcrafted"]
            grams = [frozenset(tuple(g) for g in gs) for gs in json.loads((d / "ngrams.json").read_text())]
            at = json.loads((d / "quality_segments.json").read_text())
        except (OSError, KeyError, ValueError) as e:
            raise ReferenceError(f"evaluation reference {d}: cannot read ({e})") from e
        cal = {k: CopyCalibration(c["kind"], c["threshold"], tuple(c["other_work"]), tuple(c["own_piece"]),
                                  c["quantile"]) for k, c in meta["calibration"].items()}
        return cls(d, AudioEmbedder.load(d), meta["classifier"], TrainingPieces(ids, works, grams, emb), cal, qe,
                   qh, [tuple(x) for x in at["embedding"]], [tuple(x) for x in at["handcrafted"]],
                   meta["transcriber"], meta["info"])

    def quality_mask(self, kind: str, exclude: list[tuple[str, float, float]]) -> np.ndarray:
        """`(S,)` bool: reference segments of `kind` ("embedding" / "handcrafted") that overlap none of the
        `exclude` stretches (clip id, start s, end s)."""
        at = self.quality_embedding_at if kind == "embedding" else self.quality_handcrafted_at
        keep = np.ones(len(at), bool)
        for i, (cid, a, b) in enumerate(at):
            keep[i] = not any(cid == x and a < e and b > s for x, s, e in exclude)
        return keep

    def summary(self) -> dict:
        return {"path": str(self.path), "classifier": {k: v for k, v in self.classifier.items()},
                "calibration": {k: c.to_json() for k, c in self.calibration.items()},
                "transcriber": self.transcriber, "n_training_pieces": len(self.pieces.ids),
                "n_quality_segments": int(self.quality_embedding.shape[0]), **self.info}


def _records(corpus: Path) -> list[dict]:
    from ..data.index import iter_index

    try:
        recs = [r for r in iter_index(corpus) if r.get("audio") and r.get("controls")]
    except FilmscoreError as e:
        raise ReferenceError(str(e)) from e
    if not recs:
        raise ReferenceError(f"corpus {corpus}: no clips with audio and controls")
    return recs


def _log_mel_of(corpus: Path, rec: dict, max_s: float | None = None) -> np.ndarray:
    wave = load_audio(corpus / rec["audio"], MODEL_SAMPLE_RATE)
    if max_s is not None:
        wave = wave[:int(max_s * MODEL_SAMPLE_RATE)]
    return prepare_log_mel(wave)


def _even_sample(recs: list[dict], n: int, rng: np.random.Generator) -> list[dict]:
    """At most `n` records, spread evenly over masters (round robin over shuffled per-master lists)."""
    by: dict[str, list[dict]] = {}
    for r in recs:
        by.setdefault(r["master"], []).append(r)
    lists = [list(rng.permutation(len(v))) for v in by.values()]
    keys = list(by)
    out: list[dict] = []
    while len(out) < n and any(lists):
        for k, order in zip(keys, lists):
            if order and len(out) < n:
                out.append(by[k][order.pop()])
    return out


def digest(corpus: Path, settings: ReferenceSettings) -> str:
    recs = _records(corpus)
    ident = json.dumps({"v": REFERENCE_VERSION, "s": settings.__dict__, "transcriber": resolve(settings.transcriber),
                        "clips": [(r["id"], r["split"], r["master"], r["work"]) for r in recs]}, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def build_reference(corpus: str | Path, settings: ReferenceSettings = ReferenceSettings(),
                    cache_root: Path = DEFAULT_CACHE, progress=None) -> CorpusReference:
    """Load the cached reference of this corpus state, or build it (minutes: mostly transcription)."""
    corpus = Path(corpus).expanduser()
    report = progress or (lambda stage, frac, msg="": None)
    d = cache_root / digest(corpus, settings)
    if (d / "reference.json").is_file():
        return CorpusReference.load(d)
    recs = _records(corpus)
    rng = np.random.default_rng(settings.seed)
    train = [r for r in recs if r["split"] == "train"]
    held = [r for r in recs if r["split"] != "train"]
    if not train:
        raise ReferenceError(f"corpus {corpus}: no train-split clip")

    # 1. classifier / embedding
    cls_recs = _even_sample(train, settings.max_classifier_clips, rng)
    mels = []
    for i, r in enumerate(cls_recs):
        mels.append(_log_mel_of(corpus, r).astype(np.float16))
        report("reference", 0.3 * (i + 1) / len(cls_recs), "corpus log-Mels")
    held_mels = [(_log_mel_of(corpus, r), r["master"]) for r in held]
    trained = train_classifier([m.astype(np.float32) for m in mels], [r["master"] for r in cls_recs],
                               [r["work"] for r in cls_recs], steps=settings.classifier_steps,
                               extra_heldout=held_mels, seed=settings.seed,
                               progress=lambda f, msg="": report("reference", 0.3 + 0.3 * f, msg))
    model = trained.model
    del mels

    # 2. training pieces: n-grams from the controls files, embeddings from the renders
    ids, works, grams, embs = [], [], [], []
    for i, r in enumerate(train):
        c = Controls.load_npz(corpus / r["controls"])
        ids.append(r["id"])
        works.append(r["work"])
        grams.append(melody_ngrams(c.melody))
        e, _ = embed_log_mel(model, _log_mel_of(corpus, r))
        embs.append(e.mean(axis=0))
        report("reference", 0.6 + 0.15 * (i + 1) / len(train), "training pieces")
    pieces = TrainingPieces(ids, works, grams, np.asarray(embs, np.float32))

    # 3. calibration on corpus-vs-corpus pairs: excerpts treated exactly as cues are
    transcriber = resolve(settings.transcriber)
    mel_other, mel_own, emb_other, emb_own = [], [], [], []
    cal_recs = _even_sample(train, settings.calibration_clips, rng)
    for i, r in enumerate(cal_recs):
        wave = load_audio(corpus / r["audio"], MODEL_SAMPLE_RATE)[:int(settings.excerpt_s * MODEL_SAMPLE_RATE)]
        g = melody_ngrams(melody_from_audio(wave, MODEL_SAMPLE_RATE, transcriber)[0])
        e = embed_log_mel(model, prepare_log_mel(wave))[0].mean(axis=0)
        other = pieces.highest(g, e, exclude_work=r["work"])
        own = ids.index(r["id"])
        mel_other.append(other["melodic"])
        emb_other.append(other["embedding"])
        mel_own.append(TrainingPieces([r["id"]], [r["work"]], [grams[own]], pieces.embeddings[[own]]).highest(
            g, None)["melodic"])
        centre = pieces.embeddings.mean(axis=0)  # the centring `TrainingPieces.highest` applies
        emb_own.append(float(cosine_matrix((e - centre)[None], (pieces.embeddings[own] - centre)[None])[0, 0]))
        report("reference", 0.75 + 0.2 * (i + 1) / len(cal_recs), "copy calibration")
    calibration = {"melodic": calibrate("melodic", mel_other, mel_own),
                   "embedding": calibrate("embedding", emb_other, emb_own)}

    # 4. quality reference: held-out renders (train renders when the corpus has no held-out clip yet)
    q_recs = held if held else _even_sample(train, 20, rng)
    qe, qh, qe_at, qh_at = [], [], [], []
    for r in q_recs:
        wave = load_audio(corpus / r["audio"], MODEL_SAMPLE_RATE)
        e = embed_log_mel(model, prepare_log_mel(wave))[0]
        h = handcrafted_features(wave, MODEL_SAMPLE_RATE)
        qe.append(e)
        qh.append(h)
        win = CROP_FRAMES / MEL_FRAME_RATE
        qe_at += [(r["id"], k * SEGMENT_HOP_FRAMES / MEL_FRAME_RATE, k * SEGMENT_HOP_FRAMES / MEL_FRAME_RATE + win)
                  for k in range(len(e))]
        qh_at += [(r["id"], k * SEGMENT_S, (k + 1) * SEGMENT_S) for k in range(len(h))]
    report("reference", 1.0, "reference ready")
    info = {"corpus": str(corpus), "n_train_clips": len(train), "n_heldout_clips": len(held),
            "quality_reference": "heldout" if held else "train (no held-out clip yet)",
            "n_quality_clips": len(q_recs), "excerpt_s": settings.excerpt_s,
            "control_frame_rate": CONTROL_FRAME_RATE}
    ref = CorpusReference(d, model, trained.summary(), pieces, calibration, np.concatenate(qe),
                          np.concatenate(qh), qe_at, qh_at, transcriber, info)
    ref.save()
    return ref
