"""A fitted theme as a standard MIDI file, on the theme's own bar grid with the fitted tempo as tempo changes.

A composer opening the file in a DAW sees the theme's bars and beats (notes on the grid as written, repeats
included) and the cue's timing in the tempo track: one `set_tempo` wherever the fitted time map or the theme's own
tempo map bends, a lead-in bar when the theme enters after the cue start, and a marker at each hit point.
Sample-exact: a tick's time through the tempo track equals the fitted time of that beat to within a tick.
"""

from __future__ import annotations

import numpy as np

from .theme import beats_to_signature

MAX_TEMPO_US = 16_777_215  # 24-bit set_tempo


def fitted_to_midi(ft, ticks_per_beat: int = 480):
    """`FittedTheme` → type-1 `mido.MidiFile`: track 0 tempo/metre/markers, then one track per theme track."""
    import mido

    theme = ft.theme
    tpb = int(ticks_per_beat)
    start = float(ft.knots_cue_s[0])
    first_k = (ft.knots_cue_s[1] - ft.knots_cue_s[0]) / (ft.knots_own_s[1] - ft.knots_own_s[0]) \
        if len(ft.knots_own_s) > 1 and ft.knots_own_s[1] > ft.knots_own_s[0] else ft.tail_stretch
    beat0_s = float(theme.beats_to_s(1.0)) * first_k
    lead = 0 if start <= 1e-6 else max(1, int(round(start / beat0_s)))

    end_own = float(ft.cue_to_own(ft.duration_s))
    end_beats = float(theme.looped_s_to_beats(end_own))

    def cue_of_beats(b: np.ndarray) -> np.ndarray:
        return ft.own_to_cue(theme.looped_beats_to_s(b))

    # breakpoints of the beats → cue-seconds map: the theme's tempo knots (every repeat) and the fit's knots
    loops = int(np.ceil(max(end_beats - theme.pickup_beats, 0) / theme.period_beats)) + 1
    knots = [theme.tempo_beats] + [theme.tempo_beats[theme.tempo_beats >= theme.pickup_beats] + r * theme.period_beats
                                   for r in range(1, loops)]
    knots.append(np.asarray(theme.looped_s_to_beats(ft.knots_own_s)))
    knots.append(np.arange(0, loops + 1) * theme.period_beats + theme.pickup_beats)
    bp = np.unique(np.round(np.concatenate(knots + [[0.0, end_beats]]) * tpb) / tpb)
    bp = bp[(bp >= 0) & (bp <= end_beats + 1e-9)]
    t_bp = cue_of_beats(bp)

    conductor = []  # (tick, order, message)
    if lead:
        us = start / lead * 1e6
        conductor.append((0, 0, mido.MetaMessage("set_tempo", tempo=int(np.clip(round(us), 1, MAX_TEMPO_US)))))
    for a, b, ta, tb in zip(bp[:-1], bp[1:], t_bp[:-1], t_bp[1:]):
        if b - a < 1e-9:
            continue
        us = (tb - ta) / (b - a) * 1e6
        conductor.append((int(round((a + lead) * tpb)), 0,
                          mido.MetaMessage("set_tempo", tempo=int(np.clip(round(us), 1, MAX_TEMPO_US)))))
    # metre: a first short bar for the lead-in and pickup, then the theme's meters on each repeat
    first_bar = lead + theme.pickup_beats
    if first_bar > 1e-9:
        n, d = beats_to_signature(first_bar)
        conductor.append((0, 1, mido.MetaMessage("time_signature", numerator=n, denominator=d)))
    for r in range(loops):
        for at, n, d in theme.meters:
            at_b = max(at, theme.pickup_beats) + r * theme.period_beats
            if at_b <= end_beats:
                conductor.append((int(round((at_b + lead) * tpb)), 1,
                                  mido.MetaMessage("time_signature", numerator=n, denominator=d)))
    for i, h in enumerate(ft.hits, 1):
        if 0 <= h.hit_s <= ft.duration_s:
            conductor.append((_cue_to_tick(ft, h.hit_s, lead, start, tpb), 2,
                              mido.MetaMessage("marker", text=f"hit {i} {h.hit_s:.3f}s")))
    name = f"{theme.name} fitted to {ft.duration_s:.2f}s"
    conductor.append((0, -1, mido.MetaMessage("track_name", name=name[:120])))
    conductor.append((int(round((end_beats + lead) * tpb)), 9, mido.MetaMessage("marker", text="cue end")))

    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    mid.tracks.append(_to_track(conductor))
    by_track: dict[int, list] = {}
    channels_of: dict[int, set[int]] = {}
    for n in ft.notes:
        on = _cue_to_tick(ft, n.onset_s, lead, start, tpb)
        off = max(on + 1, _cue_to_tick(ft, n.offset_s, lead, start, tpb))
        ev = by_track.setdefault(n.track, [])
        ev.append((on, 2, mido.Message("note_on", note=n.pitch, velocity=n.velocity, channel=n.channel - 1)))
        ev.append((off, 1, mido.Message("note_off", note=n.pitch, velocity=0, channel=n.channel - 1)))
        channels_of.setdefault(n.track, set()).add(n.channel)
    home = {ch: t for t, chs in sorted(channels_of.items()) for ch in sorted(chs)}
    for t_s, ch, ctl, val in ft.cc:
        if ch in home and 0 <= t_s <= ft.duration_s:
            by_track[home[ch]].append((_cue_to_tick(ft, t_s, lead, start, tpb), 0,
                                       mido.Message("control_change", control=ctl, value=val, channel=ch - 1)))
    for t in sorted(by_track):
        ev = by_track[t]
        ev.append((0, -1, mido.MetaMessage("track_name", name=f"theme track {t}")))
        for ch in sorted(channels_of[t]):
            if ch in theme.programs:
                ev.append((0, -1, mido.Message("program_change", program=theme.programs[ch], channel=ch - 1)))
        mid.tracks.append(_to_track(ev))
    return mid


def _cue_to_tick(ft, cue_s: float, lead: int, start: float, tpb: int) -> int:
    if cue_s < start:  # in the lead-in
        return int(round(cue_s / start * lead * tpb)) if start > 0 else 0
    beats = float(ft.theme.looped_s_to_beats(ft.cue_to_own(cue_s)))
    return int(round((beats + lead) * tpb))


def _to_track(events):
    import mido

    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track
