"""`Theme`: a melody with its own timing and metre, the input of fitting to picture.

A theme holds notes in its own seconds (`midi.Note`), the piecewise-linear map between its quarter-note beats and
those seconds (its tempo map), its metre (time signatures, pickup) and loop length in whole bars. From these it
derives the grid fitting aims at: phrase starts, downbeats and mid-bar strong beats. Themes come from MIDI files
(`theme_from_midi`) or from the maestro library (`maestros.load_theme`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .midi import DRUM_CHANNEL, Note, TickClock, parse_midi, read_midi

PHRASE_BARS = 4
"""A phrase starts every 4 bars from the first downbeat (the usual length of a classical phrase unit)."""
BAR_END_SLACK_BEATS = 0.125
"""A last note overhanging a bar line by less than this (a legato tail) does not add a bar to the loop."""

BEAT_PHRASE, BEAT_DOWN, BEAT_STRONG = 0, 1, 2
BEAT_KINDS = ("phrase start", "downbeat", "strong beat")


@dataclass(frozen=True)
class Theme:
    """A theme in its own timing.

    notes: every note (all parts, drums included), seconds from the theme start, sorted by onset.
    tempo_beats / tempo_s: `(K,)` knots of the beats → seconds map (first knot at 0 beats, 0 s); past the last knot
    the map continues at `s_per_beat_last`. meters: (beat, numerator, denominator) time-signature changes.
    pickup_beats: beats before the first downbeat. length_beats: the loop length, pickup plus whole bars.
    cc: (seconds, channel 1..16, controller 7/11, value) events. programs: channel → GM program (0..127).
    melody_track / melody_channel: which part carries the melody (None: the highest note of any part).
    """

    notes: tuple[Note, ...]
    tempo_beats: np.ndarray
    tempo_s: np.ndarray
    s_per_beat_last: float
    meters: tuple[tuple[float, int, int], ...]
    pickup_beats: float
    length_beats: float
    cc: tuple[tuple[float, int, int, int], ...] = ()
    programs: dict[int, int] = field(default_factory=dict)
    melody_track: int | None = None
    melody_channel: int | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def beats_to_s(self, beats) -> np.ndarray:
        b = np.asarray(beats, np.float64)
        s = np.interp(b, self.tempo_beats, self.tempo_s)
        past = b > self.tempo_beats[-1]
        return np.where(past, self.tempo_s[-1] + (b - self.tempo_beats[-1]) * self.s_per_beat_last, s)

    def s_to_beats(self, seconds) -> np.ndarray:
        s = np.asarray(seconds, np.float64)
        b = np.interp(s, self.tempo_s, self.tempo_beats)
        past = s > self.tempo_s[-1]
        return np.where(past, self.tempo_beats[-1] + (s - self.tempo_s[-1]) / self.s_per_beat_last, b)

    @property
    def length_s(self) -> float:
        return float(self.beats_to_s(self.length_beats))

    @property
    def pickup_s(self) -> float:
        return float(self.beats_to_s(self.pickup_beats))

    @property
    def period_beats(self) -> float:
        """Repeats start at the first downbeat (the pickup is played once): loop r >= 1 spans
        [pickup, length) shifted by r * period."""
        return self.length_beats - self.pickup_beats

    @property
    def period_s(self) -> float:
        return self.length_s - self.pickup_s

    def looped_s_to_beats(self, own_s) -> np.ndarray:
        """Own seconds of the looped theme → own beats of the looped theme."""
        x = np.asarray(own_s, np.float64)
        r = np.maximum(0, np.floor((x - self.pickup_s) / self.period_s + 1e-9))
        return self.s_to_beats(x - r * self.period_s) + r * self.period_beats

    def looped_beats_to_s(self, beats) -> np.ndarray:
        b = np.asarray(beats, np.float64)
        r = np.maximum(0, np.floor((b - self.pickup_beats) / self.period_beats + 1e-9))
        return self.beats_to_s(b - r * self.period_beats) + r * self.period_s

    @property
    def bpm(self) -> float:
        """Mean tempo over the loop, quarter notes per minute."""
        return 60.0 * self.length_beats / self.length_s if self.length_s > 0 else 120.0

    def bar_starts_beats(self) -> np.ndarray:
        """Downbeats within [0, length_beats], in beats (the loop end included)."""
        out, b = [], self.pickup_beats
        while b <= self.length_beats + 1e-9:
            out.append(b)
            b += self.bar_beats_at(b)
        return np.asarray(out)

    def bar_beats_at(self, beat: float) -> float:
        num, den = 4, 4
        for at, n, d in self.meters:
            if at <= beat + 1e-9:
                num, den = n, d
        return num * 4.0 / den

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Strong beats within one loop [0, length): `(G,)` own seconds and `(G,)` kinds (BEAT_PHRASE,
        BEAT_DOWN, BEAT_STRONG). A pickup is not a strong beat: the phrase starts on the downbeat it leads to."""
        beats: list[float] = []
        kinds: list[int] = []
        for i, b in enumerate(self.bar_starts_beats()):
            if b >= self.length_beats - 1e-9:
                break
            beats.append(b)
            kinds.append(BEAT_PHRASE if i % PHRASE_BARS == 0 else BEAT_DOWN)
            num = next((n for at, n, _ in reversed(self.meters) if at <= b + 1e-9), 4)
            if num % 2 == 0 and num > 2:  # 4/4 beat 3, 6/8 beat 4, 12/8 beat 7
                beats.append(b + self.bar_beats_at(b) / 2)
                kinds.append(BEAT_STRONG)
        beats_a = np.asarray(beats, np.float64)
        keep = beats_a < self.length_beats - 1e-9
        return self.beats_to_s(beats_a[keep]), np.asarray(kinds, np.int64)[keep]

    def melody_notes(self) -> list[Note]:
        return [n for n in self.notes if n.channel != DRUM_CHANNEL
                and (self.melody_track is None or n.track == self.melody_track)
                and (self.melody_channel is None or n.channel == self.melody_channel)]


def _meters_from_midi(mid) -> list[tuple[float, int, int]]:
    tpb = mid.ticks_per_beat
    found: list[tuple[float, int, int]] = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "time_signature" and msg.numerator > 0 and msg.denominator > 0:
                found.append((tick / tpb, int(msg.numerator), int(msg.denominator)))
    found.sort()
    meters: list[tuple[float, int, int]] = []
    for at, n, d in found:
        if meters and abs(meters[-1][0] - at) < 1e-9:
            meters[-1] = (at, n, d)
        elif not meters or meters[-1][1:] != (n, d):
            meters.append((at, n, d))
    return meters or [(0.0, 4, 4)]


def _programs_from_midi(mid) -> dict[int, int]:
    programs: dict[int, int] = {}
    for track in mid.tracks:
        for msg in track:
            if msg.type == "program_change":
                programs.setdefault(msg.channel + 1, int(msg.program))
    return programs


def loop_length_beats(end_beats: float, pickup: float, bar_beats_at) -> float:
    """The first bar line at or after `end_beats` (less `BAR_END_SLACK_BEATS`); at least one bar."""
    b = pickup
    while b <= 0.0 or b < end_beats - BAR_END_SLACK_BEATS:
        b += bar_beats_at(b)
    return b


def theme_from_midi(source, track: int | None = None, channel: int | None = None, name: str = "") -> Theme:
    """A MIDI file as a theme: its tempo map, time signatures (4/4 when none), programs and CC7/CC11.

    No pickup is assumed (MIDI does not mark one): bars start at beat 0. The loop runs to the bar line after the
    last note. `track`/`channel` pick the melody part, as in `controls_from_midi` (validated the same way)."""
    from .midi import notes_from_midi

    mid = read_midi(source)
    notes_from_midi(mid, track, channel)  # validates the selection, raises a descriptive MidiError
    parsed = parse_midi(mid)
    if mid.ticks_per_beat > 0:
        clock = TickClock(mid)
        tempo_beats = clock.seg_tick / mid.ticks_per_beat
        tempo_s = clock.seg_s
        s_per_beat_last = float(clock.seg_s_per_tick[-1] * mid.ticks_per_beat)
        meters = _meters_from_midi(mid)
    else:  # SMPTE: no beats in the file; count quarter notes at 120 BPM
        tempo_beats, tempo_s, s_per_beat_last = np.zeros(1), np.zeros(1), 0.5
        meters = [(0.0, 4, 4)]
    theme = Theme(tuple(parsed.notes), np.asarray(tempo_beats, np.float64), np.asarray(tempo_s, np.float64),
                  s_per_beat_last, tuple(meters), 0.0, 1.0, programs=_programs_from_midi(mid),
                  melody_track=track, melody_channel=channel, name=name or (mid.filename or "MIDI theme"))
    end_beats = float(theme.s_to_beats(max(n.offset_s for n in parsed.notes)))
    length = loop_length_beats(end_beats, 0.0, theme.bar_beats_at)
    cc = tuple((t, ch, ctl, val) for ch, evs in sorted(parsed.cc.items()) for t, ctl, val in evs)
    return Theme(theme.notes, theme.tempo_beats, theme.tempo_s, s_per_beat_last, theme.meters, 0.0, length,
                 tuple(sorted(cc)), theme.programs, track, channel, theme.name,
                 {"source": str(mid.filename or "MIDI data"), "tempo_bpm": round(60.0 / s_per_beat_last, 2)})


def theme_from_beats(notes_beats: list[tuple[float, float, int, int]], *, bpm: float, meter: tuple[int, int],
                     pickup_beats: float = 0.0, length_beats: float | None = None, program: int = 0,
                     name: str = "", meta: dict | None = None) -> Theme:
    """A one-part theme from (onset_beats, duration_beats, pitch, velocity) rows at a constant tempo (channel 1)."""
    s_per_beat = 60.0 / bpm
    notes = tuple(sorted((Note(o * s_per_beat, (o + d) * s_per_beat, int(p), int(v), 1, 0)
                          for o, d, p, v in notes_beats if d > 0), key=lambda n: (n.onset_s, n.pitch)))
    meters = ((0.0, int(meter[0]), int(meter[1])),)
    bar = meter[0] * 4.0 / meter[1]
    if length_beats is None:
        end = max(o + d for o, d, _, _ in notes_beats)
        length_beats = loop_length_beats(end, pickup_beats, lambda _b: bar)
    return Theme(notes, np.zeros(1), np.zeros(1), s_per_beat, meters, float(pickup_beats), float(length_beats),
                 programs={1: int(program)}, name=name, meta=dict(meta or {}))


def beats_to_signature(beats: float) -> tuple[int, int]:
    """A bar of `beats` quarter notes as a time signature (numerator, denominator 4, 8, 16 or 32)."""
    for den in (4, 8, 16, 32):
        num = beats * den / 4.0
        if abs(num - round(num)) < 1e-6 and round(num) >= 1:
            return int(round(num)), den
    return max(1, int(math.ceil(beats))), 4
