"""`ControlsV2`: the local controls of bundle v2 and the ControlNet input they make (`CONTROL_CHANNELS_V2` rows at
100 frames/s). One owner of the channel layout: the v2 corpus reader, the v2 training stage and the v2 sampler all
build the ControlNet's input through `ControlsV2.to_model_input`.

Four groups, each with its own "present" flag so the model can tell "absent" from "silent", and each dropped alone
during training (condition dropout) so the sampler can guide each with its own scale:

| group | rows | content |
|---|---|---|
| melody | 0-11, 12, 13 | pitch class one-hot of the lead (v1's melody); the lead's register: (MIDI pitch - 60) / 12, octaves from middle C, 0 where it rests; present |
| dynamics | 14, 15 | loudness in dB, centred on the cue's mean and scaled by v1's `DYNAMICS_SCALE_DB`, clipped to +-3; present |
| harmony | 16-27, 28-39, 40, 41 | chord chroma (pitch classes of the triad in effect); bass pitch class one-hot; bass register (MIDI - 48) / 12 where a bass sounds; present |
| rhythm | 42, 43, 44 | beat and downbeat activations (Music ControlNet's rhythm control): a Gaussian bump (sigma `BEAT_SIGMA_FRAMES`, peak 1) on each beat frame, so a strided control encoder cannot step over a 1-frame impulse; present |

The arrays are the corpus v2 label arrays (engine/data/labels.py: `melody_pitch`, `dynamics_db`, `chord_chroma`,
`bass_pitch`, `beat`, `downbeat`), so `from_labels` is the identity on the label keys; a sampler builds the same
arrays from a theme or a cue plan. A group whose array is None is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..constants import CONTROL_FRAME_RATE, N_PITCH_CLASSES
from ..controls.types import DYNAMICS_SCALE_DB
from ..errors import FilmscoreError

CONTROL_GROUPS_V2: dict[str, slice] = {
    "melody": slice(0, 14),
    "dynamics": slice(14, 16),
    "harmony": slice(16, 42),
    "rhythm": slice(42, 45),
}
CONTROL_CHANNELS_V2 = 45
MELODY_REGISTER_REF = 60  # register rows: octaves from middle C
BASS_REGISTER_REF = 48  # ... from C3
BEAT_SIGMA_FRAMES = 1.5


def _bump_kernel() -> np.ndarray:
    r = int(np.ceil(3 * BEAT_SIGMA_FRAMES))
    x = np.arange(-r, r + 1, dtype=np.float64)
    return np.exp(-0.5 * (x / BEAT_SIGMA_FRAMES) ** 2)


def beat_activation(impulses: np.ndarray) -> np.ndarray:
    """`(T,)` 0/1 beat frames -> `(T,)` float32 activation in [0, 1] (a bump of peak 1 per beat)."""
    k = _bump_kernel()
    act = np.convolve(np.asarray(impulses, np.float64), k, mode="same")
    return np.clip(act, 0.0, 1.0).astype(np.float32)


class ControlsV2Error(FilmscoreError):
    """Control arrays of inconsistent lengths or shapes."""


@dataclass(frozen=True)
class ControlsV2:
    """Frame arrays at 100 frames/s, all of length `n_frames`; None = the group is absent (not followed)."""

    n_frames: int
    melody_pitch: np.ndarray | None = None  # (T,) MIDI pitch of the lead, 0 = rest
    dynamics_db: np.ndarray | None = None  # (T,) dB
    chord_chroma: np.ndarray | None = None  # (T, 12) 0/1
    bass_pitch: np.ndarray | None = None  # (T,) MIDI, 0 = none (harmony group; needs chord_chroma)
    beat: np.ndarray | None = None  # (T,) 0/1 beat frames
    downbeat: np.ndarray | None = None  # (T,) 0/1 downbeat frames (rhythm group; needs beat)
    frame_rate: int = CONTROL_FRAME_RATE

    def __post_init__(self) -> None:
        shapes = {"melody_pitch": (self.n_frames,), "dynamics_db": (self.n_frames,),
                  "chord_chroma": (self.n_frames, N_PITCH_CLASSES), "bass_pitch": (self.n_frames,),
                  "beat": (self.n_frames,), "downbeat": (self.n_frames,)}
        for name, shape in shapes.items():
            a = getattr(self, name)
            if a is not None and tuple(np.shape(a)) != shape:
                raise ControlsV2Error(f"control {name}: shape {tuple(np.shape(a))}, expected {shape}")
        if self.frame_rate != CONTROL_FRAME_RATE:
            raise ControlsV2Error(f"controls at {self.frame_rate} frames/s; the model reads {CONTROL_FRAME_RATE}")

    @property
    def present(self) -> dict[str, bool]:
        return {"melody": self.melody_pitch is not None, "dynamics": self.dynamics_db is not None,
                "harmony": self.chord_chroma is not None, "rhythm": self.beat is not None}

    @classmethod
    def from_labels(cls, arrays: dict[str, np.ndarray], groups: tuple[str, ...] = tuple(CONTROL_GROUPS_V2)
                    ) -> ControlsV2:
        """The controls a corpus v2 clip's labels (`labels.load_labels`) state; `groups` keeps only those."""
        n = int(len(arrays["melody_pitch"]))

        def get(key: str, group: str) -> np.ndarray | None:
            return np.asarray(arrays[key]) if group in groups and key in arrays else None

        return cls(n, melody_pitch=get("melody_pitch", "melody"), dynamics_db=get("dynamics_db", "dynamics"),
                   chord_chroma=get("chord_chroma", "harmony"), bass_pitch=get("bass_pitch", "harmony"),
                   beat=get("beat", "rhythm"), downbeat=get("downbeat", "rhythm"))

    def without(self, *groups: str) -> ControlsV2:
        """These controls with `groups` absent."""
        unknown = set(groups) - set(CONTROL_GROUPS_V2)
        if unknown:
            raise ControlsV2Error(f"unknown control group(s) {sorted(unknown)}; groups: {', '.join(CONTROL_GROUPS_V2)}")
        keys = {"melody": ("melody_pitch",), "dynamics": ("dynamics_db",), "harmony": ("chord_chroma", "bass_pitch"),
                "rhythm": ("beat", "downbeat")}
        return replace(self, **{k: None for g in groups for k in keys[g]})

    def fit_length(self, n: int) -> ControlsV2:
        """Cut or pad to `n` frames: pitches, chords and beats pad with "none", dynamics with its last value."""
        def fit(a: np.ndarray | None, edge: bool = False) -> np.ndarray | None:
            if a is None:
                return None
            a = np.asarray(a)
            if len(a) >= n:
                return a[:n]
            pad = [(0, n - len(a))] + [(0, 0)] * (a.ndim - 1)
            return np.pad(a, pad, mode="edge" if edge and len(a) else "constant")

        return ControlsV2(n, fit(self.melody_pitch), fit(self.dynamics_db, edge=True), fit(self.chord_chroma),
                          fit(self.bass_pitch), fit(self.beat), fit(self.downbeat), self.frame_rate)

    def to_model_input(self) -> np.ndarray:
        """`(CONTROL_CHANNELS_V2, T)` float32, the module docstring's layout; absent groups are all zero."""
        n = self.n_frames
        out = np.zeros((CONTROL_CHANNELS_V2, n), np.float32)
        if self.melody_pitch is not None:
            p = np.asarray(self.melody_pitch, np.int64)
            voiced = p > 0
            out[p[voiced] % N_PITCH_CLASSES, np.nonzero(voiced)[0]] = 1.0
            out[12, voiced] = (p[voiced] - MELODY_REGISTER_REF) / 12.0
            out[13] = 1.0
        if self.dynamics_db is not None and n:
            d = np.asarray(self.dynamics_db, np.float64)
            out[14] = np.clip((d - d.mean()) / DYNAMICS_SCALE_DB, -3.0, 3.0)
            out[15] = 1.0
        if self.chord_chroma is not None:
            out[16:28] = np.asarray(self.chord_chroma, np.float32).T
            if self.bass_pitch is not None:
                b = np.asarray(self.bass_pitch, np.int64)
                on = b > 0
                out[28 + b[on] % N_PITCH_CLASSES, np.nonzero(on)[0]] = 1.0
                out[40, on] = (b[on] - BASS_REGISTER_REF) / 12.0
            out[41] = 1.0
        if self.beat is not None:
            out[42] = beat_activation(self.beat)
            if self.downbeat is not None:
                out[43] = beat_activation(self.downbeat)
            out[44] = 1.0
        return out


def drop_groups(controls: torch.Tensor, keep: dict[str, torch.Tensor]) -> torch.Tensor:
    """Zero, per batch row, the rows of every group whose `keep[group]` `(B,)` is False: a copy of `(B, C, T)`.
    The training stage's condition dropout and the sampler's guidance passes both go through here, so a group
    dropped in training looks exactly like a group left out at sampling time."""
    out = controls.clone()
    for group, rows in CONTROL_GROUPS_V2.items():
        k = keep.get(group)
        if k is not None:
            out[:, rows] = out[:, rows] * k.to(out.dtype)[:, None, None]
    return out
