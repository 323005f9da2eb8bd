"""`filmscore midi-in`: play a theme into filmscore from a keyboard or a DAW, then render or queue a cue with it.

    filmscore midi-in -o OUT.wav [--port NAME | --connect NAME] [--silence S] [--stop-note N] [--max-s S]
                      [VIDEO [--start S]] [--duration S] [--queue [--connection-file F]] [--send-back [NAME]]
                      [--save THEME.mid] [render options] [--json]

Opens a virtual MIDI input (mido + python-rtmidi; default name "filmscore in") that a DAW or keyboard plays into,
or with --connect an existing input port. Recording starts at the first note and stops at the first of:
the stop note (default 108 = C8, the top key of an 88-key keyboard; not recorded; --stop-note -1 turns it off),
a MIDI Stop message (a DAW's transport stop), --silence seconds with no note sounding (default 3), --max-s seconds,
or Ctrl-C. The played theme is saved as a Standard MIDI File (--save, default OUT.played.mid beside OUT), then
rendered here (as `filmscore render --midi`) or, with --queue, sent to a running bridge (`filmscore serve`) as an
inline MIDI buffer. --send-back plays the theme as fitted to the cue (OUT.theme.mid) out of a virtual MIDI output
(default "filmscore out"), so the DAW records it on the cue's own bars.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filmscore.engine.errors import FilmscoreError, MidiError

from .common import add_json_flag

DEFAULT_IN_PORT = "filmscore in"
DEFAULT_OUT_PORT = "filmscore out"
DEFAULT_STOP_NOTE = 108  # C8
SUSTAIN_CC = 64


class MidiPortError(FilmscoreError):
    """A MIDI port that cannot be opened (no ALSA sequencer, no such port, virtual ports unsupported)."""


@dataclass
class PlayedNote:
    """One note as played: seconds from the first note-on, MIDI pitch and velocity."""

    start_s: float
    end_s: float
    pitch: int
    velocity: int
    channel: int = 0


@dataclass
class ThemeRecorder:
    """Collects a played theme from MIDI messages. `feed(msg)` is the port callback (rtmidi's thread); `poll()`
    checks the silence and length limits from the waiting thread. Times come from `clock` (seconds, monotonic)."""

    silence_s: float = 3.0
    stop_note: int | None = DEFAULT_STOP_NOTE
    max_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    notes: list[PlayedNote] = field(default_factory=list)
    stop_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.silence_s > 0:
            raise MidiError(f"--silence must be > 0 seconds, got {self.silence_s}")
        if self.stop_note is not None and not 0 <= self.stop_note <= 127:
            raise MidiError(f"--stop-note must be 0..127 (or -1 for none), got {self.stop_note}")
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._t0: float | None = None
        self._sounding: dict[tuple[int, int], tuple[float, int]] = {}  # (channel, pitch) -> (start_s, velocity)
        self._sustain: dict[int, bool] = {}
        self._held: set[tuple[int, int]] = set()  # released keys still sounding under the sustain pedal
        self._last_s = 0.0

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def feed(self, msg: Any) -> None:
        """Take one mido message (the port callback)."""
        now = self.clock()
        with self._lock:
            if self._done.is_set():
                return
            if msg.type == "stop":
                if self.notes or self._sounding:
                    self._stop(now, "MIDI Stop message")
                return
            if msg.type == "note_on" and msg.velocity > 0 and msg.note == self.stop_note:
                if self.notes or self._sounding:
                    self._stop(now, f"stop note {msg.note}")
                return
            if msg.type not in ("note_on", "note_off", "control_change"):
                return
            if msg.type != "control_change" and msg.note == self.stop_note:
                return  # the stop note's release
            if self._t0 is None:
                if not (msg.type == "note_on" and msg.velocity > 0):
                    return  # recording starts at the first note
                self._t0 = now
            t = now - self._t0
            self._last_s = t
            if msg.type == "control_change":
                if msg.control == SUSTAIN_CC:
                    down = msg.value >= 64
                    self._sustain[msg.channel] = down
                    if not down:
                        for key in [k for k in self._held if k[0] == msg.channel]:
                            self._held.discard(key)
                            self._end(key, t)
                return
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                self._end(key, t)  # a re-struck key ends its previous note
                self._held.discard(key)
                self._sounding[key] = (t, msg.velocity)
            elif key in self._sounding:
                if self._sustain.get(msg.channel):
                    self._held.add(key)
                else:
                    self._end(key, t)
            if t >= self.max_s:
                self._stop(now, f"{self.max_s:g} s limit")

    def poll(self) -> None:
        """Stop on silence (nothing sounding for `silence_s` since the last event) or on the length limit."""
        now = self.clock()
        with self._lock:
            if self._done.is_set() or self._t0 is None:
                return
            t = now - self._t0
            if not self._sounding and t - self._last_s >= self.silence_s:
                self._stop(now, f"{self.silence_s:g} s of silence", at_s=self._last_s)
            elif t >= self.max_s:
                self._stop(now, f"{self.max_s:g} s limit")

    def stop(self, reason: str) -> None:
        """Stop from outside (Ctrl-C)."""
        with self._lock:
            if not self._done.is_set():
                self._stop(self.clock(), reason)

    def _end(self, key: tuple[int, int], t: float) -> None:
        started = self._sounding.pop(key, None)
        if started is not None:
            start, vel = started
            self.notes.append(PlayedNote(start, max(t, start), key[1], vel, key[0]))

    def _stop(self, now: float, reason: str, at_s: float | None = None) -> None:
        t = at_s if at_s is not None else (now - self._t0 if self._t0 is not None else 0.0)
        for key in list(self._sounding):
            self._end(key, t)
        self.notes.sort(key=lambda n: (n.start_s, n.pitch))
        self.stop_reason = reason
        self._done.set()

    @property
    def length_s(self) -> float:
        """From the first note-on to the last note-off."""
        return max((n.end_s for n in self.notes), default=0.0)

    def to_midi(self, bpm: float = 120.0, ticks_per_beat: int = 480):
        """The played theme as a type-0 `mido.MidiFile` at `bpm` (times kept to the tick: 1/960 s at 120 bpm)."""
        import mido

        if not self.notes:
            raise MidiError("no notes were played: nothing to record")
        tick_s = 60.0 / bpm / ticks_per_beat
        events = []
        for n in self.notes:
            on, off = round(n.start_s / tick_s), max(round(n.end_s / tick_s), round(n.start_s / tick_s) + 1)
            events.append((on, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity, channel=n.channel)))
            events.append((off, 0, mido.Message("note_off", note=n.pitch, velocity=0, channel=n.channel)))
        events.sort(key=lambda e: (e[0], e[1]))  # offs before ons at the same tick
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                                mido.MetaMessage("track_name", name="played theme", time=0)])
        last = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - last))
            last = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        return mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat, tracks=[track])


def open_input(recorder: ThemeRecorder, port: str | None, connect: str | None):
    """A mido input port whose callback is `recorder.feed`: virtual (named `port`) or an existing one."""
    import mido

    try:
        if connect is not None:
            names = mido.get_input_names()
            if connect not in names:
                raise MidiPortError(f"no MIDI input named {connect!r}; inputs: {', '.join(names) or 'none'}")
            return mido.open_input(connect, callback=recorder.feed)
        return mido.open_input(port or DEFAULT_IN_PORT, virtual=True, callback=recorder.feed)
    except MidiPortError:
        raise
    except Exception as e:  # rtmidi raises its own SystemError/InvalidPortError/ImportError kinds
        raise MidiPortError(_port_error("input", connect or port or DEFAULT_IN_PORT, e)) from None


def open_output(name: str):
    import mido

    try:
        return mido.open_output(name, virtual=True)
    except Exception as e:  # noqa: BLE001 - see open_input
        raise MidiPortError(_port_error("output", name, e)) from None


def _port_error(kind: str, name: str, e: Exception) -> str:
    if sys.platform.startswith("linux") and not Path("/dev/snd/seq").exists():
        hint = "the ALSA sequencer (/dev/snd/seq) is missing here: load the snd-seq kernel module"
    elif sys.platform == "win32":
        hint = "Windows has no virtual MIDI ports: create one with loopMIDI and pass --connect NAME"
    else:
        hint = "is another program holding that port?"
    return f"cannot open MIDI {kind} {name!r} ({e.__class__.__name__}: {str(e).strip()[:120]}); {hint}"


def send_theme(path: Path, port: Any, realtime: bool = True) -> int:
    """Play the MIDI file `path` out of `port` (in real time by default); returns the number of messages sent."""
    import mido

    try:
        mid = mido.MidiFile(path)
    except (OSError, EOFError, ValueError) as e:
        raise MidiError(f"cannot read the fitted theme {path}: {e}") from None
    n = 0
    for msg in mid.play() if realtime else (m for m in mid if not m.is_meta):
        port.send(msg)
        n += 1
    return n


def register(subparsers: argparse._SubParsersAction) -> None:
    from .render import add_engine_flags

    p = subparsers.add_parser("midi-in", help="record a theme played on a MIDI port, then render or queue a cue",
                              description="Record a theme from a virtual MIDI input (a DAW or keyboard plays into "
                                          "it) until a stop gesture or silence, then score a cue with it.")
    p.add_argument("video", type=Path, nargs="?", help="video to score (omit for a cue without picture)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output WAV")
    ports = p.add_mutually_exclusive_group()
    ports.add_argument("--port", default=DEFAULT_IN_PORT,
                       help=f"name of the virtual input (default {DEFAULT_IN_PORT!r})")
    ports.add_argument("--connect", default=None, metavar="NAME", help="record from this existing input port instead")
    p.add_argument("--silence", type=float, default=3.0, help="stop after this many seconds of silence (default 3)")
    p.add_argument("--stop-note", type=int, default=DEFAULT_STOP_NOTE,
                   help=f"MIDI note that stops recording (default {DEFAULT_STOP_NOTE} = C8; -1: none)")
    p.add_argument("--max-s", type=float, default=600.0, help="stop after this many seconds (default 600)")
    p.add_argument("--save", type=Path, default=None, help="where to save the played theme (default OUT.played.mid)")
    p.add_argument("--start", type=float, default=0.0, help="start of the range in the video (s)")
    p.add_argument("--duration", type=float, default=None,
                   help="cue length (s); default: the video's, or the played theme's length without a video")
    p.add_argument("--queue", action="store_true", help="send the cue to a running bridge instead of rendering here")
    p.add_argument("--connection-file", type=Path, default=None, help="with --queue: the bridge's connection file")
    p.add_argument("--send-back", nargs="?", const=DEFAULT_OUT_PORT, default=None, metavar="NAME",
                   help=f"play the fitted theme out of a virtual MIDI output (default name {DEFAULT_OUT_PORT!r})")
    add_engine_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def record(recorder: ThemeRecorder, port: Any, poll_s: float = 0.05) -> ThemeRecorder:
    """Wait until `recorder` stops (its port callback feeds it), then close `port`."""
    try:
        while not recorder.wait(poll_s):
            recorder.poll()
    except KeyboardInterrupt:
        recorder.stop("Ctrl-C")
    finally:
        port.close()
    return recorder


def run(args: argparse.Namespace) -> int:
    from .common import emit, options_from_args, stderr_console
    from .render import request_from_args, render_with_progress

    recorder = ThemeRecorder(silence_s=args.silence, stop_note=None if args.stop_note < 0 else args.stop_note,
                             max_s=args.max_s)
    output = args.output.expanduser().resolve()
    if not output.parent.is_dir():
        raise MidiError(f"output folder {output.parent} does not exist")
    port = open_input(recorder, args.port, args.connect)
    if not args.json:
        stderr_console.print(f"recording from MIDI input {args.connect or args.port!r}: play the theme; stop with "
                             f"{'note ' + str(recorder.stop_note) + ', ' if recorder.stop_note is not None else ''}"
                             f"the DAW's Stop, {recorder.silence_s:g} s of silence or Ctrl-C", highlight=False)
    record(recorder, port)
    theme = recorder.to_midi()
    save = (args.save or output.with_name(f"{output.stem}.played.mid")).expanduser().resolve()
    theme.save(save)
    duration = args.duration
    if duration is None and args.video is None:
        from filmscore.engine.constants import MIN_CUE_S

        duration = max(round(recorder.length_s, 3), MIN_CUE_S)
    summary: dict[str, Any] = {"theme": str(save), "notes": len(recorder.notes),
                               "played_s": round(recorder.length_s, 3),
                               "stop": recorder.stop_reason, "output": str(output)}
    fitted: Path | None = None
    if args.queue:
        from filmscore.bridge.client import BridgeClient

        with BridgeClient.from_connection_file(args.connection_file) as client:
            job = client.render(output, video=args.video.resolve() if args.video else None,
                                start_s=args.start if args.video else None, duration_s=duration,
                                midi_bytes=save.read_bytes(), **options_from_args(args).option_values())
            summary["job_id"] = job
            if args.send_back:  # the fitted theme exists once the job is done
                final = client.wait(job)
                summary["state"] = final["state"]
                if final["state"] != "finished":
                    raise MidiError(f"job {job} {final['state']}: {final.get('error') or 'no result'}")
                theme_midi = client.result(job)["metadata"]["controls"].get("theme_midi")
                fitted = Path(theme_midi) if theme_midi else None
    else:
        req = request_from_args(args, output, video=args.video, start_s=args.start, duration_s=duration, midi=save)
        result = render_with_progress(req, args.json)
        summary.update(duration_s=result.duration_s, seed=result.seed)
        theme_midi = result.metadata["controls"].get("theme_midi")
        fitted = Path(theme_midi) if theme_midi else None
    if args.send_back:
        if fitted is None or not fitted.is_file():
            raise MidiError("the render wrote no fitted theme to send back")
        out_port = open_output(args.send_back)
        try:
            n_sent = send_theme(fitted, out_port)
            summary["sent_back"] = {"port": args.send_back, "theme": str(fitted), "messages": n_sent}
        finally:
            out_port.close()
    summary["fitted_theme"] = str(fitted) if fitted else None

    def human() -> None:
        print(f"recorded {len(recorder.notes)} notes ({recorder.length_s:.2f} s, stopped by {recorder.stop_reason}) "
              f"-> {save}")
        print(f"queued job {summary['job_id']} -> {output}" if args.queue else f"wrote {output}")
        if fitted:
            print(f"fitted theme: {fitted}" + (f" (sent to {args.send_back!r})" if args.send_back else ""))

    emit(args, summary, human)
    return 0
