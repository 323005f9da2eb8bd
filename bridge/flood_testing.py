"""A keyless client's ZeroMQ flood and the memory it makes a server hold, read from /proc (Linux).

Shared by tests/test_bridge_hardening.py (bounded memory under a flood) and bench/bench_bridge_hardening.py (the
flood table), so both flood the same way and measure the same processes. Nothing here needs pytest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Protocol

from . import protocol as P
from .connection import ConnectionInfo, endpoint


class StartSignal(Protocol):
    """What `flood_zmq` needs of its start signals: a `threading.Event` or a multiprocessing one."""

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def flood_zmq(info: ConnectionInfo, frame_bytes: int, seconds: float, n_sockets: int, ready: StartSignal,
              go: StartSignal) -> None:
    """Send `status` requests signed with a wrong key, each with a `frame_bytes` buffer, on `n_sockets` DEALER
    sockets for `seconds` after `go` (`ready` is set once connected). Without blocking: a full queue is skipped."""
    import zmq

    ctx = zmq.Context()
    payload = b"\0" * frame_bytes
    evil = P.Session(os.urandom(32))
    socks = []
    for _ in range(n_sockets):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.sndhwm = 4
        s.connect(endpoint(info, "request_port"))
        socks.append(s)
    ready.set()
    go.wait()
    stop_at = time.time() + seconds
    while time.time() < stop_at:
        for s in socks:
            try:
                s.send_multipart([*evil.serialize(evil.msg("status")), payload], copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                time.sleep(0.005)
    for s in socks:
        s.close(0)
    ctx.term()


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (VmRSS), NaN when /proc does not say."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_rss_mb(pid: int, workers: Collection[int] = ()) -> float:
    """RSS of the server and of its child processes but the render `workers` (i.e. with its WebSocket gateway), in
    MB: what a flood makes `filmscore serve` hold, whichever of its processes holds it. Workers are left out: one
    loading its model while a flood is measured would count hundreds of MB that no flood caused."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in workers:
            continue
        try:
            total += rss_mb(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # a child that just exited
            continue
    return total
