"""The picture's mood per range (energy, valence, tension in [0, 1]) and the musical choices it maps to.

Inputs are the film encoder's own features (`FilmFeatures.emotion`, columns `affect.EMOTION_COLUMNS`, and the face
block when the face branch ran); nothing here looks at pixels again. Per range [a, b) of the cue:

| value | formula (frame means over the range) | why |
| --- | --- | --- |
| energy | 0.55 motion + 0.30 rhythm + 0.15 arousal | motion and shot rhythm are Hanjalic & Xu's (2005) arousal terms; `arousal` adds colour arousal |
| valence | scene valence + 0.25 (warmth - 0.5) + 0.30 f (happy - (sad + fear + angry) / 2) | brightness/saturation pleasure weights (Valdez & Mehrabian 1994, in `affect.py`), warm colour (Wang & Cheong 2006), faces' expressions weighted by the share f of frames with a face |
| tension | 0.40 low_key + 0.35 energy (1 - valence) + 0.25 f (fear + angry + surprise) | low-key lighting (Wang & Cheong 2006); high arousal with low valence is the "tense" quadrant of Russell's (1980) circumplex |

Each value is clipped to [0, 1]. `choices_from_mood` turns a mood into musical choices (tempo, mode, harmonic
rhythm, rhythmic density, register, orchestration); docs/plan.md gives the mapping and its sources. Every choice
can be overridden (`MoodOverrides`): an override replaces the mood value or the choice, the rest still follows the
picture.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import PlanError
from ..film.affect import EMOTION_COLUMNS
from ..options import ORCHESTRATIONS, option_field

MIN_BPM, MAX_BPM = option_field("tempo_bpm").meta.range
"""The tempo range of the plan (a click track outside it is not a usable musical pulse): the option's range."""
ORCHESTRA_PROGRAMS: dict[str, dict[str, int]] = {
    "strings": {"melody": 40, "harmony": 48, "bass": 42},  # violin, string ensemble, cello
    "winds": {"melody": 73, "harmony": 48, "bass": 70},  # flute, string ensemble, bassoon
    "full": {"melody": 56, "harmony": 48, "bass": 32},  # trumpet, string ensemble, acoustic bass
    "dark": {"melody": 42, "harmony": 49, "bass": 58},  # cello, slow strings, tuba
}
"""Named palettes (General MIDI programs, 0-based, per plan track); the percussion track is GM channel 10."""
assert tuple(ORCHESTRA_PROGRAMS) == ORCHESTRATIONS, "engine/options.py names the orchestrations programmed here"
_COL = {name: i for i, name in enumerate(EMOTION_COLUMNS)}
_FACE = {name: i + 1 for i, name in enumerate(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))}


@dataclass(frozen=True)
class Mood:
    """energy, valence, tension in [0, 1]."""

    energy: float
    valence: float
    tension: float

    def to_json(self) -> dict:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> Mood:
        try:
            m = cls(float(d["energy"]), float(d["valence"]), float(d["tension"]))
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError(f"mood must hold numbers energy, valence, tension ({e})") from e
        m.check()
        return m

    def check(self) -> None:
        for k, v in asdict(self).items():
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise PlanError(f"mood {k} must be in [0, 1], got {v}")


@dataclass(frozen=True)
class MoodOverrides:
    """What the editor fixed; None follows the picture. key: "D minor", "F# major", "Bb" (mode from the mood)."""

    energy: float | None = None
    valence: float | None = None
    tension: float | None = None
    tempo_bpm: float | None = None
    key: str | None = None
    orchestration: str | None = None

    def check(self) -> None:
        for k in ("energy", "valence", "tension", "tempo_bpm", "key", "orchestration"):
            if getattr(self, k) is not None:  # the options' own ranges and choices (engine/options.py)
                option_field(k).check(getattr(self, k))
        if self.key is not None:
            parse_key(self.key)

    def apply(self, mood: Mood) -> Mood:
        return replace(mood, **{k: v for k, v in (("energy", self.energy), ("valence", self.valence),
                                                  ("tension", self.tension)) if v is not None})


PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
TONIC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def parse_key(text: str) -> tuple[int, str | None]:
    """"D minor" -> (2, "minor"); "Bb" -> (10, None); "f# min" -> (6, "minor"). Raises PlanError."""
    parts = text.strip().split()
    if not parts or len(parts) > 2 or not parts[0] or parts[0][0].upper() not in PITCH_CLASS:
        raise PlanError(f"key {text!r}: expected a tonic and a mode, e.g. \"D minor\" or \"Bb major\"")
    name = parts[0]
    pc = PITCH_CLASS[name[0].upper()]
    for acc in name[1:]:
        if acc in "#♯":
            pc += 1
        elif acc in "b♭":
            pc -= 1
        else:
            raise PlanError(f"key {text!r}: {name!r} is not a note name (C, F#, Bb, ...)")
    mode = None
    if len(parts) == 2:
        m = parts[1].lower()
        if m in ("major", "maj", "dur"):
            mode = "major"
        elif m in ("minor", "min", "moll"):
            mode = "minor"
        else:
            raise PlanError(f"key {text!r}: mode must be major or minor")
    return pc % 12, mode


def mood_of_range(emotion: np.ndarray, faces: np.ndarray | None, a: int, b: int) -> Mood:
    """Mood of frames [a, b) of `emotion` `(N, 6)` (and `faces` `(N, 8)` or None); see the module table."""
    n = emotion.shape[0]
    a, b = max(0, min(a, n - 1)), max(min(b, n), min(a, n - 1) + 1)
    e = emotion[a:b].astype(np.float64).mean(axis=0)
    energy = 0.55 * e[_COL["motion"]] + 0.30 * e[_COL["rhythm"]] + 0.15 * e[_COL["arousal"]]
    valence = e[_COL["valence"]] + 0.25 * (e[_COL["warmth"]] - 0.5)
    face_neg = 0.0
    if faces is not None and faces.shape[0] >= b and faces.shape[1] == 8:
        f = faces[a:b].astype(np.float64)
        has = f[:, 0] > 0
        if has.any():
            share = float(has.mean())
            p = f[has].mean(axis=0)
            valence += 0.30 * share * (p[_FACE["happy"]] - (p[_FACE["sad"]] + p[_FACE["fear"]] + p[_FACE["angry"]]) / 2)
            face_neg = share * (p[_FACE["fear"]] + p[_FACE["angry"]] + p[_FACE["surprise"]])
    energy, valence = float(np.clip(energy, 0, 1)), float(np.clip(valence, 0, 1))
    tension = 0.40 * e[_COL["low_key"]] + 0.35 * energy * (1 - valence) + 0.25 * face_neg
    return Mood(energy, valence, float(np.clip(tension, 0, 1)))


def mood_of_film(film, start_s: float = 0.0, end_s: float | None = None) -> Mood:
    """Mood of [start_s, end_s) of a `FilmFeatures` (the whole range by default)."""
    if film.emotion.shape[0] == 0:
        raise PlanError("film features hold no frames: no mood to read")
    end_s = film.duration_s if end_s is None else end_s
    return mood_of_range(film.emotion, film.faces, int(math.floor(start_s * film.fps)),
                         int(math.ceil(end_s * film.fps)))


@dataclass(frozen=True)
class MusicalChoices:
    """What a mood asks of the music (docs/plan.md, "From mood to music").

    tempo_bpm: the target tempo the tempo map bends around; mode; chords_per_bar (harmonic rhythm, 1 or 2);
    subdivision (rhythmic density: 1, 2 or 4 notes per beat in the figure); register: the melody's centre (MIDI
    pitch); orchestration: one of ORCHESTRATIONS; tonic: pitch class (None: from the theme or the style).
    """

    tempo_bpm: float
    mode: str
    chords_per_bar: int
    subdivision: int
    register: int
    orchestration: str
    tonic: int | None = None


def choices_from_mood(mood: Mood, overrides: MoodOverrides | None = None) -> MusicalChoices:
    """The documented mapping (docs/plan.md), then the editor's overrides."""
    o = overrides or MoodOverrides()
    o.check()
    m = o.apply(mood)
    m.check()
    # tempo: 60 BPM for a still scene to 168 for the busiest (fast tempo <-> high activity/arousal; Gabrielsson &
    # Lindstrom 2010, Juslin & Laukka 2003); tension pushes it up a little (urgency)
    tempo = 60.0 + 100.0 * m.energy + 8.0 * m.tension
    # mode: major for positive valence, minor for negative (Hevner 1935; Gabrielsson & Lindstrom 2010); high
    # tension tips a neutral scene to minor (Eerola, Friberg & Bresin 2013: minor adds to "scary" and "sad")
    mode = "major" if m.valence - 0.25 * max(0.0, m.tension - 0.5) >= 0.5 else "minor"
    chords_per_bar = 2 if m.energy >= 0.45 or m.tension >= 0.6 else 1
    subdivision = 1 if m.energy < 0.3 else 2 if m.energy < 0.65 else 4
    # register: higher for positive valence and energy, lower for tension (high pitch <-> happy/active, low <->
    # sad/threatening; Gabrielsson & Lindstrom 2010, Eerola et al. 2013); centre between G3 and E5
    register = int(round(67 + 8 * (m.valence - 0.5) + 4 * (m.energy - 0.5) - 6 * max(0.0, m.tension - 0.4)))
    if m.tension >= 0.6 or m.valence < 0.3:  # tense or sombre: low strings and brass
        orch = "dark"
    elif m.energy >= 0.6:
        orch = "full"
    elif m.valence >= 0.55 and m.energy >= 0.3:
        orch = "winds"
    else:
        orch = "strings"
    tonic, key_mode = (None, None) if o.key is None else parse_key(o.key)
    return MusicalChoices(
        tempo_bpm=float(o.tempo_bpm if o.tempo_bpm is not None else np.clip(tempo, MIN_BPM, MAX_BPM)),
        mode=key_mode or mode, chords_per_bar=chords_per_bar, subdivision=subdivision, register=register,
        orchestration=o.orchestration or orch, tonic=tonic)
