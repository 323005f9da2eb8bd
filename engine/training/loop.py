"""What every training stage shares: checkpoint directory, resume, EMA, JSONL log, time budget, progress."""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import FilmscoreError

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_DIR = Path(os.environ.get("FILMSCORE_TRAIN_DIR", Path.home() / ".cache" / "filmscore" / "train"))


class TrainingDeviceError(FilmscoreError):
    """A training device was asked for that this machine does not have."""


def resolve_device(name: str = "auto") -> torch.device:
    """The device a stage trains on: "auto" takes the first CUDA GPU when PyTorch sees one, else the CPU; "cuda"
    (or "cuda:N") without a usable GPU is an error rather than a silent fall back to hours of CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise TrainingDeviceError(f"--device {name!r}: not a device PyTorch knows ({e}); use cpu, cuda or auto") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingDeviceError(f"--device {name}: PyTorch sees no CUDA GPU here (torch {torch.__version__}, "
                                      f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu, or install a "
                                      f"CUDA build of torch")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingDeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise TrainingDeviceError(f"--device {name}: training runs on cpu or cuda")
    return device


def model_config(model: torch.nn.Module) -> dict[str, Any]:
    """A model's constructor arguments. Drops diffusers' private keys: `_use_default_values` would make
    `from_config` reset values changed after construction (the VAE's scaling_factor) to their defaults."""
    return {k: v for k, v in dict(model.config).items() if not k.startswith("_")}


class EMA:
    """Exponential moving average of a model's weights (the weights that get shipped)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm-up: follow closely at first
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)


@dataclass
class Run:
    """A stage's state on disk: `<train_dir>/<stage>/latest.pt` and `log.jsonl`."""

    stage: str
    train_dir: Path = DEFAULT_TRAIN_DIR
    step: int = 0
    seconds: float = 0.0  # training seconds across resumes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.train_dir / self.stage

    @property
    def ckpt(self) -> Path:
        return self.dir / "latest.pt"

    def log(self, **record: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        record = {"step": self.step, "seconds": round(self.seconds, 1), "time": time.time(), **record}
        with open(self.dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        """The records of `log.jsonl` (none when there is no log), skipping a line torn by a kill mid-write."""
        path = self.dir / "log.jsonl"
        if not path.is_file():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def save(self, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer, ema: dict[str, EMA]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"step": self.step, "seconds": self.seconds, "extra": self.extra,
                 "modules": {k: m.state_dict() for k, m in modules.items()},
                 "configs": {k: model_config(m) for k, m in modules.items() if hasattr(m, "config")},
                 "ema": {k: e.model.state_dict() for k, e in ema.items()}, "optimizer": optimizer.state_dict()}
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.ckpt)

    def load(self) -> dict[str, Any] | None:
        if not self.ckpt.is_file():
            return None
        state = torch.load(self.ckpt, map_location="cpu", weights_only=False)
        self.step, self.seconds, self.extra = state["step"], state["seconds"], state.get("extra", {})
        return state


def restore(state: dict[str, Any], modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
            ema: dict[str, EMA]) -> None:
    for k, m in modules.items():
        m.load_state_dict(state["modules"][k])
    for k, e in ema.items():
        e.model.load_state_dict(state["ema"][k])
    optimizer.load_state_dict(state["optimizer"])


COOLDOWN_FLOOR = 0.05  # a cooldown ends at this fraction of the learning rate


def wall_clock() -> float:
    """The clock a `Budget` reads unless given its own: monotonic seconds. Tests replace it (or pass `clock=`) so that
    a busy machine cannot change what a step-counted run does."""
    return time.monotonic()


class Budget:
    """Stop after `minutes` of wall time (this invocation) or `max_steps` total steps; checkpoint every `every_s`.
    With `cooldown`, the learning rate falls linearly to COOLDOWN_FLOOR of its value over the budget (whichever of
    time or steps runs out first): the decay phase of a warmup-stable-decay schedule (Hägele et al. 2024, "Scaling
    Laws and Compute-Optimal Training Beyond Fixed Training Durations"), for the last run before a bundle ships.
    `clock` (default `wall_clock`) is injected so that tests count steps, not seconds."""

    def __init__(self, minutes: float, max_steps: int | None = None, every_s: float = 120.0, cooldown: bool = False,
                 clock: Callable[[], float] | None = None):
        self.clock = clock or wall_clock
        self.start_time = self.clock()
        self.end = self.start_time + minutes * 60
        self.max_steps = max_steps
        self.every_s = every_s
        self.last_save = self.start_time
        self.cooldown = cooldown
        self.start_step = 0

    def begin(self, step: int) -> None:
        self.start_step = step

    def done(self, step: int) -> bool:
        return self.clock() >= self.end or (self.max_steps is not None and step >= self.max_steps)

    def progress(self, step: int) -> float:
        """How much of this invocation's budget is spent, 0..1."""
        span = self.end - self.start_time
        frac = (self.clock() - self.start_time) / span if span > 0 else 1.0  # no time at all: spent
        if self.max_steps is not None and self.max_steps > self.start_step:
            frac = max(frac, (step - self.start_step) / (self.max_steps - self.start_step))
        return min(max(frac, 0.0), 1.0)

    def lr_scale(self, step: int) -> float:
        return 1.0 - (1.0 - COOLDOWN_FLOOR) * self.progress(step) if self.cooldown else 1.0

    def save_due(self) -> bool:
        now = self.clock()
        if now - self.last_save >= self.every_s:
            self.last_save = now
            return True
        return False


RELOAD_EVERY = 200  # steps between looks for corpus clips appended while it is still being built
LOG_EVERY = 25


def run_steps(run: Run, budget: Budget, corpus, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
              ema: dict[str, EMA], loss_fn: Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]],
              progress: Callable[[int, dict], None] | None = None,
              lr_at: Callable[[int], float] | None = None) -> Run:
    # lr_at(step): the schedule's learning rate, set on the optimizer before each step (a cooldown scales it);
    # None leaves the optimizer's own, e.g. the one restored from a checkpoint
    """The loop every stage shares: `loss_fn()` -> (loss, named parts to log); AdamW step with gradient clipping at
    1, EMA update, JSONL log every LOG_EVERY steps, checkpoint on the budget's schedule and at the end. Each call
    appends a record of itself to `run.extra["sessions"]` (steps, hours, device, threads, corpus size), which a
    bundle's provenance carries: a model trained across resumes, machines and a growing corpus says so."""
    params = [p for m in modules.values() for p in m.parameters()]
    session = {"from_step": run.step, "host": platform.node(), "device": str(params[0].device) if params else "cpu",
               "threads": torch.get_num_threads(), "corpus_hours_from": round(corpus.hours, 2),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    seconds0 = run.seconds
    budget.begin(run.step)
    if budget.cooldown:
        session["cooldown"] = True
    for m in modules.values():
        m.train()
    while not budget.done(run.step):
        t0 = time.perf_counter()
        if run.step % RELOAD_EVERY == 0:
            corpus.reload()
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(run.step) * budget.lr_scale(run.step)
        loss, parts = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        for k, e in ema.items():
            e.update(modules[k], run.step)
        run.step += 1
        run.seconds += time.perf_counter() - t0
        if run.step % LOG_EVERY == 0:
            values = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}
            run.log(**values, hours=round(corpus.hours, 2), lr=optimizer.param_groups[0]["lr"])
            if progress:
                progress(run.step, values)
        if budget.save_due():
            run.save(modules, optimizer, ema)
    if run.step > session["from_step"]:
        session.update(to_step=run.step, hours=round((run.seconds - seconds0) / 3600, 3),
                       corpus_hours_to=round(corpus.hours, 2))
        run.extra.setdefault("sessions", []).append(session)
        run.log(session=session)
    run.save(modules, optimizer, ema)
    return run


STAGES = ("vae", "vocoder", "ldm", "controlnet")


def stage_status(train_dir: Path, stage: str, tail: int = 8) -> dict[str, Any] | None:
    """Where a stage stands, from its log alone (checkpoints are hundreds of MB): steps, training hours, the mean
    of the last `tail` logged losses, learning rate, corpus hours, latest held-out loss, sessions, and how long ago
    it last wrote. None when the stage has no log."""
    run = Run(stage, Path(train_dir))
    records = run.read_log()
    if not records:
        return None
    losses = [r["loss"] for r in records if "loss" in r][-tail:]
    held = [(r["step"], k[len("heldout_loss_"):], v) for r in records for k, v in r.items()
            if k.startswith("heldout_loss_")]
    last = records[-1]
    ckpt = run.ckpt
    return {"stage": stage, "step": last["step"], "train_hours": round(last.get("seconds", 0.0) / 3600, 3),
            "loss": round(sum(losses) / len(losses), 4) if losses else None,
            "lr": next((r["lr"] for r in reversed(records) if "lr" in r), None),
            "corpus_hours": next((r["hours"] for r in reversed(records) if "hours" in r), None),
            "heldout_loss": [{"step": s, "split": k, "loss": v} for s, k, v in held[-4:]],
            "sessions": [r["session"] for r in records if "session" in r],
            "last_write_s_ago": round(time.time() - last.get("time", time.time())),
            "checkpoint": str(ckpt) if ckpt.is_file() else None,
            "checkpoint_mb": round(ckpt.stat().st_size / 1e6, 1) if ckpt.is_file() else None}
