"""The server <-> worker pipe's messages: one frozen dataclass per message, sent through the protocol's strict
JSON codec (`protocol.dumps_strict` / `loads_strict`), never pickled.

Our own two processes speak here, but a message is still checked on arrival: its type tag must be known, its
fields exactly those of its class, each of the declared JSON type. A mistake on either side (a renamed field, a
NaN fraction, a tuple unpacked by position after a field was added) is an error that names the message, not a
value that lands in the wrong place.

    server -> worker   Run(seq, job_id, request, output)   Stop()
    worker -> server   Ready(pid)   Progress(seq, stage, fraction, message)
                       Preview(seq, path, steps, engine_s)   (the draft is in place at `path`)
                       Done(seq, result)   Failed(seq, ename, evalue)   Cancelled(seq, detail)

`seq` is the server's number for one run of one job on one worker: a message whose `seq` is not the worker's
current one is about a job it no longer runs, and the server drops it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Union

from ..protocol import ProtocolError, dumps_strict, loads_strict


@dataclass(frozen=True)
class Run:
    """Render the journal's request for `job_id` to `output` (server -> worker)."""

    seq: int
    job_id: str
    request: dict[str, Any]
    output: str


@dataclass(frozen=True)
class Stop:
    """Exit after the current job (server -> worker)."""


@dataclass(frozen=True)
class Ready:
    """The renderer is loaded; the worker takes jobs."""

    pid: int


@dataclass(frozen=True)
class Progress:
    seq: int
    stage: str
    fraction: float
    message: str


@dataclass(frozen=True)
class Preview:
    """The draft of the running job is published at `path` (`engine_s`: seconds the engine took to make it)."""

    seq: int
    path: str
    steps: int
    engine_s: float


@dataclass(frozen=True)
class Done:
    """The job finished; `result` is what the journal records (the cue's summary, a plan's, a conform's)."""

    seq: int
    result: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    seq: int
    ename: str
    evalue: str


@dataclass(frozen=True)
class Cancelled:
    seq: int
    detail: str


WorkerMessage = Union[Run, Stop, Ready, Progress, Preview, Done, Failed, Cancelled]
_CLASSES: dict[str, type] = {cls.__name__.lower(): cls for cls in typing.get_args(WorkerMessage)}
# JSON types of the annotations above: an int is a valid float (JSON has one number type), a bool is no int.
_JSON_TYPES: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), dict[str, Any]: (dict,)}
_FIELDS: dict[type, dict[str, tuple[type, ...]]] = {
    cls: {name: _JSON_TYPES[hint] for name, hint in typing.get_type_hints(cls).items()} for cls in _CLASSES.values()}


class WorkerMessageError(ProtocolError):
    """A pipe message that is not one of `WorkerMessage` (unknown type, missing or extra field, wrong type)."""


def encode(msg: WorkerMessage) -> bytes:
    """The message as strict JSON: `{"type": "progress", "seq": 3, ...}` (`EncodingError` for a NaN and the like)."""
    return dumps_strict({"type": type(msg).__name__.lower(), **dataclasses.asdict(msg)}).encode("utf-8")


def decode(data: bytes) -> WorkerMessage:
    """The message `encode` made, checked field by field; `WorkerMessageError` naming what is wrong otherwise."""
    try:
        obj = loads_strict(data, "worker message")
    except ProtocolError as e:
        raise WorkerMessageError(str(e)) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str) or obj["type"] not in _CLASSES:
        raise WorkerMessageError(f"worker message has no known type: {str(obj)[:80]}")
    cls = _CLASSES[obj.pop("type")]
    fields = _FIELDS[cls]
    if set(obj) != set(fields):
        raise WorkerMessageError(f"worker message {cls.__name__} has fields {sorted(obj)}, expected {sorted(fields)}")
    for name, kinds in fields.items():
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise WorkerMessageError(f"worker message {cls.__name__}.{name} is a {type(value).__name__}, expected "
                                     f"{' or '.join(k.__name__ for k in kinds)}")
    return cls(**{k: float(v) if fields[k] is _JSON_TYPES[float] else v for k, v in obj.items()})


def send(conn: Connection, msg: WorkerMessage) -> None:
    conn.send_bytes(encode(msg))


def recv(conn: Connection) -> WorkerMessage:
    """The next message on `conn` (blocks); EOFError/OSError when the other side is gone, as `Connection.recv`."""
    return decode(conn.recv_bytes())
