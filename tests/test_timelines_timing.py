"""The one rational-time-to-samples conversion."""

from __future__ import annotations

from fractions import Fraction

import opentimelineio as otio

from filmscore.bridge.timelines.timing import format_time, range_samples, rate_fraction, to_samples

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def test_exact_rates():
    assert to_samples(RT(86400, 24), 48000) == 3600 * 48000
    assert to_samples(RT(1, 25), 48000) == 1920
    # NTSC: 24000/1001 fps whether the file says 23.976 or 23.976023976...
    assert rate_fraction(23.976) == Fraction(2997, 125) and rate_fraction(24000 / 1001) == Fraction(24000, 1001)
    assert to_samples(RT(1001, 24000 / 1001), 48000) == 2004002  # 1001 * 1001 / 24000 s exactly
    assert to_samples(RT(30, 30000 / 1001), 48000) == 48048
    assert rate_fraction(29.97) == Fraction(2997, 100)


def test_adjacent_ranges_tile_without_lost_samples():
    # Three cues at 23.976 butting against each other: lengths add up to the whole, sample for sample.
    rate = 24000 / 1001
    cuts = [0, 37, 101, 250]
    total = 0
    for a, b in zip(cuts, cuts[1:]):
        start, n = range_samples(TR(RT(a, rate), RT(b - a, rate)), 44100)
        assert start == to_samples(RT(a, rate), 44100)
        total += n
    assert total == to_samples(RT(250, rate), 44100)


def test_format_time():
    assert format_time(RT(86400 + 36, 24)) == "01:00:01:12"
    assert format_time(RT(1.5, 24)) == "0.062s"
