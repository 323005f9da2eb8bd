"""Editors' timelines through OpenTimelineIO: read, find cues and their picture, score in a batch, write back.

Each module exposes plain `read_*` / `write_*` style functions; heavy parts (the film encoder, the engine) are
imported only when a cue is rendered.
"""

from .cues import CueList, CueRegion, HitPoint, read_cues
from .errors import CueError, TimelineError, TimelineSchemaError
from .files import LoadedTimeline, read_timeline, write_timeline
from .picture import PictureSegment, read_region_picture
from .scored import Placement, write_scored_timeline
from .timing import range_samples, to_samples

__all__ = ["CueError", "CueList", "CueRegion", "HitPoint", "LoadedTimeline", "PictureSegment", "Placement",
           "TimelineError", "TimelineSchemaError", "range_samples", "read_cues", "read_region_picture",
           "read_timeline", "to_samples", "write_scored_timeline", "write_timeline"]
