"""`filmscore controls INPUT -o controls.npz`: the melody and dynamics controls the engine would follow.

INPUT is a MIDI theme (.mid/.midi/.smf/.kar) or a recording (anything soundfile or PyAV decodes); `--maestro NAME`
takes a library theme instead. Without `--duration` and `--hits` the controls follow the input's own timing frame
for frame; with either, a theme is fitted to the cue exactly as `filmscore render` fits it (tempo bent so strong
beats land on the hits, ending on a bar line or fading out), and `--midi-out` writes the fitted theme; a
recording's tracked beats are bent onto the hits the same way.
The npz holds `melody` (T x 12 float32), `dynamics` (T, dB) and `frame_rate` (100); frame i covers
[i/100, (i+1)/100) s.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from filmscore.engine.errors import FilmscoreError, RequestError

from .common import HelpFormatter, add_json_flag, add_overwrite_flag, check_outputs, emit, parse_hits, stderr_console

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("controls", help="extract (and fit) melody + dynamics controls from MIDI, audio or a maestro",
                       formatter_class=HelpFormatter)
    p.add_argument("input", type=Path, nargs="?", help="MIDI theme or audio recording (omit with --maestro)")
    p.add_argument("-o", "--output", type=Path, required=True, help="controls file to write (.npz)")
    p.add_argument("--maestro", help="a master from the built-in library instead of INPUT (see `filmscore maestros`)")
    p.add_argument("--theme", help="with --maestro: theme id or number (default: picked by --seed)")
    p.add_argument("--seed", type=int, default=0, help="with --maestro and no --theme: which theme (default 0)")
    p.add_argument("--duration", type=float, default=None, help="cue length in seconds: fit the theme to it")
    p.add_argument("--hits", default="", help="hit points in cue seconds, comma-separated: fit strong beats to them")
    p.add_argument("--track", type=int, default=None, help="MIDI: the track holding the melody (0-based index)")
    p.add_argument("--channel", type=int, default=None, help="MIDI: the channel holding the melody (1-16)")
    p.add_argument("--midi-out", type=Path, default=None, help="write the fitted theme as a MIDI file")
    p.add_argument("--plot", type=Path, default=None, help="write a picture of the controls (.png)")
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def _check_args(args: argparse.Namespace) -> str:
    if args.maestro is not None and args.input is not None:
        raise RequestError("give INPUT or --maestro, not both")
    if args.maestro is None and args.input is None:
        raise RequestError("give an INPUT file (MIDI or audio) or --maestro NAME")
    if args.theme is not None and args.maestro is None:
        raise RequestError("--theme needs --maestro")
    if args.duration is not None and (not math.isfinite(args.duration) or args.duration <= 0):
        raise RequestError(f"--duration must be a positive number of seconds, got {args.duration}")
    if args.duration is not None and args.duration > 3600:
        raise RequestError(f"--duration {args.duration} s: at most 3600 s")
    if args.output.suffix.lower() != ".npz":
        raise RequestError(f"output {args.output}: must end in .npz")
    check_outputs([args.output, args.midi_out, args.plot], {"source": args.input}, args.overwrite)
    if args.plot is not None:  # before the controls are computed, not after
        from filmscore.engine.extras import require

        require("matplotlib", "plot", "--plot")
    if args.maestro is not None:
        return "maestro"
    if not args.input.is_file():
        raise FilmscoreError(f"{args.input}: no such file")
    kind = "midi" if args.input.suffix.lower() in MIDI_SUFFIXES else "audio"
    if kind == "audio" and (args.track is not None or args.channel is not None):
        raise RequestError("--track and --channel apply to MIDI input only")
    if kind == "audio" and args.midi_out is not None:
        raise RequestError("--midi-out needs a MIDI theme or a maestro: a recording has no notes to write")
    return kind


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from filmscore.engine.constants import CONTROL_FRAME_RATE, MODEL_SAMPLE_RATE

    kind = _check_args(args)
    hits = parse_hits(args.hits)
    t0 = time.perf_counter()
    fitted = ref_fit = None
    if kind == "audio":
        from filmscore.engine.audio.io import load_audio
        from filmscore.engine.controls.audio import ReferenceAudioError, controls_from_audio
        from filmscore.engine.controls.reference_fit import fit_reference, track_beats

        wave = load_audio(args.input, MODEL_SAMPLE_RATE)
        try:
            controls = controls_from_audio(wave, MODEL_SAMPLE_RATE)
        except ReferenceAudioError as e:
            raise ReferenceAudioError(f"{args.input}: {e}") from e
        if args.duration is not None or hits:  # the steps of controls_for_reference, sharing one decode
            duration = args.duration if args.duration is not None else max(controls.duration_s, max(hits) + 1.0)
            beats = track_beats(wave) if hits else np.zeros(0)
            controls, ref_fit = fit_reference(controls, beats, int(math.ceil(duration * CONTROL_FRAME_RATE - 1e-9)),
                                              hits)
    elif args.duration is None and not hits and kind == "midi":
        from filmscore.engine.controls.midi import controls_from_midi

        if args.midi_out is not None:
            raise RequestError("--midi-out writes a fitted theme: give --duration or --hits")
        controls = controls_from_midi(args.input, args.track, args.channel)
    else:
        from filmscore.engine.controls.fit import fit_theme
        from filmscore.engine.controls.request import theme_for_request

        theme = theme_for_request(midi=args.input if kind == "midi" else None, maestro=args.maestro,
                                  theme=args.theme, track=args.track, channel=args.channel, seed=args.seed)
        duration = args.duration
        if duration is None:  # hits only (or a maestro theme alone): the theme's own length, reaching the hits
            duration = max(theme.length_s, (max(hits) + 1.0) if hits else 0.0)
        fitted = fit_theme(theme, duration, hits)
        controls = fitted.controls()
    seconds = time.perf_counter() - t0
    controls.save_npz(args.output)
    if fitted is not None and args.midi_out is not None:
        fitted.write_midi(args.midi_out)
    if args.plot is not None:
        plot_controls(controls, args.plot, hits=hits, title=str(args.input or fitted.theme.name))
    voiced = controls.melody.sum(axis=1) > 0
    summary = {
        "input": str(args.input) if args.input else f"maestro:{args.maestro}", "kind": kind,
        "output": str(args.output), "n_frames": controls.n_frames, "frame_rate": controls.frame_rate,
        "duration_s": controls.duration_s, "melody_present": controls.melody_present,
        "voiced_share": round(float(voiced.mean()) if controls.n_frames else 0.0, 4),
        "dynamics_db": {"min": round(float(np.min(controls.dynamics)), 2),
                        "max": round(float(np.max(controls.dynamics)), 2)} if controls.n_frames else None,
        "fit": fitted.summary() if fitted is not None else ref_fit.summary() if ref_fit is not None else None,
        "midi_out": str(args.midi_out) if fitted is not None and args.midi_out else None,
        "plot": str(args.plot) if args.plot else None, "seconds": round(seconds, 3),
    }

    def human() -> None:
        msg = (f"wrote {args.output}: {controls.n_frames} frames ({controls.duration_s:.2f} s), "
               f"melody on {100 * summary['voiced_share']:.0f} % of frames")
        if fitted is not None or ref_fit is not None:
            fs = summary["fit"]
            if fitted is not None:
                msg += f"; theme {fs['theme']} at {fs['base_bpm']} BPM"
            if fs["hit_share"] is not None:
                caught = sum(h["caught"] for h in fs["hits"])
                msg += f", {caught}/{len(fs['hits'])} hits on strong beats (+-70 ms)"
            if args.midi_out:
                msg += f"; fitted MIDI {args.midi_out}"
        stderr_console.print(msg, highlight=False)

    emit(args, summary, human)
    return 0


def plot_controls(controls, path: Path, hits=(), title: str = "") -> None:
    """Melody as a pitch-class roll over dynamics in dB, hit points as vertical lines (matplotlib, Agg)."""
    from filmscore.engine.extras import require

    matplotlib = require("matplotlib", "plot", "--plot")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.arange(controls.n_frames) / controls.frame_rate
    fig, (ax_m, ax_d) = plt.subplots(2, 1, sharex=True, figsize=(12, 5), height_ratios=(2, 1))
    ax_m.imshow(controls.melody.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                extent=(0, controls.duration_s, -0.5, 11.5))
    ax_m.set_yticks(range(12), ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"])
    ax_m.set_ylabel("melody")
    ax_m.set_title(title)
    ax_d.plot(t, controls.dynamics, lw=1)
    ax_d.set_ylabel("dynamics (dB)")
    ax_d.set_xlabel("seconds")
    for h in hits:
        for ax in (ax_m, ax_d):
            ax.axvline(h, color="tab:red", lw=0.8, alpha=0.7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
