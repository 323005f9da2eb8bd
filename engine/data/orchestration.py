"""Film-score orchestrations: which General MIDI instrument plays which role of a clip.

A film theme is a melody over an accompaniment, so the leading voice always has its own instrument (never one
the accompaniment uses) and is mixed clearly louder (`LEAD_VOLUME` against `ACCOMP_VOLUME`, CC7): on four
equal voices even the real audio re-extracts its melody at only 0.44 (../shared/MEASURED.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AccompStyle = Literal["block", "arpeggio", "pulse"]

LEAD_VOLUME = 127  # CC7 of the leading voice's channel
ACCOMP_VOLUME = 64  # CC7 of accompaniment channels (SoundFont curve 40 log10(64/127): -12 dB against the lead)
DOUBLE_VOLUME = 90  # CC7 of an instrument doubling the lead (-6 dB): keeps a decaying lead's long notes audible
PAD_VOLUME = 64
PERC_VOLUME = 100
REVERB_SEND = 50  # CC91 on every channel: a hall, not a cathedral (reverb smears the melody control)


@dataclass(frozen=True)
class Orchestration:
    """GM programs (0-127) per role. `upper` plays the inner voices (or the chords under a single-line tune),
    `bass` the lowest voice, `pad` a sustained chord per bar (None: no pad); `percussion` adds timpani and
    cymbal hits on loud phrase starts and accents; `style` is how chords under a single-line tune move."""

    name: str
    lead: int
    upper: int
    bass: int
    pad: int | None = None
    percussion: bool = False
    style: AccompStyle = "block"
    accomp_volume: int = ACCOMP_VOLUME
    lead_double: int | None = None  # a sustained instrument doubling a decaying lead (piano, celesta) in unison

    def __post_init__(self) -> None:
        taken = (self.upper, self.bass, self.pad)
        if self.lead in taken or (self.lead_double is not None and self.lead_double in taken):
            raise ValueError(f"orchestration {self.name}: the lead must have its own instrument")


ORCHESTRATIONS: tuple[Orchestration, ...] = (
    Orchestration("strings", lead=40, upper=48, bass=42, style="block"),  # violin over string ensemble, cello
    Orchestration("strings_pizzicato", lead=40, upper=45, bass=43, pad=49, style="pulse"),
    Orchestration("brass", lead=60, upper=61, bass=58, percussion=True, style="block"),  # horn over brass, tuba
    Orchestration("heroic", lead=56, upper=48, bass=57, pad=52, percussion=True, style="pulse"),  # trumpet, choir
    Orchestration("woodwinds", lead=73, upper=71, bass=70, style="arpeggio"),  # flute, clarinets, bassoon
    Orchestration("pastoral", lead=68, upper=46, bass=42, pad=49, style="arpeggio"),  # oboe over harp, strings
    # a piano or celesta note dies away within a second or two: a violin / flute doubles the theme (measured:
    # piano alone over strings re-extracts its melody at ~0.6, doubled much higher; docs/dataset.md)
    Orchestration("piano", lead=0, upper=49, bass=43, style="arpeggio", lead_double=40),
    Orchestration("choir", lead=69, upper=52, bass=42, pad=89, style="block"),  # cor anglais, choir, warm pad
    Orchestration("celesta", lead=8, upper=48, bass=42, pad=88, style="arpeggio", lead_double=73),
    Orchestration("epic", lead=60, upper=48, bass=57, pad=52, percussion=True, style="pulse"),
)
BY_NAME = {o.name: o for o in ORCHESTRATIONS}

TIMPANI = 47
DRUM_CHANNEL = 9
CRASH_CYMBAL = 49  # GM percussion key
BASS_DRUM = 36
