"""Film-encoder features of the corpus clips: `features.npz` (`FilmFeatures.save_npz`) beside each film clip, and
the record's `features` field set once the file exists. Runs after (or while) the build: clips without features
are picked up on every run, so it is resumable too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .index import CorpusError, read_index, update_records

FEATURES_NAME = "features.npz"
CUT_TOLERANCE_S = 0.15  # +-1.5 frames at 10 fps


def _features_path(record: dict[str, Any]) -> str:
    return f"{record['video'].rsplit('/', 1)[0]}/{FEATURES_NAME}"


def compute_features(corpus_dir: str | Path, limit: int | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Encode the film clip of every record without `features` (at most `limit`), write its npz, then set the
    records' `features` fields in one index rewrite. Returns counts. Raises `CorpusError` when the film encoder
    is not available."""
    try:
        from ..film import encode_video
    except ImportError as e:
        raise CorpusError(f"the film encoder (filmscore.engine.film.encode_video) is not available ({e})") from e

    corpus_dir = Path(corpus_dir).expanduser()
    todo = [r for r in read_index(corpus_dir) if not r.get("features")]
    if limit is not None:
        todo = todo[:limit]
    done: dict[str, str] = {}
    failed: list[str] = []
    for i, r in enumerate(todo):
        rel = _features_path(r)
        out = corpus_dir / rel
        if not out.is_file():
            try:
                # The corpus's films are synthetic, without faces: the face branch would cost ~1 s CPU per clip
                # for an all-zero block the default layout does not read.
                feats = encode_video(corpus_dir / r["video"], 0.0, float(r["duration_s"]), cache=False, faces=False)
            except Exception as e:  # one unreadable clip must not stop the pass; it is reported
                failed.append(f"{r['id']}: {type(e).__name__}: {e}")
                continue
            tmp = out.with_name(f".{FEATURES_NAME}.{os.getpid()}.npz")
            feats.save_npz(tmp)
            os.replace(tmp, out)
        done[r["id"]] = rel
        if on_progress:
            on_progress(i + 1, len(todo))
    changed = update_records(corpus_dir, lambda r: dict(r, features=done[r["id"]]) if r["id"] in done else r)
    return {"corpus_dir": str(corpus_dir), "encoded": len(done), "updated_records": changed, "failed": failed[:10],
            "n_failed": len(failed)}


def pairing_check(corpus_dir: str | Path, limit: int | None = None) -> dict[str, Any]:
    """Is the pairing visible to the film encoder? Over clips with features (at most `limit`): recall and
    precision of the encoder's cuts against the true cuts (phrase starts, +-CUT_TOLERANCE_S), and the median
    Pearson r between the encoder's motion envelope and the clip's dynamics level L(t) (rule 2)."""
    import numpy as np

    from ..film.features import FilmFeatures
    from .dynamics import DynamicsPlan

    corpus_dir = Path(corpus_dir).expanduser()
    recs = [r for r in read_index(corpus_dir) if r.get("features")][:limit]
    tp = fn = fp = 0
    rs = []
    for r in recs:
        feats = FilmFeatures.load_npz(corpus_dir / r["features"])
        det, true = np.asarray(feats.cuts_s), np.asarray(r["cuts_s"])
        hit = [bool(len(det)) and float(np.abs(det - c).min()) <= CUT_TOLERANCE_S for c in true]
        tp += sum(hit)
        fn += len(hit) - sum(hit)
        fp += sum(1 for c in det if not (len(true) and float(np.abs(true - c).min()) <= CUT_TOLERANCE_S))
        meta = json.loads((corpus_dir / r["meta"]).read_text())
        level = DynamicsPlan.from_json(meta["phrases"], r["duration_s"]).curve(100)
        n = min(level.size, feats.motion.size)
        if n > 1 and level[:n].std() > 0 and feats.motion[:n].std() > 0:
            rs.append(float(np.corrcoef(level[:n], feats.motion[:n])[0, 1]))
    return {"clips": len(recs), "cut_recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "cut_precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "false_cuts_per_clip": round(fp / len(recs), 2) if recs else None,
            "motion_vs_dynamics_r_median": round(float(np.median(rs)), 3) if rs else None}
