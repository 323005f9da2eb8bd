"""The one entry point the render path calls: a request's theme source → fitted controls for the cue.

A MIDI theme or a maestro theme is fitted to the cue (`fit.fit_theme`: duration, hit points, bar-line ending,
fade) exactly as `filmscore controls INPUT --duration D --hits ...` does; a reference recording gives Music
ControlNet's audio controls, its tracked beats bent onto the hit points (`reference_fit`), rests past its end and a
fade where the cue cuts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..constants import CONTROL_FRAME_RATE, MODEL_SAMPLE_RATE
from ..errors import RequestError
from .fit import FitSettings, FittedTheme, fit_theme
from .types import Controls

if TYPE_CHECKING:
    from .reference_fit import ReferenceFit


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
        controls, _ = controls_for_reference(reference_audio, int(n_frames), tuple(hits_s), settings)
        return controls, None
    th = theme_for_request(midi=midi, maestro=maestro, theme=theme, track=track, channel=channel, seed=seed)
    fitted = fit_theme(th, int(n_frames) / CONTROL_FRAME_RATE, tuple(hits_s), settings)
    return fitted.controls(int(n_frames)), fitted


def controls_for_reference(reference, n_frames: int | None = None, hits_s=(),
                           settings: FitSettings | None = None) -> tuple[Controls, ReferenceFit | None]:
    """Audio controls of a recording (path or `(wave, sr)`). With `n_frames`: placed in a cue of that length, its
    tracked beats bent onto `hits_s` (`reference_fit`), rests past its end, a fade where it is cut."""
    from .audio import ReferenceAudioError, controls_from_audio

    if isinstance(reference, (str, Path)):
        from ..audio.io import load_audio

        wave, sr = load_audio(reference, MODEL_SAMPLE_RATE), MODEL_SAMPLE_RATE
    else:
        wave, sr = np.asarray(reference[0]), int(reference[1])
    try:
        controls = controls_from_audio(wave, sr)
    except ReferenceAudioError as e:
        if isinstance(reference, (str, Path)):
            raise ReferenceAudioError(f"{reference}: {e}") from e
        raise
    if n_frames is None:
        return controls, None
    from .reference_fit import fit_reference, track_beats

    beats = np.zeros(0)
    if len(tuple(hits_s)):
        from ..audio.io import resample

        beats = track_beats(resample(np.asarray(wave, np.float32), sr, MODEL_SAMPLE_RATE))
    return fit_reference(controls, beats, n_frames, hits_s, settings)
