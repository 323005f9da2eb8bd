// Generated from src/cues.js by build_uxp.py: edit the source, then run `python build_uxp.py`.
// Cue regions of a Premiere sequence and the render request for one, as plain data (no Premiere, no DOM).
// Times are Premiere ticks (TICKS_PER_SECOND per second) and travel to the bridge as exact rational times
// {value: ticks, rate: TICKS_PER_SECOND}. The convention is the bridge's (docs/timelines.md): ranged markers named
// like spotting numbers (1M1, M3, 2M10A) or starting with "cue" are cues; the point markers inside a cue are its
// hit points; the sequence's in/out range is offered too; with neither, the whole sequence is one cue.

const { TICKS_PER_SECOND } = require("./config.js");

const DEFAULT_CUE_PATTERN = /^(\d*M\d+\w*|cue\b.*)/i; // = bridge/timelines/cues.py DEFAULT_CUE_PATTERN

/** Ticks as the bridge's rational time. */
function rational(ticks) {
  return { value: ticks, rate: TICKS_PER_SECOND };
}

function ticksToSeconds(ticks) {
  return ticks / TICKS_PER_SECOND;
}

/** "HH:MM:SS:FF" of `ticks` on a grid of `ticksPerFrame` (non-drop-frame display). */
function timecode(ticks, ticksPerFrame) {
  const fps = Math.round(TICKS_PER_SECOND / ticksPerFrame);
  const frames = Math.round(ticks / ticksPerFrame);
  const ff = frames % fps;
  const s = Math.floor(frames / fps);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}:${pad(ff)}`;
}

/**
 * Cue regions of a sequence.
 * @param {object} seq  {name, ticksPerFrame, zeroTicks, endTicks, inTicks, outTicks,
 *                       markers: [{name, startTicks, durationTicks, comments}]}   (what the adapter reads)
 * @returns {{cues: Array<{name, origin, startTicks, durationTicks, hitsTicks}>, notes: string[]}}
 *          hitsTicks are relative to the cue start.
 */
function cueRegions(seq, pattern = DEFAULT_CUE_PATTERN) {
  const notes = [];
  const cues = [];
  const markers = seq.markers || [];
  for (const m of markers) {
    if (m.durationTicks > 0 && pattern.test(m.name)) {
      cues.push({ name: m.name, origin: "marker", startTicks: m.startTicks, durationTicks: m.durationTicks });
    } else if (m.durationTicks > 0) {
      notes.push(`marker "${m.name}" has a duration but its name is not a cue name (like 1M1 or "cue ...")`);
    }
  }
  const hasInOut = seq.outTicks > seq.inTicks && !(seq.inTicks <= seq.zeroTicks && seq.outTicks >= seq.endTicks);
  if (hasInOut) {
    cues.push({ name: "In-Out", origin: "in/out", startTicks: seq.inTicks, durationTicks: seq.outTicks - seq.inTicks });
  }
  if (!cues.length && seq.endTicks > seq.zeroTicks) {
    cues.push({ name: seq.name || "Sequence", origin: "sequence", startTicks: seq.zeroTicks,
      durationTicks: seq.endTicks - seq.zeroTicks });
  }
  for (const c of cues) {
    const end = c.startTicks + c.durationTicks;
    c.hitsTicks = markers
      .filter((m) => !(m.durationTicks > 0) && m.startTicks > c.startTicks && m.startTicks < end)
      .map((m) => m.startTicks - c.startTicks)
      .sort((a, b) => a - b);
  }
  cues.sort((a, b) => a.startTicks - b.startTicks);
  return { cues, notes };
}

/**
 * The picture of a cue, when one clip shows all of it: {video, startTicks (in the media), note}.
 * @param {object} cue
 * @param {Array<{track, startTicks, endTicks, inTicks, mediaPath, offline}>} clips  video clips, track 0 = V1
 * A cue over several clips, a gap or an offline clip is scored without picture and says why: the bridge takes one
 * video and a start, and what a multi-clip cue shows needs its timeline ranges (see plugin_manifests/README.md).
 */
function pictureFor(cue, clips) {
  const start = cue.startTicks;
  const end = cue.startTicks + cue.durationTicks;
  const over = (clips || []).filter((c) => c.startTicks < end && c.endTicks > start);
  if (!over.length) return { video: null, startTicks: 0, note: "no video under the cue: scored without picture" };
  const top = Math.max(...over.map((c) => c.track));
  const visible = over.filter((c) => c.track === top);
  if (visible.length !== 1 || visible[0].startTicks > start || visible[0].endTicks < end) {
    return { video: null, startTicks: 0,
      note: `the cue spans ${visible.length} clip(s) on V${top + 1} (or a gap): scored without picture` };
  }
  const clip = visible[0];
  if (clip.offline || !clip.mediaPath) {
    return { video: null, startTicks: 0, note: "the clip under the cue is offline: scored without picture" };
  }
  return { video: clip.mediaPath, startTicks: clip.inTicks + (start - clip.startTicks), note: "" };
}

/** A file name made safe on every OS: letters, digits, "-", "_" and "."; others become "_". */
function safeName(text) {
  return String(text).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "").slice(0, 80) || "cue";
}

/** OUTFOLDER/SEQ_CUE_seedN_YYYYMMDD-HHMMSS.wav, with the folder's own separator. */
function outputPath(folder, sequenceName, cueName, seed, date = new Date()) {
  const sep = folder.includes("\\") && !folder.includes("/") ? "\\" : "/";
  const p = (n) => String(n).padStart(2, "0");
  const stamp = `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-` +
    `${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
  const base = `${safeName(sequenceName)}_${safeName(cueName)}_seed${seed}_${stamp}.wav`;
  return folder.endsWith(sep) ? folder + base : folder + sep + base;
}

/**
 * The `render` request content (docs/protocol.md) and its binary buffers for one cue.
 * @param {object} cue       from cueRegions
 * @param {object} picture   from pictureFor
 * @param {object} choice    {output, seed, steps, durationTicks?, maestro?, midi?: {bytes: Uint8Array},
 *                           overrides?: {tempo_bpm?, key?, energy?, valence?, tension?, orchestration?}}
 */
function renderRequest(cue, picture, choice) {
  const duration = choice.durationTicks && choice.durationTicks > 0 ? choice.durationTicks : cue.durationTicks;
  const content = { output: choice.output, duration: rational(duration), seed: choice.seed, steps: choice.steps };
  const buffers = [];
  if (picture && picture.video) {
    content.video = picture.video;
    content.start = rational(picture.startTicks);
  }
  if (choice.maestro) content.maestro = choice.maestro;
  if (choice.midi) {
    content.midi = { buffer: 0 };
    buffers.push(choice.midi.bytes);
  }
  const hits = (cue.hitsTicks || []).filter((h) => h < duration);
  if (hits.length) content.hits = hits.map(rational);
  // The editor's plan overrides: each replaces what the picture would choose (docs/plan.md).
  for (const [k, v] of Object.entries(choice.overrides || {})) if (v !== undefined && v !== null) content[k] = v;
  return { content, buffers };
}
module.exports = { DEFAULT_CUE_PATTERN, rational, ticksToSeconds, timecode, cueRegions, pictureFor, safeName, outputPath, renderRequest };
