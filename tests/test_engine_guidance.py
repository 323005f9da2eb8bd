"""A denoising step's guided calls run a few at a time (engine/guidance.py, StagePool.imap): the same calls and the
same fused prediction, bit for bit, as the whole step at once, and a number of rows held that does not grow with
the cue's length (issue 23)."""

from __future__ import annotations

import threading

import pytest
import torch

from filmscore.engine.guidance import Guidance, StepFusion, call_inputs, plan_calls
from filmscore.engine.threads import model_threads
from filmscore.engine.windowed import fusion_weights, plan_windows

WINDOW, OVERLAP, MULTIPLE, BATCH = 256, 64, 8, 4
GUIDANCES = {
    "picture, controls, u": Guidance(True, True, 3.0, 2.0),
    "controls, no picture": Guidance(False, True, 0.0, 2.0),
    "picture, no controls": Guidance(True, False, 2.5, 1.0),
    "controlled pass alone": Guidance(False, True, 0.0, 1.0),
    "picture at wp 1, controls": Guidance(True, True, 1.0, 2.0),
}


def cue(n_windows: int):
    n_latent = WINDOW + (WINDOW - OVERLAP) * (n_windows - 1) if n_windows > 1 else 200
    windows = plan_windows(n_latent, WINDOW, OVERLAP, MULTIPLE)
    assert len(windows) == n_windows
    return n_latent, windows, fusion_weights(windows, n_latent, OVERLAP)


def fake_model(sample: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor, controls: torch.Tensor | None):
    """Row-local, depends on every input, so a row fed another row's inputs shows."""
    out = torch.tanh(sample * 1.3 + t[:, None, None] * 1e-3) + tokens.mean(dim=(1, 2))[:, None, None]
    if controls is not None:
        out = out + controls[:, :, ::4].mean(dim=1, keepdim=True)
    return out


def whole_step(x, t, windows, weights, guidance, tokens, null, controls):
    """The step as one batch of every row (what the pipeline ran before): each group's rows stacked pass-major
    (every window of one pass, then the next), cut into calls of BATCH rows, the guidance over whole passes, then the
    windows fused in order."""
    without, with_ctrl = guidance.passes()
    a = 4
    xs = torch.cat([x[..., w.start:w.start + w.length] for w in windows])
    base = tokens if tokens is not None else null.expand(len(windows), -1, -1)
    tok = {"p": base, "pc": base, "u": null.expand(len(windows), -1, -1)}
    cs = torch.cat([controls[..., w.start * a:(w.start + w.length) * a] for w in windows]) if with_ctrl else None
    out = {}
    for group, controlled in ((without, False), (with_ctrl, True)):
        if not group:
            continue
        rows_x = xs.repeat(len(group), 1, 1)
        rows_t = torch.full((rows_x.shape[0],), t)
        rows_tok = torch.cat([tok[n] for n in group])
        rows_c = cs.repeat(len(group), 1, 1) if controlled else None
        outs = torch.cat([fake_model(rows_x[z], rows_t[z], rows_tok[z], rows_c[z] if controlled else None)
                          for z in (slice(r, r + BATCH) for r in range(0, rows_x.shape[0], BATCH))])
        for i, n in enumerate(group):
            out[n] = outs[i * len(windows):(i + 1) * len(windows)]
    v = guidance.combine(out)
    fused = torch.zeros_like(x)
    for j, w in enumerate(windows):
        fused[..., w.start:w.start + w.length] += v[j:j + 1] * weights[j]
    return fused


@pytest.mark.parametrize("n_windows", [1, 6, 7, 8])
@pytest.mark.parametrize("name", list(GUIDANCES))
def test_calls_a_few_at_a_time_equal_the_whole_step(name, n_windows):
    """6 and 7 windows with two passes without controls put one call across the passes (p's last windows and u's
    first): its rows are fused when their windows come up."""
    guidance = GUIDANCES[name]
    g = torch.Generator().manual_seed(n_windows)
    n_latent, windows, weights = cue(n_windows)
    x = torch.randn((1, 3, n_latent), generator=g)
    tokens = torch.randn((n_windows, 2, 5), generator=g) if guidance.picture else None
    null = torch.randn((1, 2, 5), generator=g)
    controls = torch.randn((1, 14, n_latent * 4), generator=g) if guidance.controls else None
    fusion = StepFusion(windows, weights, guidance, x)
    calls = plan_calls(n_windows, guidance, BATCH)
    for c in calls:
        fusion.add(c, fake_model(*call_inputs(c, x, 501.0, windows, tokens, null, controls)))
    assert torch.equal(fusion.result(), whole_step(x, 501.0, windows, weights, guidance, tokens, null, controls))
    # the calls are the whole step's: each group's rows in BATCH-row calls, every call full but a group's last
    n_rows = sum(len(group) for group in guidance.passes()) * n_windows
    assert sum(len(c.rows) for c in calls) == n_rows
    assert len(calls) == sum(-(-len(group) * n_windows // BATCH) for group in guidance.passes() if group)
    assert [c.first_window for c in calls] == sorted(c.first_window for c in calls)


@pytest.mark.parametrize("name", list(GUIDANCES))
def test_rows_held_do_not_grow_with_the_cue(name):
    """At most a call's rows per pass and one more call: a 10-minute cue (78 windows) holds what 8 windows do."""
    guidance = GUIDANCES[name]
    n_passes = sum(len(group) for group in guidance.passes())
    held = {}
    for n_windows in (8, 39, 78):
        _, windows, weights = cue(n_windows)
        fusion = StepFusion(windows, weights, guidance, torch.zeros(1, 1, windows[-1].start + WINDOW))
        for c in plan_calls(n_windows, guidance, BATCH):
            fusion.add(c, torch.zeros(len(c.rows), 1, WINDOW))
        fusion.result()
        held[n_windows] = fusion.most_held
    assert max(held.values()) <= (n_passes + 1) * BATCH, held


def test_a_step_with_windows_missing_is_refused():
    guidance = GUIDANCES["picture, controls, u"]
    _, windows, weights = cue(6)
    fusion = StepFusion(windows, weights, guidance, torch.zeros(1, 1, windows[-1].start + WINDOW))
    for c in plan_calls(6, guidance, BATCH)[:-1]:
        fusion.add(c, torch.zeros(len(c.rows), 1, WINDOW))
    with pytest.raises(RuntimeError, match="fused"):
        fusion.result()


@pytest.mark.parametrize("threads", [1, 3])
def test_imap_keeps_order_and_a_bounded_number_in_flight(threads):
    lock, state = threading.Lock(), {"most": 0}
    taken = []

    def work(i: int) -> int:
        with lock:  # submitted and not yet taken by the caller: running, done and waiting, or being handed over
            state["most"] = max(state["most"], i + 1 - len(taken))
        return i * i

    with model_threads(threads) as pool:
        for y in pool.imap(work, range(50), ahead=4):
            taken.append(y)
    assert taken == [i * i for i in range(50)]
    assert state["most"] <= 4 + 1  # `ahead`, and the one being handed over when the next was submitted


def test_imap_stops_what_has_not_started_when_the_caller_stops():
    started = []
    gate = threading.Event()

    def work(i: int) -> int:
        started.append(i)
        if i == 0:
            gate.wait(timeout=30)
        return i

    with model_threads(2) as pool:
        it = pool.imap(work, range(100), ahead=6)
        gate.set()
        assert next(it) == 0
        it.close()  # the caller leaves after its first result
    assert len(started) <= 7  # the 6 submitted at first and the one after the first was taken, never all 100
