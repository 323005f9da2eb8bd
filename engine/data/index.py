"""The corpus index: `index.jsonl` in the corpus directory, one JSON object per clip (`ClipRecord`).

A clip's line is appended only after all its files exist, under an exclusive `flock` on `index.lock`, so a
trainer may read the index while the builder appends. Rewrites (`filmscore data features` filling `features`)
take the same lock and replace the file atomically. Paths inside a record are relative to the corpus directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import FilmscoreError

INDEX_NAME = "index.jsonl"
LOCK_NAME = "index.lock"
HELDOUT_FRACTION = 0.05
DEFAULT_CORPUS_DIR = Path("~/.cache/filmscore/corpus/v1")
REQUIRED_FIELDS = ("id", "work", "master", "split", "key", "mode", "tempo_bpm", "transpose", "tempo_scale",
                   "orchestration", "duration_s", "audio", "midi", "controls", "video")


class CorpusError(FilmscoreError):
    """A corpus directory or index that is missing or unreadable, or a build option out of range."""


def split_of(work_id: str, heldout_fraction: float = HELDOUT_FRACTION) -> str:
    """"heldout" for a stable ~`heldout_fraction` of works (by a hash of the work id), else "train". Every clip
    of a work, whatever its transposition, tempo or orchestration, lands in the same split."""
    h = int.from_bytes(hashlib.sha1(work_id.encode()).digest()[:8], "big") / 2 ** 64
    return "heldout" if h < heldout_fraction else "train"


@contextmanager
def _locked(corpus_dir: Path):
    corpus_dir.mkdir(parents=True, exist_ok=True)
    with open(corpus_dir / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def iter_index(corpus_dir: str | Path) -> Iterator[dict[str, Any]]:
    """The records of `corpus_dir/index.jsonl` in order. A torn last line (a reader racing a crash) is skipped;
    a corrupt line elsewhere raises `CorpusError` naming its line number."""
    path = Path(corpus_dir).expanduser() / INDEX_NAME
    if not path.is_file():
        raise CorpusError(f"corpus {Path(corpus_dir).expanduser()}: no {INDEX_NAME} (run `filmscore data build`)")
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            if i >= len(lines) - 1:
                return
            raise CorpusError(f"{path}: line {i} is not JSON ({e})") from e


def read_index(corpus_dir: str | Path) -> list[dict[str, Any]]:
    return list(iter_index(corpus_dir))


def append_records(corpus_dir: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records (each must hold `REQUIRED_FIELDS`) under the index lock, flushed to disk."""
    corpus_dir = Path(corpus_dir).expanduser()
    lines = []
    for r in records:
        missing = [f for f in REQUIRED_FIELDS if f not in r]
        if missing:
            raise CorpusError(f"clip record {r.get('id', '?')}: missing {', '.join(missing)}")
        lines.append(json.dumps(r, separators=(",", ":")) + "\n")
    if not lines:
        return
    with _locked(corpus_dir), open(corpus_dir / INDEX_NAME, "a") as f:
        f.write("".join(lines))
        f.flush()
        os.fsync(f.fileno())


def update_records(corpus_dir: str | Path, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Rewrite the index with `fn` applied to every record, atomically and under the lock; returns how many
    records `fn` changed."""
    corpus_dir = Path(corpus_dir).expanduser()
    with _locked(corpus_dir):
        records = read_index(corpus_dir)
        out, changed = [], 0
        for r in records:
            new = fn(dict(r))
            changed += new != r
            out.append(json.dumps(new, separators=(",", ":")) + "\n")
        tmp = corpus_dir / f"{INDEX_NAME}.tmp{os.getpid()}"
        tmp.write_text("".join(out))
        os.replace(tmp, corpus_dir / INDEX_NAME)
    return changed


def corpus_summary(corpus_dir: str | Path) -> dict[str, Any]:
    """Clips, hours and works of a corpus, whole and per split: what a bundle's provenance says it was trained on
    (`filmscore data info` gives the full breakdown)."""
    records = read_index(corpus_dir)

    def tally(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"clips": len(rs), "hours": round(sum(r["duration_s"] for r in rs) / 3600, 2),
                "works": len({r["work"] for r in rs}), "masters": len({r["master"] for r in rs})}

    return {**tally(records), "splits": {s: tally([r for r in records if r["split"] == s])
                                         for s in sorted({r["split"] for r in records})}}
