"""Corpus v2 orchestrations: film-scoring textures, stems and the stereo seating of every instrument.

A v2 clip is rendered per stem: **lead** (the theme and its doubling), **accompaniment** (harmony and bass: the
work's other parts, chords, pads, string ostinati, piano or harp arpeggios, brass swells) and **percussion**
(timpani, low hits, bass drum and cymbals on accents). Every instrument sits at a fixed place in the stereo field,
as an orchestra is seated seen from the hall (`PAN_BY_PROGRAM`); the soloist sits at half its section's offset.
v1's orchestrations (`orchestration.py`) are unchanged: a v1 corpus builds as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

STEMS: tuple[str, ...] = ("lead", "accompaniment", "percussion")
Texture = Literal["ostinato", "arpeggio", "pulse", "block"]
Percussion = Literal["none", "timpani", "full"]

# CC7 per role. SoundFont volume curve: 40 log10(v / 127) dB, so 64 is -12 dB against 127.
LEAD_VOLUME_V2 = 120
DOUBLE_VOLUME_V2 = 85
HARMONY_VOLUME = 72  # the work's inner parts, block chords, pulses, ostinati, arpeggios
BASS_VOLUME = 80
PAD_VOLUME_V2 = 58
SWELL_VOLUME = 70
TIMPANI_VOLUME = 96
HITS_VOLUME = 92

TIMPANI_PROGRAM = 47
TAIKO_PROGRAM = 116  # the GM "Taiko Drum": the low hit under an accent
DRUM_CHANNEL = 9
BASS_DRUM_KEY, CRASH_KEY, SUSPENDED_CYMBAL_KEY = 35, 49, 57  # GM percussion keys

# Pan in [-1 (left), +1 (right)] by GM program: the usual film-orchestra seating seen from the hall (violins left,
# cellos and basses right, horns left, trumpets / trombones / tuba right, woodwinds centre, harp far left).
PAN_BY_PROGRAM: dict[int, float] = {
    0: -0.35, 8: -0.45, 9: -0.45, 11: 0.4,  # piano, celesta, glockenspiel, vibraphone
    40: -0.65, 41: 0.15, 42: 0.45, 43: 0.7, 44: -0.4, 45: -0.4, 46: -0.75, 47: 0.25,  # strings, harp, timpani
    48: -0.4, 49: 0.35, 50: -0.3, 52: 0.0, 53: 0.0, 54: 0.0,  # string ensembles, choir
    56: 0.35, 57: 0.5, 58: 0.65, 60: -0.5, 61: 0.2,  # trumpet, trombone, tuba, horn, brass section
    68: 0.15, 69: 0.2, 70: 0.35, 71: -0.2, 72: -0.15, 73: -0.2,  # oboe, cor anglais, bassoon, clarinet, flutes
    88: 0.0, 89: 0.0, 91: 0.0, 116: -0.3,  # pads, taiko
}
DRUMS_PAN = 0.0
LEAD_PAN_SCALE = 0.5  # a soloist stands nearer the centre than its section

# Where the lead's median pitch may sit per GM program (MIDI), so the theme stays in a register the instrument
# plays: the written register where it fits, else moved by octaves into this range.
LEAD_RANGE: dict[int, tuple[int, int]] = {
    40: (62, 84), 42: (50, 69), 60: (55, 74), 56: (62, 79), 73: (67, 88), 68: (64, 84), 69: (57, 77),
    71: (57, 79), 0: (60, 84), 8: (67, 91),
}
DEFAULT_LEAD_RANGE = (60, 81)


def pan_of(program: int | None, lead: bool = False) -> float:
    """Stereo position of a GM program (None: the drum kit)."""
    p = DRUMS_PAN if program is None else PAN_BY_PROGRAM.get(program, 0.0)
    return p * LEAD_PAN_SCALE if lead else p


def pan_cc(pan: float) -> int:
    """MIDI CC10 value of a pan position in [-1, 1] (64 is the centre)."""
    return int(round(64 + 63 * max(-1.0, min(1.0, pan))))


@dataclass(frozen=True)
class OrchestrationV2:
    """GM programs per role of a v2 clip.

    lead (+ lead_double, a sustained instrument doubling a decaying lead in unison): the lead stem.
    harmony: the work's inner parts, or the chords under a single-line tune, moving as `texture` says
    ("ostinato": a repeated root-fifth-octave figure in 8ths or 16ths; "arpeggio": broken chords over two
    octaves; "pulse": repeated chords on the beats; "block": held chords); bass: the lowest part or the chord
    roots; pad: the chord held per harmony slot (None: no pad); swell: a brass chord swelling into every new
    phrase (None: none). percussion: "timpani" hits accents on the timpani; "full" adds a low taiko hit, bass drum
    and cymbal on accents and timpani on the downbeats of loud phrases.
    """

    name: str
    lead: int
    harmony: int
    bass: int
    texture: Texture
    pad: int | None = None
    swell: int | None = None
    percussion: Percussion = "none"
    lead_double: int | None = None

    def __post_init__(self) -> None:
        taken = (self.harmony, self.bass, self.pad, self.swell)
        if self.lead in taken or (self.lead_double is not None and self.lead_double in taken):
            raise ValueError(f"orchestration {self.name}: the lead must have its own instrument")


ORCHESTRATIONS_V2: tuple[OrchestrationV2, ...] = (
    # violin over a string ostinato, slow strings pad, contrabass
    OrchestrationV2("string_ostinato", lead=40, harmony=48, bass=43, texture="ostinato", pad=49,
                    percussion="timpani"),
    # horns over driving strings, brass swells, choir pad, timpani + taiko + cymbals: the trailer sound
    OrchestrationV2("epic", lead=60, harmony=48, bass=57, texture="ostinato", pad=52, swell=61, percussion="full"),
    # flute over piano arpeggios and a string pad
    OrchestrationV2("piano_arpeggio", lead=73, harmony=0, bass=42, texture="arpeggio", pad=49),
    # oboe over harp arpeggios, strings
    OrchestrationV2("pastoral", lead=68, harmony=46, bass=42, texture="arpeggio", pad=49),
    # trumpet over pulsing strings, brass swells, timpani on the downbeats
    OrchestrationV2("heroic", lead=56, harmony=48, bass=58, texture="pulse", swell=61, percussion="full"),
    # cor anglais over a choir and warm pad, held chords
    OrchestrationV2("choir_pad", lead=69, harmony=52, bass=43, texture="block", pad=89, percussion="timpani"),
    # clarinet over plucked strings in 8ths, bassoon
    OrchestrationV2("woodwinds_pizzicato", lead=71, harmony=45, bass=70, texture="ostinato", pad=49),
    # celesta doubled by a flute over tremolo strings and a pad: the fairy-tale / suspense colour
    OrchestrationV2("celesta_tremolo", lead=8, harmony=44, bass=43, texture="block", pad=88, lead_double=72),
    # piano theme doubled by violins over string arpeggios, horn swells
    OrchestrationV2("piano_theme", lead=0, harmony=49, bass=42, texture="arpeggio", swell=60, lead_double=40),
    # cello theme over a harp and strings: the intimate register
    OrchestrationV2("cello_theme", lead=42, harmony=46, bass=43, texture="arpeggio", pad=49, percussion="timpani"),
)
BY_NAME_V2 = {o.name: o for o in ORCHESTRATIONS_V2}
