// Generated from src/panel.js by build_uxp.py: edit the source, then run `python build_uxp.py`.
// The panel's UI: plain DOM, no framework, so it runs the same in a UXP panel and in a browser.
// Everything host-specific goes through `adapter` (premiere_adapter.js in Premiere; a stand-in in tests):
//   readConnection()            -> {url, token}  the bridge's WebSocket gateway, from its connection file
//   readSequence()              -> {name, ticksPerFrame, zeroTicks, endTicks, inTicks, outTicks, markers, clips}
//   defaultOutputFolder()       -> string        where cues are written (must be one of the bridge's output roots)
//   pickMidiFile()              -> {name, bytes: Uint8Array} | null
//   placeOnNewAudioTrack(path, startTicks) -> {track: string}   import the WAV, place it at the record time
//   mediaUrl(path)              -> string        a URL the panel's <audio> player can load the WAV at `path` from

const { BridgeError, GatewayClient } = require("./bridge.js");
const { TICKS_PER_SECOND } = require("./config.js");
const { cueRegions, outputPath, pictureFor, renderRequest, ticksToSeconds, timecode } = require("./cues.js");

const TERMINAL = new Set(["finished", "failed", "cancelled"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "hidden") node.hidden = Boolean(v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function field(label, input) {
  return el("label", { class: "fs-field" }, el("span", { text: label }), input);
}

const MOODS = ["energy", "valence", "tension"];

// The render options the panel has a field for: option name (as the bridge's hello lists it in
// capabilities.render_options, from the engine's RenderOptions) -> the field's key in `ui`. Each field takes its
// default, range and choices from the hello reply, so the panel holds no copy of them: until the bridge has
// answered, the fields are empty and disabled.
const OPTION_FIELDS = { seed: "seed", steps: "steps", tempo_bpm: "tempo", energy: "energy", valence: "valence",
  tension: "tension", orchestration: "orchestration", stems: "stems" };

function moodSlider(name) {
  // data-set="1" once the editor moves it: only then is it an override (the plan's value is just shown). Its range
  // (and its resting place, the middle of it) comes with the bridge's hello.
  return el("input", { id: `fs-${name}`, type: "range", step: "0.01", "data-set": "0", disabled: "" });
}

/**
 * Build the panel inside `root` and connect to the bridge.
 * @param {HTMLElement} root
 * @param {object} adapter   see the header of this file
 * @param {object} options   {allowedGateway: "ws://host:port" the host permits (null: any), WebSocketImpl,
 *                           pollMs: how often unfinished jobs are checked with the bridge (default 5000)}
 * @returns {object} the panel's state and actions (tests and main.js use it)
 */
function mountPanel(root, adapter, options = {}) {
  const ui = {
    status: el("span", { class: "fs-status", id: "fs-status", "data-state": "disconnected", text: "not connected" }),
    connect: el("button", { id: "fs-connect", text: "Connect" }),
    seqName: el("span", { id: "fs-seq", text: "no sequence read" }),
    refresh: el("button", { id: "fs-refresh", text: "Read sequence" }),
    cue: el("select", { id: "fs-cue" }),
    cueInfo: el("div", { id: "fs-cue-info", class: "fs-muted" }),
    notes: el("ul", { id: "fs-notes", class: "fs-notes" }),
    source: el("select", { id: "fs-source" },
      el("option", { value: "none", text: "Picture only" }),
      el("option", { value: "maestro", text: "A maestro" }),
      el("option", { value: "midi", text: "A MIDI theme" })),
    maestro: el("select", { id: "fs-maestro", hidden: true }),
    midiButton: el("button", { id: "fs-midi", text: "Choose MIDI file…", hidden: true }),
    midiName: el("span", { id: "fs-midi-name", class: "fs-muted" }),
    seed: el("input", { id: "fs-seed", type: "number", step: "1", disabled: "" }),
    length: el("input", { id: "fs-length", type: "number", min: "1", step: "0.01", placeholder: "cue length" }),
    steps: el("input", { id: "fs-steps", type: "number", step: "1", disabled: "" }),
    out: el("input", { id: "fs-out", type: "text", placeholder: "/path/to/cues" }),
    plan: el("button", { id: "fs-plan", text: "Plan" }),
    planClear: el("button", { id: "fs-plan-clear", text: "Clear overrides" }),
    planInfo: el("div", { id: "fs-plan-info", class: "fs-muted", text: "no plan yet: the picture decides" }),
    tempo: el("input", { id: "fs-tempo", type: "number", step: "0.1", disabled: "" }),
    key: el("input", { id: "fs-key", type: "text", placeholder: "e.g. D minor" }),
    energy: moodSlider("energy"),
    valence: moodSlider("valence"),
    tension: moodSlider("tension"),
    ...Object.fromEntries(MOODS.map((m) => [`${m}Value`, el("output", { id: `fs-${m}-value`, class: "fs-muted" })])),
    orchestration: el("select", { id: "fs-orchestration", disabled: "" },
      el("option", { value: "", text: "from the plan" })),
    draft: el("input", { id: "fs-draft", type: "checkbox", checked: "" }),
    stems: el("input", { id: "fs-stems", type: "checkbox", disabled: "" }),
    takes: el("input", { id: "fs-takes", type: "number", min: "1", max: "16", step: "1", value: "1" }),
    submit: el("button", { id: "fs-submit", class: "fs-primary", text: "Score cue" }),
    // The editor's loop (docs/editor_loop.md): a range of the last cue placed, again; scored cues to a new cut.
    regenStart: el("input", { id: "fs-regen-start", type: "number", min: "0", step: "0.01", placeholder: "from (s)" }),
    regenEnd: el("input", { id: "fs-regen-end", type: "number", min: "0", step: "0.01", placeholder: "to (s)" }),
    regenerate: el("button", { id: "fs-regenerate", text: "Regenerate range" }),
    regenInfo: el("div", { id: "fs-regen-info", class: "fs-muted", text: "no cue placed yet" }),
    conformOld: el("input", { id: "fs-conform-old", type: "text", placeholder: "old edit (.otio, .xml, .edl)" }),
    conformNew: el("input", { id: "fs-conform-new", type: "text", placeholder: "new edit" }),
    conformScored: el("input", { id: "fs-conform-scored", type: "text", placeholder: "folder score wrote" }),
    conformOut: el("input", { id: "fs-conform-out", type: "text", placeholder: "new folder" }),
    conform: el("button", { id: "fs-conform", text: "Conform" }),
    // Plays a job's draft the moment the bridge announces it (job_preview), then its final cue in its place.
    player: el("audio", { id: "fs-player", controls: "", preload: "auto", hidden: true, "data-history": "" }),
    playerInfo: el("div", { id: "fs-player-info", class: "fs-muted" }),
    jobs: el("ul", { id: "fs-jobs", class: "fs-jobs" }),
    message: el("div", { id: "fs-message", class: "fs-message", role: "status" }),
  };
  root.append(el("div", { class: "fs-panel" },
    el("header", {}, el("strong", { text: "filmscore" }), ui.status, ui.connect),
    el("section", {}, el("div", { class: "fs-row" }, ui.seqName, ui.refresh), field("Cue", ui.cue), ui.cueInfo,
      ui.notes),
    el("section", {}, field("Theme", ui.source), ui.maestro, el("div", { class: "fs-row" }, ui.midiButton, ui.midiName),
      el("div", { class: "fs-row" }, field("Seed", ui.seed), field("Length (s)", ui.length), field("Steps", ui.steps)),
      field("Output folder", ui.out)),
    el("section", { id: "fs-plan-section" }, el("div", { class: "fs-row" }, ui.plan, ui.planClear), ui.planInfo,
      el("div", { class: "fs-row" }, field("Tempo (BPM)", ui.tempo), field("Key", ui.key),
        field("Orchestration", ui.orchestration)),
      el("div", { class: "fs-row" }, ...MOODS.map((m) => field(m[0].toUpperCase() + m.slice(1),
        el("div", { class: "fs-row" }, ui[m], ui[`${m}Value`])))),
      el("label", { class: "fs-row" }, ui.draft, el("span", { text: "Draft first (a few steps, played at once)" })),
      el("label", { class: "fs-row" }, ui.stems, el("span", { text: "Stems beside the mix (a v2 bundle)" })),
      field("Takes (side by side)", ui.takes),
      ui.submit),
    el("section", { id: "fs-regen-section" }, ui.regenInfo,
      el("div", { class: "fs-row" }, ui.regenStart, ui.regenEnd, ui.regenerate)),
    el("section", { id: "fs-conform-section" }, field("Conform: old edit", ui.conformOld),
      field("New edit", ui.conformNew), field("Scored folder", ui.conformScored), field("New folder", ui.conformOut),
      ui.conform),
    el("section", {}, ui.player, ui.playerInfo),
    el("section", {}, el("div", { class: "fs-muted", text: "Jobs" }), ui.jobs),
    ui.message));

  // options: the bridge's render options by name (hello's capabilities.render_options), null until it answered.
  const state = { client: null, options: null, sequence: null, cues: [], midi: null, jobs: new Map(),
    early: new Map(), planJobs: new Map(), plan: null, lastCue: null, regenerations: 0 };

  function say(text, isError = false) {
    ui.message.textContent = text;
    ui.message.dataset.error = isError ? "1" : "0";
  }

  function setStatus(s, text) {
    ui.status.dataset.state = s;
    ui.status.textContent = text;
  }

  async function connect() {
    if (state.client) state.client.close();
    setStatus("connecting", "connecting…");
    try {
      const conn = await adapter.readConnection();
      if (options.allowedGateway && conn.url !== options.allowedGateway) {
        throw new BridgeError("ConnectionError", `the bridge's gateway is ${conn.url} but this panel may only ` +
          `reach ${options.allowedGateway}: run \`filmscore serve --ws ${options.allowedGateway.slice(5)}\``);
      }
      const client = new GatewayClient(conn.url, conn.token, { WebSocketImpl: options.WebSocketImpl });
      await client.connect();
      try {
        const hello = await client.hello();
        applyRenderOptions((hello.capabilities || {}).render_options);
      } catch (e) {
        client.close();
        throw e;
      }
      client.onEvent(onEvent);
      client.onClose((why) => setStatus("disconnected", `disconnected: ${why}`));
      state.client = client;
      setStatus("connected", `connected (${conn.url})`);
      loadMaestros();
    } catch (e) {
      setStatus("disconnected", "not connected");
      say(e.message, true);
    }
  }

  // Each option's field takes the bridge's range and choices, and its default the first time (a reconnect keeps
  // what the editor typed), then is enabled. A bridge that lists no such option is refused rather than guessed at.
  function applyRenderOptions(schema) {
    const byName = new Map((Array.isArray(schema) ? schema : []).map((o) => [o.name, o]));
    const missing = Object.keys(OPTION_FIELDS).filter((name) => !byName.has(name));
    if (missing.length) {
      throw new BridgeError("ProtocolError", `the bridge lists no render option ${missing.join(", ")} in its ` +
        "hello (capabilities.render_options): update filmscore where the bridge runs");
    }
    const first = state.options === null;
    for (const [name, key] of Object.entries(OPTION_FIELDS)) {
      const o = byName.get(name);
      const input = ui[key];
      if (o.range) [input.min, input.max] = o.range.map(String);
      if (o.choices) setChoices(input, o.choices);
      if (first && o.default !== null) {
        if (o.type === "boolean") input.checked = o.default;
        else input.value = String(o.default);
      } else if (first && o.range && input.type === "range") {
        input.value = String((o.range[0] + o.range[1]) / 2); // no default (the plan decides): rest in the middle
      }
      if (first && o.default === null && o.unit && input.type === "number") input.placeholder = o.unit;
      input.disabled = false;
    }
    state.options = byName;
  }

  // A select's options after its first ("from the plan": no override): the option's choices.
  function setChoices(select, choices) {
    const kept = select.value;
    select.replaceChildren(select.options[0], ...choices.map((c) => el("option", { value: c, text: c })));
    select.value = choices.includes(kept) ? kept : "";
  }

  // A number field's value, checked against its option's type and range as the bridge listed them: {value} or
  // {error} (the bridge checks again; this says what is wrong before anything is sent).
  function optionNumber(name) {
    const o = state.options.get(name);
    const raw = ui[OPTION_FIELDS[name]].value;
    const v = Number(raw);
    const whole = o.type === "integer";
    const [lo, hi] = o.range || [-Infinity, Infinity];
    if (raw.trim() === "" || !(whole ? Number.isInteger(v) : Number.isFinite(v)) || v < lo || v > hi) {
      return { error: `${name} must be ${whole ? "a whole number" : "a number"} in ${lo}..${hi}` +
        `${o.unit ? ` ${o.unit}` : ""}, got ${raw}` };
    }
    return { value: v };
  }

  async function loadMaestros() {
    ui.maestro.replaceChildren();
    try {
      const reply = await state.client.maestros();
      for (const m of reply.maestros || []) {
        const name = typeof m === "string" ? m : m.name;
        ui.maestro.append(el("option", { value: name, text: (m && m.display) || name }));
      }
    } catch (e) {
      ui.maestro.append(el("option", { value: "", text: `no maestros (${e.evalue || e.message})` }));
    }
  }

  async function readSequence() {
    try {
      const seq = await adapter.readSequence();
      const { cues, notes } = cueRegions(seq);
      state.sequence = seq;
      state.cues = cues;
      ui.seqName.textContent = seq.name;
      ui.cue.replaceChildren(...cues.map((c, i) => el("option", { value: String(i),
        text: `${c.name}  ${timecode(c.startTicks, seq.ticksPerFrame)}  ${ticksToSeconds(c.durationTicks).toFixed(2)} s` })));
      ui.notes.replaceChildren(...notes.map((n) => el("li", { text: n })));
      showCue();
      if (!ui.out.value) ui.out.value = (await adapter.defaultOutputFolder()) || "";
    } catch (e) {
      say(`cannot read the sequence: ${e.message}`, true);
    }
  }

  function selectedCue() {
    return state.cues[Number(ui.cue.value)] || null;
  }

  function showCue() {
    const cue = selectedCue();
    if (!cue) {
      ui.cueInfo.textContent = "no cue";
      return;
    }
    const pic = pictureFor(cue, state.sequence.clips);
    ui.cueInfo.textContent = `${cue.origin}, ${cue.hitsTicks.length} hit point(s); ` +
      (pic.video ? `picture: ${pic.video.split(/[\\/]/).pop()}` : pic.note);
    ui.length.value = ticksToSeconds(cue.durationTicks).toFixed(2);
  }

  function jobRow(job) {
    const row = el("li", { class: "fs-job", "data-state": job.state, "data-cue": job.cue.name,
      "data-progress-events": "0" });
    job.stateText = el("span", { class: "fs-state", text: job.state });
    job.bar = el("progress", { max: "1", value: "0" });
    job.detail = el("div", { class: "fs-detail fs-muted" });
    job.cancel = el("button", { class: "fs-cancel", text: "Cancel" });
    job.cancel.addEventListener("click", () => cancelJob(job));
    row.append(el("strong", { text: job.cue.name }), job.stateText, job.bar, job.cancel, job.detail);
    job.row = row;
    ui.jobs.prepend(row);
  }

  function setJobState(job, s, detail) {
    job.state = s;
    job.row.dataset.state = s;
    job.stateText.textContent = s;
    if (detail !== undefined) job.detail.textContent = detail;
    if (TERMINAL.has(s)) job.cancel.disabled = true;
  }

  // The request for the selected cue, as the editor set it up: {cue, picture, content, buffers}, or an error message.
  function cueRequest() {
    const cue = selectedCue();
    if (!state.client) return { error: "not connected to the bridge" };
    if (!cue) return { error: "read the sequence and pick a cue first" };
    const seed = optionNumber("seed");
    if (seed.error) return seed;
    const steps = optionNumber("steps");
    if (steps.error) return steps;
    const lengthS = Number(ui.length.value);
    if (!(lengthS > 0)) return { error: `length must be a positive number of seconds, got ${ui.length.value}` };
    if (!ui.out.value.trim()) return { error: "choose an output folder (one the bridge may write to)" };
    const overrides = planOverrides();
    if (overrides.error) return overrides;
    const choice = { output: outputPath(ui.out.value.trim(), state.sequence.name, cue.name, seed.value),
      seed: seed.value, steps: steps.value, durationTicks: Math.round(lengthS * TICKS_PER_SECOND), overrides };
    if (ui.source.value === "maestro") {
      if (!ui.maestro.value) return { error: "no maestro to choose: the bridge has no maestro library" };
      choice.maestro = ui.maestro.value;
    } else if (ui.source.value === "midi") {
      if (!state.midi) return { error: "choose a MIDI file first" };
      choice.midi = state.midi;
    }
    const picture = pictureFor(cue, state.sequence.clips);
    return { cue, picture, ...renderRequest(cue, picture, choice) };
  }

  // The fields the editor set; an empty field or an untouched slider leaves the choice to the picture.
  function planOverrides() {
    const o = {};
    if (ui.tempo.value.trim() !== "") {
      const bpm = optionNumber("tempo_bpm");
      if (bpm.error) return bpm;
      o.tempo_bpm = bpm.value;
    }
    if (ui.key.value.trim()) o.key = ui.key.value.trim();
    for (const m of MOODS) if (ui[m].dataset.set === "1") o[m] = Number(ui[m].value);
    if (ui.orchestration.value) o.orchestration = ui.orchestration.value;
    return o;
  }

  function clearOverrides() {
    ui.tempo.value = "";
    ui.key.value = "";
    ui.orchestration.value = "";
    for (const m of MOODS) ui[m].dataset.set = "0";
    if (state.plan) showPlan(state.plan);
    else MOODS.forEach(showMood);
  }

  // Ask the bridge for the cue's plan (no audio); the answer arrives as the job's result (onEvent -> showPlan).
  async function requestPlan() {
    const req = cueRequest();
    if (req.error) return say(req.error, true);
    ui.planInfo.textContent = "planning…";
    ui.planInfo.dataset.state = "running";
    try {
      const reply = await state.client.plan(req.content, req.buffers);
      state.planJobs.set(reply.job_id, req.cue);
      for (const ev of state.early.get(reply.job_id) || []) onEvent(ev);
      state.early.delete(reply.job_id);
      return reply.job_id;
    } catch (e) {
      ui.planInfo.textContent = `no plan: ${e.message}`;
      ui.planInfo.dataset.state = "failed";
      say(e.message, true);
    }
  }

  function onPlanEvent(jobId, type, c) {
    if (type === "job_finished") {
      state.planJobs.delete(jobId);
      if (c.result && c.result.plan) showPlan(c.result);
      else state.client.result(jobId).then((r) => showPlan(r.result), (e) => say(e.message, true));
    } else if (type === "job_failed" || type === "job_cancelled") {
      state.planJobs.delete(jobId);
      ui.planInfo.textContent = `no plan: ${c.ename ? `${c.ename}: ${c.evalue}` : c.detail || type}`;
      ui.planInfo.dataset.state = "failed";
    } else if (type === "job_progress") {
      ui.planInfo.textContent = `planning… ${c.stage} ${Math.round(100 * (c.fraction || 0))} %`;
    }
  }

  // The plan as the bridge made it: shown, and the fields' placeholders (an untouched field keeps the plan's choice).
  function showPlan(p) {
    state.plan = p;
    const m = p.mood || {};
    ui.planInfo.textContent = `${p.tempo_bpm.toFixed(1)} BPM, ${p.key} ${p.mode}, ${p.bars} bars, ` +
      `${p.orchestration}; energy ${m.energy.toFixed(2)}, valence ${m.valence.toFixed(2)}, ` +
      `tension ${m.tension.toFixed(2)}`;
    Object.assign(ui.planInfo.dataset, { state: "finished", plan: p.plan, tempo: String(p.tempo_bpm),
      key: `${p.key} ${p.mode}` });
    ui.tempo.placeholder = p.tempo_bpm.toFixed(1);
    ui.key.placeholder = `${p.key} ${p.mode}`;
    ui.orchestration.options[0].textContent = `from the plan (${p.orchestration})`;
    for (const k of MOODS) {
      if (ui[k].dataset.set !== "1") ui[k].value = String(m[k]);
      showMood(k);
    }
  }

  // A slider's value, and whether it is the editor's (an override) or the plan's / the picture's.
  function showMood(m) {
    const set = ui[m].dataset.set === "1";
    ui[`${m}Value`].textContent = set || state.plan ? `${Number(ui[m].value).toFixed(2)}${set ? "" : " (plan)"}` : "auto";
  }

  async function submit() {
    const req = cueRequest();
    if (req.error) return say(req.error, true);
    const { cue, picture, content, buffers } = req;
    const takes = Number(ui.takes.value);
    if (!Number.isInteger(takes) || takes < 1 || takes > 16) return say(`takes must be 1..16, got ${ui.takes.value}`, true);
    if (takes > 1) content.variations = takes; // takes OUT.take1.wav ..., seeds seed..seed+N-1, shown side by side
    else if (ui.draft.checked) content.preview = {}; // a draft first, at the bridge's default steps (one take)
    if (ui.stems.checked) content.stems = true; // lead, accompaniment, percussion beside the mix (a v2 bundle)
    const job = { id: null, cue, output: content.output, state: "submitting", progressEvents: 0 };
    jobRow(job);
    try {
      const reply = await state.client.render(content, buffers);
      job.id = reply.job_id;
      job.row.dataset.jobId = job.id;
      state.jobs.set(job.id, job);
      setJobState(job, reply.state, picture.video ? "" : picture.note);
      for (const ev of state.early.get(job.id) || []) onEvent(ev);
      state.early.delete(job.id);
      say(`queued ${cue.name} (job ${job.id.slice(0, 8)})`);
    } catch (e) {
      setJobState(job, "failed", e.message);
      say(e.message, true);
    }
    return job;
  }

  async function cancelJob(job) {
    if (!job.id || TERMINAL.has(job.state)) return;
    try {
      const reply = await state.client.cancel(job.id);
      if (!TERMINAL.has(job.state)) setJobState(job, reply.state);
    } catch (e) {
      say(e.message, true);
    }
  }

  function onEvent(msg) {
    const c = msg.content || {};
    if (state.planJobs.has(c.job_id)) return onPlanEvent(c.job_id, msg.header.msg_type, c);
    const job = state.jobs.get(c.job_id);
    if (!job) { // an event that raced ahead of our render reply, or another client's job
      if (c.job_id) state.early.set(c.job_id, [...(state.early.get(c.job_id) || []), msg].slice(-20));
      return;
    }
    if (TERMINAL.has(job.state)) return; // ended already: by an earlier event or by `reconcile`
    const type = msg.header.msg_type;
    if (type === "job_progress") {
      job.progressEvents += 1;
      job.row.dataset.progressEvents = String(job.progressEvents);
      job.bar.value = c.fraction || 0;
      const eta = c.eta_s != null ? `, ${Math.ceil(c.eta_s)} s left` : "";
      setJobState(job, "running", `${c.stage} ${Math.round(100 * (c.fraction || 0))} %${eta}`);
    } else if (type === "job_preview") {
      job.row.dataset.draft = c.path;
      setJobState(job, "running", `draft ready (${c.steps} steps, ${Number(c.ready_after_s).toFixed(1)} s)`);
      listen(job, c.path, "draft");
    } else if (type === "job_started") {
      setJobState(job, "running", "started");
    } else if (type === "job_queued") {
      setJobState(job, "queued", c.position ? `position ${c.position}` : "");
    } else if (type === "job_cancelled") {
      setJobState(job, "cancelled", c.detail || "cancelled");
    } else if (type === "job_failed") {
      setJobState(job, "failed", `${c.ename}: ${c.evalue}`);
    } else if (type === "job_finished") {
      finish(job, c.result);
    }
  }

  async function finish(job, result) {
    job.bar.value = 1;
    if (job.kind === "conform") return finishConform(job, result);
    setJobState(job, "finished", "placing in the sequence…");
    try {
      const res = result && result.output ? result : (await state.client.result(job.id)).result;
      const takes = res.metadata && res.metadata.variations;
      if (!job.kind && takes && takes.takes && takes.takes.length > 1) return showTakes(job, takes);
      job.result = res;
      job.row.dataset.output = res.output;
      const placed = await adapter.placeOnNewAudioTrack(res.output, job.cue.startTicks);
      job.detail.textContent = `${res.output.split(/[\\/]/).pop()} on ${placed.track} at ` +
        timecode(job.cue.startTicks, state.sequence.ticksPerFrame);
      job.row.dataset.placed = "1";
      setLastCue(job, res.output);
      const stems = Object.values((res.metadata && res.metadata.stems) || {});
      if (stems.length) { // listed, not placed: they share the mix's start, for tracks of the editor's choosing
        job.row.dataset.stems = stems.join(",");
        job.detail.textContent += `; stems: ${stems.map((s) => s.split(/[\\/]/).pop()).join(", ")}`;
      }
      if (ui.player.dataset.jobId === job.id) listen(job, res.output, "final"); // the draft playing: swap it
    } catch (e) {
      job.detail.textContent = `rendered, but not placed: ${e.message}`;
      say(e.message, true);
    }
  }

  // A job's takes, side by side: each can be auditioned in the player and placed; none is placed unasked.
  function showTakes(job, v) {
    job.row.dataset.takes = v.takes.join(",");
    job.detail.textContent = "";
    const row = el("div", { class: "fs-row fs-takes" });
    v.takes.forEach((path, i) => {
      const use = el("button", { class: "fs-take-use", text: "Use" });
      const play = el("button", { class: "fs-take-play", text: "▶" });
      play.addEventListener("click", () => listen(job, path, `take ${i + 1}`));
      use.addEventListener("click", async () => {
        try {
          const placed = await adapter.placeOnNewAudioTrack(path, job.cue.startTicks);
          job.row.dataset.placed = String(i + 1);
          setLastCue(job, path);
          say(`take ${i + 1} (seed ${v.seeds[i]}) on ${placed.track}`);
        } catch (e) {
          say(e.message, true);
        }
      });
      row.append(el("div", { class: "fs-take", "data-take": String(i + 1), "data-path": path },
        el("span", { text: `take ${i + 1} · seed ${v.seeds[i]}` }), play, use));
    });
    job.detail.append(row);
    setJobState(job, "finished");
  }

  // The cue a regeneration starts from: the last one placed (or a take chosen).
  function setLastCue(job, path) {
    state.lastCue = { cue: job.cue, path };
    ui.regenInfo.textContent = `regenerate a range of ${path.split(/[\\/]/).pop()} (seconds of the cue)`;
    ui.regenInfo.dataset.source = path;
  }

  async function regenerateRange() {
    if (!state.client) return say("not connected to the bridge", true);
    if (!state.lastCue) return say("score a cue (or use a take) first: a range of it is regenerated", true);
    const start = Number(ui.regenStart.value);
    const end = Number(ui.regenEnd.value);
    if (!(ui.regenStart.value !== "" && start >= 0 && end > start)) {
      return say(`give a range in seconds of the cue, from < to (got ${ui.regenStart.value}..${ui.regenEnd.value})`, true);
    }
    state.regenerations += 1;
    const source = state.lastCue.path;
    const output = source.replace(/(\.take\d+)?\.wav$/i, "") + `.regen${state.regenerations}.wav`;
    return submitJob({ cue: state.lastCue.cue, output, kind: "regenerate" },
      () => state.client.regenerate({ source, output, start, end }));
  }

  async function conformEdit() {
    if (!state.client) return say("not connected to the bridge", true);
    const f = [ui.conformOld, ui.conformNew, ui.conformScored, ui.conformOut].map((i) => i.value.trim());
    if (f.some((v) => !v)) return say("give the old edit, the new edit, the scored folder and a new folder", true);
    const [oldEdit, newEdit, scored, outdir] = f;
    return submitJob({ cue: { name: "conform", startTicks: 0 }, output: outdir, kind: "conform" },
      () => state.client.conform({ old: oldEdit, new: newEdit, scored, outdir }));
  }

  // A job of the editor's loop: queued like a render, its events through onEvent.
  async function submitJob(spec, send) {
    const job = { id: null, ...spec, state: "submitting", progressEvents: 0 };
    jobRow(job);
    job.row.dataset.kind = spec.kind;
    try {
      const reply = await send();
      job.id = reply.job_id;
      job.row.dataset.jobId = job.id;
      state.jobs.set(job.id, job);
      setJobState(job, reply.state);
      for (const ev of state.early.get(job.id) || []) onEvent(ev);
      state.early.delete(job.id);
      say(`queued ${spec.kind} (job ${job.id.slice(0, 8)})`);
    } catch (e) {
      setJobState(job, "failed", e.message);
      say(e.message, true);
    }
    return job;
  }

  async function finishConform(job, result) {
    try {
      const res = result && result.cues ? result : (await state.client.result(job.id)).result;
      job.row.dataset.output = res.outdir;
      setJobState(job, "finished", res.cues.map((c) => `${c.name}: ${c.action}`).join(", "));
    } catch (e) {
      setJobState(job, "finished", `conformed, but the summary is unreadable: ${e.message}`);
    }
  }

  // Play `path` (a job's draft, or its final cue in the draft's place, from where the draft had got to).
  function listen(job, path, kind) {
    const p = ui.player;
    if (typeof adapter.mediaUrl !== "function") { // a host that cannot hand the panel a playable URL
      ui.playerInfo.textContent = `${kind}: ${path}`;
      return;
    }
    const same = p.dataset.jobId === job.id && !p.paused;
    const at = same ? p.currentTime : 0;
    Object.assign(p.dataset, { jobId: job.id, kind, path, ready: "0", duration: "" });
    p.dataset.history = p.dataset.history ? `${p.dataset.history},${kind}` : kind;
    p.hidden = false;
    p.onloadedmetadata = () => {
      if (p.dataset.path !== path) return; // replaced meanwhile
      p.dataset.duration = String(p.duration);
      p.dataset.ready = "1";
      if (at > 0 && at < p.duration) p.currentTime = at;
    };
    p.onerror = () => {
      if (p.dataset.path === path) ui.playerInfo.textContent = `cannot play ${path} here; it is on disk`;
    };
    p.src = adapter.mediaUrl(path);
    ui.playerInfo.textContent = `${kind === "draft" ? "draft" : "final"}: ${path.split(/[\\/]/).pop()}`;
    const playing = p.play();
    if (playing && playing.catch) playing.catch(() => { ui.playerInfo.textContent += " (press play)"; });
  }

  async function chooseMidi() {
    try {
      const picked = await adapter.pickMidiFile();
      if (picked) setMidi(picked);
    } catch (e) {
      say(`cannot read the MIDI file: ${e.message}`, true);
    }
  }

  function setMidi(picked) {
    const b = picked.bytes;
    if (!(b && b.length >= 4 && b[0] === 0x4d && b[1] === 0x54 && b[2] === 0x68 && b[3] === 0x64)) {
      say(`${picked.name} is not a Standard MIDI File (no MThd header)`, true);
      return;
    }
    state.midi = picked;
    ui.source.value = "midi";
    syncSource();
    ui.midiName.textContent = picked.name;
  }

  function syncSource() {
    ui.maestro.hidden = ui.source.value !== "maestro";
    ui.midiButton.hidden = ui.source.value !== "midi";
  }

  // A .mid dropped anywhere on the panel becomes the theme.
  root.addEventListener("dragover", (ev) => ev.preventDefault());
  root.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    const f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
    if (f) setMidi({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) });
  });
  ui.connect.addEventListener("click", connect);
  ui.refresh.addEventListener("click", readSequence);
  ui.cue.addEventListener("change", showCue);
  ui.source.addEventListener("change", syncSource);
  ui.midiButton.addEventListener("click", chooseMidi);
  ui.submit.addEventListener("click", submit);
  ui.plan.addEventListener("click", requestPlan);
  ui.regenerate.addEventListener("click", regenerateRange);
  ui.conform.addEventListener("click", conformEdit);
  ui.planClear.addEventListener("click", clearOverrides);
  for (const m of MOODS) {
    ui[m].addEventListener("input", () => { ui[m].dataset.set = "1"; showMood(m); });
    showMood(m);
  }

  // Job events are the fast path. A job whose end never reached the panel (an event lost with a dropped connection,
  // or sent while the panel was reconnecting) would wait forever; so every `options.pollMs` (default 5 s) the panel
  // asks the bridge for each unfinished job's state (plans too) and ends the ones that ended. A job ends once:
  // whichever of the event and the poll comes first (both check TERMINAL; a plan leaves state.planJobs).
  async function reconcile() {
    if (!state.client) return;
    for (const jobId of [...state.planJobs.keys()]) {
      try {
        const rec = (await state.client.status(jobId)).job;
        if (!state.planJobs.has(jobId)) continue; // its event came meanwhile
        if (rec.state === "finished") onPlanEvent(jobId, "job_finished", { result: rec.result });
        else if (rec.state === "failed" || rec.state === "cancelled") {
          onPlanEvent(jobId, `job_${rec.state}`, { detail: rec.error || rec.state });
        }
      } catch (e) {
        // as below
      }
    }
    for (const job of [...state.jobs.values()]) {
      if (!job.id || TERMINAL.has(job.state) || job.polling) continue;
      job.polling = true;
      try {
        const rec = (await state.client.status(job.id)).job;
        if (TERMINAL.has(job.state)) continue;
        if (rec.state === "finished") finish(job, rec.result);
        else if (rec.state === "failed") setJobState(job, "failed", rec.error || "failed");
        else if (rec.state === "cancelled") setJobState(job, "cancelled", "cancelled");
      } catch (e) {
        // not connected, or the bridge no longer knows the job: its next event or the next poll decides
      } finally {
        job.polling = false;
      }
    }
  }
  setInterval(reconcile, options.pollMs ?? 5000);

  const ready = connect().then(readSequence);
  return { state, ui, ready, connect, readSequence, submit, cancelJob, setMidi, requestPlan, clearOverrides };
}
module.exports = { mountPanel };
