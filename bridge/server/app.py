"""`BridgeServer`: the ROUTER request socket, the PUB event socket, the job queue and its worker processes.

One thread runs one poll loop over the request socket, each worker's pipe and each worker's process sentinel
(readable when the process exits), so a dead worker is noticed at once. Handlers answer from the journal and the
in-memory queue and never wait for a render: renders run in `worker.WorkerHandle` processes.

Every received message goes through `protocol.Session.recv`; anything it refuses is answered with an `error` message
(signed, parent = the offending header when it could be read) and the loop goes on. Building a reply is total: a
reply that cannot be encoded becomes an `EncodingError` reply, and nothing a request does can raise out of the loop
(an unexpected exception is logged, rate-limited, and the loop goes on). The threat model and every limit are in
docs/protocol.md ("Threat model and limits").
"""

from __future__ import annotations

import errno
import hmac
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq

from filmscore.engine.errors import FilmscoreError, MidiError, RequestError

from .. import protocol as P
from ..connection import (ConnectionInfo, default_connection_file, key_bytes, new_connection_info, new_ws_token,
                          read_connection_file, write_connection_file)
from ..journal import Journal, JournalCorrupt, JournalError, atomic_write_bytes, iter_partial_files
from . import capabilities
from .config import ServerConfig, build_request, plan_spec, timeline_spec
from .limits import ConnectionCaps, ConnectionGuard, install_repeat_filter, raise_fd_limit
from . import worker_messages as wm
from .worker import WorkerHandle, draft_path

log = logging.getLogger(__name__)

MAX_INLINE_MIDI_BYTES = 4 * 1024 * 1024
SMALL_MESSAGE_BYTES = 64 * 1024
"""Messages up to this size are verified as they are read. Bigger ones wait in a bounded backlog while a helper
thread computes their HMAC (hashlib releases the GIL), and are handled in arrival order once it is known: a keyless
client sending big frames cannot delay `status` round trips by making the loop hash megabytes in front of them."""


class ServerBusy(FilmscoreError):
    """A big message refused unread because the backlog of big messages is full (a flood, or many renders with inline
    MIDI at once): send it again later."""

    ename = "ServerBusy"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ServerError(FilmscoreError):
    """A server that cannot start: a bad bind address, a port in use, remote access without --allow-remote."""


class JobError(FilmscoreError):
    """A request about a job that does not exist or is in the wrong state (e.g. the result of a running job)."""

    ename = "JobError"


class QueueFull(JobError):
    """A render refused because `max_queued` jobs are already waiting."""

    ename = "QueueFull"


class NotJobOwner(JobError):
    """A panel (WebSocket) asked to cancel a job another client submitted."""

    ename = "NotJobOwner"


class BridgeServer:
    """Serve render requests until `shutdown` (signed) or SIGINT/SIGTERM. Use `start()` then `serve_forever()`."""

    def __init__(self, config: ServerConfig) -> None:
        self.cfg = config
        self.ctx = zmq.Context()
        self.journal: Journal | None = None
        self.info: ConnectionInfo | None = None
        self.connection_file: Path | None = None
        self._wrote_connection_file = False
        self.workers: list[WorkerHandle] = []
        self.queue: deque[str] = deque()
        self._outputs: dict[str, str] = {}  # output path -> the queued or running job writing it
        self._seq = 0
        self._stop = False
        self._stop_wait = False
        self._accepting = True
        self._respawns: deque[float] = deque()  # start times of replacement workers, last minute
        self._respawn_warned = False
        self._respawn_failed: str | None = None  # why the last worker start failed (e.g. no descriptors left)
        self._next_respawn = 0.0  # monotonic time before which no worker start is tried after a failure
        self._guards: list[ConnectionGuard] = []
        self._ipc_dir: Path | None = None
        self.caps = ConnectionCaps.for_limit(1024)
        self.loop_errors = 0
        self._large: deque[tuple[list[memoryview], Future]] = deque()  # big messages and their HMACs being computed
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="filmscore-hmac")
        self._large_bytes = 0
        self.busy_refusals = 0
        self.last_worker_exit: dict[str, Any] | None = None
        self._tail_s = 0.0  # measured seconds from the end of denoising to the end of a job (for ETAs)
        self._auth = None
        self._gateway = None
        self.started_at = time.time()
        self.capabilities: dict[str, Any] = {}
        self._version = _package_version()

    # -- start-up ------------------------------------------------------------------------------------------------
    def start(self) -> ConnectionInfo:
        cfg = self.cfg
        if cfg.ip not in _LOOPBACK and not cfg.allow_remote:
            raise ServerError(f"binding {cfg.ip} exposes the bridge to the network; pass --allow-remote "
                              "(which also turns on CURVE encryption)")
        install_repeat_filter()
        # The loop, the HMAC helper and the WebSocket gateway share the GIL; a short switch interval (default 5 ms)
        # keeps a gateway busy with a flood of handshakes from delaying the loop's replies by several intervals.
        sys.setswitchinterval(0.0005)
        self.caps = ConnectionCaps.for_limit(raise_fd_limit(), cfg.max_connections)
        self.journal = Journal(cfg.state_dir, max_attempts=cfg.max_attempts)
        for rec in self.journal.recover():
            log.warning("job %s was running when the last server stopped: now %s", rec.job_id, rec.state)
            self._remove_partials(rec.request.get("output"), rec.job_id)
        for rec in self.journal.list(("queued",), limit=1_000_000):
            try:  # a row an older version stored that cannot be encoded again would poison every reply naming it
                P.dumps_strict(rec.request)
                P.check_json_value(rec.request, "request")
            except P.ProtocolError as e:
                log.error("job %s in the journal cannot be run: %s; failing it", rec.job_id, e)
                self.journal.mark_ended(rec.job_id, "failed", error=f"EncodingError: {e}")
                continue
            self.queue.append(rec.job_id)
            self._outputs[rec.request["output"]] = rec.job_id
        self.journal.remove_ended_inputs()

        path = Path(cfg.connection_file) if cfg.connection_file else default_connection_file()
        if path.exists():
            info = read_connection_file(path)
            pid = info.get("pid")
            if pid is not None and pid != os.getpid() and _alive(pid):
                raise ServerError(f"connection file {path} belongs to a running server (pid {pid})")
            info["ip"] = cfg.ip
            # A file a server wrote (it has a pid) whose server died: this server takes it over, deletes it on exit.
            # A file without a pid was written by whoever launched us: theirs to remove.
            self._wrote_connection_file = pid is not None
        else:
            info = new_connection_info(cfg.ip)
            self._wrote_connection_file = True
        self.connection_file = path
        # not_before_s: a message signed before this server started (captured from its predecessor, which used the
        # same key) is a replay, even seconds after the restart, when no signature memory survives.
        self.session = P.Session(key_bytes(info), replay_window_s=cfg.replay_window_s, not_before_s=time.time())
        self.router = self.ctx.socket(zmq.ROUTER)
        self.pub = self.ctx.socket(zmq.PUB)
        for s in (self.router, self.pub):
            s.linger = 0
            # Hard cap per frame in libzmq: a bigger frame drops the peer while it is read, so it is never held in
            # memory or hashed. Between the protocol limit and this cap, the message is answered MessageTooLarge.
            s.setsockopt(zmq.MAXMSGSIZE, self.session.limits.hard_frame_bytes)
        # At most this many unread messages per peer: what one connection can make the server hold is bounded
        # (with MAXMSGSIZE) and a flood waits in its own TCP buffers, not in ours.
        self.router.setsockopt(zmq.RCVHWM, cfg.max_pending_per_peer)
        # A small kernel receive buffer per connection: libzmq's one I/O thread then reads at most 64 KiB from a
        # flooding connection per turn and comes back to the others (a `status` waited behind megabytes before:
        # with 7 MiB keyless frames, 38 -> 195 status round trips in 6 s on the loaded 2-core test machine).
        self.router.setsockopt(zmq.RCVBUF, 64 * 1024)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # A connection that has not finished the ZMTP greeting in 5 s is dropped (libzmq's default is 30 s): idle
        # sockets opened to hold the connection cap free their slots quickly.
        for s in (self.router, self.pub):
            s.setsockopt(zmq.HANDSHAKE_IVL, 5000)
        if cfg.allow_remote:
            self._enable_curve(info)
        else:
            for k in ("curve_server_public", "curve_client_public", "curve_client_secret"):
                info.pop(k, None)  # type: ignore[misc]
        host = f"[{cfg.ip}]" if ":" in cfg.ip else cfg.ip
        try:
            info["request_port"] = self._bind(self.router, host, info.get("request_port", 0))
            info.pop("event_endpoint", None)  # type: ignore[misc]
            if self._events_over_ipc():
                # Events name outputs, inputs and failures: on one machine they go through a Unix socket in a
                # folder only this user can enter (mkdtemp: 0700), so a local user without the key hears nothing.
                self._ipc_dir = Path(tempfile.mkdtemp(prefix="filmscore-bridge-"))
                ep = f"ipc://{self._ipc_dir}/events"
                self.pub.bind(ep)
                info["event_port"] = 0
                info["event_endpoint"] = ep  # type: ignore[typeddict-unknown-key]
            else:
                info["event_port"] = self._bind(self.pub, host, info.get("event_port", 0))
        except zmq.ZMQError as e:
            raise ServerError(f"cannot bind {cfg.ip}: {e}") from None
        self._guards = [ConnectionGuard(self.router, info["request_port"], self.caps.per_socket, "request socket")]
        if not info.get("event_endpoint"):
            self._guards.append(ConnectionGuard(self.pub, info["event_port"], self.caps.per_socket, "event socket"))
        info["pid"] = os.getpid()
        self.capabilities = {
            "backends": capabilities.backends(),
            "bundle": capabilities.bundle_info(cfg.bundle),
            "maestros": [m["name"] for m in (capabilities.maestros()[0] or [])],
            "message_types": list(P.REQUEST_TYPES),
            "event_types": list(P.EVENT_TYPES),
            "render_options": P.render_options_schema(),  # keys, types, defaults, ranges (engine/options.py)
            "limits": {"max_message_bytes": self.session.limits.max_message_bytes,
                       "max_json_bytes": self.session.limits.max_json_bytes,
                       "max_frame_bytes_hard": self.session.limits.hard_frame_bytes,
                       "max_inline_midi_bytes": MAX_INLINE_MIDI_BYTES, "max_queued": cfg.max_queued,
                       "max_connections": self.caps.per_socket, "max_websockets": self.caps.websocket,
                       "max_json_depth": P.MAX_JSON_DEPTH},
            "replay_window_s": cfg.replay_window_s,
            "workers": cfg.workers,
            "max_attempts": cfg.max_attempts,
            "curve": cfg.allow_remote,
        }
        if cfg.ws is not None:
            from ..gateway_ws import WebSocketGateway

            info.setdefault("ws_token", new_ws_token())
            self._gateway = WebSocketGateway(info, host=cfg.ws[0], port=cfg.ws[1], origins=cfg.ws_origins,
                                             allow_remote=cfg.allow_remote, max_clients=self.caps.websocket,
                                             tls=(cfg.ws_cert, cfg.ws_key) if cfg.ws_cert else None)
            info["ws_port"] = self._gateway.start()
            info["ws_ip"] = cfg.ws[0]
        self.info = info
        write_connection_file(path, info)
        mp_ctx = mp.get_context("spawn")
        self._mp = mp_ctx
        self.workers = []
        self._ensure_workers(initial=True)
        log.info("serving on %s ports %d/%d, connection file %s", cfg.ip, info["request_port"], info["event_port"],
                 path)
        return info

    def _events_over_ipc(self) -> bool:
        return not self.cfg.allow_remote and os.name == "posix" and zmq.has("ipc")

    @staticmethod
    def _bind(sock: zmq.Socket, host: str, port: int) -> int:
        if port:
            sock.bind(f"tcp://{host}:{port}")
            return port
        # Port 0: the OS picks a free port as we bind, so no other process can take it between choice and use.
        sock.bind(f"tcp://{host}:0")
        return int(sock.last_endpoint.decode().rsplit(":", 1)[1])

    def _enable_curve(self, info: ConnectionInfo) -> None:
        """CURVE on both sockets; ZAP admits only the client keypair written to the (0600) connection file."""
        if not zmq.has("curve"):
            raise ServerError("--allow-remote needs CURVE, and this libzmq was built without it")
        from zmq.auth.thread import ThreadAuthenticator

        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        info["curve_server_public"] = server_public.decode()
        info["curve_client_public"] = client_public.decode()
        info["curve_client_secret"] = client_secret.decode()

        class _OneClient:
            def callback(self, domain: str, key: bytes) -> bool:  # key: the client's public key, z85
                return hmac.compare_digest(key, client_public)

        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=_OneClient())
        for s in (self.router, self.pub):
            s.curve_secretkey = server_secret
            s.curve_publickey = server_public
            s.curve_server = True

    # -- loop ----------------------------------------------------------------------------------------------------
    def request_stop(self, wait: bool = False) -> None:
        self._stop, self._stop_wait, self._accepting = True, wait, False

    def serve_forever(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, lambda *_: self.request_stop())
            except ValueError:
                pass  # not the main thread (tests running the server in a thread)
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        for g in self._guards:
            poller.register(g.monitor, zmq.POLLIN)
        registered: dict[int, tuple[str, WorkerHandle]] = {}
        try:
            while True:
                if self._stop and not (self._stop_wait and any(w.busy for w in self.workers)):
                    break
                try:
                    self._iteration(poller, registered)
                except Exception:  # noqa: BLE001 - nothing a request or a worker does may stop the server
                    self.loop_errors += 1
                    log.exception("the server loop hit an unexpected error; serving on")
                    time.sleep(0.01)  # a fault that repeats must not spin a core
        finally:
            self.close()

    def _iteration(self, poller: zmq.Poller, registered: dict[int, tuple[str, WorkerHandle]]) -> None:
        for w in self.workers:
            for kind, fd in (("pipe", w.conn.fileno()), ("exit", w.process.sentinel)):
                if fd not in registered:
                    registered[fd] = (kind, w)
                    poller.register(fd, zmq.POLLIN)
        ready = dict(poller.poll(2 if self._large else 200))
        for g in self._guards:
            if g.monitor in ready:
                g.drain()
        if self.router in ready:
            self._drain_requests()
        self._verify_large()
        for fd in [fd for fd in ready if isinstance(fd, int)]:
            kind, w = registered.get(fd, (None, None))
            if w is None or w not in self.workers:
                continue
            if (kind == "pipe" and not self._drain_worker(w)) or kind == "exit":
                self._worker_died(w)
        for fd in [fd for fd, (_, w) in registered.items() if w not in self.workers]:
            poller.unregister(fd)
            del registered[fd]
        if len(self.workers) < self.cfg.workers:
            self._ensure_workers()
        self._dispatch()

    def _drain_requests(self, budget: int = 1000) -> None:
        """Read what is waiting: small messages are handled at once, big ones join the backlog (or, when it is
        full, are refused `ServerBusy` unread: nothing is hashed for them)."""
        max_backlog = 2 * self.session.limits.max_message_bytes
        for _ in range(budget):
            try:
                frames = [f.buffer for f in self.router.recv_multipart(zmq.NOBLOCK, copy=False)]
            except zmq.Again:
                return
            size = sum(f.nbytes for f in frames)
            if size <= SMALL_MESSAGE_BYTES:
                self._handle_safely(frames)
            elif self._large_bytes + size <= max_backlog or not self._large:
                self._large.append((frames, self._hasher.submit(self._signature_of, frames)))
                self._large_bytes += size
            else:
                self.busy_refusals += 1
                self._send_error([bytes(frames[0])], ServerBusy(
                    f"{len(self._large)} big messages are waiting to be verified; send this one ({size} bytes) "
                    "again later"), {})

    def _signature_of(self, frames: list[memoryview]) -> bytes | None:
        """The HMAC a big message should carry (run on the helper thread); None when it is not shaped like a
        message or is over the limits (the loop then refuses it, naming why, without hashing)."""
        try:
            _, rest = self.session.split_idents(frames)
        except P.ProtocolError:
            return None
        if len(rest) < 5 or sum(f.nbytes for f in rest) > self.session.limits.max_message_bytes:
            return None
        return self.session.sign(rest[1:])

    def _verify_large(self) -> None:
        """Handle the big messages whose HMAC is known, in arrival order."""
        while self._large and self._large[0][1].done():
            frames, fut = self._large.popleft()
            self._large_bytes -= sum(f.nbytes for f in frames)
            try:
                signature = fut.result()
            except Exception:  # noqa: BLE001 - the loop computes it again and answers what is wrong
                signature = None
            self._handle_safely(frames, signature)

    def _handle_safely(self, frames: list, signature: bytes | None = None) -> None:
        try:
            self._handle_frames(frames, signature)
        except Exception:  # noqa: BLE001 - _handle_frames answers every error itself; this is the last net
            self.loop_errors += 1
            log.exception("a request could not be answered")

    def _handle_frames(self, frames: list[bytes], signature: bytes | None = None) -> None:
        session = self.session
        try:
            idents, rest = session.split_idents(frames)
        except P.ProtocolError as e:
            # No delimiter: the first frame is still the ROUTER identity, so the sender can be told.
            self._send_error([bytes(f) for f in frames[:1]], e, {})
            return
        if not idents:
            return  # nothing to route a reply to (cannot happen on ROUTER; dropped by rule)
        idents = [bytes(i) for i in idents]
        try:
            msg = session.deserialize(rest, computed_signature=signature)
        except P.ProtocolError as e:
            self._send_error(idents, e, {})
            return
        msg_type = msg.msg_type
        handler = getattr(self, f"_on_{msg_type}", None) if msg_type in P.REQUEST_TYPES else None
        rtype = P.reply_type(msg_type) if handler else "error"
        try:
            if handler is None:
                raise P.ProtocolError(f"unknown message type {msg_type[:64]!r}; "
                                      f"requests are {', '.join(P.REQUEST_TYPES)}")
            content: dict[str, Any] = {"status": "ok", **handler(msg)}
        except FilmscoreError as e:
            content = P.error_content(e)
        except sqlite3.DatabaseError as e:  # a journal page that went bad after start-up: say what, keep serving
            log.error("journal read failed: %s", e)
            content = P.error_content(JournalCorrupt(f"the journal could not be read ({e})"))
        except Exception as e:  # noqa: BLE001 - a handler bug answers an error and the server keeps serving
            log.exception("handler for %s failed", msg_type)
            content = P.error_content(RuntimeError(f"internal error: {type(e).__name__}"))
        self._send_reply(idents, rtype, content, msg)

    def _send_reply(self, idents: list[bytes], rtype: str, content: dict[str, Any], parent: P.Message) -> None:
        """Sign and send a reply; total: a reply that cannot be encoded or is too big becomes an error reply, and
        that one echoes only the parent's standard header fields, so building it cannot fail."""
        session = self.session
        try:
            frames = session.serialize(session.msg(rtype, content, parent=parent), idents)
            size = len(frames[len(idents) + 5])
            if size > session.limits.max_json_bytes:  # the peer would refuse it: say why
                raise P.MessageTooLarge(f"the {parent.msg_type} reply would be {size} bytes, over the "
                                        f"{session.limits.max_json_bytes}-byte limit; ask for less")
        except P.ProtocolError as e:
            frames = session.serialize(session.msg(rtype, P.error_content(e), parent=P.safe_header(parent.header)),
                                       idents)
        self._send(frames)

    def _send(self, frames: list[bytes]) -> None:
        try:
            self.router.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the peer is gone or its queue is full: dropped by rule

    def _send_error(self, idents: list[bytes], exc: Exception, parent: dict[str, Any]) -> None:
        try:
            content = P.error_content(exc)
            P.dumps_strict(content)
        except P.ProtocolError:
            content = P.error_content(P.EncodingError(f"{type(exc).__name__} (its message cannot be encoded)"))
        self._send(self.session.serialize(self.session.msg("error", content, parent=P.safe_header(parent)), idents))

    def publish(self, job_id: str, event: str, **content: Any) -> None:
        """Publish an event; never raises (an event that cannot be encoded is sent with its values escaped)."""
        try:
            msg = self.session.msg(event, {"job_id": job_id, **content})
            try:
                frames = self.session.serialize(msg, [f"job.{job_id}".encode()])
            except P.ProtocolError:
                msg.content = P.make_encodable(msg.content)
                frames = self.session.serialize(msg, [f"job.{job_id}".encode()])
            self.pub.send_multipart(frames, zmq.NOBLOCK)
        except (zmq.ZMQError, P.ProtocolError) as e:
            log.warning("event %s of job %s not published: %s", event, job_id, e)

    # -- requests ------------------------------------------------------------------------------------------------
    def _on_hello(self, msg: P.Message) -> dict[str, Any]:
        version = P.parse_hello(msg.content)
        return {"protocol_version": version, "server": "filmscore", "server_version": self._version,
                "session": self.session.session_id, "capabilities": self.capabilities}

    def _on_render(self, msg: P.Message) -> dict[str, Any]:
        return self._queue_job(msg, "render")

    def _on_plan(self, msg: P.Message) -> dict[str, Any]:
        """A plan without audio: the render's fields, checked as a render's are, queued as a job of kind "plan"
        that a worker runs (`engine.plan.spec.plan_request`, as `filmscore plan` does); its result is the plan's
        summary and the OUT.plan.json it wrote beside `output`."""
        return self._queue_job(msg, "plan")

    def _on_regenerate(self, msg: P.Message) -> dict[str, Any]:
        """A new take of a range of a cue (`engine.regenerate.regenerate_cue`, as `filmscore render --from CUE
        --regenerate A:B` does), queued as a job of kind "regenerate". The source cue (a file under a media or an
        output root, with its JSON sidecar beside it) and the output are checked here; the range's place in the cue
        by the worker, which reads the cue's JSON."""
        from filmscore.engine.preflight import sidecar_paths

        self._check_accepting()
        params = P.RegenerateParams.from_content(msg.content)
        source = self.cfg.check_path(params.source, "source cue", self.cfg.media_roots + self.cfg.output_roots,
                                     must_exist=True)
        if not sidecar_paths(source)["metadata"].is_file():
            raise RequestError(f"source cue {params.source}: no {sidecar_paths(source)['metadata'].name} beside it "
                               "(its JSON holds the request to regenerate)")
        output = self.cfg.output(params.output, params.overwrite)
        if output == source:
            raise RequestError(f"output {params.output} is the source cue; give another output")
        stored = {"kind": "regenerate", "output": str(output), "source": str(source), "start_s": params.start,
                  "end_s": params.end, "seed": params.seed, "output_roots": [str(r) for r in self.cfg.output_roots],
                  "overwrite": params.overwrite}
        return self._queue_stored(msg, stored, params.to_content())

    def _on_conform(self, msg: P.Message) -> dict[str, Any]:
        """Conform scored cues to a changed edit (`bridge.timelines.conform.conform_scored`, as `filmscore conform`
        does), queued as a job of kind "conform" whose output is the new folder's manifest. Both edits and the
        scored folder's manifest must lie under a media or output root, the new folder under an output root (its
        parent existing; without overwrite it must be missing or empty)."""
        from filmscore.bridge.timelines.batch import MANIFEST_NAME

        self._check_accepting()
        params = P.ConformParams.from_content(msg.content)
        readable = self.cfg.media_roots + self.cfg.output_roots
        old = self.cfg.check_path(params.old, "old timeline", readable, must_exist=True)
        new = self.cfg.check_path(params.new, "new timeline", readable, must_exist=True)
        scored = self.cfg.check_path(str(Path(params.scored) / MANIFEST_NAME), "scored manifest", readable,
                                     must_exist=True).parent
        outdir = self.cfg.check_path(params.outdir, "output folder", self.cfg.output_roots, must_exist=False)
        if not outdir.parent.is_dir():
            from .config import PathNotAllowed

            raise PathNotAllowed(f"output folder {outdir.parent} does not exist")
        if outdir == scored:
            raise RequestError(f"outdir {params.outdir} is the scored folder; conform writes a new one")
        if outdir.exists() and (not outdir.is_dir() or (any(outdir.iterdir()) and not params.overwrite)):
            raise RequestError(f"outdir {params.outdir} exists and is not an empty folder; send overwrite=true to "
                               "write into it")
        stored = {"kind": "conform", "output": str(outdir / MANIFEST_NAME), "old": str(old), "new": str(new),
                  "scored": str(scored), "outdir": str(outdir),
                  "output_roots": [str(r) for r in self.cfg.output_roots], "overwrite": params.overwrite}
        return self._queue_stored(msg, stored, params.to_content())

    def _check_accepting(self) -> None:
        if not self._accepting:
            raise JobError("the server is shutting down; it takes no new renders")
        if len(self.queue) >= self.cfg.max_queued:
            raise QueueFull(f"the queue is full ({len(self.queue)} jobs waiting, the limit is {self.cfg.max_queued});"
                            " try again when some have run")

    def _queue_stored(self, msg: P.Message, stored: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        """Journal and queue a job whose request (`stored`, with its "kind" and "output") the handler checked; a
        request re-sent with the same msg_id gets its first job back."""
        journal = self._journal()
        session = msg.header["session"]
        existing = journal.by_request(msg.msg_id, session)
        if existing is not None:
            return {"job_id": existing.job_id, "state": existing.state, "duplicate": True}
        holder = self._outputs.get(stored["output"])
        if holder is not None:
            raise JobError(f"output {stored['output']} is already the output of job {holder}, queued or running")
        job_id = P.new_id()
        journal.add(job_id, stored, content, request_msg_id=msg.msg_id, session=session)
        self.queue.append(job_id)
        self._outputs[stored["output"]] = job_id
        self.publish(job_id, "job_queued", state="queued", position=len(self.queue), output=stored["output"])
        return {"job_id": job_id, "state": "queued", "position": len(self.queue), "duplicate": False}

    def _queue_job(self, msg: P.Message, kind: str) -> dict[str, Any]:
        if not self._accepting:
            raise JobError("the server is shutting down; it takes no new renders")
        params = P.RenderParams.from_content(msg.content, len(msg.buffers))
        if kind == "plan" and params.plan is not None:
            raise RequestError("a plan request makes a plan; to render an existing one send a render with plan")
        journal = self._journal()
        session = msg.header["session"]
        existing = journal.by_request(msg.msg_id, session)
        if existing is not None:  # the client re-sent a request whose reply it lost: same job, no duplicate
            return {"job_id": existing.job_id, "state": existing.state, "duplicate": True}
        if len(self.queue) >= self.cfg.max_queued:
            raise QueueFull(f"the queue is full ({len(self.queue)} jobs waiting, the limit is {self.cfg.max_queued});"
                            " try again when some have run")
        job_id = P.new_id()
        midi_file = None
        if params.midi_buffer is not None:
            data = msg.buffers[params.midi_buffer]
            if len(data) > MAX_INLINE_MIDI_BYTES:
                raise P.MessageTooLarge(f"inline MIDI is {len(data)} bytes; the limit is {MAX_INLINE_MIDI_BYTES}")
            if not data.startswith(b"MThd"):
                raise MidiError("inline MIDI buffer is not a Standard MIDI File (no MThd header)")
            midi_file = journal.job_dir(job_id) / "theme.mid"
        request = build_request(self.cfg, params, midi_file)
        holder = self._outputs.get(str(request.output))
        if holder is not None:
            raise JobError(f"output {request.output} is already the output of job {holder}, queued or running")
        stored = request.to_json()
        if params.timeline is not None:  # the worker encodes the region's picture (heavy), not this loop
            stored["timeline"] = timeline_spec(self.cfg, params)
        # The worker re-checks these when it writes (a folder swapped for a symlink after this check), and
        # publishes the cue and its sidecars all or nothing when overwrite is false.
        stored["output_roots"] = [str(r) for r in self.cfg.output_roots]
        stored["overwrite"] = params.overwrite
        if params.preview is not None:  # a draft first, published as OUT.draft.wav (worker.draft_path)
            if kind == "plan":
                raise RequestError("a plan request renders no audio; preview is for render requests")
            if not params.overwrite and os.path.lexists(draft_path(request.output)):
                raise RequestError(f"{draft_path(request.output).name} exists beside the output; send overwrite=true "
                                   "to replace it")
            stored["preview"] = params.preview.to_json()
        if params.variations > 1:  # takes OUT.take1.wav ... (engine.render.take_path); the worker checks them free
            if kind == "plan":
                raise RequestError("a plan request renders no audio; variations are for render requests")
            stored["variations"] = params.variations
        spec = plan_spec(params)  # checked in build_request; the worker makes the plan with it (not this loop)
        if kind == "plan":
            if request.reference_audio is not None:
                raise RequestError("a plan takes a MIDI theme or a maestro, not reference audio")
            stored["kind"] = "plan"
            if spec is None:  # no overrides: the picture (and theme) decide everything
                from filmscore.engine.plan.spec import PlanSpec

                spec = PlanSpec()
        if spec is not None:
            stored["plan_spec"] = spec.to_json()
        if midi_file is not None:
            midi_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write_bytes(midi_file, msg.buffers[params.midi_buffer])  # type: ignore[index]
        try:
            journal.add(job_id, stored, params.to_content(), request_msg_id=msg.msg_id, session=session)
        except BaseException:
            journal.remove_job_inputs(job_id)
            raise
        self.queue.append(job_id)
        self._outputs[str(request.output)] = job_id
        self.publish(job_id, "job_queued", state="queued", position=len(self.queue), output=str(request.output))
        return {"job_id": job_id, "state": "queued", "position": len(self.queue), "duplicate": False}

    def _on_status(self, msg: P.Message) -> dict[str, Any]:
        job_id = P.parse_job_id(msg.content, "status", required=False)
        if job_id is None:
            return {"server": {"pid": os.getpid(), "uptime_s": time.time() - self.started_at,
                               "accepting": self._accepting, "queued": len(self.queue),
                               "max_queued": self.cfg.max_queued,
                               "jobs": self._journal().counts(), "workers": [w.describe() for w in self.workers],
                               "last_worker_exit": self.last_worker_exit, "worker_start_failed": self._respawn_failed,
                               "connections": {g.name: g.describe() for g in self._guards}
                               | ({"websocket": self._gateway.describe()} if self._gateway else {}),
                               "loop_errors": self.loop_errors, "busy_refusals": self.busy_refusals}}
        return {"job": self._job_status(job_id)}

    def _job_status(self, job_id: str) -> dict[str, Any]:
        rec = self._journal().get(job_id)
        if rec is None:
            raise JobError(f"no job {job_id}")
        out = P.make_encodable(rec.to_json())
        if rec.state == "queued" and job_id in self.queue:
            out["position"] = self.queue.index(job_id) + 1
        for w in self.workers:
            if w.job_id == job_id:
                out["progress"] = dict(w.progress)
        return out

    def _on_cancel(self, msg: P.Message) -> dict[str, Any]:
        job_id = P.parse_job_id(msg.content, "cancel")
        journal = self._journal()
        rec = journal.get(job_id)  # type: ignore[arg-type]
        if rec is None:
            raise JobError(f"no job {job_id}")
        # Who may cancel: a key holder (ZeroMQ client, CLI) any job; a panel only what its own WebSocket session
        # submitted (the gateway marks its requests; a ZeroMQ client that forged the mark holds the key anyway).
        if msg.metadata.get("via") == "websocket" and rec.session != msg.header["session"]:
            raise NotJobOwner(f"job {job_id} was submitted by another client; a panel may cancel only its own jobs")
        if rec.state == "queued":
            if job_id in self.queue:
                self.queue.remove(job_id)
            journal.mark_ended(job_id, "cancelled", error="cancelled by request")  # type: ignore[arg-type]
            self._job_ended(job_id)  # type: ignore[arg-type]
            self.publish(job_id, "job_cancelled", state="cancelled")  # type: ignore[arg-type]
            return {"job_id": job_id, "state": "cancelled"}
        if rec.state == "running":
            for w in self.workers:
                if w.job_id == job_id:
                    w.cancel()  # the worker's should_cancel() sees this before its next denoising step
            return {"job_id": job_id, "state": "cancelling"}
        raise JobError(f"job {job_id} has already ended ({rec.state}); nothing to cancel")

    def _on_list_jobs(self, msg: P.Message) -> dict[str, Any]:
        states, limit, offset, newest_first = P.parse_list_jobs(msg.content)
        # make_encodable: a row an older version stored with a lone surrogate is listed escaped, not fatal.
        return {"jobs": [P.make_encodable(r.to_json(full=False))
                         for r in self._journal().list(states, limit, offset, newest_first)]}

    def _on_result(self, msg: P.Message) -> dict[str, Any]:
        job_id = P.parse_job_id(msg.content, "result")
        rec = self._journal().get(job_id)  # type: ignore[arg-type]
        if rec is None:
            raise JobError(f"no job {job_id}")
        if rec.state != "finished":
            raise JobError(f"job {job_id} is {rec.state}; a result exists only for finished jobs"
                           + (f" ({rec.error})" if rec.error else ""))
        return {"job_id": job_id, "result": P.make_encodable(rec.result)}

    def _on_maestros(self, msg: P.Message) -> dict[str, Any]:
        P.parse_empty(msg.content, "maestros")
        items, why = capabilities.maestros()
        if items is None:
            raise JobError(why or "no maestro library")
        return {"maestros": items}

    def _on_shutdown(self, msg: P.Message) -> dict[str, Any]:
        wait = P.parse_shutdown(msg.content)
        self.request_stop(wait)
        return {"stopping": True, "wait": wait, "queued": len(self.queue)}

    # -- jobs and workers ----------------------------------------------------------------------------------------
    def _journal(self) -> Journal:
        if self.journal is None:
            raise JournalError("the server is not started")
        return self.journal

    def _job_ended(self, job_id: str) -> None:
        """A job reached a terminal state: its output path is free again and its inline inputs are deleted."""
        for out, holder in list(self._outputs.items()):
            if holder == job_id:
                del self._outputs[out]
        if self.journal is not None:
            self.journal.remove_job_inputs(job_id)

    def _dispatch(self) -> None:
        if self._stop:
            return
        for w in self.workers:
            if not self.queue:
                return
            if w.ready and not w.busy:
                job_id = self.queue.popleft()
                try:
                    rec = self._journal().mark_started(job_id)
                except JournalError as e:
                    log.warning("skipping job %s: %s", job_id, e)
                    continue
                self._seq += 1
                w.run(self._seq, job_id, rec.request, Path(rec.request["output"]))
                self.publish(job_id, "job_started", state="running", attempt=rec.attempts, worker=w.pid)

    def _drain_worker(self, w: WorkerHandle) -> bool:
        """Handle every message waiting on `w`'s pipe; False when the pipe is closed (the worker is gone)."""
        try:
            while w.conn.poll():
                self._on_worker_message(w, wm.recv(w.conn))
        except (EOFError, OSError):
            return False
        except wm.WorkerMessageError as e:  # a worker that breaks the pipe's contract is treated as dead
            log.error("worker pid %s: %s; stopping it", w.pid, e)
            w.process.kill()
            return False
        return True

    def _on_worker_message(self, w: WorkerHandle, msg: wm.WorkerMessage) -> None:
        if isinstance(msg, wm.Ready):
            w.ready = True
            return
        if not isinstance(msg, (wm.Progress, wm.Preview, wm.Done, wm.Cancelled, wm.Failed)):
            raise wm.WorkerMessageError(f"worker pid {w.pid} sent {type(msg).__name__}, a server's message")
        if msg.seq != w.seq or w.job_id is None:
            return  # a late message about a job this worker no longer runs
        job_id, journal, now = w.job_id, self._journal(), time.monotonic()
        if isinstance(msg, wm.Progress):
            stage = msg.stage
            if w.progress.get("stage") != stage:
                if w.progress.get("stage") == "denoise":
                    w.progress["denoise_ended"] = now
                w.stage_started = now
            elapsed = now - w.stage_started
            eta = None
            if stage == "denoise" and msg.fraction > 0:
                eta = elapsed / msg.fraction * (1 - msg.fraction) + self._tail_s
            w.progress.update(stage=stage, fraction=msg.fraction, message=msg.message, eta_s=eta)
            self.publish(job_id, "job_progress", state="running", stage=stage, fraction=msg.fraction,
                         message=msg.message, eta_s=eta, elapsed_s=now - w.job_started)
            return
        if isinstance(msg, wm.Preview):  # the draft is in place: the client can play it while the full render runs
            w.progress["preview"] = msg.path
            self.publish(job_id, "job_preview", state="running", path=msg.path, steps=msg.steps,
                         ready_after_s=now - w.job_started)
            return
        if isinstance(msg, wm.Done):
            rec = journal.mark_ended(job_id, "finished", result=msg.result)
            if "denoise_ended" in w.progress:
                self._tail_s = now - w.progress["denoise_ended"]
            self.publish(job_id, "job_finished", state="finished", result=rec.result, elapsed_s=now - w.job_started)
        elif isinstance(msg, wm.Cancelled):
            detail = f"cancelled by request ({msg.detail})" if msg.detail else "cancelled by request"
            journal.mark_ended(job_id, "cancelled", error=detail)
            self.publish(job_id, "job_cancelled", state="cancelled", detail=detail, elapsed_s=now - w.job_started)
        else:
            journal.mark_ended(job_id, "failed", error=f"{msg.ename}: {msg.evalue}")
            self.publish(job_id, "job_failed", state="failed", ename=msg.ename, evalue=msg.evalue)
        self._job_ended(job_id)
        w.clear()

    def _worker_died(self, w: WorkerHandle) -> None:
        if w not in self.workers:
            return
        self._drain_worker(w)  # a "done" sent just before dying still counts
        w.process.join(1)
        code = w.process.exitcode
        reason = f"worker pid {w.pid} died ({_exit_reason(code)})"
        log.warning("%s%s", reason, f" while running job {w.job_id}" if w.job_id else "")
        self.workers.remove(w)
        if w.job_id is not None:
            job_id = w.job_id
            self._remove_partials(str(w.output), job_id)
            rec = self._journal().requeue(job_id, reason)
            if rec.state == "queued":
                self.queue.appendleft(job_id)  # it keeps its turn
                self.publish(job_id, "job_queued", state="queued", retry=True, reason=reason, position=1)
            else:
                self._job_ended(job_id)
                self.publish(job_id, "job_failed", state="failed", ename="WorkerDied", evalue=rec.error)
        w.kill()
        self.last_worker_exit = {"pid": w.pid, "reason": reason, "time": time.time(), "job_id": w.job_id}
        self._ensure_workers()

    def _ensure_workers(self, initial: bool = False) -> None:
        """Start workers up to `cfg.workers`, at most 5 per slot per minute: a worker that dies at start-up (a
        broken install) is retried slowly instead of in a tight loop, and the server keeps answering meanwhile."""
        if self._stop:
            return
        now = time.monotonic()
        if now < self._next_respawn:
            return
        while self._respawns and self._respawns[0] < now - 60:
            self._respawns.popleft()
        free = sorted(set(range(self.cfg.workers)) - {w.index for w in self.workers})
        for index in free:
            if not initial and len(self._respawns) >= 5 * self.cfg.workers:
                if not self._respawn_warned:
                    log.error("workers keep dying (%d started in a minute); waiting before starting another",
                              len(self._respawns))
                    self._respawn_warned = True
                return
            try:
                worker = WorkerHandle(self._mp, self.cfg.renderer, index, self.cfg.worker_threads)
            except (OSError, ValueError) as e:
                # E.g. EMFILE in socketpair when descriptors ran out: keep serving the clients already here, and
                # try again in a second; the job queue waits, nothing is lost.
                self._respawn_failed = f"{type(e).__name__}: {e}" + (
                    " (no file descriptors left)" if getattr(e, "errno", None) in (errno.EMFILE, errno.ENFILE) else "")
                self._next_respawn = now + 1.0
                log.error("cannot start worker %d: %s; retrying in 1 s", index, self._respawn_failed)
                return
            self._respawn_failed = None
            if not initial:  # start-up workers are not replacements
                self._respawns.append(now)
            self._respawn_warned = False
            self.workers.append(worker)

    def _remove_partials(self, output: str | None, job_id: str) -> None:
        if output:
            for p in iter_partial_files(Path(output), job_id):
                p.unlink(missing_ok=True)

    # -- shutdown ------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop workers (a render still running goes back to the queue, its attempt not counted), close sockets,
        delete the connection file if this server wrote it, close the journal."""
        for w in list(self.workers):
            if w.busy and self.journal is not None:
                w.kill()
                self._remove_partials(str(w.output), w.job_id)  # type: ignore[arg-type]
                self.journal.requeue(w.job_id, "the server stopped while it ran", count_attempt=False)  # type: ignore[arg-type]
            elif w.ready:
                w.stop()
            else:
                w.kill()  # still importing the engine: nothing to finish
        self.workers = []
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        for g in self._guards:
            g.close()
        self._guards = []
        self._hasher.shutdown(wait=True, cancel_futures=True)
        for name in ("router", "pub"):
            s = getattr(self, name, None)
            if s is not None:
                s.close(0)
        self.ctx.term()
        if self._ipc_dir is not None:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
            self._ipc_dir = None
        if self._wrote_connection_file and self.connection_file is not None:
            self.connection_file.unlink(missing_ok=True)
            self._wrote_connection_file = False
        if self.journal is not None:
            self.journal.close()
            self.journal = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("filmscore")
    except Exception:  # noqa: BLE001
        return "unknown"
