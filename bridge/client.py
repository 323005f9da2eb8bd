"""Clients of the bridge: `BridgeClient` (blocking) and `AsyncBridgeClient` (asyncio), same methods.

    with BridgeClient.from_connection_file() as c:
        job = c.render(output="/abs/cue.wav", video="/abs/clip.mov", duration_s=12.0, seed=3)
        final = c.wait(job, on_event=lambda m: print(m.msg_type, m.content.get("fraction")))

Requests go over a DEALER socket and are matched to replies by `parent_header.msg_id`; events come from a SUB
socket. A request that times out can be retried with the same `msg_id` (a new signature, so it is not a replay):
the server answers a repeated `render` with the job it already made, never a second one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from filmscore.engine.errors import FilmscoreError

from . import protocol as P
from .connection import ConnectionInfo, endpoint, find_connection_file, key_bytes, read_connection_file

TERMINAL_EVENTS = ("job_finished", "job_failed", "job_cancelled")


class RemoteError(FilmscoreError):
    """The server answered a request with an error; `ename` names its kind (SignatureError, JobError, ...)."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue = ename, evalue


class BridgeTimeout(FilmscoreError):
    """No reply (or no event) within the timeout: the server is not running, busy, or unreachable."""


def render_content(output: str | Path, *, video: str | Path | None = None, start_s: float | None = None,
                   duration_s: float | None = None, timeline: str | Path | None = None, cue: str | None = None,
                   in_s: float | None = None, out_s: float | None = None, midi: str | Path | None = None,
                   midi_bytes: bytes | None = None, hits_s: tuple[float, ...] = (), **options: Any,
                   ) -> tuple[dict[str, Any], list[bytes]]:
    """Content and buffers of a `render` request. Seconds become rational times on a 48 kHz grid; `midi_bytes`
    travels as a raw binary frame. `options`: seed, steps, scheduler, maestro, reference_audio, ... (protocol.md)."""
    rt = P.RationalTime.from_seconds
    content: dict[str, Any] = {"output": str(output)}
    buffers: list[bytes] = []
    if video is not None:
        content["video"] = str(video)
    if start_s is not None:
        content["start"] = rt(start_s).to_json()
    if duration_s is not None:
        content["duration"] = rt(duration_s).to_json()
    if timeline is not None:
        content["timeline"] = P.TimelineRange(str(timeline), cue, rt(in_s) if in_s is not None else None,
                                              rt(out_s) if out_s is not None else None).to_json()
    if midi is not None and midi_bytes is not None:
        raise P.ProtocolError("give midi as a path or as bytes, not both")
    if midi is not None:
        content["midi"] = str(midi)
    if midi_bytes is not None:
        content["midi"] = {"buffer": 0}
        buffers.append(bytes(midi_bytes))
    if hits_s:
        content["hits"] = [rt(h).to_json() for h in hits_s]
    for k, v in options.items():
        if v is not None:
            content[k] = str(v) if isinstance(v, Path) else v
    P.RenderParams.from_content(content, len(buffers))  # fail here, with the same message the server would send
    return content, buffers


def regenerate_content(source: str | Path, output: str | Path, start_s: float, end_s: float, *,
                       seed: int | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Content of a `regenerate` request, checked as the server checks it."""
    params = P.RegenerateParams(str(source), str(output), float(start_s), float(end_s), seed, overwrite)
    return P.RegenerateParams.from_content(params.to_content()).to_content()


def conform_content(old: str | Path, new: str | Path, scored: str | Path, outdir: str | Path, *,
                    overwrite: bool = False) -> dict[str, Any]:
    """Content of a `conform` request, checked as the server checks it."""
    params = P.ConformParams(str(old), str(new), str(scored), str(outdir), overwrite)
    return P.ConformParams.from_content(params.to_content()).to_content()


def configure_socket(sock: zmq.Socket, info: ConnectionInfo) -> None:
    """Set up a socket that talks to the bridge `info` describes: no linger on close, and the CURVE keys when the
    bridge encrypts (the client and the WebSocket gateway connect the same way)."""
    sock.linger = 0
    if info.get("curve_server_public"):
        sock.curve_serverkey = info["curve_server_public"].encode()
        sock.curve_publickey = info["curve_client_public"].encode()
        sock.curve_secretkey = info["curve_client_secret"].encode()


def _check(reply: P.Message) -> dict[str, Any]:
    if reply.content.get("status") != "ok":
        raise RemoteError(str(reply.content.get("ename", "Error")), str(reply.content.get("evalue", "")))
    return reply.content


class _Base:
    def __init__(self, info: ConnectionInfo, timeout_s: float = 10.0, host: str | None = None) -> None:
        self.info = dict(info)
        if host is not None:  # e.g. the gateway reaching a server bound to 0.0.0.0 through loopback
            self.info["ip"] = host
        self.session = P.Session(key_bytes(info))
        self.timeout_s = timeout_s

    @classmethod
    def from_connection_file(cls, path: str | Path | None = None, **kw: Any):
        return cls(read_connection_file(Path(path) if path else find_connection_file()), **kw)

    def _request_msg(self, msg_type: str, content: dict[str, Any] | None, buffers: list[bytes],
                     msg_id: str | None) -> P.Message:
        return self.session.msg(msg_type, content or {}, buffers=buffers, msg_id=msg_id)


class BridgeClient(_Base):
    """Blocking client. Not thread-safe: one per thread."""

    def __init__(self, info: ConnectionInfo, timeout_s: float = 10.0, host: str | None = None,
                 context: zmq.Context | None = None) -> None:
        super().__init__(info, timeout_s, host)
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        configure_socket(self.sock, self.info)  # type: ignore[arg-type]
        self.sock.connect(endpoint(self.info, "request_port"))  # type: ignore[arg-type]
        self._sub: zmq.Socket | None = None

    def close(self) -> None:
        self.sock.close(0)
        if self._sub is not None:
            self._sub.close(0)

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_frames(self, frames: list[bytes]) -> None:
        """Send raw frames (tests and fuzzers: whatever they are)."""
        self.sock.send_multipart(frames)

    def recv_message(self, timeout_s: float | None = None) -> P.Message:
        """The next verified message on the request socket."""
        if not self.sock.poll(int(1000 * (timeout_s if timeout_s is not None else self.timeout_s))):
            raise BridgeTimeout(f"no reply from the bridge at {endpoint(self.info, 'request_port')} "  # type: ignore[arg-type]
                                f"within {timeout_s if timeout_s is not None else self.timeout_s:g} s")
        _, msg = self.session.recv(self.sock.recv_multipart())
        return msg

    def request(self, msg_type: str, content: dict[str, Any] | None = None, buffers: list[bytes] | None = None,
                *, timeout_s: float | None = None, msg_id: str | None = None, retries: int = 0) -> dict[str, Any]:
        """Send a request; return the reply's content or raise `RemoteError`. With `retries`, a timed-out request is
        re-sent with the same msg_id (idempotent for `render`)."""
        msg = self._request_msg(msg_type, content, buffers or [], msg_id)
        for attempt in range(retries + 1):
            if attempt:
                msg = self._request_msg(msg_type, content, buffers or [], msg.msg_id)
            self.sock.send_multipart(self.session.serialize(msg))
            deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
            try:
                while True:
                    reply = self.recv_message(max(0.0, deadline - time.monotonic()))
                    if reply.parent_header.get("msg_id") == msg.msg_id or reply.msg_type == "error" and \
                            not reply.parent_header:
                        return _check(reply)
            except BridgeTimeout:
                if attempt == retries:
                    raise
        raise BridgeTimeout("unreachable")  # pragma: no cover

    # -- the protocol's requests ---------------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        return self.request("hello", {"protocol_versions": list(P.SUPPORTED_VERSIONS), "client": "filmscore.client"})

    def render(self, output: str | Path, *, retries: int = 2, **kw: Any) -> str:
        """Queue a render; returns its job id. Keywords: see `render_content`."""
        content, buffers = render_content(output, **kw)
        return self.request("render", content, buffers, retries=retries)["job_id"]

    def status(self, job_id: str | None = None) -> dict[str, Any]:
        reply = self.request("status", {"job_id": job_id} if job_id else {})
        return reply["job"] if job_id else reply["server"]

    def cancel(self, job_id: str) -> str:
        return self.request("cancel", {"job_id": job_id})["state"]

    def list_jobs(self, states: tuple[str, ...] | None = None, limit: int = 100, offset: int = 0,
                  newest_first: bool = False) -> list[dict[str, Any]]:
        """Job records (results summarised), oldest first unless `newest_first`; at most 1000 per call."""
        content: dict[str, Any] = {"limit": limit, "offset": offset, "newest_first": newest_first}
        if states:
            content["states"] = list(states)
        return self.request("list_jobs", content)["jobs"]

    def all_jobs(self, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every job record, paging through `list_jobs`."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.list_jobs(states, limit=1000, offset=len(out))
            out += page
            if len(page) < 1000:
                return out

    def plan(self, output: str | Path, *, retries: int = 2, **kw: Any) -> str:
        """Queue a plan (no audio): the render's keywords; the job's result is the plan's summary and the
        OUT.plan.json it wrote beside `output`. Returns its job id."""
        content, buffers = render_content(output, **kw)
        return self.request("plan", content, buffers, retries=retries)["job_id"]

    def regenerate(self, source: str | Path, output: str | Path, start_s: float, end_s: float, *,
                   seed: int | None = None, overwrite: bool = False, retries: int = 2) -> str:
        """Queue a new take of `start_s`..`end_s` (seconds of the cue) of the cue at `source` into `output`
        (docs/editor_loop.md); returns its job id."""
        content = regenerate_content(source, output, start_s, end_s, seed=seed, overwrite=overwrite)
        return self.request("regenerate", content, retries=retries)["job_id"]

    def conform(self, old: str | Path, new: str | Path, scored: str | Path, outdir: str | Path, *,
                overwrite: bool = False, retries: int = 2) -> str:
        """Queue a conform of the cues scored for edit `old` in folder `scored` to edit `new`, into `outdir`
        (docs/editor_loop.md); returns its job id."""
        content = conform_content(old, new, scored, outdir, overwrite=overwrite)
        return self.request("conform", content, retries=retries)["job_id"]

    def result(self, job_id: str) -> dict[str, Any]:
        return self.request("result", {"job_id": job_id})["result"]

    def maestros(self) -> list[dict[str, Any]]:
        return self.request("maestros")["maestros"]

    def shutdown(self, wait: bool = False) -> dict[str, Any]:
        return self.request("shutdown", {"wait": wait})

    # -- events --------------------------------------------------------------------------------------------------
    def subscribe(self, job_id: str | None = None, wait_s: float | None = None) -> None:
        """Start receiving events (all jobs, or one). Subscribe before `render` to miss none of its events.
        `wait_s`: block (at most that long) until the event socket's connection is up; libzmq sends the
        subscription as soon as it is, so events published after a later request reach this client."""
        monitor = None
        if self._sub is None:
            self._sub = self.ctx.socket(zmq.SUB)
            configure_socket(self._sub, self.info)  # type: ignore[arg-type]
            if wait_s is not None:
                monitor = self._sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self._sub.connect(endpoint(self.info, "event_port"))  # type: ignore[arg-type]
        self._sub.setsockopt(zmq.SUBSCRIBE, f"job.{job_id}".encode() if job_id else b"job.")
        if monitor is not None:
            try:
                if not monitor.poll(int(1000 * wait_s)):  # type: ignore[operator]
                    raise BridgeTimeout(f"the event socket {endpoint(self.info, 'event_port')} did not connect "  # type: ignore[arg-type]
                                        f"within {wait_s:g} s")
            finally:
                self._sub.disable_monitor()
                monitor.close(0)

    def events(self, timeout_s: float | None = None) -> Iterator[P.Message]:
        """Verified events as they arrive; stops after `timeout_s` without one (None: never)."""
        if self._sub is None:
            self.subscribe()
        sub = self._sub
        while True:
            if not sub.poll(None if timeout_s is None else int(timeout_s * 1000)):  # type: ignore[union-attr]
                return
            _, msg = self.session.recv(sub.recv_multipart())  # type: ignore[union-attr]
            yield msg

    def wait(self, job_id: str, timeout_s: float = 600.0,
             on_event: Callable[[P.Message], None] | None = None) -> dict[str, Any]:
        """Block until the job ends; returns its final status. Polls `status` too, so an event lost before the
        subscription took effect cannot hang the caller."""
        self.subscribe(job_id)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self.status(job_id)
            if st["state"] in ("finished", "failed", "cancelled"):
                return st
            for ev in self.events(timeout_s=min(1.0, max(0.0, deadline - time.monotonic()))):
                if ev.content.get("job_id") != job_id:
                    continue
                if on_event is not None:
                    on_event(ev)
                if ev.msg_type in TERMINAL_EVENTS:
                    return self.status(job_id)
        raise BridgeTimeout(f"job {job_id} did not end within {timeout_s:g} s")


class AsyncBridgeClient(_Base):
    """asyncio client: the same requests as `BridgeClient`, awaitable; one outstanding request at a time per
    client is not required: replies are matched to requests by msg_id."""

    def __init__(self, info: ConnectionInfo, timeout_s: float = 10.0, host: str | None = None,
                 context: zmq.asyncio.Context | None = None) -> None:
        super().__init__(info, timeout_s, host)
        self.ctx = context or zmq.asyncio.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        configure_socket(self.sock, self.info)  # type: ignore[arg-type]
        self.sock.connect(endpoint(self.info, "request_port"))  # type: ignore[arg-type]
        self._pending: dict[str, asyncio.Future[P.Message]] = {}
        self._reader: asyncio.Task | None = None
        self._sub: zmq.asyncio.Socket | None = None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.sock.close(0)
        if self._sub is not None:
            self._sub.close(0)

    async def __aenter__(self) -> AsyncBridgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read_replies(self) -> None:
        while True:
            frames = await self.sock.recv_multipart()
            try:
                _, msg = self.session.recv(frames)
            except P.ProtocolError:
                continue  # not from our server: ignore
            fut = self._pending.pop(msg.parent_header.get("msg_id", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def request(self, msg_type: str, content: dict[str, Any] | None = None,
                      buffers: list[bytes] | None = None, *, timeout_s: float | None = None,
                      msg_id: str | None = None) -> dict[str, Any]:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_replies())
        msg = self._request_msg(msg_type, content, buffers or [], msg_id)
        fut: asyncio.Future[P.Message] = asyncio.get_running_loop().create_future()
        self._pending[msg.msg_id] = fut
        await self.sock.send_multipart(self.session.serialize(msg))
        try:
            reply = await asyncio.wait_for(fut, timeout_s if timeout_s is not None else self.timeout_s)
        except asyncio.TimeoutError:
            self._pending.pop(msg.msg_id, None)
            raise BridgeTimeout(f"no reply to {msg_type} within {timeout_s or self.timeout_s:g} s") from None
        return _check(reply)

    async def hello(self) -> dict[str, Any]:
        return await self.request("hello", {"protocol_versions": list(P.SUPPORTED_VERSIONS)})

    async def render(self, output: str | Path, **kw: Any) -> str:
        content, buffers = render_content(output, **kw)
        return (await self.request("render", content, buffers))["job_id"]

    async def plan(self, output: str | Path, **kw: Any) -> str:
        content, buffers = render_content(output, **kw)
        return (await self.request("plan", content, buffers))["job_id"]

    async def regenerate(self, source: str | Path, output: str | Path, start_s: float, end_s: float, *,
                         seed: int | None = None, overwrite: bool = False) -> str:
        content = regenerate_content(source, output, start_s, end_s, seed=seed, overwrite=overwrite)
        return (await self.request("regenerate", content))["job_id"]

    async def conform(self, old: str | Path, new: str | Path, scored: str | Path, outdir: str | Path, *,
                      overwrite: bool = False) -> str:
        return (await self.request("conform", conform_content(old, new, scored, outdir, overwrite=overwrite)))[
            "job_id"]

    async def status(self, job_id: str | None = None) -> dict[str, Any]:
        reply = await self.request("status", {"job_id": job_id} if job_id else {})
        return reply["job"] if job_id else reply["server"]

    async def cancel(self, job_id: str) -> str:
        return (await self.request("cancel", {"job_id": job_id}))["state"]

    async def list_jobs(self, states: tuple[str, ...] | None = None, limit: int = 100, offset: int = 0,
                        newest_first: bool = False) -> list[dict[str, Any]]:
        content: dict[str, Any] = {"limit": limit, "offset": offset, "newest_first": newest_first}
        if states:
            content["states"] = list(states)
        return (await self.request("list_jobs", content))["jobs"]

    async def result(self, job_id: str) -> dict[str, Any]:
        return (await self.request("result", {"job_id": job_id}))["result"]

    async def maestros(self) -> list[dict[str, Any]]:
        return (await self.request("maestros"))["maestros"]

    async def shutdown(self, wait: bool = False) -> dict[str, Any]:
        return await self.request("shutdown", {"wait": wait})

    async def wait(self, job_id: str, timeout_s: float = 600.0,
                   on_event: Callable[[P.Message], None] | None = None) -> dict[str, Any]:
        """Until the job ends; its final status. Events drive it, `status` polls cover an event missed before the
        subscription took effect."""
        events = self.events(job_id)

        async def watch() -> None:
            async for ev in events:
                if on_event is not None:
                    on_event(ev)
                if ev.msg_type in TERMINAL_EVENTS:
                    return

        async def poll() -> None:
            while (await self.status(job_id))["state"] not in ("finished", "failed", "cancelled"):
                await asyncio.sleep(1.0)

        tasks = [asyncio.ensure_future(watch()), asyncio.ensure_future(poll())]
        try:
            done, _ = await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await events.aclose()
        if not done:
            raise BridgeTimeout(f"job {job_id} did not end within {timeout_s:g} s")
        for t in done:
            t.result()  # a RemoteError from status surfaces here
        return await self.status(job_id)

    async def events(self, job_id: str | None = None):
        """Async iterator of verified events (all jobs, or one)."""
        if self._sub is None:
            self._sub = self.ctx.socket(zmq.SUB)
            configure_socket(self._sub, self.info)  # type: ignore[arg-type]
            self._sub.connect(endpoint(self.info, "event_port"))  # type: ignore[arg-type]
        self._sub.setsockopt(zmq.SUBSCRIBE, f"job.{job_id}".encode() if job_id else b"job.")
        while True:
            _, msg = self.session.recv(await self._sub.recv_multipart())
            yield msg
