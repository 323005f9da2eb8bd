"""Corpus v2: from a parsed work to the MIDI of one clip, arranged as a film cue in three stems.

What v1 (`arrange.py`) does is kept: cut at bar lines, transposition, tempo, phrase dynamics as velocities and CC11.
What v2 adds:
- **Stems.** Every track belongs to one stem (`orchestration_v2.STEMS`): "melody" and "melody double" to the lead;
  "harmony", "bass", "pad", "swell" to the accompaniment; "timpani", "low hits", "drums" to the percussion.
- **Seating.** Every channel has a pan position (CC10) from `orchestration_v2.PAN_BY_PROGRAM`.
- **Register.** The theme keeps its written register when its median pitch lies in the lead instrument's range
  (`LEAD_RANGE`), else it moves by octaves into it (a move down moves the whole score, as in v1).
- **Harmony slots.** One chord per bar, two in a bar of four beats or more (`harmony_slots`), chosen by v1's
  `chords_per_bar` rule over the sounding notes; the last slot resolves to the tonic.
- **Film-scoring textures** under a single-line tune (`OrchestrationV2.texture`): string ostinati (root-fifth-
  octave figure in 16ths below 100 quarter notes per minute, else 8ths), piano / harp arpeggios over two octaves,
  pulsing or held chords; a pad holding each slot's chord; brass swells (the chord of the bar before every new
  phrase, CC11 rising from 30 % to the phrase level); timpani on accents ("timpani"), plus a low taiko hit, bass
  drum and cymbal on accents and timpani on the downbeats of loud phrases ("full"). A polyphonic work keeps its
  parts (inner parts on the harmony instrument, the lowest on the bass) and gets the pad, swells and percussion.
- **Beats.** The beat is the time signature's: 4/den quarter notes, a dotted quarter in compound metres (6/8,
  9/8, 12/8); beats run from each bar start (an opening pickup bar counts back from its end); downbeats are the
  bar starts. The tempo is constant within a clip.
Every note written to the MIDI is also kept, tick-exact, per track (`ClipArrangementV2.notes`): the labels
(`labels.py`) are computed from exactly what FluidSynth plays.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

from .arrange import CC11_STEP_S, TICKS_PER_BEAT, ClipArrangement, ChannelTrack, place_clip_notes
from .dynamics import plan_dynamics
from .harmony import Chord, chords_per_bar, tension_per_bar, voice_below
from .music21_source import ParsedScore
from .orchestration_v2 import (
    BASS_DRUM_KEY,
    BASS_VOLUME,
    CRASH_KEY,
    DEFAULT_LEAD_RANGE,
    DOUBLE_VOLUME_V2,
    DRUM_CHANNEL,
    HARMONY_VOLUME,
    HITS_VOLUME,
    LEAD_RANGE,
    LEAD_VOLUME_V2,
    PAD_VOLUME_V2,
    SUSPENDED_CYMBAL_KEY,
    SWELL_VOLUME,
    TAIKO_PROGRAM,
    TIMPANI_PROGRAM,
    TIMPANI_VOLUME,
    OrchestrationV2,
    pan_cc,
    pan_of,
)

STEM_OF_TRACK = {"melody": "lead", "melody double": "lead", "harmony": "accompaniment", "bass": "accompaniment",
                 "pad": "accompaniment", "swell": "accompaniment", "timpani": "percussion",
                 "low hits": "percussion", "drums": "percussion"}
OSTINATO_16THS_BELOW_QPM = 100.0
LOUD_PHRASE_LEVEL = 0.55  # "full" percussion: timpani on the downbeats where the level is above this
CRASH_LEVEL = 0.7
SWELL_FLOOR = 0.3  # a swell's CC11 starts at this share of the phrase level


@dataclass(frozen=True)
class ClipSpecV2:
    """As v1's `ClipSpec`, with a v2 orchestration."""

    bar_start: int
    bar_end: int
    transpose: int
    qpm: float
    tempo_scale: float
    orchestration: OrchestrationV2
    seed: int


@dataclass(frozen=True)
class TrackInfo:
    """One MIDI track of a v2 clip: `index` in the file (track 0 is the tempo track), its stem, GM program (None:
    the drum kit), channel (0-15) and pan position in [-1, 1]."""

    name: str
    index: int
    stem: str
    program: int | None
    channel: int
    pan: float


@dataclass
class ClipArrangementV2(ClipArrangement):
    """v1's facts plus: `qpm`; `beats_s` `(K,)` and `downbeats` `(K,)` bool; harmony `slots_s` `(S,)` with their
    `chords`; `tracks`; `notes`: per track name `(N, 4)` onset s, duration s, MIDI pitch (GM key on the drums),
    velocity, exactly as written to the MIDI; `lead_range`: the lead's allowed median range."""

    qpm: float
    beats_s: np.ndarray
    downbeats: np.ndarray
    slots_s: np.ndarray
    chords: list[Chord]
    tracks: list[TrackInfo]
    notes: dict[str, np.ndarray]

    def stem_tracks(self, stem: str) -> list[TrackInfo]:
        return [t for t in self.tracks if t.stem == stem]


class _TrackV2(ChannelTrack):
    """v1's track plus a pan position (CC10) and a record of every note as written (tick-exact)."""

    def __init__(self, name: str, channel: int, program: int | None, volume: int, pan: float):
        super().__init__(name, channel, program, volume)
        self.program, self.pan, self.written = program, pan, []
        self.events.append((0, 0, mido.Message("control_change", channel=channel, control=10, value=pan_cc(pan))))

    def note(self, on_ql: float, dur_ql: float, pitch: int, velocity: int) -> None:
        super().note(on_ql, dur_ql, pitch, velocity)
        a = int(round(on_ql * TICKS_PER_BEAT))
        b = max(a + 1, int(round((on_ql + dur_ql) * TICKS_PER_BEAT)))
        self.written.append((a, b, int(np.clip(pitch, 0, 127)), int(np.clip(velocity, 1, 127))))


def beat_ql_of(numerator: float, denominator: float) -> float:
    """Beat length in quarter notes of a time signature: a dotted quarter in compound metres, else 4/den."""
    if denominator == 8 and numerator in (6, 9, 12):
        return 1.5
    return 4.0 / denominator


def beat_grid(parsed: ParsedScore, bar_start: int, bar_end: int) -> tuple[np.ndarray, np.ndarray]:
    """(beat times in qL from the clip start, downbeat flags) for bars [bar_start, bar_end) (module docstring)."""
    edges = np.append(parsed.bars, parsed.end_ql)
    sigs = parsed.extras.get("time_signatures") or [[0.0, 4.0, 4.0]]
    a = float(edges[bar_start])
    beats, down = [], []
    for i in range(bar_start, bar_end):
        s, e = float(edges[i]), float(edges[i + 1])
        active = [r for r in sigs if r[0] <= s + 1e-9]
        num, den = (active[-1] if active else sigs[0])[1:3]
        step = beat_ql_of(num, den)
        full = num * 4.0 / den
        pickup = i == 0 and e - s < full - 1e-6  # its beats count back from the first full bar; none is a downbeat
        ts = list(np.arange(e - step, s - 1e-9, -step))[::-1] if pickup else list(np.arange(s, e - 1e-9, step))
        for k, t in enumerate(ts):
            beats.append(t - a)
            down.append(k == 0 and not pickup)
    return np.asarray(beats, np.float64), np.asarray(down, bool)


def harmony_slots(bars_ql: np.ndarray, end_ql: float, beats_ql: np.ndarray) -> np.ndarray:
    """Slot starts (qL): each bar, split in two at its middle beat when it holds four beats or more."""
    edges = np.append(bars_ql, end_ql)
    out = []
    for s, e in zip(edges[:-1], edges[1:]):
        out.append(s)
        inside = beats_ql[(beats_ql >= s - 1e-9) & (beats_ql < e - 1e-9)]
        if len(inside) >= 4 and len(inside) % 2 == 0:
            out.append(float(inside[len(inside) // 2]))
    return np.asarray(out, np.float64)


def arrange_clip_v2(parsed: ParsedScore, spec: ClipSpecV2) -> ClipArrangementV2:
    """Build one v2 clip's MIDI and its facts (module docstring)."""
    rng = np.random.default_rng(spec.seed)
    orch = spec.orchestration
    edges = np.append(parsed.bars, parsed.end_ql)
    a, b = float(edges[spec.bar_start]), float(edges[spec.bar_end])
    length_ql = b - a
    sec_per_ql = 60.0 / spec.qpm
    duration_s = length_ql * sec_per_ql
    bars_ql = edges[spec.bar_start:spec.bar_end] - a
    bar_starts_s = bars_ql * sec_per_ql

    lead, accomp, tonic, octave = place_clip_notes(parsed, a, b, spec.transpose,
                                                   LEAD_RANGE.get(orch.lead, DEFAULT_LEAD_RANGE))

    all_notes = np.concatenate([lead] + accomp) if accomp else lead
    dyn = plan_dynamics(bar_starts_s, duration_s, rng)
    hits = dyn.accents_s

    def level(ql) -> np.ndarray:
        return dyn.level_at(np.asarray(ql, np.float64) * sec_per_ql)

    def velocities(notes: np.ndarray, lo_v: float, span: float, downbeat: float) -> np.ndarray:
        v = lo_v + span * level(notes[:, 0])
        on_bar = np.isin(np.round(notes[:, 0], 6), np.round(bars_ql, 6))
        return np.round(v + downbeat * on_bar + rng.normal(0, 2.5, len(notes)))

    channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    tracks: list[_TrackV2] = []

    def track(name: str, program: int | None, volume: int) -> _TrackV2:
        ch = DRUM_CHANNEL if program is None else next(channels)
        t = _TrackV2(name, ch, program, volume, pan_of(program, lead=name.startswith("melody")))
        tracks.append(t)
        return t

    melody = track("melody", orch.lead, LEAD_VOLUME_V2)
    for (on, dur, pitch), v in zip(lead, velocities(lead, 50, 77, 6)):
        melody.note(on, dur, int(pitch), int(v))
    if orch.lead_double is not None:
        double = track("melody double", orch.lead_double, DOUBLE_VOLUME_V2)
        for (on, dur, pitch), v in zip(lead, velocities(lead, 50, 77, 6)):
            double.note(on, dur, int(pitch), int(v))

    beats_ql, downbeats = beat_grid(parsed, spec.bar_start, spec.bar_end)
    slots_ql = harmony_slots(bars_ql, length_ql, beats_ql)
    chords = chords_per_bar(all_notes, slots_ql, length_ql, tonic, parsed.mode)
    slot_edges = np.append(slots_ql, length_ql)
    beat_len = float(np.median(np.diff(beats_ql))) if len(beats_ql) > 1 else 1.0

    def lead_span(s: float, e: float) -> np.ndarray:
        return lead[(lead[:, 0] < e) & (lead[:, 0] + lead[:, 1] > s), 2]

    def ceiling_at(s: float, e: float) -> int:
        """Top of the accompaniment under the theme: 3 semitones below its lowest note here (at most E4); a low
        theme (cello) gets its accompaniment above it instead, within an octave over its highest note."""
        span = lead_span(s, e)
        low = int(span.min()) if len(span) else 67
        if low - 3 >= 55:
            return min(64, low - 3)
        return int(span.max() if len(span) else low) + 12

    if accomp:
        bass_i = int(np.argmin([p[:, 2].mean() for p in accomp])) if len(accomp) > 1 else -1
        harm = track("harmony", orch.harmony, HARMONY_VOLUME) if len(accomp) > 1 or bass_i < 0 else None
        bass = track("bass", orch.bass, BASS_VOLUME) if bass_i >= 0 else None
        for k, p in enumerate(accomp):
            t = bass if k == bass_i else harm
            for (on, dur, pitch), v in zip(p, velocities(p, 30, 60, 4)):
                t.note(on, dur, int(pitch), int(v))
    else:  # a single-line tune: chords under it in the orchestration's texture
        harm = track("harmony", orch.harmony, HARMONY_VOLUME)
        bass = track("bass", orch.bass, BASS_VOLUME)
        step = 0.25 if spec.qpm < OSTINATO_16THS_BELOW_QPM else 0.5
        for k, ch in enumerate(chords):
            s, e = float(slot_edges[k]), float(slot_edges[k + 1])
            ceiling = ceiling_at(s, e)
            third, fifth = (ch.pcs[1] - ch.root) % 12, (ch.pcs[2] - ch.root) % 12
            v = 30 + 60 * float(level(s))
            bass.note(s, e - s, voice_below(ch.root, 47, 33), int(v + 4))
            if orch.texture == "block":
                for pc in ch.pcs:
                    harm.note(s, e - s, voice_below(pc, ceiling, 45), int(v))
            elif orch.texture == "pulse":
                for t0 in np.arange(s, e - 1e-6, beat_len):
                    vv = int(30 + 60 * float(level(t0)))
                    for pc in ch.pcs:
                        harm.note(t0, min(beat_len * 0.9, e - t0), voice_below(pc, ceiling, 45), vv)
            elif orch.texture == "ostinato":
                r = voice_below(ch.root, ceiling - 12, 40)
                figure = [r, r + fifth, r + 12, r + fifth] if orch.pad is not None else \
                    [r, r + third, r + fifth, r + 12]
                for i, t0 in enumerate(np.arange(s, e - 1e-6, step)):
                    accent = 8 if any(abs(t0 - bq) < 1e-6 for bq in beats_ql) else 0
                    harm.note(t0, min(step * 0.8, e - t0), figure[i % 4], int(30 + 60 * float(level(t0))) + accent)
            else:  # arpeggio: up over two octaves and back, each note ringing on (a pedalled piano, a harp)
                r = voice_below(ch.root, ceiling - 19, 36)
                up = [r, r + third, r + fifth, r + 12, r + 12 + third, r + 12 + fifth]
                pattern = up + up[-2:0:-1]
                for i, t0 in enumerate(np.arange(s, e - 1e-6, step)):
                    harm.note(t0, min(4 * step, e - t0), pattern[i % len(pattern)], int(30 + 60 * float(level(t0))))
    if orch.pad is not None:
        pad = track("pad", orch.pad, PAD_VOLUME_V2)
        for k, ch in enumerate(chords):
            s, e = float(slot_edges[k]), float(slot_edges[k + 1])
            for pc in ch.pcs:
                pad.note(s, e - s, voice_below(pc, 60, 48), int(50 + 40 * float(level(s))))
    swell_spans: list[tuple[float, float]] = []
    if orch.swell is not None:
        swell = track("swell", orch.swell, SWELL_VOLUME)
        for p0 in dyn.phrase_starts_s[1:]:
            q = p0 / sec_per_ql
            bar = int(np.searchsorted(bars_ql, q - 1e-6)) - 1  # the bar before the new phrase
            if bar < 0:
                continue
            s0 = float(bars_ql[bar])
            swell_spans.append((s0, q))
            for k, ch in enumerate(chords):
                s, e = max(float(slot_edges[k]), s0), min(float(slot_edges[k + 1]), q)
                if e - s > 1e-6:
                    for pc in ch.pcs:
                        swell.note(s, e - s, voice_below(pc, 67, 50), int(60 + 50 * float(level(q))))

    def chord_at(q: float) -> Chord:
        return chords[int(np.clip(np.searchsorted(slots_ql, q + 1e-9) - 1, 0, len(chords) - 1))]

    if orch.percussion != "none":
        timp = track("timpani", TIMPANI_PROGRAM, TIMPANI_VOLUME)
        hit_q = [h / sec_per_ql for h in hits]
        for q in hit_q:
            timp.note(q, min(beat_len, length_ql - q), voice_below(chord_at(q).root, 52, 40),
                      int(80 + 47 * float(level(q))))
        if orch.percussion == "full":
            low = track("low hits", TAIKO_PROGRAM, HITS_VOLUME)
            drums = track("drums", None, HITS_VOLUME)
            for q in hit_q:
                v = int(80 + 47 * float(level(q)))
                low.note(q, min(2 * beat_len, length_ql - q), 41, v)
                drums.note(q, min(beat_len, length_ql - q), BASS_DRUM_KEY, v)
                if level(q) > CRASH_LEVEL:
                    drums.note(q, min(2 * beat_len, length_ql - q), CRASH_KEY, v)
                else:
                    drums.note(q, min(2 * beat_len, length_ql - q), SUSPENDED_CYMBAL_KEY, int(v * 0.7))
            for q, down in zip(beats_ql, downbeats):
                if down and level(q) > LOUD_PHRASE_LEVEL and not any(abs(q - h) < 1e-6 for h in hit_q):
                    ch = chord_at(q)
                    pc = ch.root if int(round(q / max(beat_len, 1e-6))) % 2 == 0 else ch.pcs[2]
                    timp.note(q, min(beat_len, length_ql - q), voice_below(pc, 52, 40), int(55 + 50 * float(level(q))))

    # Expression (CC11) follows the level on every melodic channel, so held notes swell and fade too; a brass
    # swell's channel rises from SWELL_FLOOR of it to the full level over each swell span.
    steps = np.arange(0.0, duration_s, CC11_STEP_S)
    base = 50 + 77 * dyn.level_at(steps)
    for t in tracks:
        if t.channel == DRUM_CHANNEL:
            continue
        curve = base.copy()
        if t.name == "swell":
            q = steps / sec_per_ql
            ramp = np.full_like(q, SWELL_FLOOR)
            for s0, q1 in swell_spans:
                m = (q >= s0) & (q < q1)
                ramp[m] = SWELL_FLOOR + (1 - SWELL_FLOOR) * (q[m] - s0) / max(q1 - s0, 1e-6)
            curve = curve * ramp
        last = None
        for s, e in zip(steps, np.round(curve).astype(int)):
            if e != last:
                t.cc(int(round(s / sec_per_ql * TICKS_PER_BEAT)), 11, int(e))
                last = e

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(spec.qpm), time=0)]))
    mid.tracks.extend(t.to_mido() for t in tracks)
    # the exact seconds of a tick under this file's one tempo (mido rounds the tempo to whole microseconds)
    sec_per_tick = mido.bpm2tempo(spec.qpm) / 1e6 / TICKS_PER_BEAT
    notes = {}
    for t in tracks:
        w = np.asarray(t.written, np.float64).reshape(-1, 4)
        notes[t.name] = np.stack([w[:, 0] * sec_per_tick, (w[:, 1] - w[:, 0]) * sec_per_tick, w[:, 2], w[:, 3]], 1)
    infos = [TrackInfo(t.name, i + 1, STEM_OF_TRACK[t.name], t.program, t.channel, t.pan) for i, t in enumerate(tracks)]
    lead_s = notes["melody"][:, :3].copy()
    tension = tension_per_bar(all_notes, bars_ql, length_ql, tonic, parsed.mode)
    spq = sec_per_tick * TICKS_PER_BEAT  # seconds per quarter note as the MIDI plays it
    return ClipArrangementV2(mid, duration_s, lead_s, bar_starts_s, dyn, tension, hits, tonic, parsed.mode, octave,
                             spec.qpm, beats_ql * spq, downbeats, slots_ql * spq, chords, infos, notes)
