"""Rational timeline time: OTIO ranges in samples, timecode and JSON.

Timeline positions stay OTIO `RationalTime`/`TimeRange` (value, rate) from the file to the moment a sample index
is needed; that moment is `filmscore.engine.timebase.to_samples`, the one conversion (re-exported here for timeline
code). A cue's length in samples is `to_samples(end) - to_samples(start)`, so cues that butt against each other
tile the timeline with no sample lost or doubled.
"""

from __future__ import annotations

import opentimelineio as otio

from filmscore.engine.timebase import rate_fraction, to_samples

__all__ = ["RationalTime", "TimeRange", "format_time", "range_samples", "rate_fraction", "rt_from_json", "rt_json",
           "to_samples"]

RationalTime = otio.opentime.RationalTime
TimeRange = otio.opentime.TimeRange


def range_samples(r: TimeRange, sample_rate: int) -> tuple[int, int]:
    """(first sample, number of samples) of a half-open range [start, end)."""
    a = to_samples(r.start_time, sample_rate)
    return a, to_samples(r.end_time_exclusive(), sample_rate) - a


def format_time(t: RationalTime) -> str:
    """SMPTE timecode at the time's own rate when it has one, else seconds with 3 decimals."""
    try:
        if t.value >= 0 and float(t.value).is_integer() and t.rate <= 120:
            return t.to_timecode(t.rate)
    except (ValueError, RuntimeError):
        pass
    return f"{t.to_seconds():.3f}s"


def rt_json(t: RationalTime) -> dict:
    """A rational time as JSON: value and rate, plus seconds for reading."""
    return {"value": t.value, "rate": t.rate, "seconds": t.to_seconds()}


def rt_from_json(d: dict) -> RationalTime:
    return RationalTime(float(d["value"]), float(d["rate"]))
