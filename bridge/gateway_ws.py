"""WebSocket gateway: the bridge's protocol for hosts that speak only HTTP/WebSocket (Premiere's UXP panels).

It is a transport, not a second server: each WebSocket connection gets its own DEALER socket to the bridge's
request port, and the gateway signs what the panel sends with the connection file's key, so every request goes
through the same `protocol.Session` checks and the same handlers as a ZeroMQ client's. Events from the PUB socket
are verified and forwarded to every authorised connection.

Session on a WebSocket (text messages are JSON; docs/protocol.md has examples):

1. The HTTP upgrade is refused (403) when it carries an `Origin` not in the allowed list; clients that send no
   Origin (UXP, scripts) pass this step. Browsers always send one, so a web page cannot reach the gateway.
2. The first message must be `{"token": "<ws_token from the connection file>"}` within 10 s and at most
   `FIRST_MESSAGE_BYTES`; a wrong or missing token closes the connection with code 1008 (a bigger first message:
   1009). Only after the token may messages be as large as the protocol's limit: a peer without the token can make
   the gateway hold 4 KiB, not 8 MiB. Answer: `{"status": "ok", "protocol_version": ..., "session": ...}`.
3. Requests: `{"header": {"msg_type": "status", "msg_id": "..."(optional)}, "content": {...}, "buffers": N}`,
   followed by N binary messages (e.g. an inline MIDI file). Replies and events come back in the same JSON form
   (`Message.to_json()`), with the reply's `parent_header.msg_id` equal to the request's `msg_id`. Anything the
   gateway cannot accept (bad JSON, too deep, a buffer that never comes, a value JSON cannot carry) is answered
   with an `error` message; the connection stays open.

Each WebSocket connection is its own session (the `session` of the token answer; a panel that reconnects may send
`"session"` with its token to keep it): duplicate `msg_id`s are detected per session, and a panel may cancel only
the jobs its session submitted (the gateway marks its requests `metadata.via = "websocket"`).

The gateway runs in its own process (spawned by `start()`, at a lower CPU priority, killed with the server): a
peer flooding it with connections or tokenless messages costs that process's time and GIL, never the ZeroMQ
loop's. It reaches the server as any ZeroMQ client does, through the request and event ports.

`shutdown` is refused through the gateway: a panel's token authorises renders, not stopping the server. Off
loopback (`--allow-remote`) the gateway needs TLS (`--ws-cert`, `--ws-key`): the token and the replies must not
travel in clear text while ZeroMQ uses CURVE. The `websockets` library's debug log (it prints frames, the token
among them) is kept off even with `-v`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import multiprocessing as mp
import os
import sys
import re
import signal
import socket
import ssl
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from filmscore.engine.errors import FilmscoreError

from . import protocol as P
from .client import configure_socket
from .connection import ConnectionInfo, endpoint, key_bytes

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
FIRST_MESSAGE_BYTES = 4096
"""The most a WebSocket peer may send before its token is checked."""
ACCEPTS_PER_S = 20
"""New connections accepted per second; more are aborted at accept, before any HTTP is parsed: a peer that
reconnects in a loop costs the server's Python at most this many handshakes a second (a panel connects once)."""
REFUSED_HOLD_S = 5.0
"""How long a connection whose first message is too big is held unread before its 1009 close (under the
websockets close timeout, 10 s, so the close frame is sent before the library drops the connection)."""
PRE_TOKEN_RCVBUF = 64 * 1024
"""Kernel receive buffer of a connection until its token checks out (then the kernel's default sizing again, up to
`TOKEN_RCVBUF`): a tokenless peer's megabytes wait in its own send buffer, not in this machine's socket memory."""
TOKEN_RCVBUF = 4 * 1024 * 1024
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
# Frame-level debug logs print every message, the token among them: never at DEBUG, whatever -v says.
_WS_LOG = logging.getLogger(f"{__name__}.websockets")
_WS_LOG.setLevel(logging.INFO)
GATEWAY_NICENESS = 3
"""Added to the gateway process's nice value: under a flood its work waits for the server's ZeroMQ loop (renders
run at worker.WORKER_NICENESS, so a panel's requests still go ahead of render work)."""
_COUNTS = ("connections", "authorised", "refused")


class GatewayError(FilmscoreError):
    """A gateway that cannot start (bad address, remote without --allow-remote, no token)."""


class WebSocketGateway:
    """Runs in its own process with its own asyncio loop and ZeroMQ context; `start()` returns the bound port."""

    def __init__(self, info: ConnectionInfo, host: str = "127.0.0.1", port: int = 0, origins: tuple[str, ...] = (),
                 allow_remote: bool = False, max_clients: int = 64,
                 tls: tuple[Path, Path] | None = None) -> None:
        if host not in _LOOPBACK and not allow_remote:
            raise GatewayError(f"WebSocket gateway on {host} would be reachable from the network; pass "
                               "--allow-remote, or use 127.0.0.1")
        if host not in _LOOPBACK and tls is None:
            raise GatewayError(f"WebSocket gateway on {host} needs TLS (--ws-cert and --ws-key): its token and "
                               "replies would cross the network in clear text")
        self.ssl: ssl.SSLContext | None = None
        if tls is not None:
            self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                self.ssl.load_cert_chain(str(tls[0]), str(tls[1]))
            except (OSError, ssl.SSLError) as e:
                raise GatewayError(f"WebSocket TLS certificate {tls[0]} / key {tls[1]} cannot be loaded: {e}") \
                    from None
        self.max_clients = max_clients
        self.refused = 0
        self._args = (dict(info), host, port, tuple(origins), allow_remote, max_clients, tls)  # for the process
        token = info.get("ws_token")
        if not token:
            raise GatewayError("the connection info has no ws_token")
        self.token = token.encode()
        # Reach the server through loopback even when it binds every interface.
        self.info: dict[str, Any] = dict(info) | {"ip": "127.0.0.1" if info["ip"] in ("0.0.0.0", "*") else info["ip"]}
        if self.info["ip"] == "::":
            self.info["ip"] = "::1"
        self.host, self.port = host, port
        self.origins = tuple(origins)
        self.session = P.Session(key_bytes(info))
        self._clients: set[Any] = set()
        self._open = 0  # TCP connections, from accept (before any HTTP) to close
        self._accepts: deque[float] = deque()  # accept times in the last second
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._counts: Any = None  # shared with the process: connections, authorised, refused
        self._process: mp.process.BaseProcess | None = None
        self._conn: Any = None

    # -- in the server's process -----------------------------------------------------------------------------------
    def start(self) -> int:
        """Spawn the gateway's process; returns its port once it listens (a GatewayError if it cannot)."""
        ctx = mp.get_context("spawn")
        self._counts = ctx.Array("q", len(_COUNTS), lock=False)
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_gateway_process, name="filmscore-ws-gateway", daemon=True,
                                    args=(self._args, child, self._counts, logging.getLogger().level))
        self._process.start()
        child.close()
        reply: tuple[str, Any] = ("error", "no answer within 60 s")
        try:
            if self._conn.poll(60):
                reply = self._conn.recv()
        except (EOFError, OSError):
            reply = ("error", f"its process exited ({self._process.exitcode})")
        if reply[0] != "ready":
            self.stop()
            raise GatewayError(f"WebSocket gateway on {self.host}:{self.port} did not start: {reply[1]}")
        self.port = reply[1]
        return self.port

    def stop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send("stop")
            except OSError:
                pass
        if self._process is not None:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- in the gateway's process ----------------------------------------------------------------------------------
    def _count(self) -> None:
        """Publish the counters `describe()` reads in the server's process."""
        if self._counts is not None:
            self._counts[:] = [self._open, len(self._clients), self.refused]

    def _serve(self, conn: Any) -> None:
        """Serve until the server says stop (or is gone), reporting the port or the failure on `conn` first."""
        def wait_stop() -> None:
            try:
                conn.recv()
            except (EOFError, OSError):
                pass  # the server is gone
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)

        self._conn = conn
        threading.Thread(target=wait_stop, name="filmscore-ws-gateway-stop", daemon=True).start()
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to start() or logged
            try:
                conn.send(("error", f"{type(e).__name__}: {e}"))
            except OSError:
                pass
            log.exception("WebSocket gateway stopped")

    async def _main(self) -> None:
        from websockets.asyncio.server import ServerConnection, serve
        from websockets.frames import CloseCode
        from websockets.protocol import State

        gateway = self

        class CappedConnection(ServerConnection):
            """Counts TCP connections as they are accepted (before any HTTP), and aborts those over the cap: a
            peer that opens sockets and sends nothing holds no more than `max_clients` descriptors."""

            def connection_made(self, transport: Any) -> None:
                gateway._open += 1
                _set_rcvbuf(transport, PRE_TOKEN_RCVBUF)
                super().connection_made(transport)
                now = time.monotonic()
                recent = gateway._accepts
                while recent and recent[0] < now - 1.0:
                    recent.popleft()
                recent.append(now)
                if gateway._open > gateway.max_clients or len(recent) > ACCEPTS_PER_S:
                    gateway.refused += 1
                    log.warning("WebSocket gateway: over %d connections or %d new ones a second; refusing another",
                                gateway.max_clients, ACCEPTS_PER_S)
                    transport.abort()
                gateway._count()

            def connection_lost(self, exc: Exception | None) -> None:
                gateway._open -= 1
                gateway._count()
                super().connection_lost(exc)

            def data_received(self, data: bytes) -> None:
                # A connection without the token that is already closing (a wrong token) is dropped at once
                # instead of being read to its close frame: a 30 MiB message sent after a refusal would otherwise
                # be read and discarded, 64 KiB at a time, by this process.
                if self.protocol.state is State.CLOSING and not getattr(self, "authorised", False):
                    if self.held is None:
                        self.transport.abort()
                    return
                super().data_received(data)

            held: asyncio.TimerHandle | None = None

            def send_data(self) -> None:
                # A first message over FIRST_MESSAGE_BYTES (the shape of a flood: megabytes before any token) is
                # refused by holding the connection unread for REFUSED_HOLD_S, then sending the 1009 close. Closed
                # at once, the peer would reconnect and push its next message straight away; held, its sender
                # waits on a full 64 KiB window and costs neither this process nor the host's CPU anything.
                close = self.protocol.close_sent
                if (not getattr(self, "authorised", False) and close is not None
                        and close.code == CloseCode.MESSAGE_TOO_BIG):
                    if self.held is None:
                        self.transport.pause_reading()
                        self.held = self.loop.call_later(REFUSED_HOLD_S, self.release)
                    return
                super().send_data()

            def release(self) -> None:
                super().send_data()  # the 1009 close frame, then EOF: the peer learns why
                self.loop.call_later(1.0, self.transport.abort)

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.ctx = zmq.asyncio.Context()
        sub = self.ctx.socket(zmq.SUB)
        configure_socket(sub, self.info)  # type: ignore[arg-type]
        sub.connect(endpoint(self.info, "event_port"))  # type: ignore[arg-type]
        sub.setsockopt(zmq.SUBSCRIBE, b"job.")
        # None in `origins` admits clients that send no Origin header (UXP panels, scripts): they hold the token.
        # max_size starts at FIRST_MESSAGE_BYTES and is raised for a connection once its token checks out.
        async with serve(self._handler, self.host, self.port, origins=[None, *self.origins],
                         max_size=FIRST_MESSAGE_BYTES, max_queue=4, ping_interval=20, ssl=self.ssl,
                         logger=_WS_LOG, create_connection=CappedConnection, open_timeout=AUTH_TIMEOUT_S) as server:
            self.port = server.sockets[0].getsockname()[1] if not self.port else self.port
            fanout = asyncio.ensure_future(self._fanout(sub))
            self._conn.send(("ready", self.port))
            await self._stop.wait()
            fanout.cancel()
        sub.close(0)
        self.ctx.term()

    def describe(self) -> dict[str, int]:
        counts = dict(zip(_COUNTS, self._counts[:] if self._counts is not None else (0, 0, 0)))
        return {"connections": counts["connections"], "authorised": counts["authorised"], "cap": self.max_clients,
                "refused": counts["refused"]}

    async def _fanout(self, sub: zmq.asyncio.Socket) -> None:
        while True:
            frames = await sub.recv_multipart()
            try:
                _, msg = self.session.recv(frames)
                text = P.dumps_strict(msg.to_json())
            except P.ProtocolError as e:
                log.warning("dropping an event that does not verify: %s", e)
                continue
            for ws in list(self._clients):
                try:
                    await ws.send(text)
                except Exception:  # noqa: BLE001 - a closed panel must not stop the others' events
                    self._clients.discard(ws)

    def _error_json(self, exc: Exception, parent: dict[str, Any] | None = None) -> str:
        """An error message as JSON text; total (an error whose text cannot be encoded is named, not sent)."""
        try:
            content = P.error_content(exc)
            P.dumps_strict(content)
        except P.ProtocolError:
            content = P.error_content(P.EncodingError(f"{type(exc).__name__} (its message cannot be encoded)"))
        return P.dumps_strict(self.session.msg("error", content, parent=P.safe_header(parent)).to_json())

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._session(ws)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - one panel's failure must not reach the others or the server
            log.exception("WebSocket connection failed")
            await ws.close(1011, "internal error")

    async def _session(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        token, session_id = "", None
        try:
            first = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT_S)
            obj = P.loads_strict(first, "token message") if isinstance(first, str) else {}
            if isinstance(obj, dict):
                token, session_id = obj.get("token", ""), obj.get("session")
        except (asyncio.TimeoutError, P.ProtocolError):
            token = ""
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token):
            await ws.close(1008, "a valid token is required")
            return
        if not (isinstance(session_id, str) and _SESSION_RE.fullmatch(session_id)):
            session_id = P.new_id()
        ws.protocol.max_message_size = self.session.limits.max_message_bytes  # authorised: the protocol's limit
        ws.authorised = True
        _set_rcvbuf(ws.transport, TOKEN_RCVBUF)
        await ws.send(P.dumps_strict({"status": "ok", "protocol_version": P.PROTOCOL_VERSION, "session": session_id}))
        dealer = self.ctx.socket(zmq.DEALER)
        configure_socket(dealer, self.info)  # type: ignore[arg-type]
        dealer.connect(endpoint(self.info, "request_port"))  # type: ignore[arg-type]
        replies = asyncio.ensure_future(self._replies(dealer, ws))
        self._clients.add(ws)
        self._count()
        try:
            while True:
                raw = await ws.recv()
                try:
                    msg = await self._request_from(ws, raw, session_id)
                    frames = self.session.serialize(msg)
                except P.ProtocolError as e:
                    await ws.send(self._error_json(e))
                    continue
                await dealer.send_multipart(frames)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)
            self._count()
            replies.cancel()
            dealer.close(0)

    async def _request_from(self, ws: Any, raw: str | bytes, session_id: str) -> P.Message:
        """A message to sign from one WebSocket request (reading its binary buffers), in the panel's session."""
        if not isinstance(raw, str):
            raise P.ProtocolError("expected a JSON text message; binary messages only follow a request's header")
        obj = P.loads_strict(raw, "request")
        if not isinstance(obj, dict) or not isinstance(obj.get("header"), dict):
            raise P.ProtocolError("a request is {\"header\": {\"msg_type\": ...}, \"content\": {...}}")
        unknown = set(obj) - {"header", "content", "metadata", "buffers", "parent_header"}
        if unknown:
            raise P.ProtocolError(f"unknown request field(s) {', '.join(sorted(unknown))}")
        header, content = obj["header"], obj.get("content", {})
        metadata = obj.get("metadata", {})
        msg_type, msg_id = header.get("msg_type"), header.get("msg_id")
        if not isinstance(msg_type, str) or msg_type not in P.REQUEST_TYPES:
            raise P.ProtocolError(f"unknown message type {str(msg_type)[:64]!r}; requests are "
                                  f"{', '.join(P.REQUEST_TYPES)}")
        if msg_type == "shutdown":
            raise P.ProtocolError("shutdown is not allowed through the WebSocket gateway; use a ZeroMQ client")
        if msg_id is not None and not (isinstance(msg_id, str) and 0 < len(msg_id) <= 64 and msg_id.isprintable()):
            raise P.ProtocolError("header msg_id must be a string of 1-64 printable characters")
        if not isinstance(content, dict) or not isinstance(metadata, dict):
            raise P.ProtocolError("content and metadata must be JSON objects")
        n = obj.get("buffers", 0)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= self.session.limits.max_buffers:
            raise P.ProtocolError(f"buffers must be 0..{self.session.limits.max_buffers}")
        buffers = []
        for i in range(n):
            try:
                b = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT_S)
            except asyncio.TimeoutError:
                raise P.ProtocolError(f"buffer {i} of {n} did not arrive within {AUTH_TIMEOUT_S:g} s") from None
            if not isinstance(b, bytes):
                raise P.ProtocolError("a request's buffers must follow it as binary messages")
            buffers.append(b)
        msg = self.session.msg(msg_type, content, metadata={**metadata, "via": "websocket"}, buffers=buffers,
                               msg_id=msg_id)
        msg.header["session"] = session_id
        return msg

    async def _replies(self, dealer: zmq.asyncio.Socket, ws: Any) -> None:
        while True:
            frames = await dealer.recv_multipart()
            try:
                _, msg = self.session.recv(frames)
                text = P.dumps_strict(msg.to_json())
            except P.ProtocolError as e:
                log.warning("dropping a reply that does not verify: %s", e)
                continue
            await ws.send(text)
            for b in msg.buffers:
                await ws.send(b)


def _set_rcvbuf(transport: Any, size: int) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError:
            pass


def _gateway_process(args: tuple, conn: Any, counts: Any, log_level: int) -> None:
    """The gateway process: dies with the server, logs as the server does (same format, repeats held back), runs
    below the server's priority."""
    from .server.worker import die_with_parent

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us in order
    from .server.limits import install_repeat_filter

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_repeat_filter()  # as in the server: a flood of refusals is a few lines, not thousands
    try:
        os.nice(GATEWAY_NICENESS)
    except OSError:
        pass
    try:
        gateway = WebSocketGateway(*args)
    except GatewayError as e:
        conn.send(("error", str(e)))
        return
    gateway._counts = counts
    gateway._serve(conn)
