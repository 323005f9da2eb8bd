"""`Controls`: the local controls of a cue (melody + dynamics) as they cross module boundaries.

Definitions follow Music ControlNet (arXiv 2311.07069): melody is the one-hot pitch class of the leading voice per
frame (all-zero rows are rests / unvoiced), dynamics is smoothed loudness in dB. Frame i covers
[i / frame_rate, (i + 1) / frame_rate) seconds, frame_rate = 100 (the Mel frame grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import CONTROL_FRAME_RATE, N_PITCH_CLASSES
from ..errors import FilmscoreError

N_CONTROL_CHANNELS = N_PITCH_CLASSES + 2
"""Channels the ControlNet sees: 12 melody + 1 dynamics + 1 "control present" flag."""

DYNAMICS_SCALE_DB = 12.0
"""Model input for dynamics: (dB - mean dB of the cue) / 12 dB, clipped to +-3. Centring makes MIDI velocity
curves and audio energy curves comparable (their absolute levels differ); loudness is normalised at delivery."""


@dataclass(frozen=True)
class Controls:
    """Melody `(T, 12)` float32 and dynamics `(T,)` float32 dB at `frame_rate` frames per second.

    `melody_present` / `dynamics_present` say whether the user gave each control; an absent one is not
    followed (the model sees zeros and a cleared "present" flag for it).
    """

    melody: np.ndarray
    dynamics: np.ndarray
    melody_present: bool = True
    dynamics_present: bool = True
    frame_rate: int = CONTROL_FRAME_RATE

    def __post_init__(self) -> None:
        if self.melody.ndim != 2 or self.melody.shape[1] != N_PITCH_CLASSES:
            raise ValueError(f"melody must be (T, {N_PITCH_CLASSES}), got {self.melody.shape}")
        if self.dynamics.shape != (self.melody.shape[0],):
            raise ValueError(f"dynamics must be (T,) = ({self.melody.shape[0]},), got {self.dynamics.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.melody.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.frame_rate

    @classmethod
    def absent(cls, n_frames: int) -> Controls:
        """No local control: the cue follows the picture alone."""
        return cls(np.zeros((n_frames, N_PITCH_CLASSES), np.float32), np.zeros(n_frames, np.float32), False, False)

    def fit_length(self, n_frames: int) -> Controls:
        """Trim, or pad with rests and the last dynamics value, to exactly `n_frames`."""
        t = self.n_frames
        if t >= n_frames:
            mel, dyn = self.melody[:n_frames], self.dynamics[:n_frames]
        else:
            mel = np.concatenate([self.melody, np.zeros((n_frames - t, N_PITCH_CLASSES), np.float32)])
            last = self.dynamics[-1] if t else 0.0
            dyn = np.concatenate([self.dynamics, np.full(n_frames - t, last, np.float32)])
        return Controls(mel.astype(np.float32), dyn.astype(np.float32), self.melody_present, self.dynamics_present,
                        self.frame_rate)

    def to_model_input(self) -> np.ndarray:
        """`(14, T)` float32: melody (12), normalised dynamics (1), present flag (1)."""
        out = np.zeros((N_CONTROL_CHANNELS, self.n_frames), np.float32)
        if self.melody_present:
            out[:N_PITCH_CLASSES] = self.melody.T
        if self.dynamics_present and self.n_frames:
            d = self.dynamics.astype(np.float64)
            out[N_PITCH_CLASSES] = np.clip((d - d.mean()) / DYNAMICS_SCALE_DB, -3.0, 3.0)
        if self.melody_present or self.dynamics_present:
            out[N_PITCH_CLASSES + 1] = 1.0
        return out

    def save_npz(self, path: str | Path) -> None:
        """Write `melody`, `dynamics`, `frame_rate` (the documented controls file) plus the present flags."""
        np.savez_compressed(path, melody=self.melody.astype(np.float32), dynamics=self.dynamics.astype(np.float32),
                            frame_rate=np.int32(self.frame_rate), melody_present=self.melody_present,
                            dynamics_present=self.dynamics_present)

    @classmethod
    def load_npz(cls, path: str | Path) -> Controls:
        try:
            with np.load(path) as z:
                rate = int(z["frame_rate"])
                if rate != CONTROL_FRAME_RATE:
                    raise FilmscoreError(f"controls file {path}: frame_rate {rate}, expected {CONTROL_FRAME_RATE}")
                return cls(z["melody"].astype(np.float32), z["dynamics"].astype(np.float32),
                           bool(z["melody_present"]) if "melody_present" in z else True,
                           bool(z["dynamics_present"]) if "dynamics_present" in z else True, rate)
        except (OSError, KeyError, ValueError) as e:
            raise FilmscoreError(f"controls file {path}: cannot read ({e})") from e
