"""The Premiere panel with a v2 bundle: the "Stems" box asks for stems, and the finished job lists the lead,
accompaniment and percussion files beside the placed mix (headless Chromium, a live `filmscore serve --ws`, the
fake Premiere adapter of test_plugins_premiere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plugins_premiere import CHROMIUM, CHROMIUM_ARGS, T, site  # noqa: F401 (site: the module's fixture)

STEMS = ("lead", "accompaniment", "percussion")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_panel_asks_for_and_lists_stems(site, tmp_path):  # noqa: F811
    pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh APT_PACKAGES)")
    from filmscore.bridge.server.launch import launch_server
    from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2

    root, origin = site
    out = tmp_path / "cues"
    out.mkdir()
    bundle = make_tiny_bundle_v2(tmp_path / "bundle")
    with launch_server(tmp_path / "state", media_roots=[tmp_path], output_roots=[out], bundle=bundle,
                       ws="127.0.0.1:0", ws_origins=[origin]) as srv:
        cfg = {"connection": {"url": f"ws://127.0.0.1:{srv.info['ws_port']}", "token": srv.info["ws_token"]},
               "outputFolder": str(out),
               "sequence": {"name": "Reel 2", "ticksPerFrame": T // 24, "zeroTicks": 0, "endTicks": 30 * T,
                            "inTicks": 0, "outTicks": 30 * T, "clips": [],
                            "markers": [{"name": "2M1", "startTicks": 5 * T, "durationTicks": 2 * T}]}}
        (root / "test" / "config.json").write_text(json.dumps(cfg))
        errors: list[str] = []
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 360, "height": 640})
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{origin}/test/index.html")
                page.wait_for_selector('#fs-status[data-state="connected"]', timeout=30_000)
                page.wait_for_function("document.querySelectorAll('#fs-cue option').length === 1", timeout=10_000)
                page.fill("#fs-steps", "1")
                page.check("#fs-stems")
                page.click("#fs-submit")
                job = page.wait_for_selector('.fs-job[data-cue="2M1"][data-placed="1"]', timeout=300_000)
                listed = job.get_attribute("data-stems").split(",")
                output = job.get_attribute("data-output")
                detail = job.inner_text()
            finally:
                browser.close()
        assert not errors, errors
    assert listed == [str(Path(output).with_suffix("").as_posix() + f".{s}.wav") for s in STEMS]
    assert all(Path(s).is_file() for s in listed)
    assert "stems: " + ", ".join(Path(s).name for s in listed) in detail
