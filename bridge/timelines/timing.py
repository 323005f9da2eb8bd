"""Rational timeline time and the one function that turns it into samples.

Timeline positions stay OTIO `RationalTime`/`TimeRange` (value, rate) from the file to the moment a sample index
is needed; `to_samples` is that moment, everywhere in filmscore's timeline code. A cue's length in samples is
`to_samples(end) - to_samples(start)`, so cues that butt against each other tile the timeline with no sample
lost or doubled.
"""

from __future__ import annotations

from fractions import Fraction

import opentimelineio as otio

RationalTime = otio.opentime.RationalTime
TimeRange = otio.opentime.TimeRange


def rate_fraction(rate: float) -> Fraction:
    """An OTIO rate (a double) as the exact fraction it stands for: 23.976023976... -> 24000/1001,
    29.97 -> 2997/100, 48000.0 -> 48000."""
    return Fraction(rate).limit_denominator(1001)


def to_samples(t: RationalTime, sample_rate: int) -> int:
    """THE conversion of a timeline time to a sample index at `sample_rate` Hz: value * sample_rate / rate in
    exact rational arithmetic, rounded to the nearest sample (ties to even)."""
    return round(Fraction(t.value) * sample_rate / rate_fraction(t.rate))


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
