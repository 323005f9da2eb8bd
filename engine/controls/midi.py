"""MIDI themes → note lists and local controls (melody + dynamics at 100 frames/s).

Definitions (Music ControlNet, arXiv 2311.07069, adapted to symbolic input):

- **Time**: ticks become seconds through the file's tempo map (every `set_tempo` in any track, as type-1 files put
  them in the conductor track); SMPTE time division (frames per second x ticks per frame) is honoured too.
- **Frames**: frame i covers [i/100, (i+1)/100) s. A note sounds in frame i when it sounds at the frame's centre
  (i + 0.5)/100 s, i.e. it covers frames [round(onset*100), round(offset*100)). This is also where the Mel frame
  of the same index is centred (AudioLDM's padding), so MIDI and audio controls share one grid.
- **Melody**: per frame the pitch class of the highest sounding note (the leading voice), one-hot; rests are
  all-zero rows. The drum channel (10) never carries melody. `track` / `channel` restrict the melody to one part.
- **Dynamics**: per frame the power sum of every sounding note's level, each note at
  velocity_dB + CC7_dB + CC11_dB with the SoundFont 2.04 default "concave" curves (40*log10(value/127) dB each;
  CC7 starts at 100 and CC11 at 127, the GM defaults), silence at `DYNAMICS_FLOOR_DB`, then Savitzky-Golay
  smoothed over ~1 s. Dynamics always follow the whole file (drums included): they describe the loudness of
  the piece, which is what the audio path measures.

Channels are numbered 1..16 as musicians number them (mido's 0..15 + 1); tracks are 0-based indices into the
file, so in a type-1 file track 0 is usually the tempo track and track 1 the first part.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import CONTROL_FRAME_RATE, N_PITCH_CLASSES
from ..errors import MidiError
from .types import Controls

DRUM_CHANNEL = 10
"""GM percussion channel (1-based); never melody."""
DYNAMICS_FLOOR_DB = -60.0
"""Dynamics value of silence, and the lowest value any frame takes."""
SAVGOL_WINDOW_FRAMES = 101
"""Savitzky-Golay window: 1.01 s at 100 frames/s (odd)."""
SAVGOL_POLYORDER = 3
CC_VOLUME, CC_EXPRESSION = 7, 11
GM_DEFAULT_VOLUME, GM_DEFAULT_EXPRESSION = 100, 127
MIN_BPM, MAX_BPM = 8.0, 1000.0
"""Tempos outside this range are refused as corrupt (a tempo of 0 µs/beat would put every note at one instant)."""
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_NOTES = 2_000_000
MAX_DURATION_S = 3600.0
"""Longest MIDI file accepted (one hour): longer spans are almost always a stray event far past the music."""


@dataclass(frozen=True)
class Note:
    """One note: onset/offset in seconds from the file start, MIDI pitch 0..127, velocity 1..127,
    channel 1..16, track = index into `MidiFile.tracks`."""

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int
    channel: int
    track: int

    @property
    def duration_s(self) -> float:
        return self.offset_s - self.onset_s


def read_midi(source: str | Path | bytes | bytearray) -> "mido.MidiFile":  # noqa: F821 (mido imported lazily)
    """Read a standard MIDI file from a path or its bytes. Raises `MidiError` naming the file and the fault
    (missing, too large, truncated/corrupt, type 2). Type 0 and 1 files are accepted; any time division."""
    import mido

    if isinstance(source, mido.MidiFile):
        return _check_file(source, f"MIDI file {source.filename}" if source.filename else "MIDI data")
    if isinstance(source, (bytes, bytearray)):
        name, data = "MIDI data", bytes(source)
    else:
        path = Path(source)
        name = f"MIDI file {path}"
        if not path.is_file():
            raise MidiError(f"{name}: no such file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise MidiError(f"{name}: {size / 2**20:.1f} MiB is larger than the {MAX_FILE_BYTES // 2**20} MiB allowed")
        data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise MidiError(f"{name}: {len(data) / 2**20:.1f} MiB is larger than the {MAX_FILE_BYTES // 2**20} MiB allowed")
    if not data:
        raise MidiError(f"{name}: empty")
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
        if name != "MIDI data":
            mid.filename = str(source)
    except Exception as e:  # mido raises OSError, EOFError, ValueError, KeyError, IndexError... on bad bytes
        raise MidiError(f"{name}: not a readable standard MIDI file ({type(e).__name__}: {e})") from e
    return _check_file(mid, name)


def _check_file(mid, name: str):
    if mid.type == 2:
        raise MidiError(f"{name}: type 2 (independent sequences) is not supported; export as type 0 or 1")
    if mid.ticks_per_beat == 0:
        raise MidiError(f"{name}: time division is 0 ticks per beat")
    return mid


class TickClock:
    """Ticks → seconds for one file: a piecewise-linear map built from every tempo change (or SMPTE)."""

    def __init__(self, mid) -> None:
        division = int(mid.ticks_per_beat)
        if division < 0:  # SMPTE: high byte = -frames per second, low byte = ticks per frame (mido reads it signed)
            raw = division & 0xFFFF
            fps = 256 - (raw >> 8)
            ticks_per_frame = raw & 0xFF
            if fps not in (24, 25, 29, 30) or ticks_per_frame == 0:
                raise MidiError(f"SMPTE time division {fps} fps x {ticks_per_frame} ticks per frame is invalid")
            rate = (29.97 if fps == 29 else float(fps)) * ticks_per_frame
            self.seg_tick = np.zeros(1, np.int64)
            self.seg_s = np.zeros(1)
            self.seg_s_per_tick = np.array([1.0 / rate])
            return
        changes: list[tuple[int, int, int]] = []  # (tick, order, tempo µs/beat)
        order = 0
        for t_idx, track in enumerate(mid.tracks):
            tick = 0
            for msg in track:
                tick += msg.time
                if msg.type == "set_tempo":
                    bpm = 60e6 / msg.tempo if msg.tempo > 0 else math.inf
                    if not MIN_BPM <= bpm <= MAX_BPM:
                        raise MidiError(f"tempo {bpm:.4g} BPM at tick {tick} of track {t_idx} is outside "
                                        f"{MIN_BPM:g}..{MAX_BPM:g} BPM")
                    changes.append((tick, order, msg.tempo))
                    order += 1
        changes.sort()
        ticks, tempos = [0], [500_000]  # MIDI default: 120 BPM until the first set_tempo
        for tick, _, tempo in changes:
            if tick == ticks[-1]:
                tempos[-1] = tempo  # the last change at a tick wins
            else:
                ticks.append(tick)
                tempos.append(tempo)
        self.seg_tick = np.asarray(ticks, np.int64)
        self.seg_s_per_tick = np.asarray(tempos, np.float64) / (1e6 * division)
        self.seg_s = np.concatenate([[0.0], np.cumsum(np.diff(self.seg_tick) * self.seg_s_per_tick[:-1])])

    def seconds(self, ticks: np.ndarray) -> np.ndarray:
        ticks = np.asarray(ticks, np.int64)
        i = np.searchsorted(self.seg_tick, ticks, side="right") - 1
        return self.seg_s[i] + (ticks - self.seg_tick[i]) * self.seg_s_per_tick[i]


@dataclass
class _Parsed:
    notes: list[Note]
    cc: dict[int, list[tuple[float, int, int]]]  # channel (1-based) → [(time_s, controller, value)] sorted
    end_s: float


def parse_midi(mid) -> _Parsed:
    """All notes (drums included) and CC7/CC11 events of the file, in seconds; errors name the file."""
    try:
        return _parse_unnamed(mid)
    except MidiError as e:
        raise MidiError(f"{_name(mid)}: {e}") from e


def _name(mid) -> str:
    return f"MIDI file {mid.filename}" if getattr(mid, "filename", None) else "MIDI data"


def _parse_unnamed(mid) -> _Parsed:
    clock = TickClock(mid)
    raw: list[tuple[int, int, int, int, int, int]] = []  # (on_tick, off_tick, pitch, vel, channel, track)
    cc_raw: list[tuple[int, int, int, int, int]] = []  # (tick, order, channel, controller, value)
    last_tick = 0
    for t_idx, track in enumerate(mid.tracks):
        tick = 0
        open_notes: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (channel, pitch) → FIFO of (tick, vel)
        for msg in track:
            tick += msg.time
            kind = msg.type
            if kind == "note_on" and msg.velocity > 0:
                open_notes.setdefault((msg.channel, msg.note), []).append((tick, msg.velocity))
            elif kind == "note_off" or kind == "note_on":
                stack = open_notes.get((msg.channel, msg.note))
                if stack:  # a note-off without its note-on is ignored
                    on_tick, vel = stack.pop(0)
                    raw.append((on_tick, tick, msg.note, vel, msg.channel + 1, t_idx))
            elif kind == "control_change" and msg.control in (CC_VOLUME, CC_EXPRESSION):
                cc_raw.append((tick, len(cc_raw), msg.channel + 1, msg.control, msg.value))
            if len(raw) > MAX_NOTES:
                raise MidiError(f"more than {MAX_NOTES} notes")
        last_tick = max(last_tick, tick)
        for (ch, pitch), stack in open_notes.items():  # notes never released end with their track
            raw.extend((on, tick, pitch, vel, ch + 1, t_idx) for on, vel in stack)
    if not raw:
        notes: list[Note] = []
    else:
        arr = np.asarray(raw, np.int64)
        on_s, off_s = clock.seconds(arr[:, 0]), clock.seconds(arr[:, 1])
        notes = [Note(float(a), float(b), int(p), int(v), int(c), int(t))
                 for a, b, (_, _, p, v, c, t) in zip(on_s, off_s, raw) if b > a]
        notes.sort(key=lambda n: (n.onset_s, n.track, n.channel, n.pitch))
    end_s = float(clock.seconds(np.asarray([last_tick]))[0])
    if notes:
        end_s = max(end_s, max(n.offset_s for n in notes))
    if end_s > MAX_DURATION_S:
        raise MidiError(f"the file spans {end_s:.0f} s, more than the {MAX_DURATION_S:.0f} s allowed")
    cc: dict[int, list[tuple[float, int, int]]] = {}
    if cc_raw:
        cc_raw.sort()
        secs = clock.seconds(np.asarray([c[0] for c in cc_raw]))
        for s, (_, _, ch, ctl, val) in zip(secs, cc_raw):
            cc.setdefault(ch, []).append((float(s), ctl, val))
    return _Parsed(notes, cc, end_s)


def _check_selection(mid, track: int | None, channel: int | None) -> None:
    if track is not None and not 0 <= track < len(mid.tracks):
        raise MidiError(f"{_name(mid)}: track {track} does not exist; the file has tracks 0..{len(mid.tracks) - 1}")
    if channel is not None and not 1 <= channel <= 16:
        raise MidiError(f"{_name(mid)}: channel {channel} is outside 1..16")


def _select(notes: list[Note], track: int | None, channel: int | None, drums: bool) -> list[Note]:
    return [n for n in notes if (drums or n.channel != DRUM_CHANNEL)
            and (track is None or n.track == track) and (channel is None or n.channel == channel)]


def _describe_parts(notes: list[Note]) -> str:
    parts = sorted({(n.track, n.channel) for n in notes if n.channel != DRUM_CHANNEL})
    if not parts:
        return "the file holds no pitched notes"
    return "pitched notes are on " + ", ".join(f"track {t} channel {c}" for t, c in parts)


def notes_from_midi(mid, track: int | None = None, channel: int | None = None, *,
                    drums: bool = False) -> list[Note]:
    """The notes of `mid` (a `mido.MidiFile`, path or bytes) sorted by onset, in seconds through the tempo map.

    `track` (0-based index) and `channel` (1..16) restrict the list; drum-channel notes are left out unless
    `drums=True`. Raises `MidiError` when the selection holds no notes, naming where the notes are."""
    mid = read_midi(mid)
    _check_selection(mid, track, channel)
    parsed = parse_midi(mid)
    chosen = _select(parsed.notes, track, channel, drums)
    if not chosen:
        if not parsed.notes:
            raise MidiError(f"{_name(mid)}: holds no notes")
        where = "" if track is None and channel is None else " on " + " ".join(
            s for s in (f"track {track}" if track is not None else "",
                        f"channel {channel}" if channel is not None else "") if s)
        raise MidiError(f"{_name(mid)}: no {'' if drums else 'pitched '}notes{where}; "
                        f"{_describe_parts(parsed.notes)}")
    return chosen


def _note_frames(notes: list[Note], frame_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last frame of each note: frames whose centre the note covers."""
    on = np.array([n.onset_s for n in notes]) * frame_rate
    off = np.array([n.offset_s for n in notes]) * frame_rate
    # round half up, as the centre test onset <= (i + 0.5)/rate < offset gives
    return np.floor(on + 0.5).astype(np.int64), np.floor(off + 0.5).astype(np.int64)


def melody_from_notes(notes: list[Note], n_frames: int, frame_rate: int = CONTROL_FRAME_RATE) -> np.ndarray:
    """`(n_frames, 12)` float32 one-hot pitch class of the highest note sounding at each frame centre."""
    top = np.full(n_frames, -1, np.int64)
    if notes:
        a, b = _note_frames(notes, frame_rate)
        for lo, hi, n in zip(np.clip(a, 0, n_frames), np.clip(b, 0, n_frames), notes):
            if hi > lo:
                np.maximum(top[lo:hi], n.pitch, out=top[lo:hi])
    melody = np.zeros((n_frames, N_PITCH_CLASSES), np.float32)
    voiced = top >= 0
    melody[np.nonzero(voiced)[0], top[voiced] % N_PITCH_CLASSES] = 1.0
    return melody


def sf2_gain_db(value: np.ndarray | int | float) -> np.ndarray:
    """SoundFont 2 default concave curve for velocity, CC7 and CC11: 40*log10(value/127) dB (-inf at 0)."""
    v = np.asarray(value, np.float64)
    with np.errstate(divide="ignore"):
        return 40.0 * np.log10(v / 127.0)


def _cc_gain_db(events: list[tuple[float, int, int]], n_frames: int, frame_rate: int) -> np.ndarray:
    """Per-frame CC7 + CC11 gain in dB for one channel: the controller values in force at each frame centre."""
    centres = (np.arange(n_frames) + 0.5) / frame_rate
    total = np.zeros(n_frames)
    for ctl, default in ((CC_VOLUME, GM_DEFAULT_VOLUME), (CC_EXPRESSION, GM_DEFAULT_EXPRESSION)):
        times = np.array([t for t, c, _ in events if c == ctl])
        values = np.array([v for _, c, v in events if c == ctl])
        if times.size == 0:
            total += sf2_gain_db(default)
            continue
        i = np.searchsorted(times, centres, side="right") - 1  # the last change at or before the centre
        vals = np.where(i >= 0, values[np.clip(i, 0, None)], default)
        total += sf2_gain_db(vals)
    return total


def smooth_db(curve_db: np.ndarray, floor_db: float = DYNAMICS_FLOOR_DB) -> np.ndarray:
    """Savitzky-Golay smoothing over ~1 s (`SAVGOL_WINDOW_FRAMES`, shorter for short curves), floored.

    A cubic Savitzky-Golay fit rings at a step (silence → forte overshoots by ~4 dB); the result is therefore
    kept within the raw curve's running min..max over the same window, which removes the ringing and leaves
    the smoothing elsewhere untouched."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d
    from scipy.signal import savgol_filter

    x = np.maximum(np.asarray(curve_db, np.float64), floor_db)
    window = min(SAVGOL_WINDOW_FRAMES, x.size if x.size % 2 else x.size - 1)
    if window > SAVGOL_POLYORDER + 1:
        y = savgol_filter(x, window, SAVGOL_POLYORDER, mode="interp")
        x = np.clip(y, minimum_filter1d(x, window, mode="nearest"), maximum_filter1d(x, window, mode="nearest"))
    return np.maximum(x, floor_db).astype(np.float32)


def dynamics_from_notes(notes: list[Note], cc: dict[int, list[tuple[float, int, int]]], n_frames: int,
                        frame_rate: int = CONTROL_FRAME_RATE, smooth: bool = True) -> np.ndarray:
    """`(n_frames,)` float32 dB: power sum of sounding notes at velocity + CC7 + CC11 gain, floored, smoothed."""
    power_by_channel: dict[int, np.ndarray] = {}
    if notes:
        a, b = _note_frames(notes, frame_rate)
        vel_power = 10.0 ** (sf2_gain_db([n.velocity for n in notes]) / 10.0)
        for lo, hi, p, n in zip(np.clip(a, 0, n_frames), np.clip(b, 0, n_frames), vel_power, notes):
            if hi > lo:
                power_by_channel.setdefault(n.channel, np.zeros(n_frames))[lo:hi] += p
    total = np.zeros(n_frames)
    for ch, power in power_by_channel.items():
        total += power * 10.0 ** (_cc_gain_db(cc.get(ch, []), n_frames, frame_rate) / 10.0)
    with np.errstate(divide="ignore"):
        db = np.where(total > 0, 10.0 * np.log10(np.maximum(total, 1e-30)), DYNAMICS_FLOOR_DB)
    db = np.maximum(db, DYNAMICS_FLOOR_DB)
    return smooth_db(db) if smooth else db.astype(np.float32)


def controls_from_midi(mid, track: int | None = None, channel: int | None = None,
                       n_frames: int | None = None) -> Controls:
    """Melody and dynamics of a MIDI file at 100 frames/s, frame for frame with the file's own timing.

    `n_frames` None: up to the last note's end (rounded up). A file whose selection holds no pitched notes but
    which has drum notes (and no explicit `track`/`channel`) gives a dynamics-only control (melody absent);
    otherwise an empty selection raises `MidiError`."""
    mid = read_midi(mid)
    _check_selection(mid, track, channel)
    parsed = parse_midi(mid)
    if not parsed.notes:
        raise MidiError(f"{_name(mid)}: holds no notes")
    melody_notes = _select(parsed.notes, track, channel, drums=False)
    if not melody_notes and (track is not None or channel is not None):
        notes_from_midi(mid, track, channel)  # raises the descriptive error
    if n_frames is None:
        # 1e-4 frame slack: a tick-rounded end (a few µs past a frame edge) does not add a frame
        n_frames = int(math.ceil(max(n.offset_s for n in parsed.notes) * CONTROL_FRAME_RATE - 1e-4))
    if n_frames < 0:
        raise MidiError(f"n_frames must be >= 0, got {n_frames}")
    melody = melody_from_notes(melody_notes, n_frames)
    dynamics = dynamics_from_notes(parsed.notes, parsed.cc, n_frames)
    return Controls(melody, dynamics, melody_present=bool(melody_notes), dynamics_present=True)


def midi_duration_s(mid) -> float:
    """Seconds from the file start to its last event or note end, through the tempo map (or SMPTE)."""
    return parse_midi(read_midi(mid)).end_s


def midi_cc_events(mid) -> dict[int, list[tuple[float, int, int]]]:
    """CC7/CC11 events per channel (1..16) as (time_s, controller, value), for fitting and re-rendering."""
    return parse_midi(read_midi(mid)).cc
