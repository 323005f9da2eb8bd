"""One denoising step's guided model calls over a cue's windows, run a few at a time (issue 23: memory flat in the
cue's length).

Classifier-free guidance with separate scales for picture (wp) and local controls (wc):
v = u + wp (p - u) + wc (pc - p), u = no picture and no control, p = picture, pc = picture + controls
(compositional guidance, Liu et al. 2022; Music ControlNet guides its controls the same way).

The calls of a step are fixed by the cue alone (`plan_calls`): the passes without controls form one stack of rows
(pass-major: every window of one pass, then every window of the next), the passes with controls another, and each
stack is cut into calls of `batch` rows: as few calls as the batch size allows, with shapes that depend on the cue
only (engine/threads.py). They are ordered by the first window they serve, and `StepFusion` takes their outputs in
that order: a window is guided and added into the step's fused output as soon as all its passes are in, in window
order (the order of a fusion of the whole step at once, so the same sum), and its rows are dropped. A step then
holds a few calls' rows, not every window's rows of every pass (at 10 minutes, 78 windows: ~40 MB of inputs,
outputs and guidance temporaries per step before, held at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .constants import LATENT_DOWNSAMPLE
from .windowed import Window

Row = tuple[str, int]  # (guidance pass, window index)


@dataclass(frozen=True)
class Guidance:
    """Which passes a step runs and how they combine."""

    picture: bool  # picture tokens given ("p" differs from "u")
    controls: bool  # local controls given (the "pc" pass runs the ControlNet)
    wp: float  # picture guidance scale
    wc: float  # control guidance scale

    def passes(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(passes without controls, passes with controls), each in stacking order. Without picture "p" is "u"; with
        controls, no picture and wc 1 the controlled pass alone gives v."""
        names = ["p"] + (["pc"] if self.controls else []) + (["u"] if self.picture and self.wp != 1.0 else [])
        if self.controls and not self.picture and self.wc == 1.0:
            names.remove("p")
        return tuple(n for n in names if n != "pc"), tuple(n for n in names if n == "pc")

    def combine(self, out: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The guided prediction from the passes' outputs (elementwise: rows of any windows)."""
        p = out.get("p", out.get("pc"))
        v = out["u"] + self.wp * (p - out["u"]) if self.picture and "u" in out else p
        if self.controls:
            v = v + self.wc * (out["pc"] - p)
        return v


@dataclass(frozen=True)
class GuidedCall:
    """One denoiser call: its rows in batch order; `controlled` calls feed the ControlNet its controls."""

    rows: tuple[Row, ...]
    controlled: bool

    @property
    def first_window(self) -> int:
        return min(j for _, j in self.rows)


def plan_calls(n_windows: int, guidance: Guidance, batch: int) -> list[GuidedCall]:
    """A step's calls (module docstring), ordered by the first window they serve (stably)."""
    calls = []
    for group, controlled in zip(guidance.passes(), (False, True), strict=True):
        rows = [(n, j) for n in group for j in range(n_windows)]
        calls += [GuidedCall(tuple(rows[a:a + batch]), controlled) for a in range(0, len(rows), batch)]
    return sorted(calls, key=lambda c: c.first_window)


class StepFusion:
    """One take's step: the calls' outputs `(rows, C, length)` in `plan_calls` order, each window guided and added
    into `fused` `(1, C, L)` with its fusion weights as soon as all its passes are in (windowed.py), then dropped."""

    def __init__(self, windows: list[Window], weights: list[torch.Tensor], guidance: Guidance, like: torch.Tensor):
        self.windows, self.weights, self.guidance = windows, weights, guidance
        self.names = [n for group in guidance.passes() for n in group]
        self.fused = torch.zeros_like(like)
        self.held: dict[Row, torch.Tensor] = {}
        self.next = 0  # first window not fused yet
        self.most_held = 0  # the most rows held at once (tests: bounded whatever the cue's length)

    def add(self, call: GuidedCall, out: torch.Tensor) -> None:
        for r, row in enumerate(call.rows):
            self.held[row] = out[r:r + 1]
        self.most_held = max(self.most_held, len(self.held))
        while self.next < len(self.windows) and all((n, self.next) in self.held for n in self.names):
            j, w = self.next, self.windows[self.next]
            v = self.guidance.combine({n: self.held.pop((n, j)) for n in self.names})
            self.fused[..., w.start:w.start + w.length] += v * self.weights[j]
            self.next += 1

    def result(self) -> torch.Tensor:
        if self.next != len(self.windows):
            raise RuntimeError(f"step fused {self.next} of {len(self.windows)} windows")
        return self.fused


def call_inputs(call: GuidedCall, x: torch.Tensor, t: float, windows: list[Window], tokens: torch.Tensor | None,
                null: torch.Tensor, controls: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """A call's denoiser inputs `(sample, timestep, tokens, controls)`, its rows copied out of the whole cue's
    tensors: the latent `x` `(1, C, L)`, the windows' picture tokens `(n_windows, K, D)` (None: no picture), the
    null tokens `(1, K, D)` and the controls `(1, 14, L * LATENT_DOWNSAMPLE)`."""
    a = LATENT_DOWNSAMPLE
    ws = [windows[j] for _, j in call.rows]
    sample = torch.cat([x[..., w.start:w.start + w.length] for w in ws])
    toks = torch.stack([null[0] if n == "u" or tokens is None else tokens[j] for n, j in call.rows])
    ctrl = None
    if call.controlled:
        ctrl = torch.cat([controls[..., w.start * a:(w.start + w.length) * a] for w in ws])
    return sample, torch.full((len(ws),), t), toks, ctrl
