"""WebSocket gateway: the bridge's protocol for hosts that speak only HTTP/WebSocket (Premiere's UXP panels).

It is a transport, not a second server: each WebSocket connection gets its own DEALER socket to the bridge's
request port, and the gateway signs what the panel sends with the connection file's key, so every request goes
through the same `protocol.Session` checks and the same handlers as a ZeroMQ client's. Events from the PUB socket
are verified and forwarded to every authorised connection.

Session on a WebSocket (text messages are JSON; docs/protocol.md has examples):

1. The HTTP upgrade is refused (403) when it carries an `Origin` not in the allowed list; clients that send no
   Origin (UXP, scripts) pass this step. Browsers always send one, so a web page cannot reach the gateway.
2. The first message must be `{"token": "<ws_token from the connection file>"}` within 10 s; a wrong or missing
   token closes the connection with code 1008. Answer: `{"status": "ok", "protocol_version": ...}`.
3. Requests: `{"header": {"msg_type": "status", "msg_id": "..."(optional)}, "content": {...}, "buffers": N}`,
   followed by N binary messages (e.g. an inline MIDI file). Replies and events come back in the same JSON form
   (`Message.to_json()`), with the reply's `parent_header.msg_id` equal to the request's `msg_id`.

`shutdown` is refused through the gateway: a panel's token authorises renders, not stopping the server.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from typing import Any

import zmq
import zmq.asyncio

from filmscore.engine.errors import FilmscoreError

from . import protocol as P
from .client import _configure
from .connection import ConnectionInfo, endpoint, key_bytes

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class GatewayError(FilmscoreError):
    """A gateway that cannot start (bad address, remote without --allow-remote, no token)."""


class WebSocketGateway:
    """Runs in its own thread with its own asyncio loop and ZeroMQ context; `start()` returns the bound port."""

    def __init__(self, info: ConnectionInfo, host: str = "127.0.0.1", port: int = 0, origins: tuple[str, ...] = (),
                 allow_remote: bool = False) -> None:
        if host not in _LOOPBACK and not allow_remote:
            raise GatewayError(f"WebSocket gateway on {host} would be reachable from the network; pass "
                               "--allow-remote, or use 127.0.0.1")
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
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> int:
        self._thread = threading.Thread(target=self._run, name="filmscore-ws-gateway", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise GatewayError(f"WebSocket gateway on {self.host}:{self.port} did not start: {self._error}")
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to start() or logged
            self._error = e
            self._ready.set()
            log.exception("WebSocket gateway stopped")

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.ctx = zmq.asyncio.Context()
        sub = self.ctx.socket(zmq.SUB)
        _configure(sub, self.info)  # type: ignore[arg-type]
        sub.connect(endpoint(self.info, "event_port"))  # type: ignore[arg-type]
        sub.setsockopt(zmq.SUBSCRIBE, b"job.")
        # None in `origins` admits clients that send no Origin header (UXP panels, scripts): they hold the token.
        async with serve(self._handler, self.host, self.port, origins=[None, *self.origins],
                         max_size=self.session.limits.max_message_bytes, ping_interval=20) as server:
            self.port = server.sockets[0].getsockname()[1] if not self.port else self.port
            fanout = asyncio.ensure_future(self._fanout(sub))
            self._ready.set()
            await self._stop.wait()
            fanout.cancel()
        sub.close(0)
        self.ctx.term()

    async def _fanout(self, sub: zmq.asyncio.Socket) -> None:
        while True:
            frames = await sub.recv_multipart()
            try:
                _, msg = self.session.recv(frames)
            except P.ProtocolError as e:
                log.warning("dropping an event that does not verify: %s", e)
                continue
            text = json.dumps(msg.to_json())
            for ws in list(self._clients):
                try:
                    await ws.send(text)
                except Exception:  # noqa: BLE001 - a closed panel must not stop the others' events
                    self._clients.discard(ws)

    def _error_json(self, exc: Exception, parent: dict[str, Any] | None = None) -> str:
        return json.dumps(self.session.msg("error", P.error_content(exc), parent=parent or {}).to_json())

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            first = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT_S)
            token = json.loads(first).get("token", "") if isinstance(first, str) else ""
        except (asyncio.TimeoutError, ValueError, AttributeError, ConnectionClosed):
            token = ""
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token):
            await ws.close(1008, "a valid token is required")
            return
        await ws.send(json.dumps({"status": "ok", "protocol_version": P.PROTOCOL_VERSION}))
        dealer = self.ctx.socket(zmq.DEALER)
        _configure(dealer, self.info)  # type: ignore[arg-type]
        dealer.connect(endpoint(self.info, "request_port"))  # type: ignore[arg-type]
        replies = asyncio.ensure_future(self._replies(dealer, ws))
        self._clients.add(ws)
        try:
            while True:
                raw = await ws.recv()
                try:
                    msg = await self._request_from(ws, raw)
                except (P.ProtocolError, ValueError) as e:
                    await ws.send(self._error_json(e if isinstance(e, P.ProtocolError) else P.ProtocolError(str(e))))
                    continue
                await dealer.send_multipart(self.session.serialize(msg))
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)
            replies.cancel()
            dealer.close(0)

    async def _request_from(self, ws: Any, raw: str | bytes) -> P.Message:
        """A signed message from one WebSocket request (reading its binary buffers)."""
        if not isinstance(raw, str):
            raise P.ProtocolError("expected a JSON text message; binary messages only follow a request's header")
        obj = json.loads(raw)
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
        for _ in range(n):
            b = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT_S)
            if not isinstance(b, bytes):
                raise P.ProtocolError("a request's buffers must follow it as binary messages")
            buffers.append(b)
        return self.session.msg(msg_type, content, metadata=metadata, buffers=buffers, msg_id=msg_id)

    async def _replies(self, dealer: zmq.asyncio.Socket, ws: Any) -> None:
        while True:
            frames = await dealer.recv_multipart()
            try:
                _, msg = self.session.recv(frames)
            except P.ProtocolError as e:
                log.warning("dropping a reply that does not verify: %s", e)
                continue
            await ws.send(json.dumps(msg.to_json()))
            for b in msg.buffers:
                await ws.send(b)
