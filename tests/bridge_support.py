"""Setup the bridge test modules share: a live `filmscore serve` on the tiny seeded bundle, a raw ZeroMQ socket to
it, the events of one job, and a small MIDI theme to send inline. Each test keeps its own steps and assertions."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zmq

from filmscore.bridge import protocol as P
from filmscore.bridge.client import BridgeClient
from filmscore.bridge.connection import ConnectionInfo, endpoint
from filmscore.bridge.server.launch import LaunchedServer, launch_server
from filmscore.engine.bundle_testing import make_tiny_bundle


def bridge_bundle(path: Path) -> Path:
    """The tiny seeded bundle the bridge tests serve, written to `path` (no video in their renders, so the film
    head's feature layout is never used)."""
    return make_tiny_bundle(path, seed=0, feature_dim=16, feature_layout="bridge-tests")


def serve(dirs: dict[str, Path], bundle: Path, **kw: Any) -> contextlib.AbstractContextManager[LaunchedServer]:
    """`launch_server` with its state, media root and output root from `dirs` ("state", "media", "out")."""
    return launch_server(dirs["state"], media_roots=[dirs["media"]], output_roots=[dirs["out"]], bundle=bundle, **kw)


@contextlib.contextmanager
def tiny_bridge(root: Path) -> Iterator[tuple[LaunchedServer, dict[str, Path], Path]]:
    """A live server on the tiny seeded bundle with its state, media and output folders under `root`:
    yields (server, {"state"|"media"|"out": folder}, bundle). The bridge test modules' shared setup."""
    d = {k: root / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()
    bundle = bridge_bundle(root / "tiny")
    with serve(d, bundle) as srv:
        yield srv, d, bundle


def raw_socket(info: ConnectionInfo) -> zmq.Socket:
    """A DEALER socket on the server's request port, for frames `BridgeClient` would not send."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.linger = 0
    s.connect(endpoint(info, "request_port"))
    return s


def recv_reply(sock: zmq.Socket, session: P.Session, timeout_s: float = 10.0) -> P.Message:
    """The next reply on a `raw_socket`, checked with `session`'s key; fails the test when none comes in time."""
    assert sock.poll(int(timeout_s * 1000)), "no reply"
    return session.recv(sock.recv_multipart())[1]


def events_until(client: BridgeClient, job_id: str, timeout_s: float = 120.0,
                 on_event: Callable[[P.Message], None] | None = None) -> list[P.Message]:
    """The events of job `job_id` up to and including the one that ends it (finished, failed or cancelled);
    `on_event(event)` runs on each of them the moment it arrives (what a client would do then)."""
    out = []
    deadline = time.monotonic() + timeout_s
    for ev in client.events(timeout_s=timeout_s):
        if ev.content.get("job_id") == job_id:
            out.append(ev)
            if on_event is not None:
                on_event(ev)
            if ev.msg_type in ("job_finished", "job_failed", "job_cancelled"):
                return out
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"job {job_id} did not end; events: {[e.msg_type for e in out]}")


def four_note_midi() -> bytes:
    """A Standard MIDI File of four quarter notes (C4 E4 G4 C5), as a render request's inline theme."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    for note in (60, 64, 67, 72):
        tr.append(mido.Message("note_on", note=note, velocity=90, time=0))
        tr.append(mido.Message("note_off", note=note, velocity=0, time=480))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()
