"""Schedulers: diffusers' own, behind their one interface (`set_timesteps(n)` -> `.timesteps`,
`scale_model_input`, `step(model_output, t, sample, generator=...)`). filmscore writes no scheduler of its own.

All are configured for the default model's training: v-prediction (Salimans & Ho 2022), cosine noise schedule
("squaredcos_cap_v2", Nichol & Dhariwal 2021), "trailing" timestep spacing (Lin et al. 2024) so that few-step
sampling starts from pure noise.
"""

from __future__ import annotations

from typing import Any

from .errors import RequestError
from .options import SCHEDULERS

DEFAULT_NOISE_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
}


def make_scheduler(name: str, noise_schedule: dict[str, Any] | None = None):
    """A fresh diffusers scheduler by filmscore name: "ddim", "dpmpp" (DPM-Solver++ 2M), "euler"."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    cfg = dict(DEFAULT_NOISE_SCHEDULE if noise_schedule is None else noise_schedule)
    if name == "ddim":
        return DDIMScheduler(**cfg, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
    if name == "dpmpp":
        return DPMSolverMultistepScheduler(**cfg, algorithm_type="dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing", final_sigmas_type="zero")
    if name == "euler":
        return EulerDiscreteScheduler(**cfg, timestep_spacing="trailing")
    raise RequestError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
