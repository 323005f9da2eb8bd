"""Local controls: melody and dynamics curves at 100 frames/s (see `types.Controls`, docs/controls.md).

- `midi`: MIDI files → notes and controls (tempo maps, SMPTE, SoundFont 2 velocity/CC curves);
- `audio`: a reference recording → controls (Music ControlNet's chroma recipe);
- `theme`, `fit`, `fitted_midi`: a theme fitted to a cue (hit points on strong beats, bar-line endings, fade) and
  written back as MIDI;
- `maestros`: the shipped library of master themes (`engine/maestros/*.json`);
- `request.controls_for_request`: the single call the render path makes.
Submodules import their heavy dependencies (mido, librosa, scipy) lazily.
"""

from .types import N_CONTROL_CHANNELS, Controls

__all__ = ["Controls", "N_CONTROL_CHANNELS"]
