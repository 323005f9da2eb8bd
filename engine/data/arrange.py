"""From a parsed work to the MIDI of one corpus clip: cut at bar lines, transpose, set the tempo, orchestrate,
and write phrase-level dynamics as velocities and CC11.

Channel layout of a clip's MIDI (type 1, one track per channel, track names are the roles):
- channel 0 "melody": the leading voice, monophonic, on the orchestration's lead instrument, CC7 = LEAD_VOLUME;
  "melody double": the same notes on a sustained instrument under a decaying lead (piano, celesta), -6 dB;
- channels 1.. "accomp N": the work's other parts (the lowest on the bass instrument), or, for a single-line tune,
  chords under it from `engine.data.harmony` in the orchestration's style; "pad": a sustained triad per bar;
  "timpani" and channel 9 "drums": hits on accented phrase starts (orchestrations with percussion).
The leading voice is placed (by octaves) so that its median pitch lies in G4..F#5: above the 261 Hz high-pass
of the melody re-extraction and above the accompaniment.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

from .dynamics import DynamicsPlan, plan_dynamics
from .harmony import chords_per_bar, tension_per_bar, voice_below
from .music21_source import ParsedScore
from .orchestration import (
    BASS_DRUM,
    CRASH_CYMBAL,
    DOUBLE_VOLUME,
    DRUM_CHANNEL,
    LEAD_VOLUME,
    PAD_VOLUME,
    PERC_VOLUME,
    REVERB_SEND,
    TIMPANI,
    Orchestration,
)

TICKS_PER_BEAT = 480
CC11_STEP_S = 0.05  # expression curve resolution
LEAD_MEDIAN_RANGE = (67, 79)  # G4 .. F#5
MIN_CLIP_S, MAX_CLIP_S = 10.0, 30.0
QPM_RANGE = (60.0, 150.0)  # base tempi outside this are folded by octaves (a marked 224 plays at 112)


@dataclass(frozen=True)
class ClipSpec:
    """What to render: bars [bar_start, bar_end) of a work, transposed by `transpose` semitones, at `qpm`
    quarter notes per minute (= base tempo x tempo_scale), with `orchestration`; `seed` fixes the dynamics."""

    bar_start: int
    bar_end: int
    transpose: int
    qpm: float
    tempo_scale: float
    orchestration: Orchestration
    seed: int


@dataclass
class ClipArrangement:
    """The arranged clip. Times in seconds from the clip start.

    lead_notes `(N, 3)`: onset s, duration s, MIDI pitch of the leading voice; bar_starts_s `(B,)`;
    tension `(B,)` per bar in [0, 1]; hits_s: accented phrase starts; tonic/mode after transposition.
    """

    midi: mido.MidiFile
    duration_s: float
    lead_notes: np.ndarray
    bar_starts_s: np.ndarray
    dynamics: DynamicsPlan
    tension: np.ndarray
    hits_s: tuple[float, ...]
    tonic: int
    mode: str
    lead_octave: int


def base_qpm(parsed: ParsedScore) -> float:
    q = parsed.base_qpm
    while q > QPM_RANGE[1]:
        q /= 2
    while q < QPM_RANGE[0]:
        q *= 2
    return q


def lead_shift(median: float, lo: int, hi: int) -> int:
    """Octaves to move a line whose median pitch is `median` into [lo, hi] (0 when it is inside)."""
    if median < lo:
        return int(np.ceil((lo - median) / 12))
    if median > hi:
        return -int(np.ceil((median - hi) / 12))
    return 0


def place_clip_notes(parsed: ParsedScore, a: float, b: float, transpose: int, lead_range: tuple[int, int]
                     ) -> tuple[np.ndarray, list[np.ndarray], int, int]:
    """(lead, accompaniment parts, tonic, lead octave shift) of a clip's span [a, b) quarter lengths: every part transposed, then the
    lead moved by octaves so its median lies in `lead_range` (an arranger's choice, recorded as lead_octave);
    lowering it moves the accompaniment too, so the lead stays on top. Empty accompaniment parts are left out."""
    lead = slice_notes(parsed.melody.notes, a, b)
    accomp = [p for p in (slice_notes(p.notes, a, b) for p in parsed.accompaniment) if len(p)]
    for p in [lead, *accomp]:
        p[:, 2] += transpose
    octave = lead_shift(float(np.median(lead[:, 2])) if len(lead) else 72.0, *lead_range)
    lead[:, 2] += 12 * octave
    if octave < 0:
        for p in accomp:
            p[:, 2] += 12 * octave
    return lead, accomp, (parsed.tonic + transpose) % 12, octave


def plan_clips(parsed: ParsedScore, qpm: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Cut a work into clips of MIN_CLIP_S..MAX_CLIP_S at bar lines: `[(bar_start, bar_end), ...]` (bar_end
    exclusive; == len(bars) means the piece's end). Each clip aims at a random 14-26 s; a short tail joins the
    previous clip when the result still fits, else it is dropped. Bars longer than MAX_CLIP_S end the plan."""
    edges = np.append(parsed.bars, parsed.end_ql) * 60.0 / qpm
    n_bars = len(parsed.bars)
    clips, i = [], 0
    while i < n_bars:
        target = rng.uniform(14.0, 26.0)
        j = i + 1
        while j < n_bars and edges[j] - edges[i] < target and edges[j + 1] - edges[i] <= MAX_CLIP_S:
            j += 1
        dur = edges[j] - edges[i]
        if dur > MAX_CLIP_S:
            break
        if dur < MIN_CLIP_S:
            if clips and edges[j] - edges[clips[-1][0]] <= MAX_CLIP_S:
                clips[-1] = (clips[-1][0], j)
            break
        clips.append((i, j))
        i = j
    return clips


def slice_notes(notes: np.ndarray, a: float, b: float) -> np.ndarray:
    """Notes starting in [a, b), cut at b, shifted to start at 0 (qL)."""
    m = (notes[:, 0] >= a - 1e-9) & (notes[:, 0] < b - 1e-9)
    out = notes[m].copy()
    out[:, 1] = np.minimum(out[:, 0] + out[:, 1], b) - out[:, 0]
    out[:, 0] -= a
    return out


class ChannelTrack:
    """Absolute-tick events of one channel, turned into a mido track at the end."""

    def __init__(self, name: str, channel: int, program: int | None, volume: int):
        self.name, self.channel, self.events = name, channel, []
        if program is not None:
            self.events.append((0, 0, mido.Message("program_change", channel=channel, program=program)))
        self.events.append((0, 0, mido.Message("control_change", channel=channel, control=7, value=volume)))
        self.events.append((0, 0, mido.Message("control_change", channel=channel, control=91, value=REVERB_SEND)))

    def note(self, on_ql: float, dur_ql: float, pitch: int, velocity: int) -> None:
        a = int(round(on_ql * TICKS_PER_BEAT))
        b = max(a + 1, int(round((on_ql + dur_ql) * TICKS_PER_BEAT)))
        pitch = int(np.clip(pitch, 0, 127))
        self.events.append((b, 1, mido.Message("note_off", channel=self.channel, note=pitch, velocity=0)))
        self.events.append((a, 3, mido.Message("note_on", channel=self.channel, note=pitch,
                                               velocity=int(np.clip(velocity, 1, 127)))))

    def cc(self, tick: int, control: int, value: int) -> None:
        self.events.append((tick, 2, mido.Message("control_change", channel=self.channel, control=control,
                                                  value=int(np.clip(value, 0, 127)))))

    def to_mido(self) -> mido.MidiTrack:
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=self.name, time=0)])
        now = 0
        for tick, _, msg in sorted(self.events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        return track


def arrange_clip(parsed: ParsedScore, spec: ClipSpec) -> ClipArrangement:
    """Build one clip's MIDI and the facts its film clip and metadata need (see the module docstring)."""
    rng = np.random.default_rng(spec.seed)
    orch = spec.orchestration
    edges = np.append(parsed.bars, parsed.end_ql)
    a, b = float(edges[spec.bar_start]), float(edges[spec.bar_end])
    sec_per_ql = 60.0 / spec.qpm
    duration_s = (b - a) * sec_per_ql
    bars_ql = edges[spec.bar_start:spec.bar_end] - a
    bar_starts_s = bars_ql * sec_per_ql

    lead, accomp, tonic, octave = place_clip_notes(parsed, a, b, spec.transpose, LEAD_MEDIAN_RANGE)

    all_notes = np.concatenate([lead] + accomp) if accomp else lead
    dyn = plan_dynamics(bar_starts_s, duration_s, rng)
    hits = dyn.accents_s
    level = lambda ql: dyn.level_at(np.asarray(ql) * sec_per_ql)

    def velocities(notes: np.ndarray, lo: float, span: float, downbeat: float) -> np.ndarray:
        v = lo + span * level(notes[:, 0])
        on_bar = np.isin(np.round(notes[:, 0], 6), np.round(bars_ql, 6))
        return np.round(v + downbeat * on_bar + rng.normal(0, 2.5, len(notes)))

    tracks = [ChannelTrack("melody", 0, orch.lead, LEAD_VOLUME)]
    for (on, dur, pitch), v in zip(lead, velocities(lead, 50, 77, 6)):
        tracks[0].note(on, dur, int(pitch), int(v))

    channel = iter(c for c in range(1, 16) if c != DRUM_CHANNEL)
    if orch.lead_double is not None:
        double = ChannelTrack("melody double", next(channel), orch.lead_double, DOUBLE_VOLUME)
        for msg in tracks[0].events:
            if msg[2].type in ("note_on", "note_off"):
                double.events.append((msg[0], msg[1], msg[2].copy(channel=double.channel)))
        tracks.append(double)
    if accomp:
        bass_i = int(np.argmin([p[:, 2].mean() for p in accomp])) if len(accomp) > 1 else -1
        for k, p in enumerate(accomp):
            t = ChannelTrack(f"accomp {k + 1}", next(channel), orch.bass if k == bass_i else orch.upper, orch.accomp_volume)
            for (on, dur, pitch), v in zip(p, velocities(p, 30, 60, 4)):
                t.note(on, dur, int(pitch), int(v))
            tracks.append(t)
    chords = chords_per_bar(all_notes, bars_ql, b - a, tonic, parsed.mode)
    bar_edges = np.append(bars_ql, b - a)
    if not accomp:  # a single-line tune: chords under it
        upper = ChannelTrack("accomp 1", next(channel), orch.upper, orch.accomp_volume)
        bass = ChannelTrack("accomp 2", next(channel), orch.bass, orch.accomp_volume)
        for k, ch in enumerate(chords):
            s, e = bar_edges[k], bar_edges[k + 1]
            in_bar = lead[(lead[:, 0] < e) & (lead[:, 0] + lead[:, 1] > s), 2]
            ceiling = int(min(64, (in_bar.min() if len(in_bar) else 67) - 3))
            tones = sorted(voice_below(pc, ceiling, 45) for pc in ch.pcs)
            v = 30 + 60 * float(level(s))
            bass.note(s, e - s, voice_below(ch.root, 47, 33), int(v + 4))
            if orch.style == "block":
                for p in tones:
                    upper.note(s, e - s, p, int(v))
            else:
                step = 1.0 if orch.style == "pulse" else 0.5
                pattern = tones if orch.style == "pulse" else [tones[0], tones[2], tones[1], tones[2]]
                for i, t0 in enumerate(np.arange(s, e - 1e-6, step)):
                    vv = int(30 + 60 * float(level(t0)))
                    if orch.style == "pulse":
                        for p in pattern:
                            upper.note(t0, min(step * 0.9, e - t0), p, vv)
                    else:
                        upper.note(t0, min(step, e - t0), pattern[i % 4], vv)
        tracks += [upper, bass]
    if orch.pad is not None:
        pad = ChannelTrack("pad", next(channel), orch.pad, PAD_VOLUME)
        for k, ch in enumerate(chords):
            for pc in ch.pcs:
                pad.note(bar_edges[k], bar_edges[k + 1] - bar_edges[k], voice_below(pc, 60, 48), 70)
        tracks.append(pad)
    if orch.percussion and hits:
        timp = ChannelTrack("timpani", next(channel), TIMPANI, PERC_VOLUME)
        drums = ChannelTrack("drums", DRUM_CHANNEL, None, PERC_VOLUME)
        for h in hits:
            q = h / sec_per_ql
            v = int(80 + 47 * float(dyn.level_at(h)))
            timp.note(q, min(1.0, (b - a) - q), voice_below(tonic, 52, 40), v)
            drums.note(q, min(1.0, (b - a) - q), BASS_DRUM, v)
            if dyn.level_at(h) > 0.75:
                drums.note(q, min(2.0, (b - a) - q), CRASH_CYMBAL, v)
        tracks += [timp, drums]

    # Expression (CC11) follows the level on every melodic channel, so held notes swell and fade too.
    steps = np.arange(0.0, duration_s, CC11_STEP_S)
    expr = np.round(50 + 77 * dyn.level_at(steps)).astype(int)
    for t in tracks:
        if t.channel == DRUM_CHANNEL:
            continue
        last = None
        for s, e in zip(steps, expr):
            if e != last:
                t.cc(int(round(s / sec_per_ql * TICKS_PER_BEAT)), 11, int(e))
                last = e

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(spec.qpm), time=0)])
    mid.tracks.append(meta)
    mid.tracks.extend(t.to_mido() for t in tracks)
    lead_s = lead.copy()
    lead_s[:, :2] *= sec_per_ql
    tension = tension_per_bar(all_notes, bars_ql, b - a, tonic, parsed.mode)
    return ClipArrangement(mid, duration_s, lead_s, bar_starts_s, dyn, tension, hits, tonic, parsed.mode, octave)
