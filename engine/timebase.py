"""Rational time, and THE conversion of a time to a sample index.

Timeline positions are rational (`value / rate` seconds, as OpenTimelineIO and the bridge protocol carry them) from
the file or the wire to the moment a sample index is needed; `to_samples` is that moment, everywhere in filmscore:
timeline cues (bridge/timelines/timing.py), a cue's length (`request.cue_n_samples`: float seconds are the rational
`seconds / 1`), a BWF time reference (engine/audio/delivery.py). A length in samples is `to_samples(end) -
to_samples(start)`, so cues that butt against each other tile the timeline with no sample lost or doubled.

Anything with `.value` and `.rate` is a time here (an OTIO `RationalTime`, the protocol's, `Rational`): the engine
does not import OpenTimelineIO.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol


class RationalLike(Protocol):
    value: float
    rate: float


@dataclass(frozen=True)
class Rational:
    """A time `value / rate` seconds, exact; picklable and JSON-able (OTIO's `RationalTime` is neither)."""

    value: float
    rate: float

    @classmethod
    def of(cls, t: RationalLike) -> Rational:
        return cls(float(t.value), float(t.rate))

    def to_seconds(self) -> float:
        return self.value / self.rate

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "rate": self.rate}

    @classmethod
    def from_json(cls, d: Any) -> Rational:
        return cls(float(d["value"]), float(d["rate"]))


def rate_fraction(rate: float) -> Fraction:
    """A rate (a double) as the exact fraction it stands for: 23.976023976... -> 24000/1001, 29.97 -> 2997/100,
    48000.0 -> 48000."""
    return Fraction(rate).limit_denominator(1001)


def to_samples(t: RationalLike, sample_rate: int) -> int:
    """THE conversion of a time to a sample index at `sample_rate` Hz: value * sample_rate / rate in exact rational
    arithmetic, rounded to the nearest sample (ties to even)."""
    return round(Fraction(t.value) * int(sample_rate) / rate_fraction(t.rate))


def seconds(s: float) -> Rational:
    """Float seconds as a rational time (`s / 1`): a cue length given in seconds goes through `to_samples` too."""
    return Rational(float(s), 1.0)
