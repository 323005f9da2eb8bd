"""The Premiere panel plays the draft first: in headless Chromium against a live `filmscore serve --ws`, a cue
scored with "Draft first" plays OUT.draft.wav when the bridge announces it (`job_preview`) and the final cue in its
place when the job finishes; both decode in the browser to the cue's length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from panel_browser import T, chromium_or_skip, live_panel


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_panel_plays_the_draft_then_the_final(tmp_path):
    pw = chromium_or_skip()
    from filmscore.engine.bundle_testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    with live_panel(pw, tmp_path, bundle, "Reel 2", [{"name": "2M1", "startTicks": 5 * T, "durationTicks": 2 * T}],
                    height=800) as (pp, out):
        page, errors = pp.page, pp.errors
        page.wait_for_function("document.querySelectorAll('#fs-cue option').length === 1", timeout=10_000)
        assert page.is_checked("#fs-draft")  # drafts are on unless the editor turns them off
        page.fill("#fs-steps", "60")  # the draft takes the bridge's default (4), the cue 60
        page.click("#fs-submit")
        page.wait_for_selector('#fs-player[data-kind="draft"][data-ready="1"]', timeout=300_000)
        draft = page.evaluate("(() => { const a = document.querySelector('#fs-player'); return "
                              "{path: a.dataset.path, duration: a.duration, src: a.src}; })()")
        job = page.wait_for_selector('.fs-job[data-cue="2M1"][data-placed="1"]', timeout=300_000)
        page.wait_for_selector('#fs-player[data-kind="final"][data-ready="1"]', timeout=60_000)
        final = page.evaluate("(() => { const a = document.querySelector('#fs-player'); return "
                              "{path: a.dataset.path, duration: a.duration, src: a.src, "
                              "history: a.dataset.history}; })()")
        row = {"draft": job.get_attribute("data-draft"), "output": job.get_attribute("data-output")}
        calls = page.evaluate("window.fake.calls")
    assert not errors, errors
    output = Path(row["output"])
    assert Path(draft["path"]) == Path(row["draft"]) == output.with_name(output.stem + ".draft.wav")
    assert final["path"] == str(output) and final["history"] == "draft,final"
    # Both decoded in the browser (24-bit PCM WAV) to the cue's 2 s.
    assert abs(draft["duration"] - 2.0) < 0.01 and abs(final["duration"] - 2.0) < 0.01
    assert draft["src"].endswith("/out/" + Path(draft["path"]).name) and final["src"].endswith("/out/" + output.name)
    # The draft was asked for before the cue was placed; the final was played after.
    kinds = [c[0] for c in calls]
    assert kinds == ["mediaUrl", "place", "mediaUrl"], calls
    meta = json.loads(output.with_suffix(".json").read_text())
    assert meta["preview"]["steps"] == 4 and meta["request"]["steps"] == 60
