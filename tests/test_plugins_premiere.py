"""plugin_manifests/premiere: the panel's UI and bridge logic in headless Chromium, against a live
`filmscore serve --ws` on loopback, with only the Premiere adapter replaced; and the UXP build of its modules."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from panel_browser import PANEL, RECORDING_ADAPTER, T, chromium_or_skip, live_panel

from filmscore.bridge.protocol import render_options_schema


def _load_build():
    spec = importlib.util.spec_from_file_location("build_uxp", PANEL / "build_uxp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_uxp_build_is_up_to_date():
    build = _load_build()
    for name, text in build.build().items():
        assert (PANEL / "uxp" / name).read_text(encoding="utf-8") == text, f"uxp/{name} is stale: run build_uxp.py"
    assert {p.name for p in (PANEL / "uxp").glob("*.js")} == {p.name for p in (PANEL / "src").glob("*.js")}


def test_uxp_build_refuses_other_module_syntax():
    build = _load_build()
    with pytest.raises(build.BuildError, match="x.js:2"):
        build.to_commonjs('// ok\nimport panel from "./panel.js";\n', "x.js")
    src = 'import { a, b } from "./a.js";\nexport async function f() {}\nexport const K = 1;\n'
    out = build.to_commonjs(src, "y.js")
    assert 'const { a, b } = require("./a.js");' in out and out.rstrip().endswith("module.exports = { f, K };")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the CommonJS check needs it")
def test_uxp_modules_load_as_commonjs():
    """The converted cue logic runs under a CommonJS loader (as in UXP) and gives the same request as in the browser."""
    script = (f"const c = require({json.dumps(str(PANEL / 'uxp' / 'cues.js'))}); const T = {T};"
              "const seq = {name: 'R1', ticksPerFrame: T / 24, zeroTicks: 0, endTicks: 60 * T, inTicks: 0,"
              " outTicks: 60 * T, markers: [{name: '1M1', startTicks: 10 * T, durationTicks: 4 * T},"
              " {name: 'hit', startTicks: 11 * T, durationTicks: 0}]};"
              "const cue = c.cueRegions(seq).cues[0];"
              "console.log(JSON.stringify(c.renderRequest(cue, c.pictureFor(cue, [{track: 0, startTicks: 0,"
              " endTicks: 30 * T, inTicks: 2 * T, mediaPath: '/m/a.mov', offline: false}]),"
              " {output: '/o/a.wav', seed: 1, steps: 2}).content));")
    out = json.loads(subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout)
    assert out == {"output": "/o/a.wav", "duration": {"value": 4 * T, "rate": T}, "seed": 1, "steps": 2,
                   "video": "/m/a.mov", "start": {"value": 12 * T, "rate": T}, "hits": [{"value": T, "rate": T}]}
    # The same content passes the bridge's own request checks.
    from filmscore.bridge.protocol import RenderParams

    p = RenderParams.from_content(out)
    assert p.start.to_seconds() == 12.0 and p.duration.to_seconds() == 4.0 and p.hits[0].to_seconds() == 1.0


def _theme_bytes() -> bytes:
    import io

    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for note in (62, 66, 69):
        track += [mido.Message("note_on", note=note, velocity=80, time=0),
                  mido.Message("note_off", note=note, velocity=0, time=240)]
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_panel_in_chromium_against_live_bridge(tmp_path):
    pw = chromium_or_skip()
    from filmscore.engine.bundle_testing import make_tiny_bundle
    from filmscore.engine.plan.plan import CuePlan
    from filmscore.engine.plan.spec import plan_path

    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    markers = [{"name": "1M1", "startTicks": 10 * T, "durationTicks": 2 * T},
               {"name": "door slam", "startTicks": 10 * T + T // 2, "durationTicks": 0},
               {"name": "1M2", "startTicks": 20 * T, "durationTicks": 3 * T}]
    with live_panel(pw, tmp_path, bundle, "Reel 1", markers, adapter=RECORDING_ADAPTER) as (pp, out):
        page, errors = pp.page, pp.errors
        page.wait_for_function("document.querySelectorAll('#fs-cue option').length === 2", timeout=10_000)
        assert "1 hit point" in page.inner_text("#fs-cue-info")
        # The option fields show the live bridge's render options (its hello), which are the engine's.
        defaults = {o["name"]: o for o in render_options_schema()}
        assert page.input_value("#fs-steps") == str(defaults["steps"]["default"])
        steps_range = [page.get_attribute("#fs-steps", k) for k in ("min", "max")]
        assert steps_range == [str(v) for v in defaults["steps"]["range"]]
        assert page.input_value("#fs-seed") == str(defaults["seed"]["default"])
        assert page.eval_on_selector_all("#fs-orchestration option", "os => os.map(o => o.value).slice(1)") == \
            defaults["orchestration"]["choices"]

        # The plan of cue 1M1 guided by a maestro (no audio): the panel shows what the bridge wrote.
        page.fill("#fs-seed", "3")
        page.fill("#fs-steps", "4")
        page.select_option("#fs-cue", "0")
        page.select_option("#fs-source", "maestro")
        page.wait_for_function("document.querySelectorAll('#fs-maestro option').length > 0", timeout=10_000)
        page.select_option("#fs-maestro", "bach")
        page.click("#fs-plan")
        info = page.wait_for_selector('#fs-plan-info[data-state="finished"]', timeout=120_000)
        shown_path = Path(info.get_attribute("data-plan"))
        shown = {"text": info.inner_text(), "tempo": page.get_attribute("#fs-tempo", "placeholder"),
                 "key": page.get_attribute("#fs-key", "placeholder"),
                 "energy": page.input_value("#fs-energy")}

        # The editor changes tempo, key and energy. Job 1: cue 1M1 rendered with them, a few steps.
        # Job 2: cue 1M2 with an inline MIDI theme (the panel's dropped-file path), queued behind it (one
        # worker), then cancelled.
        page.fill("#fs-tempo", "96")
        page.fill("#fs-key", "E minor")
        page.eval_on_selector("#fs-energy", "e => { e.value = '0.2'; e.dispatchEvent(new Event('input')); }")
        assert page.inner_text("#fs-energy-value") == "0.20" and "(plan)" in page.inner_text("#fs-valence-value")
        page.click("#fs-submit")
        page.wait_for_selector('.fs-job[data-cue="1M1"][data-job-id]', timeout=30_000)
        page.select_option("#fs-cue", "1")
        page.fill("#fs-steps", "200")
        page.evaluate("bytes => window.panel.setMidi({name: 'theme.mid', bytes: new Uint8Array(bytes)})",
                      list(_theme_bytes()))
        assert page.input_value("#fs-source") == "midi" and page.inner_text("#fs-midi-name") == "theme.mid"
        page.click("#fs-submit")
        second = page.wait_for_selector('.fs-job[data-cue="1M2"][data-job-id]', timeout=30_000)
        second.query_selector(".fs-cancel").click()
        page.wait_for_selector('.fs-job[data-cue="1M2"][data-state="cancelled"]', timeout=120_000)

        first = page.wait_for_selector('.fs-job[data-cue="1M1"][data-placed="1"]', timeout=300_000)
        assert first.get_attribute("data-state") == "finished"
        assert int(first.get_attribute("data-progress-events")) > 0
        output = first.get_attribute("data-output")
        calls = page.evaluate("window.fake.calls")
        shot = Path(os.environ.get("FILMSCORE_PANEL_SCREENSHOT") or tmp_path / "panel.png")
        page.screenshot(path=str(shot), full_page=True)
    assert not errors, errors
    # The adapter was asked to place the delivered WAV at the cue's record time (10 s, in ticks).
    assert ["placeOnNewAudioTrack", output, 10 * T] in calls
    import soundfile as sf

    info = sf.info(output)
    assert Path(output).parent == out and abs(info.frames / info.samplerate - 2.0) < 1e-3
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The panel showed the plan the bridge wrote beside the planned cue (OUT.plan.json, no audio rendered).
    shown_plan = CuePlan.load(shown_path)
    assert shown_path.parent == out and shown_path.name.startswith("Reel_1_1M1_seed3_")
    assert not list(out.glob(shown_path.name.replace(".plan.json", ".wav")))
    bpm, key = f"{shown_plan.tempo.tempo_bpm:.1f}", f"{shown_plan.key} {shown_plan.mode}"
    assert (shown["tempo"], shown["key"]) == (bpm, key) and f"{bpm} BPM, {key}" in shown["text"]
    assert float(shown["energy"]) == pytest.approx(shown_plan.mood.energy, abs=0.006)
    # The render request carried the editor's tempo, key and energy: the worker's plan beside the cue has them.
    meta = json.loads(Path(output).with_suffix(".json").read_text())
    assert meta["request"]["plan"] == str(plan_path(output))
    rendered = CuePlan.load(plan_path(output))
    assert (rendered.key, rendered.mode, rendered.source["maestro"]) == ("E", "minor", "bach")
    assert rendered.choices["target_bpm"] == pytest.approx(96) and rendered.mood.energy == pytest.approx(0.2)
    # The cancelled job wrote nothing.
    assert [p.name for p in out.glob("*1M2*.wav")] == []


def test_panel_ends_a_job_whose_end_event_never_came(tmp_path):
    """A job's `job_finished` lost on the way (a dropped connection): the panel's status poll finds the job ended and
    shows the plan or places the cue; with the events flowing again, the event and the poll together still place a
    cue once."""
    pw = chromium_or_skip()
    from filmscore.engine.bundle_testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle", seed=0)
    markers = [{"name": "1M1", "startTicks": 4 * T, "durationTicks": 2 * T}]
    page_cfg = {"dropEvents": ["job_finished"], "panelOptions": {"pollMs": 200}}
    with live_panel(pw, tmp_path, bundle, "Reel 1", markers, adapter=RECORDING_ADAPTER, page=page_cfg) as (pp, out):
        page = pp.page
        page.wait_for_function("document.querySelectorAll('#fs-cue option').length === 1", timeout=10_000)
        page.click("#fs-plan")  # a plan job's end is found the same way
        page.wait_for_selector('#fs-plan-info[data-state="finished"]', timeout=300_000)
        page.fill("#fs-steps", "2")
        page.click("#fs-submit")
        first = page.wait_for_selector('.fs-job[data-placed="1"]', timeout=300_000)
        first_id = first.get_attribute("data-job-id")
        dropped = page.evaluate("window.dropped")  # the poll ended both: the plan's job and the render's
        assert len(dropped) == 2 and dropped[1] == first_id
        page.evaluate("window.dropEvents = []")
        page.fill("#fs-seed", "7")
        page.click("#fs-submit")
        page.wait_for_function("document.querySelectorAll('.fs-job[data-placed=\"1\"]').length === 2",
                               timeout=300_000)
        page.wait_for_timeout(1000)  # five more polls: none may place a cue again
        placed = [c for c in page.evaluate("window.fake.calls") if c[0] == "placeOnNewAudioTrack"]
        rows = page.eval_on_selector_all(".fs-job", "rs => rs.map(r => [r.dataset.state, r.dataset.output])")
    assert not pp.errors, pp.errors
    assert sorted(c[1] for c in placed) == sorted(o for _, o in rows) and len(placed) == 2
    assert [s for s, _ in rows] == ["finished", "finished"]


NODE_GATEWAY_CHECK = r"""
const { GatewayClient, BridgeError } = require(process.argv[1]);
// A WebSocket stand-in that answers as the gateway does (docs/protocol.md), scripted per test.
class FakeWS {
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; FakeWS.last = this;
                     setTimeout(() => { this.readyState = 1; this.onopen(); }, 0); }
  send(d) { this.sent.push(d); FakeWS.onsend(this, d); }
  close(code = 1000) { this.readyState = 3; this.onclose({ code }); }
  recv(obj) { this.onmessage({ data: typeof obj === "string" || obj instanceof ArrayBuffer ? obj : JSON.stringify(obj) }); }
}
const out = {};
(async () => {
  // 1. A wrong token: the gateway closes with 1008 and the client says why.
  FakeWS.onsend = (ws) => setTimeout(() => ws.close(1008), 0);
  try { await new GatewayClient("ws://x", "bad", { WebSocketImpl: FakeWS }).connect(); }
  catch (e) { out.refused = e.message; }
  // 2. Replies matched by msg_id; an error reply rejects with its ename; an unparented error rejects the oldest;
  //    a reply with buffers resolves once they arrived; job events go to listeners.
  FakeWS.onsend = (ws, d) => {
    if (typeof d !== "string") return;
    const m = JSON.parse(d);
    if (m.token) return setTimeout(() => ws.recv({ status: "ok", protocol_version: "1.0" }), 0);
    const id = m.header.msg_id, t = m.header.msg_type;
    setTimeout(() => {
      if (t === "status") { ws.recv({ header: { msg_type: "job_progress" }, parent_header: {}, content: { job_id: "j1", fraction: 0.5 }, buffers: 0 });
                            ws.recv({ header: { msg_type: "status_reply" }, parent_header: { msg_id: id }, content: { status: "ok", n: 1 }, buffers: 1 });
                            ws.recv(new ArrayBuffer(3)); }
      else if (t === "cancel") ws.recv({ header: { msg_type: "cancel_reply" }, parent_header: { msg_id: id }, content: { status: "error", ename: "JobError", evalue: "no job j9" }, buffers: 0 });
      else ws.recv({ header: { msg_type: "error" }, parent_header: {}, content: { status: "error", ename: "ProtocolError", evalue: "bad" }, buffers: 0 });
    }, 0);
  };
  const c = new GatewayClient("ws://x", "good", { WebSocketImpl: FakeWS });
  await c.connect();
  const events = [];
  c.onEvent((m) => events.push(m.content.fraction));
  const st = await c.status();
  out.status = [st.n, events];
  try { await c.cancel("j9"); } catch (e) { out.cancel = [e instanceof BridgeError, e.ename, e.evalue]; }
  try { await c.result("j1"); } catch (e) { out.unparented = e.ename; }
  console.log(JSON.stringify(out));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the CommonJS check needs it")
def test_gateway_client_replies_errors_and_events():
    r = subprocess.run(["node", "-e", NODE_GATEWAY_CHECK, str(PANEL / "uxp" / "bridge.js")], capture_output=True,
                       text=True, timeout=30, check=True)
    out = json.loads(r.stdout)
    assert "refused the token" in out["refused"]
    assert out["status"] == [1, [0.5]]
    assert out["cancel"] == [True, "JobError", "no job j9"]
    assert out["unparented"] == "ProtocolError"
