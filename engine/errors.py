"""Named errors. Every user-facing failure is a `FilmscoreError` whose message is one line naming the thing at
fault and what is allowed; the CLI prints it without a traceback and exits non-zero."""


class FilmscoreError(Exception):
    """Base class of the errors a user can cause and fix (bad file, bad option, missing bundle)."""


class RequestError(FilmscoreError):
    """A render request whose parameters are out of range (duration, seed, steps, scheduler, ...)."""


class AudioLoadError(FilmscoreError):
    """An audio file that does not exist, cannot be decoded, or holds no samples."""


class VideoDecodeError(FilmscoreError):
    """A video file that does not exist, has no video stream, or cannot be decoded over the asked range."""


class MidiError(FilmscoreError):
    """A MIDI file that is truncated, corrupt, empty or otherwise unusable."""


class BundleError(FilmscoreError):
    """A model bundle with a missing or corrupted file, a wrong hash, or settings this engine does not support."""


class BackendError(FilmscoreError):
    """A runtime backend (torch, ort, trt) that is not available or failed to load a model."""


class RenderCancelled(FilmscoreError):
    """A render stopped because its caller cancelled it (raised between denoising steps)."""


class LoudnessError(FilmscoreError):
    """Audio whose loudness cannot be normalised (silent, shorter than one gating block) or a bad target."""


class PlanError(FilmscoreError):
    """A plan input or override that cannot be used: a bad key name, a value out of range, a damaged plan file."""
