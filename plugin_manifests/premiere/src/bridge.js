// A client of the filmscore bridge's WebSocket gateway (docs/protocol.md): token first, then JSON requests whose
// replies are matched by parent_header.msg_id; job events (job_queued ... job_finished) arrive unsolicited.
// Plain ES module: runs in a browser and, converted to CommonJS by build_uxp.py, in a UXP panel. It never signs
// anything: the gateway signs requests with the connection file's key after checking the token.

export class BridgeError extends Error {
  /** An error the bridge answered (ename: ProtocolError, JobError, PathNotAllowed, ...) or a transport failure. */
  constructor(ename, evalue) {
    super(`${ename}: ${evalue}`);
    this.name = "BridgeError";
    this.ename = ename;
    this.evalue = evalue;
  }
}

let counter = 0;
function newMsgId() {
  // 1-64 printable characters; unique, because the bridge answers a repeated render msg_id with the same job.
  const rand = Math.random().toString(36).slice(2, 10);
  counter += 1;
  return `panel-${Date.now().toString(36)}-${counter}-${rand}`;
}

export class GatewayClient {
  /**
   * @param {string} url       ws://127.0.0.1:PORT of `filmscore serve --ws`
   * @param {string} token     ws_token from the bridge's connection file
   * @param {object} opts      {WebSocketImpl, timeoutMs}
   */
  constructor(url, token, { WebSocketImpl = globalThis.WebSocket, timeoutMs = 15000 } = {}) {
    this.url = url;
    this.token = token;
    this.WebSocketImpl = WebSocketImpl;
    this.timeoutMs = timeoutMs;
    this.ws = null;
    this.pending = new Map(); // msg_id -> {resolve, reject, timer}
    this.listeners = new Set();
    this.closeListeners = new Set();
    this.incoming = null; // a message still waiting for its binary buffers
    this.protocolVersion = null;
  }

  /** Open the socket and authenticate; resolves with the gateway's {"status": "ok", "protocol_version"}. */
  connect() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this.WebSocketImpl(this.url);
      } catch (e) {
        reject(new BridgeError("ConnectionError", `cannot open ${this.url}: ${e.message}`));
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let authed = false;
      ws.onopen = () => ws.send(JSON.stringify({ token: this.token }));
      ws.onerror = () => {
        if (!authed) reject(new BridgeError("ConnectionError", `no bridge gateway at ${this.url}`));
      };
      ws.onclose = (ev) => {
        const why = ev.code === 1008 ? "the bridge refused the token (stale connection file?)" :
          `connection closed (code ${ev.code})`;
        if (!authed) reject(new BridgeError("ConnectionError", why));
        for (const [, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new BridgeError("ConnectionError", why));
        }
        this.pending.clear();
        for (const fn of this.closeListeners) fn(why);
      };
      ws.onmessage = (ev) => {
        if (!authed) {
          let first = null;
          try { first = JSON.parse(ev.data); } catch (e) { /* handled below */ }
          if (!first || first.status !== "ok") {
            reject(new BridgeError("ConnectionError", "unexpected first message from the gateway"));
            ws.close();
            return;
          }
          authed = true;
          this.protocolVersion = first.protocol_version;
          resolve(first);
          return;
        }
        this._receive(ev.data);
      };
    });
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === 1;
  }

  /** fn(message) for every job event (all jobs: filter by content.job_id). Returns an unsubscribe function. */
  onEvent(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onClose(fn) {
    this.closeListeners.add(fn);
    return () => this.closeListeners.delete(fn);
  }

  _receive(data) {
    if (typeof data !== "string") { // a binary buffer of the message before it
      if (this.incoming) {
        this.incoming.buffers.push(data);
        if (this.incoming.buffers.length === this.incoming.expected) this._deliver(this.incoming.msg);
      }
      return;
    }
    let msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    const n = msg.buffers || 0;
    msg.buffers = [];
    if (n > 0) {
      this.incoming = { msg, expected: n, buffers: msg.buffers };
      return;
    }
    this._deliver(msg);
  }

  _deliver(msg) {
    this.incoming = null;
    const parentId = msg.parent_header && msg.parent_header.msg_id;
    const type = msg.header && msg.header.msg_type;
    let p = parentId ? this.pending.get(parentId) : undefined;
    if (!p && type === "error" && !parentId && this.pending.size) {
      // A request the gateway could not even parse has no parent: it is the oldest one outstanding.
      const [oldest] = this.pending.keys();
      p = this.pending.get(oldest);
      msg.parent_header = { msg_id: oldest };
    }
    if (p) {
      this.pending.delete(msg.parent_header.msg_id);
      clearTimeout(p.timer);
      const c = msg.content || {};
      if (c.status === "ok") p.resolve(c);
      else p.reject(new BridgeError(c.ename || "Error", c.evalue || "the bridge refused the request"));
      return;
    }
    if (type && type.startsWith("job_")) {
      for (const fn of this.listeners) fn(msg);
    }
  }

  /** Send one request; resolves with the reply's content, rejects with BridgeError. */
  request(msgType, content = {}, buffers = []) {
    if (!this.connected) return Promise.reject(new BridgeError("ConnectionError", "not connected to the bridge"));
    const msgId = newMsgId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(msgId);
        reject(new BridgeError("Timeout", `no reply to ${msgType} within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      this.pending.set(msgId, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ header: { msg_type: msgType, msg_id: msgId }, content,
        buffers: buffers.length }));
      for (const b of buffers) this.ws.send(b);
    });
  }

  hello(client = "filmscore-premiere-panel") {
    return this.request("hello", { protocol_versions: ["1.0"], client });
  }

  /** content: the render request (protocol.md); buffers: e.g. [midiBytes] with content.midi = {buffer: 0}. */
  render(content, buffers = []) {
    return this.request("render", content, buffers);
  }

  /** The cue plan without audio: the render's content; a job whose result is the plan's summary (protocol.md). */
  plan(content, buffers = []) {
    return this.request("plan", content, buffers);
  }

  /** A new take of a range of a cue: {source, output, start, end, seed?, overwrite?} (protocol.md). */
  regenerate(content) {
    return this.request("regenerate", content);
  }

  /** Scored cues following a changed edit: {old, new, scored, outdir, overwrite?} (protocol.md). */
  conform(content) {
    return this.request("conform", content);
  }

  cancel(jobId) {
    return this.request("cancel", { job_id: jobId });
  }

  result(jobId) {
    return this.request("result", { job_id: jobId });
  }

  status(jobId) {
    return this.request("status", jobId ? { job_id: jobId } : {});
  }

  maestros() {
    return this.request("maestros", {});
  }

  close() {
    if (this.ws) this.ws.close();
  }
}
