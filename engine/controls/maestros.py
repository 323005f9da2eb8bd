"""The maestro library: themes by great masters, shipped in `engine/maestros/<master>.json`.

Each file holds one master's themes (built from the music21 corpus by `engine/maestros/build.py`): notes in
quarter-note beats, metre, pickup, key, tempo and source. `load_theme` turns one into a `Theme` ready to fit;
without a theme id the choice is drawn from the seed, so the same seed always picks the same theme.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import FilmscoreError
from .theme import Theme, theme_from_beats

LIBRARY_DIR = Path(__file__).resolve().parent.parent / "maestros"
SUPPORTED_FORMAT = 1
MASTER_PROGRAMS: dict[str, int] = {"bach": 19, "beethoven": 40, "mozart": 40, "haydn": 40, "monteverdi": 52,
                                   "folk": 73, "celtic": 110}
"""General MIDI program (0-based) a master's themes are written for in fitted MIDI: church organ, violin, choir,
flute, fiddle. Only the fitted MIDI file carries it; the controls do not depend on it."""


class MaestroError(FilmscoreError):
    """An unknown master or theme, or a library file that is missing or damaged."""


@dataclass(frozen=True)
class ThemeInfo:
    id: str
    master: str
    work: str
    bars: str
    key: str
    meter: str
    tempo_bpm: float
    length_beats: float
    n_notes: int
    source: str

    @property
    def duration_s(self) -> float:
        return self.length_beats * 60.0 / self.tempo_bpm


@dataclass(frozen=True)
class MasterInfo:
    name: str
    display: str
    era: str
    license: str
    themes: tuple[ThemeInfo, ...]


def _library_files(directory: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.glob("*.json"))}


@lru_cache(maxsize=32)
def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MaestroError(f"maestro library file {path}: cannot read ({e})") from e
    if not isinstance(data, dict) or data.get("format") != SUPPORTED_FORMAT or not data.get("themes"):
        raise MaestroError(f"maestro library file {path}: not a format-{SUPPORTED_FORMAT} library with themes")
    return data


def masters(directory: Path = LIBRARY_DIR) -> list[MasterInfo]:
    """Every master in the library, by name."""
    out = []
    for name, path in _library_files(directory).items():
        data = _load(path)
        infos = tuple(ThemeInfo(t["id"], name, t["work"], t["bars"], t["key"], t["meter"], float(t["tempo_bpm"]),
                                float(t["length_beats"]), len(t["notes"]), t["source"]) for t in data["themes"])
        out.append(MasterInfo(name, data.get("display", name), data.get("era", ""), data.get("license", ""), infos))
    return out


def master_names(directory: Path = LIBRARY_DIR) -> list[str]:
    return list(_library_files(directory))


def _master_data(master: str, directory: Path) -> dict:
    files = _library_files(directory)
    key = master.strip().lower()
    if key not in files:
        known = ", ".join(files) or f"none (no library files in {directory})"
        raise MaestroError(f"unknown maestro {master!r}; choose one of {known}")
    return _load(files[key])


def load_theme(master: str, theme: str | None = None, seed: int = 0, directory: Path = LIBRARY_DIR) -> Theme:
    """One theme of `master` as a `Theme`: `theme` by id ("bach-07"), or number ("7"); None: drawn from `seed`."""
    data = _master_data(master, directory)
    themes = data["themes"]
    if theme is None:
        t = themes[int(np.random.default_rng(seed).integers(len(themes)))]
    else:
        want = theme.strip().lower()
        by_id = {x["id"].lower(): x for x in themes}
        if want.isdigit():
            want = f"{data['master']}-{int(want):02d}"
        if want not in by_id:
            raise MaestroError(f"maestro {data['master']} has no theme {theme!r}; "
                               f"themes are {themes[0]['id']}..{themes[-1]['id']}")
        t = by_id[want]
    num, den = (int(x) for x in t["meter"].split("/"))
    meta = {k: v for k, v in t.items() if k != "notes"}
    meta["master"] = data["master"]
    return theme_from_beats([tuple(row) for row in t["notes"]], bpm=float(t["tempo_bpm"]), meter=(num, den),
                            pickup_beats=float(t["pickup_beats"]), length_beats=float(t["length_beats"]),
                            program=MASTER_PROGRAMS.get(data["master"], 0),
                            name=f"{t['id']} ({data.get('display', data['master'])}: {t['work']}, bars {t['bars']})",
                            meta=meta)
