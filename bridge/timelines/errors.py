"""Named errors of the timeline edge. Each message is one line naming the file, item or cue at fault."""

from __future__ import annotations

from filmscore.engine.errors import FilmscoreError


class TimelineError(FilmscoreError):
    """A timeline file that cannot be read or written: missing, unknown format, corrupt, or refused by its adapter."""


class TimelineSchemaError(TimelineError):
    """A serialized OTIO object whose schema (name or version) this OpenTimelineIO cannot read and no pre-pass
    downgrades."""


class CueError(FilmscoreError):
    """A cue selection or region that cannot be scored: unknown cue name, empty range, range outside the timeline."""
