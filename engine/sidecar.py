"""Versioned JSON files: every JSON file filmscore writes for a reader (a cue's metadata sidecar, a batch's
manifest, a cue plan, ...) carries one tag, `"schema": "filmscore.<kind>/<major>[.<minor>]"`, and every reader goes
through `read` (or `load`), which checks it:

- the same major: read as is (a newer minor only adds keys, which readers ignore);
- an older major, or a file from before the tags were unified (`"filmscore": "cue/1"`, `"filmscore": "batch/1"`,
  the evaluation files' `"format": "filmscore.eval/1"`): upgraded step by step by the functions registered in
  `UPGRADES`, then read;
- a newer major: `NewerSchemaError`, naming the file, its tag and what this filmscore reads (upgrade filmscore);
- another kind of file, or no tag at all: `SchemaError`.

A new kind is one `Schema(...)` constant here; a breaking change bumps its major and registers the upgrade from the
one before, so files written by an older filmscore stay readable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FilmscoreError

KEY = "schema"
_TAG = re.compile(r"^(?P<kind>filmscore\.[a-z0-9_]+)/(?P<major>\d+)(?:\.(?P<minor>\d+))?$")
_LEGACY_KEY = "filmscore"  # the cue and batch files' tag before this module: "filmscore": "cue/1"
_LEGACY_FORMAT_KEY = "format"  # the evaluation files' tag before this module: "format": "filmscore.evalset/1"


class SchemaError(FilmscoreError):
    """A JSON file that is not the kind its reader expects, has no readable tag, or cannot be upgraded."""


class NewerSchemaError(SchemaError):
    """A JSON file written by a newer filmscore, in a major version this one cannot read."""


@dataclass(frozen=True)
class Schema:
    """A kind of file (`filmscore.cue`) and the version this filmscore writes."""

    kind: str
    major: int
    minor: int = 0

    @property
    def tag(self) -> str:
        return f"{self.kind}/{self.major}" + (f".{self.minor}" if self.minor else "")

    def __str__(self) -> str:
        return self.tag


CUE = Schema("filmscore.cue", 1)
"""OUT.json beside a rendered cue (engine/render.py; bridge/timelines/batch.py adds the cue's timeline fields)."""
BATCH = Schema("filmscore.batch", 1)
"""OUTDIR/filmscore-batch.json: a timeline batch's per-cue state (bridge/timelines/batch.py)."""
EXPORTS = Schema("filmscore.exports", 1)
"""An export cache's manifest.json and speed.json (engine/backends/cache.py; a cache that does not read is rebuilt)."""
PLAN = Schema("filmscore.plan", 1)
"""A cue plan: PLAN.json, and the header text event of PLAN.mid (`filmscore.plan/1 {...}`; engine/plan/plan.py)."""
LABELS = Schema("filmscore.labels", 1)
"""A corpus clip's labels.json beside its labels.npz (engine/data/labels.py)."""
BUNDLE = Schema("filmscore.bundle", 1)
"""A v1 model bundle's bundle.json (engine/bundle.py). `BUNDLE_V2` is another model family, not a newer version of
it: each major has its own loader (engine/bundle_manifest.read_manifest checks the major before `read`)."""
BUNDLE_V2 = Schema("filmscore.bundle", 2)
"""A v2 model bundle's bundle.json (engine/bundle_v2.py)."""
EVAL_REPORT = Schema("filmscore.eval", 1)
"""An evaluation's REPORT_DIR/report.json (engine/metrics/report.py, `filmscore eval`)."""
EVALSET = Schema("filmscore.evalset", 1)
"""An evaluation set's set.json (engine/metrics/evalset.py)."""

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]
UPGRADES: dict[tuple[str, int], Upgrade] = {}
"""(kind, major) -> a function turning a file of that major into the next major's shape (tag excepted)."""


def parse_tag(tag: Any) -> tuple[str, int, int] | None:
    """("filmscore.cue", 1, 0) from "filmscore.cue/1"; None when `tag` is not a filmscore tag."""
    m = _TAG.match(tag) if isinstance(tag, str) else None
    if m is None:
        return None
    return m["kind"], int(m["major"]), int(m["minor"] or 0)


def _tag_of(data: dict[str, Any]) -> tuple[str | None, str]:
    """The file's tag and the key it was under."""
    if isinstance(data.get(KEY), str):
        return data[KEY], KEY
    legacy = data.get(_LEGACY_KEY)
    if isinstance(legacy, str) and re.fullmatch(r"[a-z0-9_]+/\d+", legacy):
        # "cue/1" -> "filmscore.cue/1": the same content, tagged the old way
        return f"filmscore.{legacy}", _LEGACY_KEY
    if parse_tag(data.get(_LEGACY_FORMAT_KEY)) is not None:  # only a filmscore tag: "format" is also a plain field
        return data[_LEGACY_FORMAT_KEY], _LEGACY_FORMAT_KEY
    return None, KEY


def read(schema: Schema, data: Any, source: str | Path) -> dict[str, Any]:
    """`data` (a parsed JSON file from `source`, named in errors) as `schema`'s current version: checked, upgraded
    when older, tagged with `schema.tag` under `KEY`. Raises SchemaError / NewerSchemaError."""
    if not isinstance(data, dict):
        raise SchemaError(f"{source}: not a JSON object (a {schema.kind} file is one)")
    tag, tag_key = _tag_of(data)
    parsed = parse_tag(tag)
    if parsed is None:
        raise SchemaError(f"{source}: no {KEY!r} tag naming a filmscore file (expected {schema.tag!r})")
    kind, major, _minor = parsed
    if kind != schema.kind:
        raise SchemaError(f"{source}: a {kind} file, not a {schema.kind} file")
    if major > schema.major:
        raise NewerSchemaError(f"{source}: {tag!r} was written by a newer filmscore; this one reads {schema.kind} up "
                               f"to version {schema.major} (upgrade filmscore to read it)")
    out = {k: v for k, v in data.items() if k not in (KEY, _LEGACY_KEY, tag_key)}
    while major < schema.major:
        step = UPGRADES.get((kind, major))
        if step is None:
            raise SchemaError(f"{source}: {tag!r} is too old to read: no upgrade from {kind}/{major}")
        out = step(out)
        major += 1
    return {KEY: schema.tag, **out}


def load(schema: Schema, path: str | Path) -> dict[str, Any]:
    """The JSON file at `path` read as `schema` (see `read`). Python's JSON reading (NaN and Infinity as written by
    Python's writer) is kept: these files are ours, and refusing what we wrote would lose a batch's state."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SchemaError(f"{path}: cannot read ({e.strerror or e})") from e
    except ValueError as e:  # JSONDecodeError is one
        raise SchemaError(f"{path}: not valid JSON ({e})") from e
    return read(schema, data, path)


def stamped(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with `schema`'s tag first, as writers put it."""
    return {KEY: schema.tag, **{k: v for k, v in data.items() if k != KEY}}
