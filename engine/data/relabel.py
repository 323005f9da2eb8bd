"""`relabel_corpus`: recompute every v2 clip's labels from its score, without rendering audio again.

A clip is rebuilt exactly as the build made it: the work from the parse cache, the variant from (work, pass) with
`build.variant`, the seed from the clip id; the rebuilt MIDI must equal the stored `score.mid` byte for byte (else
the clip is reported, not relabelled: the code that arranged it has changed). The loudness label comes from the
stored `controls.npz` (the mix as rendered). Clips with film features get the cue plan's mood attributes
(`labels.mood_labels`). Use it after a change to `labels.py` or `engine/plan/mood.py`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .index import CorpusError, read_index


def rebuild_arrangement(corpus_dir: Path, record: dict[str, Any]):
    """The `ClipArrangementV2` of an indexed v2 clip, rebuilt from its parse cache entry and variant."""
    import json
    import re

    from .arrange import base_qpm
    from .arrange_v2 import ClipSpecV2, arrange_clip_v2
    from .build import Job, stable_seed, variant
    from .music21_source import ParseCache, Work
    from .orchestration_v2 import BY_NAME_V2, ORCHESTRATIONS_V2

    m = re.search(r"\.p(\d+)\.c(\d+)$", record["id"])
    if m is None:
        raise CorpusError(f"clip {record['id']}: not a build clip id (<work>.p<pass>.c<clip>)")
    cache = ParseCache(corpus_dir / "parsed")
    meta = json.loads((corpus_dir / record["meta"]).read_text())
    work = Work(record["master"], record["work"], meta["source"], meta.get("source_number"))
    parsed = cache.get(work)
    job = Job(work, int(m.group(1)))
    transpose, scale, orch, _ = variant(job, len(ORCHESTRATIONS_V2))
    qpm = base_qpm(parsed) * scale
    a, b = record["bars"]
    spec = ClipSpecV2(a, b, transpose, qpm, scale, BY_NAME_V2[record["orchestration"]], stable_seed(record["id"]))
    if ORCHESTRATIONS_V2[orch].name != record["orchestration"]:
        raise CorpusError(f"clip {record['id']}: orchestration {record['orchestration']} is not its variant's")
    return spec, arrange_clip_v2(parsed, spec)


def _midi_bytes(mid) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def relabel_corpus(corpus_dir: str | Path, limit: int | None = None,
                   on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Rewrite labels.npz / labels.json of every v2 clip (at most `limit`); returns counts, mismatches and
    whether mood attributes were added."""
    from ..controls.types import Controls
    from .film_pairing import plan_film
    from ..film.features import FilmFeatures
    from .labels import compute_labels, mood_labels, save_labels

    corpus_dir = Path(corpus_dir).expanduser()
    recs = [r for r in read_index(corpus_dir) if r.get("version") == 2][:limit]
    done, with_mood, mismatched, failed = 0, 0, [], []
    for i, r in enumerate(recs):
        d = corpus_dir / r["audio"].rsplit("/", 1)[0]
        try:
            spec, arr = rebuild_arrangement(corpus_dir, r)
            if _midi_bytes(arr.midi) != (d / "score.mid").read_bytes():
                mismatched.append(r["id"])
                continue
            n = int(round(r["duration_s"] * 100))
            dyn = Controls.load_npz(corpus_dir / r["controls"]).dynamics
            film = plan_film(arr, spec.qpm)
            arrays, scalars = compute_labels(arr, n, dyn, film, r["master"], r["orchestration"])
            scalars["sample_rate"] = r.get("sample_rate")
            if r.get("features"):
                mood = mood_labels(FilmFeatures.load_npz(corpus_dir / r["features"]), list(film.cuts_s), r["duration_s"])
                if mood is not None:
                    scalars["mood"] = mood
                    with_mood += 1
            save_labels(d, arrays, scalars)
            done += 1
        except Exception as e:  # one broken clip is reported; the pass goes on
            failed.append(f"{r['id']}: {type(e).__name__}: {e}")
        if on_progress:
            on_progress(i + 1, len(recs))
    return {"corpus_dir": str(corpus_dir), "clips": len(recs), "relabelled": done, "mismatched": mismatched[:10],
            "n_mismatched": len(mismatched), "failed": failed[:10], "n_failed": len(failed), "with_mood": with_mood}
