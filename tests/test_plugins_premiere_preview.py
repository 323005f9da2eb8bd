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
        # The draft goes into the player when the bridge announces it. The 60-step cue of this tiny bundle follows
        # it within about a second and the panel then (rightly) puts the final in its place, so on a loaded machine
        # the browser may not have read the draft's header before it is replaced (a fresh-clone run: draft and final
        # written 0.7 s apart). So: wait until the draft was put in the player, then decode the draft itself here,
        # from the URL the panel asked the host for.
        page.wait_for_function("(document.querySelector('#fs-player').dataset.history || '').startsWith('draft')",
                               timeout=300_000)
        draft_path = page.get_attribute('.fs-job[data-cue="2M1"]', "data-draft")
        draft_src = page.evaluate("window.fake.calls[0]")
        assert draft_src[0] == "mediaUrl" and Path(draft_src[1]) == Path(draft_path), draft_src
        draft = {"path": draft_path, "src": "/out/" + Path(draft_path).name}
        draft["duration"] = page.evaluate(
            "async (src) => { const a = new Audio(src); await new Promise((ok, bad) => { a.onloadedmetadata = ok; "
            "a.onerror = () => bad(new Error('cannot decode ' + src)); }); return a.duration; }", draft["src"])
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
    assert final["src"].endswith("/out/" + output.name)  # the draft's URL: the first mediaUrl call, checked above
    # The draft was asked for before the cue was placed; the final was played after.
    kinds = [c[0] for c in calls]
    assert kinds == ["mediaUrl", "place", "mediaUrl"], calls
    meta = json.loads(output.with_suffix(".json").read_text())
    assert meta["preview"]["steps"] == 4 and meta["request"]["steps"] == 60
