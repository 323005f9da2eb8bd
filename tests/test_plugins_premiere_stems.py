"""The Premiere panel with a v2 bundle: the "Stems" box asks for stems, and the finished job lists the lead,
accompaniment and percussion files beside the placed mix (headless Chromium, a live `filmscore serve --ws`, the
recording fake Premiere adapter of panel_browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from panel_browser import RECORDING_ADAPTER, T, chromium_or_skip, live_panel

STEMS = ("lead", "accompaniment", "percussion")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_panel_asks_for_and_lists_stems(tmp_path):
    pw = chromium_or_skip()
    from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2

    bundle = make_tiny_bundle_v2(tmp_path / "bundle")
    with live_panel(pw, tmp_path, bundle, "Reel 2", [{"name": "2M1", "startTicks": 5 * T, "durationTicks": 2 * T}],
                    adapter=RECORDING_ADAPTER, end_s=30) as (pp, out):
        page, errors = pp.page, pp.errors
        page.wait_for_function("document.querySelectorAll('#fs-cue option').length === 1", timeout=10_000)
        page.fill("#fs-steps", "1")
        page.check("#fs-stems")
        page.click("#fs-submit")
        job = page.wait_for_selector('.fs-job[data-cue="2M1"][data-placed="1"]', timeout=300_000)
        listed = job.get_attribute("data-stems").split(",")
        output = job.get_attribute("data-output")
        detail = job.inner_text()
    assert not errors, errors
    assert listed == [str(Path(output).with_suffix("").as_posix() + f".{s}.wav") for s in STEMS]
    assert all(Path(s).is_file() for s in listed)
    assert "stems: " + ", ".join(Path(s).name for s in listed) in detail
