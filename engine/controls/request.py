"""The one entry point the render path calls: a request's theme source → fitted controls for the cue.

A MIDI theme or a maestro theme is fitted to the cue (`fit.fit_theme`: duration, hit points, bar-line ending,
fade) exactly as `filmscore controls INPUT --duration D --hits ...` does; a reference recording gives Music
ControlNet's audio controls in its own timing, trimmed or padded with rests to the cue (hit points do not move a
recording: there is no symbolic beat grid to bend).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..constants import CONTROL_FRAME_RATE, MODEL_SAMPLE_RATE
from ..errors import RequestError
from .fit import FitSettings, FittedTheme, fit_theme
from .types import Controls


def theme_for_request(*, midi=None, maestro: str | None = None, theme: str | None = None,
                      track: int | None = None, channel: int | None = None, seed: int = 0):
    """The `Theme` a request names (a MIDI file or a maestro theme), or None."""
    if midi is not None:
        from .theme import theme_from_midi

        return theme_from_midi(midi, track, channel)
    if maestro is not None:
        from .maestros import load_theme

        return load_theme(maestro, theme, seed)
    return None


def controls_for_request(*, n_frames: int, midi=None, reference_audio=None, maestro: str | None = None,
                         theme: str | None = None, track: int | None = None, channel: int | None = None,
                         hits_s=(), seed: int = 0,
                         settings: FitSettings | None = None) -> tuple[Controls, FittedTheme | None]:
    """Controls of exactly `n_frames` frames (100/s) for a cue, and the fitted theme they follow (None for a
    reference recording or when no source is given: then `Controls.absent(n_frames)`).

    midi: path, bytes or `mido.MidiFile`; reference_audio: path, or `(wave (n,), sample_rate)`; maestro: a library
    name ("bach"), with `theme` an id or number, else a theme drawn from `seed`. hits_s: cue seconds.
    Raises `RequestError` when more than one source is given; source errors are `MidiError`,
    `ReferenceAudioError`/`AudioLoadError`, `MaestroError` or `FitError`.
    """
    if not isinstance(n_frames, (int, np.integer)) or n_frames <= 0:
        raise RequestError(f"n_frames must be a positive integer, got {n_frames!r}")
    given = [name for name, v in (("midi", midi), ("reference audio", reference_audio), ("maestro", maestro))
             if v is not None]
    if len(given) > 1:
        raise RequestError(f"give at most one of midi, reference audio, maestro (got {' and '.join(given)})")
    if theme is not None and maestro is None:
        raise RequestError("a theme id needs a maestro (--maestro NAME --theme ID)")
    if not given:
        return Controls.absent(int(n_frames)), None
    if reference_audio is not None:
        return controls_for_reference(reference_audio, int(n_frames)), None
    th = theme_for_request(midi=midi, maestro=maestro, theme=theme, track=track, channel=channel, seed=seed)
    fitted = fit_theme(th, int(n_frames) / CONTROL_FRAME_RATE, tuple(hits_s), settings)
    return fitted.controls(int(n_frames)), fitted


def controls_for_reference(reference, n_frames: int | None = None) -> Controls:
    """Audio controls of a recording (path or `(wave, sr)`), trimmed or padded with rests to `n_frames`."""
    from .audio import ReferenceAudioError, controls_from_audio

    if isinstance(reference, (str, Path)):
        from ..audio.io import load_audio

        try:
            controls = controls_from_audio(load_audio(reference, MODEL_SAMPLE_RATE), MODEL_SAMPLE_RATE)
        except ReferenceAudioError as e:
            raise ReferenceAudioError(f"{reference}: {e}") from e
    else:
        wave, sr = reference
        controls = controls_from_audio(np.asarray(wave), int(sr))
    return controls if n_frames is None else controls.fit_length(n_frames)
