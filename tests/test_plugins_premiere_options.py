"""The Premiere panel's option fields come from the bridge it talks to (hello's capabilities.render_options), not
from a copy in the panel: in headless Chromium, against a stand-in gateway whose hello lists the engine's render
options with other defaults, ranges and choices, the panel shows and checks those; before the hello reply its
fields are disabled and empty; a hello without one of its options is refused. A live bridge's own defaults are
checked in test_plugins_premiere.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from panel_browser import RECORDING_ADAPTER, T, chromium_or_skip, panel_config, panel_page, served_panel

from filmscore.bridge.protocol import render_options_schema


@dataclass
class StandInGateway:
    """Answers as the bridge's WebSocket gateway does (the token, then each request's reply with its msg_id as
    parent; docs/protocol.md), with `render_options` in its hello reply; that reply waits for `release`."""

    render_options: list[dict[str, Any]]
    release: threading.Event = field(default_factory=threading.Event)
    hello_asked: threading.Event = field(default_factory=threading.Event)
    asked: list[str] = field(default_factory=list)  # the msg_types received, in order

    def handle(self, ws: Any) -> None:
        json.loads(ws.recv())  # {"token": ...}
        ws.send(json.dumps({"status": "ok", "protocol_version": "1.0", "session": "stand-in"}))
        for data in ws:
            header = json.loads(data)["header"]
            kind = header["msg_type"]
            self.asked.append(kind)
            if kind == "hello":
                self.hello_asked.set()
                self.release.wait(60)  # set by the test once it has seen the fields before the reply
                content = {"status": "ok", "protocol_version": "1.0",
                           "capabilities": {"render_options": self.render_options}}
            elif kind == "maestros":
                content = {"status": "ok", "maestros": []}
            else:
                content = {"status": "error", "ename": "ProtocolError", "evalue": f"the stand-in answers no {kind}"}
            ws.send(json.dumps({"header": {"msg_type": f"{kind}_reply"}, "parent_header": {"msg_id": header["msg_id"]},
                                "content": content, "buffers": 0}))


@contextmanager
def serving(gateway: StandInGateway) -> Iterator[str]:
    """The stand-in on a free loopback port: yields its ws:// URL."""
    from websockets.sync.server import serve

    server = serve(gateway.handle, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        gateway.release.set()
        server.shutdown()


def _changed(schema: list[dict[str, Any]], **changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema with some options' entries changed: name=dict of the keys to replace."""
    return [{**o, **changes.get(o["name"], {})} for o in schema]


@pytest.mark.timeout(180)
def test_panel_fields_take_the_bridges_defaults_ranges_and_choices(tmp_path):
    pw = chromium_or_skip()
    engine = {o["name"]: o for o in render_options_schema()}
    assert engine["steps"]["default"] != 17 and engine["seed"]["default"] != 5 and engine["stems"]["default"] is False
    gateway = StandInGateway(_changed(render_options_schema(), steps={"default": 17, "range": [1, 40]},
                                      seed={"default": 5}, tempo_bpm={"range": [50.0, 180.0]},
                                      orchestration={"choices": ["strings", "brass"]}, stems={"default": True},
                                      energy={"range": [0.0, 2.0]}))
    fields = "#fs-steps, #fs-seed, #fs-tempo, #fs-orchestration, #fs-stems, #fs-energy"
    shown = ("sel => [...document.querySelectorAll(sel)].map(e => ({id: e.id, value: e.value, min: e.min, max: e.max,"
             " disabled: e.disabled, checked: e.checked, placeholder: e.placeholder,"
             " choices: e.options ? [...e.options].map(o => o.value) : null}))")
    with served_panel(tmp_path, RECORDING_ADAPTER) as (out, site, origin), serving(gateway) as url:
        cfg = panel_config(url, "t", out, "Reel 4", [{"name": "4M1", "startTicks": 2 * T, "durationTicks": 3 * T}])
        with panel_page(pw, site, origin, cfg, connected=False) as pp:
            page = pp.page
            assert gateway.hello_asked.wait(30)
            before = {f["id"]: f for f in page.evaluate(shown, fields)}
            gateway.release.set()
            page.wait_for_selector('#fs-status[data-state="connected"]', timeout=30_000)
            after = {f["id"]: f for f in page.evaluate(shown, fields)}

            # The editor's values are checked against the bridge's ranges before anything is sent.
            page.wait_for_function("document.querySelectorAll('#fs-cue option').length === 1", timeout=10_000)
            page.fill("#fs-steps", "41")
            page.click("#fs-submit")
            too_many = page.inner_text("#fs-message")
            page.fill("#fs-steps", "17")
            page.fill("#fs-tempo", "45")
            page.click("#fs-plan")
            too_slow = page.inner_text("#fs-message")

            # A bridge whose hello lacks an option the panel shows is refused, not guessed at.
            gateway.render_options = [o for o in gateway.render_options if o["name"] != "stems"]
            page.evaluate("window.panel.connect()")
            page.wait_for_selector('#fs-status[data-state="disconnected"]', timeout=30_000)
            refused = page.inner_text("#fs-message")
    assert not pp.errors, pp.errors
    # Before hello answered: every option field disabled, and none shows a value of its own.
    assert all(f["disabled"] for f in before.values()), before
    assert [before[i]["value"] for i in ("fs-steps", "fs-seed", "fs-tempo", "fs-orchestration")] == ["", "", "", ""]
    assert before["fs-orchestration"]["choices"] == [""] and not before["fs-stems"]["checked"]
    # After: the stand-in's defaults, ranges and choices.
    assert not any(f["disabled"] for f in after.values()), after
    assert (after["fs-steps"]["value"], after["fs-steps"]["min"], after["fs-steps"]["max"]) == ("17", "1", "40")
    assert after["fs-seed"]["value"] == "5"
    assert (after["fs-tempo"]["value"], after["fs-tempo"]["min"], after["fs-tempo"]["max"]) == ("", "50", "180")
    assert after["fs-tempo"]["placeholder"] == engine["tempo_bpm"]["unit"]
    assert after["fs-orchestration"]["choices"] == ["", "strings", "brass"] and after["fs-orchestration"]["value"] == ""
    assert after["fs-stems"]["checked"]
    assert (after["fs-energy"]["min"], after["fs-energy"]["max"], after["fs-energy"]["value"]) == ("0", "2", "1")
    assert "steps must be a whole number in 1..40, got 41" in too_many
    assert "tempo_bpm must be a number in 50..180 BPM, got 45" in too_slow
    assert "render" not in gateway.asked and "plan" not in gateway.asked
    assert "stems" in refused and "capabilities.render_options" in refused
