"""The music21 corpus as a source of works: enumeration with composer labels, parsing to note lists, MIDI export.

A *work* is one piece (one chorale, one mass movement, one folk tune inside a multi-tune ABC file). Works are the
unit of the held-out split. Parsing turns a music21 score into a `ParsedScore`: plain note arrays per part in
quarter lengths (qL), bar starts, key and mode, the marked tempo. It is the only place that touches music21
objects; everything downstream (orchestration, dynamics, MIDI, video) works on these arrays, and the parse cache
stores them as JSON so that the slow music21 parse happens once per work.

Part roles: the *melody* part is the highest part (highest mean pitch, first in score order on ties), made
monophonic by keeping the top note wherever notes overlap; every other part is accompaniment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mido
import numpy as np

from ..errors import FilmscoreError

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# music21 corpus directory -> composer label ("master"). Folk collections share the label "folk".
FOLK_COLLECTIONS = ("essenFolksong", "oneills1850", "ryansMammoth", "airdsAirs", "miscFolk", "nottingham-dataset")
# Directories that hold no playable repertoire (test files, analysis exercises, lead sheets without voicings).
SKIPPED_COLLECTIONS = ("demos", "theoryExercises", "leadSheet")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")  # .rntxt holds Roman numerals, not notes

# Typical tempo (quarter notes per minute) when the score marks none. Renaissance and trecento notation counts in
# half notes (tactus ~60-70/min), chorales are sung slowly, fiddle tunes move.
DEFAULT_QPM = {"bach": 80.0, "palestrina": 132.0, "trecento": 150.0, "monteverdi": 120.0, "josquin": 132.0,
               "ciconia": 150.0, "luca": 132.0, "lusitano": 132.0, "folk": 112.0}
FALLBACK_QPM = 100.0

_X_LINE = re.compile(rb"^X:\s*(\d+)", re.MULTILINE)


class SourceError(FilmscoreError):
    """A music21 corpus work that cannot be found, parsed, or holds no notes."""


@dataclass(frozen=True)
class Work:
    """One piece of the music21 corpus.

    master: composer label ("bach", "palestrina", "folk", ...); work_id: stable, filesystem-safe id
    ("bach/bwv66.6", "folk/essenFolksong-altdeu10-12"); path: the music21 corpus path ("bach/bwv66.6.mxl");
    number: the tune number (ABC "X:") inside a multi-tune file, else None.
    """

    master: str
    work_id: str
    path: str
    number: int | None = None

    @property
    def collection(self) -> str:
        return self.path.split("/", 1)[0]


@dataclass
class PartNotes:
    """One part: notes as `(N, 3)` float64 rows of (onset qL, duration qL, MIDI pitch), sorted by onset."""

    name: str
    role: str  # "melody" | "accomp"
    notes: np.ndarray

    @property
    def mean_pitch(self) -> float:
        return float(self.notes[:, 2].mean()) if len(self.notes) else 0.0


@dataclass
class ParsedScore:
    """A work reduced to what the corpus needs. Times in quarter lengths (qL) from the score start.

    bars: bar start offsets `(B,)` qL, increasing; the piece ends at `end_ql`. tonic: pitch class 0-11 of the key;
    mode: "major" | "minor"; marked_qpm: the score's own tempo (quarters per minute), None when unmarked.
    parts[0] is the melody part.
    """

    work: Work
    title: str
    parts: list[PartNotes]
    bars: np.ndarray
    end_ql: float
    tonic: int
    mode: str
    marked_qpm: float | None = None
    extras: dict = field(default_factory=dict)

    @property
    def melody(self) -> PartNotes:
        return self.parts[0]

    @property
    def accompaniment(self) -> list[PartNotes]:
        return self.parts[1:]

    @property
    def key_name(self) -> str:
        return PITCH_NAMES[self.tonic]

    @property
    def base_qpm(self) -> float:
        """The tempo the corpus scales from: the marked tempo, else the collection's typical tempo."""
        if self.marked_qpm:
            return float(self.marked_qpm)
        return DEFAULT_QPM.get(self.work.master, FALLBACK_QPM)

    # --- cache (JSON) -------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"work": asdict(self.work), "title": self.title, "bars": self.bars.tolist(), "end_ql": self.end_ql,
                "tonic": self.tonic, "mode": self.mode, "marked_qpm": self.marked_qpm, "extras": self.extras,
                "parts": [{"name": p.name, "role": p.role, "notes": np.round(p.notes, 6).tolist()}
                          for p in self.parts]}

    @classmethod
    def from_json(cls, d: dict) -> ParsedScore:
        parts = [PartNotes(p["name"], p["role"], np.asarray(p["notes"], np.float64).reshape(-1, 3))
                 for p in d["parts"]]
        return cls(Work(**d["work"]), d["title"], parts, np.asarray(d["bars"], np.float64), float(d["end_ql"]),
                   int(d["tonic"]), d["mode"], d["marked_qpm"], d.get("extras", {}))

    def to_midi(self, qpm: float | None = None, ticks_per_beat: int = 480) -> mido.MidiFile:
        """Type-1 MIDI: track 0 tempo and time signature, then one track per part named "melody" / "accomp N"
        (melody on channel 0, accompaniment on channels 1..), every note at velocity 90 as music21 writes it.
        The orchestrated, dynamic version of a clip is made by `engine.data.arrange`."""
        return notes_to_midi([(p.role if p.role == "melody" else f"accomp {i}", 0, p.notes, 90)
                              for i, p in enumerate(self.parts)], qpm or self.base_qpm, ticks_per_beat)


def notes_to_midi(tracks: list[tuple[str, int, np.ndarray, int | np.ndarray]], qpm: float,
                  ticks_per_beat: int = 480) -> mido.MidiFile:
    """Plain MIDI export: `tracks` = [(name, GM program, (N, 3) notes in qL, velocity or (N,) velocities)].
    Channel i for track i (channel 9, the GM drum channel, is skipped)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0))
    mid.tracks.append(meta)
    channels = [c for c in range(16) if c != 9]
    for i, (name, program, notes, vel) in enumerate(tracks):
        ch = channels[i % len(channels)]
        vels = np.broadcast_to(np.asarray(vel), (len(notes),))
        events = []
        for (on, dur, pitch), v in zip(notes, vels):
            a = int(round(on * ticks_per_beat))
            b = max(a + 1, int(round((on + dur) * ticks_per_beat)))
            events.append((b, 0, int(pitch), 0))  # note-offs sort before note-ons at the same tick
            events.append((a, 1, int(pitch), int(np.clip(v, 1, 127))))
        events.sort()
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0),
                                mido.Message("program_change", channel=ch, program=int(program), time=0)])
        now = 0
        for tick, is_on, pitch, v in events:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, channel=ch, note=pitch, velocity=v if is_on else 0, time=tick - now))
            now = tick
        mid.tracks.append(track)
    return mid


# --- enumeration -------------------------------------------------------------------------------------------------
def master_of(collection: str) -> str:
    return "folk" if collection in FOLK_COLLECTIONS else collection


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


def _abc_numbers(path: Path) -> list[int]:
    """The tune numbers (X: lines) of an ABC file, in file order, without duplicates."""
    seen: list[int] = []
    for m in _X_LINE.finditer(path.read_bytes()):
        n = int(m.group(1))
        if n not in seen:
            seen.append(n)
    return seen


def corpus_root() -> Path:
    from music21 import corpus

    return Path(corpus.__file__).resolve().parent


def iter_works(composers: Iterable[str] | None = None) -> Iterator[Work]:
    """Every playable work of the music21 core corpus, in a stable order (collection, file, tune number), each
    once (a piece stored in several formats is read from the first of `SCORE_SUFFIXES`).

    composers: masters to keep ("bach", "palestrina", "folk", ...); None keeps all. Multi-tune ABC files yield
    one work per tune. Raises `SourceError` for a composer the corpus does not hold.
    """
    from music21 import corpus

    root = corpus_root()
    paths = sorted(Path(p) for p in corpus.getCorePaths())
    wanted = None if composers is None else set(composers)
    if wanted is not None:
        known = {master_of(p.relative_to(root).parts[0]) for p in paths}
        unknown = sorted(wanted - known)
        if unknown:
            raise SourceError(f"composer(s) {', '.join(unknown)} not in the music21 corpus; "
                              f"known: {', '.join(sorted(known))}")
    # A piece stored in two formats (bwv277.krn and .mxl) is one work: keep the first of SCORE_SUFFIXES.
    chosen: dict[str, tuple[int, Work]] = {}
    order: list[str] = []
    for p in paths:
        rel = p.relative_to(root)
        collection = rel.parts[0]
        suffix = p.suffix.lower()
        if collection in SKIPPED_COLLECTIONS or suffix not in SCORE_SUFFIXES:
            continue
        master = master_of(collection)
        if wanted is not None and master not in wanted:
            continue
        stem = _slug("-".join(rel.with_suffix("").parts[1:]))
        rel_s = rel.as_posix()
        rank = SCORE_SUFFIXES.index(suffix)
        found = []
        if suffix == ".abc":
            numbers = _abc_numbers(p)
            if len(numbers) > 1:
                found = [Work(master, f"{master}/{collection}-{stem}-{n}", rel_s, n) for n in numbers]
        if not found:
            prefix = f"{collection}-" if master == "folk" else ""
            found = [Work(master, f"{master}/{prefix}{stem}", rel_s, None)]
        for w in found:
            if w.work_id not in chosen:
                order.append(w.work_id)
            elif chosen[w.work_id][0] <= rank:
                continue
            chosen[w.work_id] = (rank, w)
    for work_id in order:
        yield chosen[work_id][1]


def list_masters() -> list[str]:
    """Composer labels present in the corpus, sorted."""
    return sorted({w.master for w in iter_works()})


# --- parsing -----------------------------------------------------------------------------------------------------
def load_score(work: Work):
    """The work as a music21 `Score` (raises `SourceError` when music21 cannot read it)."""
    from music21 import converter, stream

    path = corpus_root() / work.path
    if not path.is_file():
        raise SourceError(f"work {work.work_id}: corpus file {path} not found")
    try:
        s = converter.parse(path, number=work.number) if work.number is not None else converter.parse(path)
    except Exception as e:  # music21 raises many unrelated types on malformed files
        raise SourceError(f"work {work.work_id}: music21 cannot parse {work.path} ({type(e).__name__}: {e})") from e
    if isinstance(s, stream.Opus):
        s = s.scores[0] if s.scores else None
    if s is None:
        raise SourceError(f"work {work.work_id}: {work.path} holds no score")
    return s


def _part_notes(part) -> np.ndarray:
    """(N, 3) onset qL, duration qL, MIDI pitch for every sounding note of a part (ties merged, chords split)."""
    rows = []
    flat = part.stripTies().flatten()
    for n in flat.notes:
        on = float(n.getOffsetInHierarchy(flat))
        dur = float(n.quarterLength)
        if dur <= 0:  # grace notes
            continue
        for p in n.pitches:
            rows.append((on, dur, float(p.midi)))
    arr = np.asarray(rows, np.float64).reshape(-1, 3)
    return arr[np.lexsort((arr[:, 2], arr[:, 0]))] if len(arr) else arr


def skyline(notes: np.ndarray) -> np.ndarray:
    """Monophonic top line of `(N, 3)` notes: at each onset keep the highest note; a sounding note is cut where a
    later note starts (so the line never overlaps itself)."""
    if len(notes) == 0:
        return notes
    order = np.lexsort((-notes[:, 2], notes[:, 0]))
    top, last_on = [], None
    for on, dur, pitch in notes[order]:
        if on == last_on:
            continue
        if top and top[-1][0] + top[-1][1] > on:
            top[-1][1] = on - top[-1][0]
        top.append([on, dur, pitch])
        last_on = on
    return np.asarray(top, np.float64)


def _bar_starts(part, end_ql: float) -> np.ndarray:
    from music21 import stream

    starts = sorted({float(m.getOffsetInHierarchy(part)) for m in part.getElementsByClass(stream.Measure)})
    starts = [s for s in starts if s < end_ql]
    if len(starts) < 2:  # unmeasured source: 4/4 bars
        starts = list(np.arange(0.0, end_ql, 4.0))
    return np.asarray(starts, np.float64)


def _key_of(score) -> tuple[int, str]:
    from music21 import key as m21key

    keys = list(score.flatten().getElementsByClass(m21key.Key))
    k = keys[0] if keys else None
    if k is None:
        try:
            k = score.analyze("key")
        except Exception:  # analysis fails on empty or unpitched material; C major is a neutral default
            return 0, "major"
    mode = "minor" if k.mode == "minor" else "major"
    return int(k.tonic.pitchClass), mode


def _marked_qpm(score) -> float | None:
    from music21 import tempo

    for mm in score.flatten().getElementsByClass(tempo.MetronomeMark):
        # music21 invents "playback only" marks (e.g. 96 for chorales): not the composer's tempo.
        if getattr(mm, "numberImplicit", False) or mm.number is None:
            continue
        q = mm.getQuarterBPM()
        if q and 30 <= q <= 240:
            return float(q)
    return None


def _time_signatures(score) -> list[list[float]]:
    """[[offset qL, numerator, denominator], ...] of the score's time signatures in order (corpus v2's beat grid)."""
    from music21 import meter

    out: list[list[float]] = []
    flat = score.parts[0].flatten() if score.parts else score.flatten()
    for ts in flat.getElementsByClass(meter.TimeSignature):
        row = [float(ts.getOffsetInHierarchy(flat)), float(ts.numerator), float(ts.denominator)]
        if not out or out[-1][1:] != row[1:]:
            out.append(row)
    return out


def parse_work(work: Work) -> ParsedScore:
    """Parse one work with music21 (~0.05-3 s) into a `ParsedScore`; raises `SourceError` when no notes."""
    score = load_score(work)
    parts = []
    for i, part in enumerate(score.parts):
        notes = _part_notes(part)
        if len(notes):
            name = str(part.partName or part.id or f"part {i}")
            parts.append(PartNotes(name, "accomp", notes))
    if not parts:
        raise SourceError(f"work {work.work_id}: {work.path} holds no notes")
    end_ql = max(float((p.notes[:, 0] + p.notes[:, 1]).max()) for p in parts)
    # Melody = highest part; score order breaks ties (argmax takes the first).
    lead = int(np.argmax([round(p.mean_pitch, 3) for p in parts]))
    parts.insert(0, parts.pop(lead))
    parts[0] = PartNotes(parts[0].name, "melody", skyline(parts[0].notes))
    tonic, mode = _key_of(score)
    title = ""
    if score.metadata is not None:
        title = str(score.metadata.title or score.metadata.movementName or "")
    bars = _bar_starts(score.parts[0], end_ql)
    return ParsedScore(work, title or Path(work.path).stem, parts, bars, end_ql, tonic, mode, _marked_qpm(score),
                       {"time_signatures": _time_signatures(score)})


def score_to_midi(work: Work, qpm: float | None = None) -> mido.MidiFile:
    """A work as plain MIDI with part roles (track "melody" first, then "accomp N"), at its marked or typical
    tempo. For the maestro library and anything else that needs the source notes as MIDI."""
    return parse_work(work).to_midi(qpm)


class ParseCache:
    """Parsed works as JSON files under `root/<work_id>.json`, written atomically (safe across processes)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, work: Work) -> Path:
        return self.root / f"{work.work_id}.json"

    def get(self, work: Work) -> ParsedScore:
        p = self.path(work)
        if p.is_file():
            try:
                return ParsedScore.from_json(json.loads(p.read_text()))
            except (ValueError, KeyError, TypeError):
                p.unlink(missing_ok=True)  # a stale or foreign file: parse again
        parsed = parse_work(work)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{id(parsed)}")
        tmp.write_text(json.dumps(parsed.to_json()))
        tmp.replace(p)
        return parsed
