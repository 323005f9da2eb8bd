"""The Premiere panel in headless Chromium, for the panel tests (tests/test_plugins_premiere*.py): its test page
served over HTTP with a stand-in for premiere_adapter.js, a live `filmscore serve --ws` for it to talk to, and the
browser opened on the page. Each test keeps its own steps and assertions; only the setup lives here."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PANEL = REPO / "plugin_manifests" / "premiere"
CHROMIUM = Path("/usr/bin/chromium")
T = 254016000000  # Premiere ticks per second
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]

# The stand-in for premiere_adapter.js: same methods, records what the panel asked of Premiere.
RECORDING_ADAPTER = """
export class FakePremiere {
  constructor(cfg) { this.cfg = cfg; this.calls = []; }
  async readConnection() { this.calls.push(["readConnection"]); return this.cfg.connection; }
  async readSequence() { this.calls.push(["readSequence"]); return this.cfg.sequence; }
  async defaultOutputFolder() { return this.cfg.outputFolder; }
  async pickMidiFile() { return null; }
  async placeOnNewAudioTrack(path, startTicks) {
    this.calls.push(["placeOnNewAudioTrack", path, startTicks]);
    return { track: "A3" };
  }
}
"""
# The stand-in that can play: mediaUrl serves the output folder from the test's HTTP server.
PLAYING_ADAPTER = """
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
<body style="margin:0; width:360px; background:#232323"><div id="root"></div>
<script type="module">
import { GatewayClient } from "/panel/src/bridge.js";
import { mountPanel } from "/panel/src/panel.js";
import { FakePremiere } from "/test/fake_premiere.js";
const cfg = await (await fetch("/test/config.json")).json();
// cfg.dropEvents: job events of these types never reach the panel (window.dropped: their job ids), as when a
// connection drops them; the test may change window.dropEvents while the page runs
window.dropEvents = cfg.dropEvents || [];
window.dropped = [];
const onEvent = GatewayClient.prototype.onEvent;
GatewayClient.prototype.onEvent = function (fn) {
  return onEvent.call(this, (msg) => window.dropEvents.includes(msg.header.msg_type)
    ? window.dropped.push(msg.content.job_id) : fn(msg));
};
window.fake = new FakePremiere(cfg);
window.panel = mountPanel(document.getElementById("root"), window.fake,
                          { allowedGateway: cfg.connection.url, ...(cfg.panelOptions || {}) });
</script></body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):  # keep pytest output clean
        pass


def chromium_or_skip() -> Any:
    """playwright's sync API, or a skip naming what this machine lacks (called first, before any costly setup)."""
    pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh APT_PACKAGES)")
    return pw


@contextlib.contextmanager
def served_panel(tmp_path: Path, adapter: str = PLAYING_ADAPTER) -> Iterator[tuple[Path, Path, str]]:
    """The panel's test page (`adapter`: the fake Premiere adapter's source; the panel's source) and a cues folder at
    /out/ over HTTP, so the panel's player can fetch the cues: yields (cues folder, site folder, origin)."""
    out = tmp_path / "cues"
    out.mkdir()
    site = tmp_path / "site"
    (site / "test").mkdir(parents=True)
    (site / "panel").symlink_to(PANEL, target_is_directory=True)
    (site / "out").symlink_to(out, target_is_directory=True)
    (site / "test" / "index.html").write_text(HARNESS)
    (site / "test" / "fake_premiere.js").write_text(adapter)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield out, site, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@contextlib.contextmanager
def live_bridge(tmp_path: Path, out: Path, origin: str, bundle: Path) -> Iterator[Any]:
    """`filmscore serve` with `bundle`, media under tmp_path, cues written to `out`, its WebSocket gateway on a free
    loopback port open to the panel's origin: yields the launched server."""
    from filmscore.bridge.server.launch import launch_server

    with launch_server(tmp_path / "state", media_roots=[tmp_path], output_roots=[out], bundle=bundle,
                       ws="127.0.0.1:0", ws_origins=[origin]) as srv:
        yield srv


def panel_config(url: str, token: str, out: Path, sequence: str, markers: list[dict[str, Any]], *,
                 end_s: int = 60, page: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fake adapter's config: the bridge's gateway (`url`, `token`), `out` as the output folder and a 24 fps
    sequence `end_s` seconds long, no clips, with `markers`. `page`: the test page's own settings (HARNESS:
    `panelOptions` for mountPanel, `dropEvents`)."""
    return {**(page or {}), "connection": {"url": url, "token": token},
            "outputFolder": str(out),
            "sequence": {"name": sequence, "ticksPerFrame": T // 24, "zeroTicks": 0, "endTicks": end_s * T,
                         "inTicks": 0, "outTicks": end_s * T, "clips": [], "markers": markers}}


@dataclass
class PanelPage:
    page: Any  # playwright's Page
    errors: list[str] = field(default_factory=list)  # uncaught errors in the page, in order


@contextlib.contextmanager
def panel_page(pw: Any, site: Path, origin: str, cfg: dict[str, Any], *, height: int = 640,
               connected: bool = True) -> Iterator[PanelPage]:
    """Headless Chromium on the panel's test page, the fake adapter configured with `cfg`, 360 px wide: yields once
    the panel says it is connected (`connected=False`: once the page has loaded, for a test that watches it connect).
    The browser is closed on the way out; the test asserts on `errors` after that."""
    (site / "test" / "config.json").write_text(json.dumps(cfg))
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            pp = PanelPage(browser.new_page(viewport={"width": 360, "height": height}))
            pp.page.on("pageerror", lambda e: pp.errors.append(str(e)))
            pp.page.goto(f"{origin}/test/index.html")
            if connected:
                pp.page.wait_for_selector('#fs-status[data-state="connected"]', timeout=30_000)
            yield pp
        finally:
            browser.close()


@contextlib.contextmanager
def live_panel(pw: Any, tmp_path: Path, bundle: Path, sequence: str, markers: list[dict[str, Any]], *,
               adapter: str = PLAYING_ADAPTER, height: int = 640, end_s: int = 60,
               page: dict[str, Any] | None = None) -> Iterator[tuple[PanelPage, Path]]:
    """The four steps above together: the panel served (with `adapter`), a live bridge with `bundle`, the adapter's
    sequence (`panel_config`, with the page's settings `page`) and Chromium on the page, connected: yields (the
    page, the cues folder)."""
    with served_panel(tmp_path, adapter) as (out, site, origin), live_bridge(tmp_path, out, origin, bundle) as srv:
        cfg = panel_config(f"ws://127.0.0.1:{srv.info['ws_port']}", srv.info["ws_token"], out, sequence, markers,
                           end_s=end_s, page=page)
        with panel_page(pw, site, origin, cfg, height=height) as pp:
            try:
                yield pp, out
            except Exception as e:  # a wait that timed out says only what it waited for: add what the panel showed
                raise AssertionError(f"{e}\n{panel_state(pp, srv)}") from e


def panel_state(pp: PanelPage, srv: Any) -> str:
    """What a failed panel test needs to be understood: the job rows (data attributes and text), the status line,
    the page's errors, the bridge's own record of its jobs and the end of its log."""
    from filmscore.bridge.client import BridgeClient

    lines = []
    try:
        rows = pp.page.eval_on_selector_all(".fs-job", "rs => rs.map(r => JSON.stringify({...r.dataset, "
                                                        "text: r.innerText}))")
        lines += ["panel job rows:", *rows, f"status: {pp.page.inner_text('#fs-status')}"]
    except Exception as e:  # noqa: BLE001 - the page itself may be what failed
        lines.append(f"(the page could not be read: {e})")
    lines.append(f"page errors: {pp.errors}")
    try:
        with BridgeClient(srv.info) as c:
            lines += ["bridge jobs:", *(json.dumps({k: j.get(k) for k in ("job_id", "state", "kind", "output",
                                                                            "error")}) for j in c.all_jobs())]
    except Exception as e:  # noqa: BLE001
        lines.append(f"(the bridge did not list its jobs: {e})")
    lines += ["bridge log (end):", srv.stderr_path.read_text(errors="replace")[-3000:]]
    return "\n".join(lines)
