"""The Premiere panel plays the draft first: in headless Chromium against a live `filmscore serve --ws`, a cue
scored with "Draft first" plays OUT.draft.wav when the bridge announces it (`job_preview`) and the final cue in its
place when the job finishes; both decode in the browser to the cue's length."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PANEL = REPO / "plugin_manifests" / "premiere"
CHROMIUM = Path("/usr/bin/chromium")
T = 254016000000  # Premiere ticks per second
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]

# The stand-in for premiere_adapter.js; mediaUrl serves the output folder from this test's HTTP server.
FAKE_ADAPTER = """
export class FakePremiere {
  constructor(cfg) { this.cfg = cfg; this.calls = []; }
  async readConnection() { return this.cfg.connection; }
  async readSequence() { return this.cfg.sequence; }
  async defaultOutputFolder() { return this.cfg.outputFolder; }
  async pickMidiFile() { return null; }
  async placeOnNewAudioTrack(path, startTicks) { this.calls.push(["place", path, startTicks]); return { track: "A2" }; }
  mediaUrl(path) { this.calls.push(["mediaUrl", path]); return "/out/" + encodeURIComponent(path.split("/").pop()); }
}
"""
HARNESS = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="/panel/panel.css"></head>
<body style="margin:0; width:360px"><div id="root"></div>
<script type="module">
import { mountPanel } from "/panel/src/panel.js";
import { FakePremiere } from "/test/fake_premiere.js";
const cfg = await (await fetch("/test/config.json")).json();
window.fake = new FakePremiere(cfg);
window.panel = mountPanel(document.getElementById("root"), window.fake, { allowedGateway: cfg.connection.url });
</script></body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@contextlib.contextmanager
def served_panel(tmp_path: Path):
    """The panel's test page (the fake Premiere adapter, the panel's source) and a cues folder at /out/ over HTTP,
    so the panel's player can fetch the cues: yields (cues folder, site folder, origin)."""
    out = tmp_path / "cues"
    out.mkdir()
    site = tmp_path / "site"
    (site / "test").mkdir(parents=True)
    (site / "panel").symlink_to(PANEL, target_is_directory=True)
    (site / "out").symlink_to(out, target_is_directory=True)
    (site / "test" / "index.html").write_text(HARNESS)
    (site / "test" / "fake_premiere.js").write_text(FAKE_ADAPTER)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield out, site, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_panel_plays_the_draft_then_the_final(tmp_path):
    pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh APT_PACKAGES)")
    from filmscore.bridge.server.launch import launch_server
    from filmscore.engine.bundle_testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    with served_panel(tmp_path) as (out, site, origin):
        with launch_server(tmp_path / "state", media_roots=[tmp_path], output_roots=[out], bundle=bundle,
                           ws="127.0.0.1:0", ws_origins=[origin]) as srv:
            cfg = {"connection": {"url": f"ws://127.0.0.1:{srv.info['ws_port']}", "token": srv.info["ws_token"]},
                   "outputFolder": str(out),
                   "sequence": {"name": "Reel 2", "ticksPerFrame": T // 24, "zeroTicks": 0, "endTicks": 60 * T,
                                "inTicks": 0, "outTicks": 60 * T, "clips": [],
                                "markers": [{"name": "2M1", "startTicks": 5 * T, "durationTicks": 2 * T}]}}
            (site / "test" / "config.json").write_text(json.dumps(cfg))
            errors: list[str] = []
            with pw.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 360, "height": 800})
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(f"{origin}/test/index.html")
                    page.wait_for_selector('#fs-status[data-state="connected"]', timeout=30_000)
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
                finally:
                    browser.close()
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
