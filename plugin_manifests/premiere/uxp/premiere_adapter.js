// Generated from src/premiere_adapter.js by build_uxp.py: edit the source, then run `python build_uxp.py`.
// The only module that touches Premiere Pro's UXP API (`premierepro`) and the host's file system (`uxp`, `fs`,
// `os`). Everything else (panel.js, bridge.js, cues.js) is plain JavaScript that also runs in a browser, where
// tests replace this adapter. Premiere API: developer.adobe.com/premiere-pro/uxp (Premiere Pro 25.6+).

function host(name) {
  return require(name); // UXP's CommonJS require: only defined inside the host
}

async function activeSequence(ppro) {
  const project = await ppro.Project.getActiveProject();
  if (!project) throw new Error("no project is open");
  const sequence = await project.getActiveSequence();
  if (!sequence) throw new Error("no active sequence: open one in the Timeline panel");
  return { project, sequence };
}

async function findProjectItem(ppro, folder, mediaPath) {
  for (const item of await folder.getItems()) {
    const clip = ppro.ClipProjectItem.cast(item);
    if (clip && (await clip.getMediaFilePath()) === mediaPath) return clip;
    const sub = ppro.FolderItem.cast(item);
    if (sub) {
      const found = await findProjectItem(ppro, sub, mediaPath);
      if (found) return found;
    }
  }
  return null;
}

class PremiereAdapter {
  /** The newest bridge connection file that runs a WebSocket gateway: {url, token}. */
  async readConnection() {
    const fs = host("fs");
    const os = host("os");
    const dir = `${os.homedir()}/.local/share/filmscore/runtime`; // bridge/connection.py runtime_dir() on macOS/Windows
    let names;
    try {
      names = fs.readdirSync(dir);
    } catch (e) {
      throw new Error(`no running bridge: ${dir} does not exist; start one with \`filmscore serve --ws 127.0.0.1:47861\``);
    }
    const files = names.filter((n) => /^bridge-.*\.json$/.test(n))
      .map((n) => ({ path: `${dir}/${n}`, mtime: fs.lstatSync(`${dir}/${n}`).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const f of files) {
      const info = JSON.parse(fs.readFileSync(f.path, { encoding: "utf-8" }));
      if (info.ws_port && info.ws_token) {
        return { url: `ws://${info.ws_ip || "127.0.0.1"}:${info.ws_port}`, token: info.ws_token };
      }
    }
    throw new Error(`no bridge with a WebSocket gateway in ${dir}; start one with \`filmscore serve --ws 127.0.0.1:47861\``);
  }

  async readSequence() {
    const ppro = host("premierepro");
    const { sequence } = await activeSequence(ppro);
    const ticks = async (t) => Number((await t).ticksNumber);
    const markerList = await (await ppro.Markers.getMarkers(sequence)).getMarkers();
    const markers = [];
    for (const m of markerList) {
      markers.push({ name: await m.getName(), startTicks: await ticks(m.getStart()),
        durationTicks: await ticks(m.getDuration()), comments: await m.getComments() });
    }
    const clips = [];
    const nVideo = await sequence.getVideoTrackCount();
    for (let t = 0; t < nVideo; t += 1) {
      const track = await sequence.getVideoTrack(t);
      for (const item of await track.getTrackItems(ppro.Constants.TrackItemType.CLIP, false)) {
        const clip = ppro.ClipProjectItem.cast(await item.getProjectItem());
        clips.push({ track: t, startTicks: await ticks(item.getStartTime()), endTicks: await ticks(item.getEndTime()),
          inTicks: await ticks(item.getInPoint()), mediaPath: clip ? await clip.getMediaFilePath() : "",
          offline: clip ? await clip.isOffline() : true });
      }
    }
    return {
      name: sequence.name,
      ticksPerFrame: Number(await sequence.getTimebase()),
      zeroTicks: await ticks(sequence.getZeroPoint()),
      endTicks: await ticks(sequence.getEndTime()),
      inTicks: await ticks(sequence.getInPoint()),
      outTicks: await ticks(sequence.getOutPoint()),
      markers,
      clips,
    };
  }

  /** The project's folder: cues land beside the .prproj unless the user picks another folder. */
  async defaultOutputFolder() {
    const ppro = host("premierepro");
    const project = await ppro.Project.getActiveProject();
    const path = project ? project.path : "";
    return path ? path.replace(/[\\/][^\\/]*$/, "") : "";
  }

  async pickMidiFile() {
    const { storage } = host("uxp");
    const file = await storage.localFileSystem.getFileForOpening({ types: ["mid", "midi"] });
    if (!file) return null;
    const data = await file.read({ format: storage.formats.binary });
    return { name: file.name, bytes: new Uint8Array(data) };
  }

  /** Import `path` and overwrite it onto a new audio track (the index after the last) at `startTicks`. */
  async placeOnNewAudioTrack(path, startTicks) {
    const ppro = host("premierepro");
    const { project, sequence } = await activeSequence(ppro);
    if (!(await project.importFiles([path], true, null, false))) throw new Error(`Premiere did not import ${path}`);
    const item = await findProjectItem(ppro, await project.getRootItem(), path);
    if (!item) throw new Error(`imported ${path} but cannot find it in the project`);
    const audioIndex = await sequence.getAudioTrackCount(); // one past the last track: Premiere adds the track
    const editor = ppro.SequenceEditor.getEditor(sequence);
    let ok = false;
    project.lockedAccess(() => {
      ok = project.executeTransaction((compound) => {
        compound.addAction(editor.createOverwriteItemAction(item, ppro.TickTime.createWithTicks(String(startTicks)),
          0, audioIndex));
      }, "filmscore: place cue");
    });
    if (!ok) throw new Error("Premiere refused to place the cue on the timeline");
    return { track: `A${audioIndex + 1}` };
  }

  /** A file: URL of the local WAV at `path` for the panel's <audio> player (the manifest grants localFileSystem). */
  mediaUrl(path) {
    const posix = path.replace(/\\/g, "/");
    return `file://${posix.startsWith("/") ? "" : "/"}${encodeURI(posix)}`;
  }
}
module.exports = { PremiereAdapter };
