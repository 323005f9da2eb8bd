"""Resource guards of the server: the descriptor limit, a cap on connections per socket, and rate-limited logging.

A keyless local peer can open connections (each costs the server a file descriptor) and make the server log. At
the usual soft limit of 1,024 descriptors, ~1,100 idle connections used to exhaust them, and a worker restart then
failed in `socketpair`. These guards keep descriptors for the server's own use:

- `raise_fd_limit` lifts the soft `RLIMIT_NOFILE` to the hard limit (capped at 65,536) where the OS allows.
- `ConnectionGuard` follows a ZeroMQ socket's monitor events and shuts down (`shutdown(2)`; libzmq then closes it
  itself) any accepted TCP connection beyond the socket's cap, so established clients keep being served.
- `RepeatFilter` lets a repeated log line through at most `burst` times per `window_s`, then says how many it
  held back (asyncio logs every failed `accept`, which was ~12,000 lines in 30 s at exhaustion).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

FD_RESERVE = 128
"""Descriptors kept for the server itself (journal, workers' pipes and sentinels, spawn, logging)."""


def raise_fd_limit(target: int = 65_536) -> int:
    """Raise the soft descriptor limit towards the hard one; returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return target if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(frozen=True)
class ConnectionCaps:
    """How many connections each listener may hold, derived from the descriptor limit: a third of what is left
    after `FD_RESERVE` per ZeroMQ socket, a twelfth for WebSocket panels (each costs ~4 descriptors: its TCP
    socket, its DEALER's mailbox and both ends of the DEALER's loopback connection)."""

    fd_limit: int
    per_socket: int
    websocket: int

    @classmethod
    def for_limit(cls, fd_limit: int, override: int | None = None) -> ConnectionCaps:
        budget = max(64, fd_limit - FD_RESERVE)
        per_socket = override if override is not None else max(16, budget // 3)
        return cls(fd_limit, per_socket, max(4, budget // 12))


class ConnectionGuard:
    """Counts a TCP ZeroMQ socket's accepted connections from its monitor and cuts those beyond `cap`."""

    EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED | zmq.EVENT_ACCEPT_FAILED

    def __init__(self, sock: zmq.Socket, port: int, cap: int, name: str) -> None:
        self.sock, self.port, self.cap, self.name = sock, port, cap, name
        self.monitor = sock.get_monitor_socket(self.EVENTS)
        self.live: set[int] = set()
        self.refused = 0
        self.accept_failed = 0

    def drain(self) -> None:
        while True:
            try:
                ev = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind, fd = ev["event"], ev["value"]
            if kind == zmq.EVENT_ACCEPTED:
                self.live.add(fd)
                if len(self.live) > self.cap:
                    self.live.discard(fd)
                    if self._cut(fd):
                        self.refused += 1
                        log.warning("%s: %d connections, the cap; refusing another", self.name, self.cap)
            elif kind == zmq.EVENT_ACCEPT_FAILED:
                self.accept_failed += 1
                log.warning("%s: accept failed (%s)", self.name, os.strerror(fd) if fd > 0 else fd)
            else:
                self.live.discard(fd)

    def _cut(self, fd: int) -> bool:
        """`shutdown(2)` the accepted socket `fd` if it still is a connection to our port (the descriptor may have
        been closed and reused since the event was queued); libzmq sees the end of stream and closes it."""
        try:
            s = socket.socket(fileno=fd)  # wraps fd without duplicating it; detach() below gives it back
        except OSError:
            return False
        try:
            if s.type != socket.SOCK_STREAM or s.getsockname()[1] != self.port:
                return False
            s.getpeername()  # the listening socket has no peer: never cut it
            s.shutdown(socket.SHUT_RDWR)
            return True
        except OSError:
            return False
        finally:
            s.detach()

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(0)

    def describe(self) -> dict[str, int]:
        return {"connections": len(self.live), "cap": self.cap, "refused": self.refused,
                "accept_failed": self.accept_failed}


class RepeatFilter(logging.Filter):
    """Let each distinct message template through `burst` times per `window_s`; then one line saying how many
    were held back when the window ends. Installed on the handlers, so it also covers asyncio's and libraries'
    loggers."""

    def __init__(self, burst: int = 5, window_s: float = 10.0, clock=time.monotonic) -> None:
        super().__init__()
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [window start, count]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            held = int(entry[1] - self.burst) if entry is not None and entry[1] > self.burst else 0
            self._seen[key] = [now, 1]
            if len(self._seen) > 10_000:  # bound the memory of distinct templates
                self._seen.clear()
                self._seen[key] = [now, 1]
            if held:
                record.msg = f"{record.msg} [{held} similar lines held back in the last {self.window_s:g} s]"
            return True
        entry[1] += 1
        return entry[1] <= self.burst


_FILTER = RepeatFilter()


def install_repeat_filter() -> RepeatFilter:
    """Put the shared `RepeatFilter` on every handler of the root logger (once)."""
    root = logging.getLogger()
    for h in root.handlers:
        if _FILTER not in h.filters:
            h.addFilter(_FILTER)
    if not root.handlers:  # logging not configured: Python's last-resort handler prints WARNING and above
        handler = logging.StreamHandler()
        handler.addFilter(_FILTER)
        root.addHandler(handler)
    return _FILTER
