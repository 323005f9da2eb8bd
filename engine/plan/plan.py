"""`CuePlan`: the full musical plan of one cue, as JSON (`"schema": "filmscore.plan/1"`) and as a multi-track MIDI
file that reopens to the same plan.

PLAN.json fields (times in seconds from the cue start): `tempo_bpm` (median), `beats`, `downbeats`,
`beats_per_bar`, `free_timing`, `key` (tonic name), `mode`, `chords` (`{"time", "end", "symbol", "roman",
"pitch_classes", "degree"}`), `hits` (`{"time", "beat_time", "kind", "major"}`), `mood` (`energy`, `valence`,
`tension`), `choices` (target tempo, harmonic rhythm, register, orchestration), `sections`, `melody`, `harmony`,
`bass`, `percussion` (notes `{"time", "end", "pitch", "velocity"}`), `dynamics` (`{"rate": 10, "db": [...]}`),
`source` (video range, theme, maestro, style, how the harmony was made).

PLAN.mid (type 1, 480 ticks a beat; tick 0 is the last beat at or before the cue start, so bars sit where a DAW
draws them): track 0 "tempo map" holds a tempo event on every beat, a time signature on every bar whose length
changes, the key signature, a marker per hit ("hit cut", "hit cut major", "hit hit"), a marker "cue start" and one
text event `filmscore.plan/1 {json}` with what is not music (mood, sections, choices, source, dynamics reference);
then tracks "melody" (channel 1), "harmony" (2, a marker "chord SYMBOL ROMAN pcs" at each chord), "bass" (3),
"percussion" (10); the dynamics curve is CC11 on the melody track at 10/s (value = 127 x 10^((dB - ref) / 40),
the SoundFont concave curve `controls.midi` reads). Reading the file back gives the same plan (times to the
microsecond tempo resolution, dynamics to the CC step: within 0.5 dB over the plan's 18 dB span). Notes the
composer adds, moves or deletes in a DAW are read as they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import sidecar
from ..constants import CONTROL_FRAME_RATE
from ..controls.midi import Note, melody_from_notes
from ..controls.types import Controls
from .dynamics import PLAN_DYNAMICS_RATE, to_control_rate
from .harmony import Chord
from .mood import ORCHESTRA_PROGRAMS, TONIC_NAMES, Mood, PlanError, parse_key
from .rhythm import DRUM_CHANNEL, Section
from .tempo_map import TempoMap

SCHEMA = sidecar.PLAN.tag  # JSON and the MIDI header are read through engine/sidecar.py (checked, upgraded)
TICKS = 480
TRACKS = ("melody", "harmony", "bass", "percussion")
CHANNELS = {"melody": 1, "harmony": 2, "bass": 3, "percussion": DRUM_CHANNEL}


@dataclass(frozen=True)
class Hit:
    """A cut or flagged hit (`time_s`) and the beat the plan puts it on (`beat_time_s`)."""

    time_s: float
    beat_time_s: float
    kind: str
    major: bool

    def to_json(self) -> dict:
        return {"time": round(self.time_s, 4), "beat_time": round(self.beat_time_s, 4), "kind": self.kind,
                "major": self.major}


@dataclass
class CuePlan:
    duration_s: float
    tempo: TempoMap
    tonic: int
    mode: str
    chords: list[Chord]
    hits: list[Hit]
    mood: Mood
    sections: list[Section]
    melody: list[Note]
    harmony: list[Note]
    bass: list[Note]
    percussion: list[Note]
    dynamics_db: np.ndarray
    orchestration: str
    choices: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return TONIC_NAMES[self.tonic]

    # -- controls ---------------------------------------------------------------------------------------------------
    def controls(self, n_frames: int | None = None) -> Controls:
        """The plan as today's bundle's controls at 100/s: the melody track's pitch classes and the dynamics curve."""
        if n_frames is None:
            n_frames = int(math.ceil(self.duration_s * CONTROL_FRAME_RATE - 1e-9))
        melody = melody_from_notes(self.melody, n_frames, CONTROL_FRAME_RATE)
        dyn = to_control_rate(self.dynamics_db, n_frames)
        return Controls(melody, dyn, melody_present=bool(self.melody), dynamics_present=True)

    # -- JSON -------------------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            sidecar.KEY: SCHEMA, "duration_s": round(self.duration_s, 4), "tempo_bpm": round(self.tempo.tempo_bpm, 3),
            "target_bpm": round(self.tempo.target_bpm, 3), "beats_per_bar": self.tempo.beats_per_bar,
            "free_timing": self.tempo.free_timing,
            "beats": [round(float(b), 6) for b in self.tempo.beats],
            "downbeats": [round(float(b), 6) for b in self.tempo.downbeats],
            "key": self.key, "mode": self.mode, "chords": [c.to_json() for c in self.chords],
            "hits": [h.to_json() for h in self.hits], "mood": self.mood.to_json(),
            "sections": [s.to_json() for s in self.sections], "orchestration": self.orchestration,
            "choices": self.choices,
            **{name: [_note_json(n) for n in getattr(self, name)] for name in TRACKS},
            "dynamics": {"rate": PLAN_DYNAMICS_RATE, "db": [round(float(x), 2) for x in self.dynamics_db]},
            "source": self.source,
        }

    @classmethod
    def from_json(cls, d: dict) -> CuePlan:
        try:
            d = sidecar.read(sidecar.PLAN, d, "plan")
        except sidecar.SchemaError as e:
            raise PlanError(f"not a {SCHEMA} plan ({e})") from None
        try:
            tonic, _ = parse_key(str(d["key"]))
            mode = str(d["mode"])
            if mode not in ("major", "minor"):
                raise PlanError(f"plan mode must be major or minor, got {mode!r}")
            beats = np.asarray(d["beats"], np.float64)
            downs = np.asarray(d["downbeats"], np.float64)
            if beats.size < 2 or np.any(np.diff(beats) <= 0):
                raise PlanError("plan beats must be at least two, strictly increasing")
            if not np.all(np.isin(np.round(downs, 4), np.round(beats, 4))):
                raise PlanError("every plan downbeat must be one of its beats")
            dur = float(d["duration_s"])
            target = float(d.get("target_bpm", 60.0 / np.median(np.diff(beats))))
            tm = TempoMap(beats, downs, int(d.get("beats_per_bar", 4)), dur, target, bool(d.get("free_timing", False)))
            dyn = d["dynamics"]
            if int(dyn["rate"]) != PLAN_DYNAMICS_RATE:
                raise PlanError(f"plan dynamics rate must be {PLAN_DYNAMICS_RATE}/s, got {dyn['rate']}")
            tracks = {name: [_note_from_json(n, CHANNELS[name], i + 1) for n in d.get(name, [])]
                      for i, name in enumerate(TRACKS)}
            return cls(dur, tm, tonic, mode, [Chord.from_json(c) for c in d["chords"]],
                       [Hit(float(h["time"]), float(h["beat_time"]), str(h.get("kind", "cut")),
                            bool(h.get("major", False))) for h in d.get("hits", [])],
                       Mood.from_json(d["mood"]), [Section.from_json(s) for s in d.get("sections", [])],
                       tracks["melody"], tracks["harmony"], tracks["bass"], tracks["percussion"],
                       np.asarray(dyn["db"], np.float32), str(d.get("orchestration", "strings")),
                       dict(d.get("choices", {})), dict(d.get("source", {})))
        except PlanError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError(f"plan: missing or bad field ({type(e).__name__}: {e})") from e

    # -- MIDI -------------------------------------------------------------------------------------------------------
    def to_midi(self):
        import mido

        tm = self.tempo
        origin = float(tm.beats[tm.beats <= 1e-9][-1]) if np.any(tm.beats <= 1e-9) else float(tm.beats[0])
        b0 = int(np.searchsorted(tm.beats, origin - 1e-9))

        def tick(t: float) -> int:
            return int(round((float(tm.beat_of(t)) - b0) * TICKS))

        mid = mido.MidiFile(type=1, ticks_per_beat=TICKS)
        conductor: list[tuple[int, int, mido.Message]] = []
        beats = tm.beats[b0:]
        for i in range(len(beats) - 1):
            conductor.append((i * TICKS, 0, mido.MetaMessage("set_tempo",
                                                            tempo=int(round((beats[i + 1] - beats[i]) * 1e6)))))
        downs = [int(i) - b0 for i in tm.downbeat_indices if i >= b0]
        bars = [0] + downs if not downs or downs[0] != 0 else downs
        last_len = None
        for a, b in zip(bars, bars[1:] + [bars[-1] + tm.beats_per_bar]):
            n = b - a
            if n != last_len and n > 0:
                conductor.append((a * TICKS, 1, mido.MetaMessage("time_signature", numerator=min(n, 255),
                                                                 denominator=4)))
                last_len = n
        key = self.key + ("m" if self.mode == "minor" else "")
        key = {"Ebm": "Ebm", "Abm": "G#m", "Dbm": "C#m", "C#": "Db", "F#m": "F#m"}.get(key, key)
        conductor.append((0, 2, mido.MetaMessage("key_signature", key=key)))
        conductor.append((tick(0.0), 3, mido.MetaMessage("marker", text="cue start")))
        for h in self.hits:
            conductor.append((tick(h.time_s), 3, mido.MetaMessage(
                "marker", text=f"hit {h.kind}{' major' if h.major else ''} {h.time_s:.4f}")))
        ref = float(np.max(self.dynamics_db)) if self.dynamics_db.size else 0.0
        header = {sidecar.KEY: SCHEMA, "duration_s": self.duration_s, "mood": self.mood.to_json(),
                  "sections": [s.to_json() for s in self.sections], "choices": self.choices,
                  "source": self.source, "orchestration": self.orchestration, "dynamics_ref_db": ref,
                  "target_bpm": tm.target_bpm, "beats_per_bar": tm.beats_per_bar, "free_timing": tm.free_timing,
                  "mode": self.mode, "beats_before_origin": b0, "n_beats": int(len(tm.beats)),
                  "pickup_bar": bool(not downs or downs[0] != 0),
                  "hits": [h.to_json() for h in self.hits]}
        conductor.append((0, 4, mido.MetaMessage("text", text=f"{SCHEMA} {json.dumps(header)}")))
        mid.tracks.append(_track("tempo map", conductor, tm.beats_per_bar))
        programs = ORCHESTRA_PROGRAMS.get(self.orchestration, ORCHESTRA_PROGRAMS["strings"])
        for name in TRACKS:
            ch = CHANNELS[name] - 1
            evs: list[tuple[int, int, mido.Message]] = []
            if name != "percussion":
                evs.append((0, 0, mido.Message("program_change", channel=ch, program=programs[name])))
            for n in getattr(self, name):
                on, off = tick(n.onset_s), tick(n.offset_s)
                evs.append((on, 3, mido.Message("note_on", channel=ch, note=int(n.pitch), velocity=int(n.velocity))))
                evs.append((max(off, on + 1), 2, mido.Message("note_off", channel=ch, note=int(n.pitch), velocity=0)))
            if name == "melody":
                for i, db in enumerate(self.dynamics_db):
                    v = int(np.clip(round(127 * 10 ** ((float(db) - ref) / 40.0)), 1, 127))
                    evs.append((tick(i / PLAN_DYNAMICS_RATE), 1, mido.Message("control_change", channel=ch,
                                                                                control=11, value=v)))
            if name == "harmony":
                for c in self.chords:
                    evs.append((tick(c.time_s), 1, mido.MetaMessage(
                        "marker", text=f"chord {c.symbol} {c.roman or '-'} {','.join(map(str, c.pitch_classes))} "
                                       f"{c.degree}")))
            mid.tracks.append(_track(name, evs))
        return mid

    def write_midi(self, path: str | Path) -> None:
        self.to_midi().save(str(path))

    @classmethod
    def from_midi(cls, path: str | Path) -> CuePlan:
        from ..controls.midi import read_midi

        mid = read_midi(path)
        if mid.ticks_per_beat <= 0:
            raise PlanError(f"{path}: a plan MIDI file counts time in beats, not SMPTE frames")
        tpb = mid.ticks_per_beat
        header = None
        tempos: dict[int, int] = {}
        sigs: list[tuple[int, int]] = []
        markers: list[tuple[int, str]] = []
        cue_start_tick = None
        named: dict[str, list] = {}
        for track in mid.tracks:
            tick = 0
            name = None
            evs = []
            for msg in track:
                tick += msg.time
                if msg.type == "track_name":
                    name = msg.name
                elif msg.type == "set_tempo":
                    tempos[tick] = msg.tempo
                elif msg.type == "time_signature":
                    sigs.append((tick, msg.numerator * 4 // msg.denominator if msg.denominator <= 4 else
                                 msg.numerator))
                elif msg.type == "text" and msg.text.startswith(sidecar.PLAN.kind + "/"):
                    header = _midi_header(msg.text, path)
                elif msg.type == "marker":
                    if msg.text == "cue start":
                        cue_start_tick = tick
                    else:
                        markers.append((tick, msg.text))
                evs.append((tick, msg))
            if name:
                named[name] = evs
        if header is None:
            raise PlanError(f"{path}: no '{SCHEMA}' header text event: not a plan written by filmscore "
                            "(a DAW that drops text events also drops it; export with meta events kept)")
        # beats: a tempo per beat tick (the last one holds on)
        n_beats = int(header["n_beats"]) - int(header["beats_before_origin"])
        times = [0.0]
        cur = 500000
        for i in range(n_beats - 1):
            cur = tempos.get(i * tpb, cur)
            times.append(times[-1] + cur / 1e6)
        beats = np.asarray(times)
        start = float(np.interp((cue_start_tick or 0) / tpb, np.arange(len(beats)), beats))
        beats = beats - start

        def sec(tick: int) -> float:
            x = tick / tpb
            if x <= len(beats) - 1:
                return float(np.interp(x, np.arange(len(beats)), beats))
            return float(beats[-1] + (x - len(beats) + 1) * (beats[-1] - beats[-2]))

        # downbeats: bar lines from the time signatures
        sigs.sort()
        downs = []
        b, k = 0, 0
        m = int(header["beats_per_bar"])
        while b < len(beats):
            while k < len(sigs) and sigs[k][0] <= b * tpb:
                m = max(1, sigs[k][1])
                k += 1
            downs.append(b)
            b += m
        if header.get("pickup_bar") and downs:
            downs = downs[1:]  # tick 0 starts a bar for a DAW; in the plan the beats before the first downbeat: a pickup
        tm = TempoMap(beats, beats[np.asarray(downs, int)], int(header["beats_per_bar"]), float(header["duration_s"]),
                      float(header["target_bpm"]), bool(header["free_timing"]))
        tracks: dict[str, list[Note]] = {}
        ref = float(header["dynamics_ref_db"])
        dyn_t, dyn_v = [], []
        chords: list[Chord] = []
        for i, name in enumerate(TRACKS):
            evs = named.get(name, [])
            open_: dict[tuple[int, int], tuple[int, int]] = {}
            notes = []
            for tick, msg in evs:
                if msg.type == "note_on" and msg.velocity > 0:
                    open_[(msg.channel, msg.note)] = (tick, msg.velocity)
                elif msg.type in ("note_off", "note_on") and (msg.channel, msg.note) in open_:
                    t0, v = open_.pop((msg.channel, msg.note))
                    notes.append(Note(sec(t0), sec(tick), msg.note, v, msg.channel + 1, i + 1))
                elif name == "melody" and msg.type == "control_change" and msg.control == 11:
                    dyn_t.append(sec(tick))
                    dyn_v.append(ref + 40.0 * math.log10(max(msg.value, 1) / 127.0))
                elif name == "harmony" and msg.type == "marker" and msg.text.startswith("chord "):
                    parts = msg.text.split()
                    pcs = tuple(int(x) for x in parts[3].split(",")) if len(parts) > 3 and parts[3] else ()
                    chords.append(Chord(sec(tick), 0.0, parts[1], "" if parts[2] == "-" else parts[2], pcs,
                                        int(parts[4]) if len(parts) > 4 else -1))
            notes.sort(key=lambda n: (n.onset_s, n.pitch))
            tracks[name] = notes
        dur = float(header["duration_s"])
        chords.sort(key=lambda c: c.time_s)
        chords = [Chord(c.time_s, chords[j + 1].time_s if j + 1 < len(chords) else dur, c.symbol, c.roman,
                        c.pitch_classes, c.degree) for j, c in enumerate(chords)]
        n10 = int(math.ceil(dur * PLAN_DYNAMICS_RATE - 1e-9))
        grid = np.arange(n10) / PLAN_DYNAMICS_RATE
        if dyn_t:
            idx = np.clip(np.searchsorted(np.asarray(dyn_t), grid + 1e-4, side="right") - 1, 0, len(dyn_t) - 1)
            dyn = np.asarray(dyn_v, np.float32)[idx]
        else:
            dyn = np.full(n10, ref, np.float32)
        hits = [Hit(float(h["time"]), float(h["beat_time"]), str(h["kind"]), bool(h["major"]))
                for h in header.get("hits", [])]
        tonic_key = None
        for tick, msg in named.get("tempo map", []):
            if msg.type == "key_signature":
                tonic_key = msg.key.rstrip("m")
        tonic, _ = parse_key(tonic_key or "C")
        return cls(dur, tm, tonic, str(header["mode"]), chords, hits, Mood.from_json(header["mood"]),
                   [Section.from_json(s) for s in header["sections"]], tracks["melody"], tracks["harmony"],
                   tracks["bass"], tracks["percussion"], dyn, str(header["orchestration"]), dict(header["choices"]),
                   dict(header["source"]))

    # -- files ------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """PLAN.json or PLAN.mid (by suffix)."""
        path = Path(path)
        if path.suffix.lower() in (".mid", ".midi"):
            self.write_midi(path)
        else:
            path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CuePlan:
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"{path}: no such plan file")
        if path.suffix.lower() in (".mid", ".midi"):
            return cls.from_midi(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise PlanError(f"{path}: not a JSON plan ({e})") from e
        try:
            return cls.from_json(data)
        except PlanError as e:
            raise PlanError(f"{path}: {e}") from e

    def summary(self) -> dict:
        return {"tempo_bpm": round(self.tempo.tempo_bpm, 2), "key": self.key, "mode": self.mode,
                "mood": self.mood.to_json(), "orchestration": self.orchestration,
                "bars": int(len(self.tempo.downbeats)),
                "chords": len(self.chords), "hits": len(self.hits),
                "hits_on_beat": sum(abs(h.beat_time_s - h.time_s) <= 0.025 for h in self.hits),
                "notes": {name: len(getattr(self, name)) for name in TRACKS}, "tempo_map": self.tempo.summary(),
                "source": self.source}


def _midi_header(text: str, path: str | Path) -> dict:
    """The plan MIDI's header text event (`filmscore.plan/<version> {json}`) read through engine/sidecar.py: the
    version checked (a newer major refused, an older one upgraded) like a PLAN.json's."""
    tag, _, body = text.partition(" ")
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return sidecar.read(sidecar.PLAN, {**data, sidecar.KEY: tag}, path)
    except ValueError as e:
        raise PlanError(f"{path}: plan header text event is not JSON ({e})") from None
    except sidecar.SchemaError as e:
        raise PlanError(str(e)) from None


MIN_NOTE_S = 0.02
"""A planned note shorter than this is not heard as a note, and one that ends at or before its start cannot be
stored: the part writers cut a 10 ms release gap from each note, so a chord or beat sliver left at the cue's start,
end or a cut (a few ms) would give such a note."""


def sounding_notes(notes: list[Note]) -> list[Note]:
    """The notes a plan keeps: at least MIN_NOTE_S long (what a saved plan reads back; `_note_from_json`)."""
    return [n for n in notes if n.offset_s - n.onset_s >= MIN_NOTE_S]


def _note_json(n: Note) -> dict:
    return {"time": round(n.onset_s, 4), "end": round(n.offset_s, 4), "pitch": int(n.pitch),
            "velocity": int(n.velocity)}


def _note_from_json(d: dict, channel: int, track: int) -> Note:
    on, off, p, v = float(d["time"]), float(d["end"]), int(d["pitch"]), int(d.get("velocity", 80))
    if not (0 <= p <= 127 and 1 <= v <= 127 and off > on):
        raise PlanError(f"plan note {d!r}: pitch 0..127, velocity 1..127, end after time")
    return Note(on, off, p, v, channel, track)


def _track(name: str, events: list, beats_per_bar: int | None = None):
    import mido

    tr = mido.MidiTrack()
    tr.append(mido.MetaMessage("track_name", name=name, time=0))
    last = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        tick = max(tick, 0)
        tr.append(msg.copy(time=tick - last))
        last = tick
    tr.append(mido.MetaMessage("end_of_track", time=0))
    return tr
