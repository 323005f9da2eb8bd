"""The data manifest a bundle carries (issue 18): every source its training corpus was made from, that source's
licence as the installed files state it, and its hours; and the licence of the weights.

Sources of corpus v2 (docs/dataset.md):
- **scores**: the music21 corpus, per collection (bach, palestrina, trecento, and the folk collections
  essenFolksong, oneills1850, ...). Licence: the collection's own `license.txt` in the installed music21 corpus
  where it has one, else the corpus's (`music21/corpus/license.txt`); `commercial_use` says what that text allows:
  "no" where it grants non-commercial use only (essenFolksong), "unclear" where it says there "may be restrictions
  on commercial use" (the corpus-wide text).
- **soundfonts**: the SoundFonts the clips were rendered with (each clip's `soundfont`), with the Debian package
  that installs them and the licence lines of its `/usr/share/doc/<package>/copyright`.
- **films**: the synthetic films paired with the clips, drawn procedurally by this project's code (engine/film):
  the project's licence.
Hours: per source, of the train split (what the weights learnt from) and of the held-out split.
The weights are released under the project's licence (its package metadata); `weights.note` says where a source's
licence may bear on that, instead of claiming the weights are clean when a source is not.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

SOUNDFONT_PACKAGES: dict[str, str] = {"MuseScore_General": "musescore-general-soundfont",
                                      "FluidR3_GM": "fluid-soundfont-gm"}
"""SoundFont file-name prefix -> the Debian package that installs it (docs/dataset.md)."""
DOC_ROOT = Path("/usr/share/doc")
_LICENCE_WORDS = re.compile(r"\b(MIT|CC0|CC-BY[\w.-]*|Public Domain|PD|GPL[\w.-]*|BSD[\w.-]*|Apache)\b", re.I)


def project_licence() -> str:
    """The project's licence as its installed package metadata states it."""
    import importlib.metadata as md

    meta = md.metadata("filmscore")
    return str(meta.get("License-Expression") or meta.get("License") or "unknown")


def _collection(work: str, master: str) -> str:
    from .music21_source import FOLK_COLLECTIONS

    tail = work.split("/", 1)[-1]
    if master == "folk":
        for c in sorted(FOLK_COLLECTIONS, key=len, reverse=True):
            if tail.startswith(c):
                return c
    return work.split("/", 1)[0]


def score_licence(collection: str, corpus_root: Path | None = None) -> dict[str, Any]:
    """The licence text of a music21 corpus collection (its own license.txt, else the corpus's), summarised."""
    if corpus_root is None:
        from .music21_source import corpus_root as root

        corpus_root = root()
    own = corpus_root / collection / "license.txt"
    f = own if own.is_file() else corpus_root / "license.txt"
    if not f.is_file():
        return {"file": None, "says": ["no licence file installed with the music21 corpus"], "commercial_use": "unclear"}
    body = " ".join(" ".join(line for line in f.read_text(errors="replace").splitlines()
                             if not line.startswith("#")).split())
    # the sentences that grant or restrict use: what a reader of the manifest needs, not the whole text
    said = [x for x in re.split(r"(?<=[.:])\s+", body) if re.search(r"commercial|permission|licen", x, re.I)][:3]
    low = body.lower()
    commercial = ("no" if re.search(r"non-?commercial (distribution|use)", low)
                  else "unclear" if "commercial" in low else "not restricted by this text")
    return {"file": str(f), "says": said, "commercial_use": commercial}


def soundfont_licence(name: str, doc_root: Path = DOC_ROOT) -> dict[str, Any]:
    """The Debian package of SoundFont `name` and its copyright file's licence lines (as installed)."""
    pkg = next((p for prefix, p in SOUNDFONT_PACKAGES.items() if name.startswith(prefix)), None)
    if pkg is None:
        return {"package": None, "copyright": None, "licence_lines": [], "licence": "unknown SoundFont"}
    f = doc_root / pkg / "copyright"
    if not f.is_file():
        return {"package": pkg, "copyright": None, "licence_lines": [],
                "licence": f"unverified: {f} is not installed here"}
    text = f.read_text(errors="replace")
    lines = [" ".join(line.split()) for line in text.splitlines() if _LICENCE_WORDS.search(line)]
    lines = list(dict.fromkeys(x.strip('"') for x in lines if len(x) < 200))[:12]
    return {"package": pkg, "copyright": str(f), "sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
            "licence_lines": lines,
            "licence": ", ".join(sorted({m.upper() if len(m) <= 3 else m for m in _LICENCE_WORDS.findall(text)}))}


def data_manifest(records: list[dict], *, corpus_root: Path | None = None, doc_root: Path = DOC_ROOT
                  ) -> dict[str, Any]:
    """The manifest (module docstring) of corpus index records (`data.index.read_index`)."""
    def hours(rs) -> dict[str, float]:
        out = {"train": 0.0, "heldout": 0.0}
        for r in rs:
            out[r.get("split", "train")] = out.get(r.get("split", "train"), 0.0) + float(r["duration_s"]) / 3600
        return {k: round(v, 4) for k, v in out.items()}

    by_collection: dict[tuple[str, str], list[dict]] = {}
    by_font: dict[str, list[dict]] = {}
    for r in records:
        by_collection.setdefault((_collection(r["work"], r["master"]), r["master"]), []).append(r)
        by_font.setdefault(str(r.get("soundfont") or "FluidR3_GM.sf2"), []).append(r)
    scores = [{"source": f"music21 corpus: {c}", "collection": c, "master": m, "works": len({r['work'] for r in rs}),
               "clips": len(rs), "hours": hours(rs), "licence": score_licence(c, corpus_root)}
              for (c, m), rs in sorted(by_collection.items())]
    fonts = [{"source": f"SoundFont {name}", "soundfont": name, "clips": len(rs), "hours": hours(rs),
              **soundfont_licence(name, doc_root)} for name, rs in sorted(by_font.items())]
    licence = project_licence()
    films = [{"source": "synthetic films (engine/film, drawn per clip seed)", "clips": len(records),
              "hours": hours(records), "licence": f"{licence} (this project's code and output)"}]
    restricted = [s for s in scores if s["licence"]["commercial_use"] == "no"]
    unclear = [s for s in scores if s["licence"]["commercial_use"] == "unclear"]
    note = []
    if restricted:
        note.append("trained in part on score encodings licensed for non-commercial use only ("
                    + ", ".join(f"{s['collection']}: {s['hours']['train']:.2f} h" for s in restricted) + ")")
    if unclear:
        note.append("the music21 corpus's own licence text says its encodings may carry restrictions on "
                    "commercial use (" + ", ".join(s["collection"] for s in unclear) + ")")
    return {"schema": "filmscore.data_manifest/1", "sources": {"scores": scores, "soundfonts": fonts, "films": films},
            "hours": hours(records), "clips": len(records),
            "weights": {"licence": licence, "note": ("; ".join(note) + "; whether those terms reach weights trained "
                                                      "on them is not settled here") if note else
                        "every source's licence permits commercial use"}}


def corpus_data_manifest(corpus_dir: str | Path) -> dict[str, Any]:
    """`data_manifest` of a corpus directory's v2 clips."""
    from .index import read_index

    return data_manifest([r for r in read_index(Path(corpus_dir)) if r.get("version") == 2])
