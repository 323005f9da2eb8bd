"""The Premiere panel's editor's-loop actions (issue 20) in headless Chromium against a live `filmscore serve --ws`:
two takes of a cue shown side by side (each auditioned in the player, one placed), a range of the placed take
regenerated (outside the range the take's samples exactly), and a conform request whose refusal the panel shows
(the conform job itself is tested on a live server in test_bridge_editor_loop.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from panel_browser import T, chromium_or_skip, live_panel


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_panel_takes_side_by_side_regenerate_and_conform(tmp_path):
    pw = chromium_or_skip()
    from filmscore.engine.bundle_testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    with live_panel(pw, tmp_path, bundle, "Reel 3", [{"name": "3M1", "startTicks": 5 * T, "durationTicks": 3 * T}],
                    height=900) as (pp, out):
        page, errors = pp.page, pp.errors
        page.wait_for_function("document.querySelectorAll('#fs-cue option').length === 1", timeout=10_000)
        page.fill("#fs-seed", "4")
        page.fill("#fs-steps", "2")
        page.select_option("#fs-source", "maestro")
        page.wait_for_function("document.querySelectorAll('#fs-maestro option').length > 0",
                               timeout=10_000)
        page.select_option("#fs-maestro", "bach")
        page.fill("#fs-takes", "2")
        page.click("#fs-submit")
        job = page.wait_for_selector('.fs-job[data-cue="3M1"][data-takes]', timeout=300_000)
        takes = job.get_attribute("data-takes").split(",")
        shown = page.eval_on_selector_all(".fs-take", "t => t.map(e => e.dataset.path)")
        assert job.get_attribute("data-placed") is None  # nothing placed until the editor chooses
        page.click('.fs-take[data-take="1"] .fs-take-play')
        page.wait_for_function("document.querySelector('#fs-player').dataset.history.includes('take 1')",
                               timeout=30_000)
        page.click('.fs-take[data-take="2"] .fs-take-use')
        page.wait_for_selector('.fs-job[data-cue="3M1"][data-placed="2"]', timeout=30_000)
        assert page.get_attribute("#fs-regen-info", "data-source") == takes[1]

        # a range of the placed take, again
        page.fill("#fs-regen-start", "1")
        page.fill("#fs-regen-end", "2.5")
        page.click("#fs-regenerate")
        regen = page.wait_for_selector('.fs-job[data-kind="regenerate"][data-placed="1"]',
                                       timeout=300_000)
        regen_out = regen.get_attribute("data-output")

        # conform: the bridge refuses a folder that `score` did not write, and the panel says so
        for sel, value in (("#fs-conform-old", str(tmp_path / "a.otio")),
                           ("#fs-conform-new", str(tmp_path / "b.otio")),
                           ("#fs-conform-scored", str(out)), ("#fs-conform-out", str(out / "v2"))):
            page.fill(sel, value)
        (tmp_path / "a.otio").write_text("{}")
        (tmp_path / "b.otio").write_text("{}")
        page.click("#fs-conform")
        refused = page.wait_for_selector('.fs-job[data-kind="conform"][data-state="failed"]',
                                         timeout=30_000)
        refusal = refused.inner_text()
        calls = page.evaluate("window.fake.calls")
    assert not errors, errors
    assert shown == takes and [t.endswith(f".take{k}.wav") for k, t in enumerate(takes, 1)] == [True, True]
    assert all(Path(t).is_file() for t in takes)
    metas = [json.loads(Path(t).with_suffix(".json").read_text()) for t in takes]
    assert [m["variations"]["take"] for m in metas] == [1, 2] and [m["seed"] for m in metas] == [4, 5]
    assert ["place", takes[1], 5 * T] in calls and ["mediaUrl", takes[0]] in calls
    # the regenerated take: outside 1-2.5 s the samples of take 2 exactly, placed at the cue's start
    old = sf.read(takes[1], dtype="int32", always_2d=True)[0]
    new = sf.read(regen_out, dtype="int32", always_2d=True)[0]
    rate = sf.info(regen_out).samplerate
    a, b = rate, int(2.5 * rate)
    np.testing.assert_array_equal(new[:a], old[:a])
    np.testing.assert_array_equal(new[b:], old[b:])
    assert not np.array_equal(new[a:b], old[a:b])
    assert ["place", regen_out, 5 * T] in calls
    assert "PathNotAllowed" in refusal and "filmscore-batch.json" in refusal
