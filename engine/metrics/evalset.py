"""Evaluation sets: a folder with `set.json` and the files its items name.

    {"schema": "filmscore.evalset/1", "name": "...", "items": [
      {"id": "...", "video": "x/film.mp4", "start_s": 0.0, "duration_s": 10.0,
       "controls": "x/controls.npz",      # requested melody + dynamics (100/s), or
       "midi": "x/theme.mid",             # a theme to fit, or
       "maestro": "bach", "theme": "bach-03",
       "audio": "x/audio.flac",           # ground truth (optional): enables the ground-truth baselines
       "hits_s": [2.5, 6.1],              # requested hit points (default: the picture's cuts)
       "master": "bach", "work": "bach/bwv1.6"}]}

The tag is engine/sidecar.py's (`EVALSET`): `load_set` reads set.json through its checking reader, so a set
written by a newer filmscore is refused by name and one tagged the old way (`"format": "filmscore.evalset/1"`) is
read. Paths are relative to the folder. `build_from_corpus` makes a set from a corpus's held-out split (their films are
the corpus's generated films, their themes works the model never trained on) plus maestro-guided items over the
same films. The set shipped with filmscore (`default`, engine/metrics/evalset/) was made that way.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import sidecar
from ..errors import FilmscoreError

SET_FORMAT = sidecar.EVALSET.tag
DEFAULT_SET_DIR = Path(__file__).resolve().parent / "evalset"


class EvalSetError(FilmscoreError):
    """An evaluation set folder that is missing, malformed, or names files that are not there."""


@dataclass(frozen=True)
class EvalItem:
    id: str
    duration_s: float
    video: Path | None = None
    start_s: float = 0.0
    controls: Path | None = None
    midi: Path | None = None
    maestro: str | None = None
    theme: str | None = None
    audio: Path | None = None
    hits_s: tuple[float, ...] | None = None
    master: str | None = None
    work: str | None = None
    seed: int = 0

    @property
    def source(self) -> str:
        return "controls" if self.controls else "midi" if self.midi else "maestro" if self.maestro else "none"


@dataclass
class EvalSet:
    name: str
    root: Path
    items: list[EvalItem] = field(default_factory=list)


def resolve_set(spec: str | Path) -> Path:
    """"default" -> the shipped set; anything else is a folder."""
    return DEFAULT_SET_DIR if str(spec) == "default" else Path(spec).expanduser()


def load_set(spec: str | Path) -> EvalSet:
    root = resolve_set(spec)
    path = root / "set.json"
    if not path.is_file():
        raise EvalSetError(f"evaluation set {root}: no set.json")
    doc = sidecar.load(sidecar.EVALSET, path)  # SchemaError (NewerSchemaError) naming the file and its tag
    items = []
    seen = set()
    for k, it in enumerate(doc.get("items", [])):
        iid = str(it.get("id", k))
        if iid in seen:
            raise EvalSetError(f"{path}: item id {iid!r} appears twice")
        seen.add(iid)
        try:
            dur = float(it["duration_s"])
        except (KeyError, TypeError, ValueError) as e:
            raise EvalSetError(f"{path}: item {iid!r} needs a numeric duration_s") from e
        files = {}
        for key in ("video", "controls", "midi", "audio"):
            if it.get(key):
                p = root / it[key]
                if not p.is_file():
                    raise EvalSetError(f"{path}: item {iid!r}: {key} file {p} does not exist")
                files[key] = p
        if sum(bool(x) for x in (files.get("controls"), files.get("midi"), it.get("maestro"))) > 1:
            raise EvalSetError(f"{path}: item {iid!r}: give at most one of controls, midi, maestro")
        hits = it.get("hits_s")
        items.append(EvalItem(iid, dur, files.get("video"), float(it.get("start_s", 0.0)), files.get("controls"),
                              files.get("midi"), it.get("maestro"), it.get("theme"), files.get("audio"),
                              None if hits is None else tuple(float(h) for h in hits), it.get("master"),
                              it.get("work"), int(it.get("seed", k))))
    if not items:
        raise EvalSetError(f"{path}: no items")
    return EvalSet(str(doc.get("name", root.name)), root, items)


def build_from_corpus(corpus: str | Path, out: str | Path, *, n_items: int = 6, duration_s: float = 10.0,
                      maestros: tuple[str, ...] = ("bach", "bach", "folk", "folk", "haydn", "monteverdi"),
                      name: str = "default") -> Path:
    """Copy up to `n_items` held-out clips (film, controls, score, ground-truth audio cut to `duration_s` at
    16 kHz FLAC) into `out` and write its set.json, plus one maestro-guided item per name in `maestros` (a name
    given twice: two themes) over the first films. Clips are taken one per work first, in index order."""
    import soundfile as sf

    from ..audio.io import load_audio
    from ..constants import CONTROL_FRAME_RATE, MODEL_SAMPLE_RATE
    from ..controls.types import Controls
    from ..data.index import iter_index

    corpus, out = Path(corpus).expanduser(), Path(out)
    held = [r for r in iter_index(corpus) if r["split"] == "heldout" and r.get("duration_s", 0) >= duration_s
            and r.get("video")]
    if not held:
        raise EvalSetError(f"corpus {corpus}: no held-out clip of {duration_s} s with a film")
    picked, works = [], set()
    for pass_ in (0, 1):  # one clip per work first, then fill up
        for r in held:
            if len(picked) < n_items and r not in picked and (pass_ or r["work"] not in works):
                picked.append(r)
                works.add(r["work"])
    out.mkdir(parents=True, exist_ok=True)
    items = []
    n = int(round(duration_s * CONTROL_FRAME_RATE))
    for r in picked:
        d = out / r["id"]
        d.mkdir(exist_ok=True)
        shutil.copyfile(corpus / r["video"], d / "film.mp4")
        shutil.copyfile(corpus / r["midi"], d / "score.mid")
        Controls.load_npz(corpus / r["controls"]).fit_length(n).save_npz(d / "controls.npz")
        wave = load_audio(corpus / r["audio"], MODEL_SAMPLE_RATE)[:int(duration_s * MODEL_SAMPLE_RATE)]
        sf.write(str(d / "audio.flac"), wave, MODEL_SAMPLE_RATE, subtype="PCM_16")
        hits = [h for h in r.get("hits_s", []) + r.get("cuts_s", []) if 0 < h < duration_s]
        items.append({"id": r["id"], "video": f"{r['id']}/film.mp4", "start_s": 0.0, "duration_s": duration_s,
                      "controls": f"{r['id']}/controls.npz", "audio": f"{r['id']}/audio.flac",
                      "hits_s": sorted(set(round(h, 3) for h in hits)), "master": r["master"], "work": r["work"],
                      "seed": len(items)})
    for k, m in enumerate(maestros):
        film = items[k % len(items)]
        nth = maestros[:k].count(m)  # a master named twice gets two themes (drawn by the seed)
        items.append({"id": f"maestro-{m}-{nth}", "video": film["video"], "start_s": 0.0,
                      "duration_s": duration_s, "maestro": m, "master": m, "seed": 100 + k})
    doc = sidecar.stamped(sidecar.EVALSET, {"name": name, "source": {"corpus": str(corpus), "split": "heldout"},
                                            "items": items})
    (out / "set.json").write_text(json.dumps(doc, indent=1) + "\n")
    return out


def controls_for_item(item: EvalItem, n_frames: int, hits_s: tuple[float, ...]):
    """The requested local controls of an item at 100/s, exactly `n_frames` long."""
    from ..controls.types import Controls

    if item.controls is not None:
        return Controls.load_npz(item.controls).fit_length(n_frames)
    from ..controls.request import controls_for_request

    controls, _ = controls_for_request(n_frames=n_frames, midi=item.midi, maestro=item.maestro, theme=item.theme,
                                       hits_s=hits_s, seed=item.seed)
    return controls


def shuffled_partner(index: int, items: list[EvalItem]) -> int | None:
    """Whose controls item `index` gets in the shuffled-controls baseline: the next item with controls (a
    rotation, so no item keeps its own); None when fewer than two items carry controls."""
    with_ctrl = [i for i, it in enumerate(items) if it.source != "none"]
    if index not in with_ctrl or len(with_ctrl) < 2:
        return None
    return with_ctrl[(with_ctrl.index(index) + 1) % len(with_ctrl)]

