"""The shared training loop: the learning-rate cooldown and the session record every invocation leaves."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from filmscore.engine.metrics.testing import make_tiny_corpus
from filmscore.engine.models import MelVAE
from filmscore.engine.training.corpus_data import Corpus
from filmscore.engine.training.loop import COOLDOWN_FLOOR, Budget, Run
from filmscore.engine.training.train_vae import train_vae


class FakeClock:
    """A clock the test moves by hand: the budget's arithmetic is checked without reading the wall clock."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_budget_progress_is_the_larger_of_time_and_steps():
    clock = FakeClock()
    b = Budget(minutes=60, max_steps=110, cooldown=True, clock=clock)
    b.begin(10)
    assert b.progress(10) == 0.0 and b.progress(60) == pytest.approx(0.5)
    clock.now += 45 * 60  # three quarters of the time spent, a tenth of the steps: time leads
    assert b.progress(20) == pytest.approx(0.75) and not b.done(20)
    assert b.lr_scale(110) == pytest.approx(COOLDOWN_FLOOR)
    clock.now += 15 * 60
    assert b.done(20) and b.progress(20) == 1.0  # time is up
    assert Budget(minutes=60, max_steps=110, clock=clock).lr_scale(100) == 1.0  # no cooldown asked
    assert Budget(minutes=0, clock=clock).progress(0) == 1.0  # no time at all


def test_budget_saves_on_its_clock():
    clock = FakeClock()
    b = Budget(minutes=60, every_s=120, clock=clock)
    assert not b.save_due()
    clock.now += 119.9
    assert not b.save_due()
    clock.now += 0.1
    assert b.save_due() and not b.save_due()  # the next save is counted from this one


def _lrs(train_dir, from_step: int) -> list[float]:
    log = [json.loads(line) for line in (train_dir / "vae" / "log.jsonl").read_text().splitlines()]
    return [r["lr"] for r in log if r["step"] > from_step and "lr" in r]


def test_cooldown_decays_this_run_only_and_sessions_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr("filmscore.engine.training.loop.LOG_EVERY", 1)
    # A frozen clock: the cooldown follows the step count alone, however busy the machine is.
    monkeypatch.setattr("filmscore.engine.training.loop.wall_clock", FakeClock())
    corpus = Corpus(make_tiny_corpus(tmp_path / "corpus", works_per_master=1, duration_s=3.0), "train")
    train_dir = tmp_path / "train"
    vae = MelVAE(n_mels=corpus.mel.n_mels, latent_channels=4, hidden_channels=8, refine_blocks=1)
    train_vae(corpus, minutes=5, batch=2, max_steps=2, lr=1e-3, init=vae, run=Run("vae", train_dir))
    assert _lrs(train_dir, 0) == [1e-3, 1e-3]
    train_vae(corpus, minutes=5, batch=2, max_steps=6, lr=1e-3, run=Run("vae", train_dir), cooldown=True)
    lrs = _lrs(train_dir, 2)
    assert lrs[0] == 1e-3 and all(a > b for a, b in pairwise(lrs))
    assert lrs == pytest.approx([1e-3 * (1 - (1 - COOLDOWN_FLOOR) * k / 4) for k in range(4)], rel=1e-9)
    after = train_vae(corpus, minutes=5, batch=2, max_steps=7, lr=1e-3, run=Run("vae", train_dir))
    assert _lrs(train_dir, 6) == [1e-3]  # a later run is back at its own rate, not the cooled one restored
    sessions = after.extra["sessions"]
    assert [(r["from_step"], r["to_step"], r.get("cooldown", False)) for r in sessions] == [
        (0, 2, False), (2, 6, True), (6, 7, False)]
    assert all(r["threads"] >= 1 and r["host"] and r["hours"] >= 0 for r in sessions)


def test_train_info_reads_the_logs(tmp_path, monkeypatch, capsys):
    from filmscore.bridge.cli import main

    assert main(["train", "info", "--train-dir", str(tmp_path / "none")]) == 2
    assert "no training logs" in capsys.readouterr().err
    monkeypatch.setattr("filmscore.engine.training.loop.LOG_EVERY", 1)
    corpus = Corpus(make_tiny_corpus(tmp_path / "corpus", works_per_master=1, duration_s=3.0), "train")
    vae = MelVAE(n_mels=corpus.mel.n_mels, latent_channels=4, hidden_channels=8, refine_blocks=1)
    train_vae(corpus, minutes=5, batch=2, max_steps=3, lr=1e-3, init=vae, run=Run("vae", tmp_path / "train"))
    capsys.readouterr()
    assert main(["train", "info", "--train-dir", str(tmp_path / "train"), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)["stages"]
    assert list(st) == ["vae"] and st["vae"]["step"] == 3 and st["vae"]["lr"] == 1e-3
    assert [(s["from_step"], s["to_step"]) for s in st["vae"]["sessions"]] == [(0, 3)]
    assert st["vae"]["checkpoint_mb"] > 0 and st["vae"]["corpus_hours"] == round(corpus.hours, 2)
    assert main(["train", "info", "--train-dir", str(tmp_path / "train")]) == 0
    assert "vae" in capsys.readouterr().out
