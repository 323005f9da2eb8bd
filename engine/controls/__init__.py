"""Local controls: melody and dynamics curves at 100 frames/s (see `types.Controls`)."""

from .types import N_CONTROL_CHANNELS, Controls

__all__ = ["Controls", "N_CONTROL_CHANNELS"]
