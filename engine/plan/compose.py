"""`make_plan`: picture (film features), theme or maestro, hits and the editor's overrides -> a `CuePlan`.

Steps (DESIGN.md data flow step 3):
1. mood of the whole cue and of each section (`mood.py`), overrides applied, musical choices from it;
2. anchors: the picture's cuts (major when both shots around it last at least a bar at the target tempo, or when
   it is a fade or dissolve: a change of scene) and the editor's hits; the tempo map (`tempo_map.py`); without a
   theme bars may change length to put major cuts on downbeats, with a theme its bars are kept;
3. key and mode: the theme's (a maestro theme's marked key, else Krumhansl-Schmuckler on the melody), else the
   mood's mode on C (major) or A (minor); `--key` transposes a theme to the tonic asked and sets the mode;
4. melody and harmony: a theme is laid on the tempo map beat for beat (its own notes, looped and cut as
   `controls.fit` places them); a theme with accompanying parts keeps them and its chords are read from all its
   parts; a melody-only theme is harmonised in the style (`harmony.harmonise`); without a theme a progression and a
   melody are drawn from the style (seeded);
5. bass, rhythm figure and percussion per section, dynamics (`bass.py`, `rhythm.py`, `dynamics.py`).
"""

from __future__ import annotations

import math

import numpy as np

from ..controls.fit import place_notes
from ..controls.midi import DRUM_CHANNEL, Note
from ..controls.theme import Theme
from .bass import bass_line
from .dynamics import plan_dynamics
from .harmony import (chord_slots, chords_from_degrees, estimate_key, harmonise, label_slots, load_style,
                      sample_progression, slot_pc_weights, Chord, ROMAN)
from .melody import melody_from_style
from .mood import MAX_BPM, MIN_BPM, Mood, MoodOverrides, MusicalChoices, PlanError, choices_from_mood, \
    mood_of_film, parse_key
from .plan import CuePlan, Hit, sounding_notes
from .rhythm import Section, harmony_figure, percussion, section_at
from .tempo_map import Anchor, TempoMap, fit_tempo_map

NEUTRAL_MOOD = Mood(0.5, 0.5, 0.3)
"""The mood of a plan without picture (overrides still apply)."""
MIN_SECTION_S = 4.0
DEFAULT_TONIC = {"major": 0, "minor": 9}
THEME_TEMPO_RANGE = (0.75, 1.33)
"""A theme's tempo moves toward the mood's at most this far (FitSettings' stretch bounds: a theme keeps its
character)."""


def _anchors(film, hits_s, duration_s: float, bar_s: float) -> list[Anchor]:
    out: list[Anchor] = []
    if film is not None:
        cuts = [float(c) for c in film.cuts_s]
        kinds = list(film.extras.get("cut_kinds", [])) if isinstance(film.extras, dict) else []
        bounds = [0.0] + cuts + [duration_s]
        for i, c in enumerate(cuts):
            kind = kinds[i] if i < len(kinds) else "cut"
            long_shots = bounds[i + 1] - bounds[i] >= bar_s and bounds[i + 2] - bounds[i + 1] >= bar_s
            out.append(Anchor(c, bool(long_shots or kind in ("fade", "dissolve")), "cut"))
    for h in hits_s:
        out.append(Anchor(float(h), False, "hit"))
    return [a for a in out if 0.0 < a.time_s < duration_s]


def _sections(tm: TempoMap, anchors: list[Anchor], film, duration_s: float, overrides: MoodOverrides,
              whole: Mood) -> list[Section]:
    bounds = [0.0]
    for a in sorted(x.time_s for x in anchors if x.major):
        if a - bounds[-1] >= MIN_SECTION_S and duration_s - a >= MIN_SECTION_S:
            bounds.append(a)
    bounds.append(duration_s)
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        m = overrides.apply(mood_of_film(film, a, b)) if film is not None else whole
        out.append(Section(a, b, m, choices_from_mood(m, overrides).subdivision))
    return out


def _theme_meter(theme: Theme) -> tuple[int, int]:
    """(plan beats per bar, plan beats per theme quarter note)."""
    bar = theme.bar_beats_at(theme.pickup_beats)
    if abs(bar - round(bar)) < 1e-6:
        return int(round(bar)), 1
    return int(round(bar * 2)), 2


def _theme_key(theme: Theme) -> tuple[int, str]:
    """The theme's key: its notes' (Krumhansl-Schmuckler, all parts), or the key its source names when that fits
    nearly as well."""
    given = None
    k = theme.meta.get("key") if theme.meta else None
    if k and k != "unknown":
        try:
            tonic, mode = parse_key(str(k))
            given = (tonic, mode or "major")
        except PlanError:
            pass
    notes = [n for n in theme.notes if n.channel != DRUM_CHANNEL]
    return estimate_key([(n.onset_s, n.offset_s, n.pitch) for n in notes], given)


def _place_theme(theme: Theme, tm: TempoMap, unit: int, duration_s: float, shift: int) -> list[Note]:
    """The theme on the plan's beats: theme beat x -> plan beat d - pickup + x (in plan beats), d the first downbeat
    at which the pickup fits after the cue start; notes looped and cut by `controls.fit`'s placement."""
    pickup = theme.pickup_beats * unit
    down = tm.downbeat_indices
    d = next((int(i) for i in down if float(tm.time_of(i - pickup)) >= -0.025), int(down[-1]))
    x_end = (float(tm.beat_of(duration_s)) - (d - pickup)) / unit + 2
    xs = np.arange(0.0, max(x_end, 1.0) + 1.0)
    own = theme.looped_beats_to_s(xs)
    cue = tm.time_of(d - pickup + xs * unit)
    tail = float((cue[-1] - cue[-2]) / max(own[-1] - own[-2], 1e-9))
    end_own = float(np.interp(duration_s, cue, own))
    notes, _, _, _ = place_notes(theme, own, cue, tail, end_own, duration_s)
    if shift:
        notes = [Note(n.onset_s, n.offset_s, n.pitch + shift if n.channel != DRUM_CHANNEL else n.pitch,
                      n.velocity, n.channel, n.track) for n in notes]
    return notes


def _melody_part(theme: Theme, notes: list[Note]) -> tuple[list[Note], list[Note]]:
    """(melody, accompaniment) of placed theme notes: the theme's named melody part, else the part with the highest
    mean pitch; drums are neither."""
    pitched = [n for n in notes if n.channel != DRUM_CHANNEL]
    parts: dict[tuple[int, int], list[Note]] = {}
    for n in pitched:
        parts.setdefault((n.track, n.channel), []).append(n)
    if theme.melody_track is not None or theme.melody_channel is not None:
        mel = [n for n in pitched if (theme.melody_track is None or n.track == theme.melody_track)
               and (theme.melody_channel is None or n.channel == theme.melody_channel)]
    elif len(parts) <= 1:
        mel = pitched
    else:
        key = max(parts, key=lambda k: np.mean([n.pitch for n in parts[k]]))
        mel = parts[key]
    ids = {id(n) for n in mel}
    return mel, [n for n in pitched if id(n) not in ids]


def make_plan(duration_s: float, *, film=None, theme: Theme | None = None, style: str | None = None,
              hits_s=(), overrides: MoodOverrides | None = None, free_timing: bool = False, seed: int = 0,
              source: dict | None = None) -> CuePlan:
    """The plan of a cue of `duration_s` s. film: `FilmFeatures` of the range (or None); theme: a `Theme` (MIDI or
    maestro) or None; style: the master whose statistics harmonise or invent (None: pooled); hits_s: the editor's
    hit points (cue seconds)."""
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise PlanError(f"cue duration must be a positive number of seconds, got {duration_s!r}")
    o = overrides or MoodOverrides()
    o.check()
    whole = o.apply(mood_of_film(film) if film is not None else NEUTRAL_MOOD)
    ch: MusicalChoices = choices_from_mood(whole, o)
    rng = np.random.default_rng(seed)

    # 2. tempo map
    target = ch.tempo_bpm
    bpb, unit = (4, 1) if theme is None else _theme_meter(theme)
    if theme is not None and o.tempo_bpm is None:
        own = theme.bpm * unit
        lo, hi = own * THEME_TEMPO_RANGE[0], own * THEME_TEMPO_RANGE[1]
        target = float(np.clip(math.sqrt(own * target), max(lo, MIN_BPM), min(hi, MAX_BPM)))
    anchors = _anchors(film, hits_s, duration_s, bpb * 60.0 / target)
    tm = fit_tempo_map(duration_s, anchors, target, bpb, meter_changes=theme is None, free_timing=free_timing)
    sections = _sections(tm, anchors, film, duration_s, o, whole)

    # 3. key
    if theme is not None:
        t_tonic, t_mode = _theme_key(theme)
        tonic, mode = t_tonic, t_mode
        if o.key is not None:
            tonic, k_mode = parse_key(o.key)
            mode = k_mode or t_mode
        shift = ((tonic - t_tonic + 6) % 12) - 6
    else:
        mode = ch.mode
        tonic = ch.tonic if ch.tonic is not None else DEFAULT_TONIC[mode]
        shift = 0
    st = load_style(style, mode)

    # 4. melody and harmony
    slots = chord_slots(tm.downbeats, tm.beats, ch.chords_per_bar, 0.0, duration_s)
    if slots and slots[0][0] > 1e-6:
        slots.insert(0, (0.0, slots[0][0]))
    accomp: list[Note] = []
    if theme is not None:
        placed = _place_theme(theme, tm, unit, duration_s, shift)
        melody, accomp = _melody_part(theme, placed)
        if accomp:
            rows = [(n.onset_s, n.duration_s, n.pitch) for n in melody + accomp]
            degrees = label_slots(rows, np.asarray([a for a, _ in slots]), duration_s, tonic, mode)
            harmony_from = "theme parts"
        else:
            w = slot_pc_weights([(n.onset_s, n.offset_s, n.pitch) for n in melody], slots)
            degrees = harmonise(st, w, tonic)
            harmony_from = f"harmonised ({st.name} style)"
    else:
        degrees = sample_progression(st, len(slots), rng)
        harmony_from = f"drawn ({st.name} style)"
        melody = []
    chords = chords_from_degrees(degrees, slots, tonic, mode)
    register = ch.register
    if theme is None:
        melody = melody_from_style(st, tm, chords, tonic, register, 2 if whole.energy >= 0.65 else 1, rng)
    elif melody:
        register = int(round(np.mean([n.pitch for n in melody])))
    hit_times = np.asarray([float(tm.beats[np.argmin(np.abs(tm.beats - a.time_s))]) for a in anchors])

    # 5. bass, figure, percussion, dynamics
    sub_at = lambda t: section_at(sections, t).subdivision  # noqa: E731
    bass = bass_line(chords, tm, sub_at)
    harmony = ([Note(n.onset_s, n.offset_s, n.pitch, n.velocity, 2, 2) for n in accomp] if accomp else
               harmony_figure(chords, tm, sections, register, hit_times))
    perc = percussion(tm, sections, hit_times, duration_s)
    dyn = plan_dynamics(film, duration_s, sections)
    hits = [Hit(a.time_s, float(tm.beats[np.argmin(np.abs(tm.beats - a.time_s))]), a.kind, a.major)
            for a in sorted(anchors, key=lambda x: x.time_s)]
    melody = [Note(n.onset_s, n.offset_s, n.pitch, n.velocity, 1, 1) for n in melody]
    choices = {"target_bpm": round(target, 2), "chords_per_bar": ch.chords_per_bar, "register": register,
               "subdivision": ch.subdivision, "mood_mode": ch.mode, "harmony_from": harmony_from,
               "style": st.name, "overrides": {k: v for k, v in o.__dict__.items() if v is not None}}
    src = dict(source or {})
    if theme is not None:
        src.setdefault("theme", theme.name)
    melody, harmony, bass, perc = (sounding_notes(t) for t in (melody, harmony, bass, perc))
    return CuePlan(float(duration_s), tm, tonic, mode, chords, hits, whole, sections, melody, harmony, bass, perc,
                   dyn, ch.orchestration, choices, src)


__all__ = ["make_plan", "NEUTRAL_MOOD", "Chord", "ROMAN"]
