"""The bridge's wire format. This module alone builds, signs, serialises and verifies messages (as jupyter_client's
`session.py` does); the server, the client and the WebSocket gateway only call it.

A message on a ZeroMQ socket is a multipart message of these frames::

    [ident, ..., DELIM, HMAC, header, parent_header, metadata, content, buffer, ...]

- `ident` frames: ROUTER routing identities (requests/replies) or the topic (events on PUB, `b"job.<job_id>"`).
- `DELIM`: the literal `b"<IDS|MSG>"`.
- `HMAC`: lowercase hex HMAC-SHA256, keyed with the connection file's `key`, over header, parent_header, metadata,
  content and every buffer, in that order. There is no keyless mode.
- `header`: JSON object `{"msg_id", "msg_type", "version", "session", "date"}` (`date` ISO 8601 UTC).
- `parent_header`: the header of the request a reply answers (`{}` on requests).
- `metadata`, `content`: JSON objects.
- buffers: raw binary frames (e.g. an inline MIDI theme), referenced from `content` by index.

Verification rejects, with a named error: a missing delimiter, bad JSON, missing header fields, an unsupported
protocol major version, a wrong or missing signature (`compare_digest`), a message whose `date` is outside the replay
window or whose signature was already seen in it (replay), and messages over the size limits. Request content is
checked by `parse_request` (types, ranges, unknown keys) so handlers receive typed dataclasses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from filmscore.engine.errors import FilmscoreError
from filmscore.engine.options import RenderOptions, option_fields, option_names

PROTOCOL_VERSION = "1.0"
"""Version spoken by this module. Peers with the same major version interoperate; `hello` negotiates the minor."""
SUPPORTED_VERSIONS: tuple[str, ...] = ("1.0",)
DELIM = b"<IDS|MSG>"
SIGNATURE_SCHEME = "hmac-sha256"

REQUEST_TYPES: tuple[str, ...] = (
    "hello", "render", "plan", "regenerate", "conform", "status", "cancel", "list_jobs", "result", "maestros",
    "shutdown",
)
"""Requests a client may send on the request socket; each is answered by `<type>_reply` (or `error`)."""
EVENT_TYPES: tuple[str, ...] = (
    "job_queued", "job_started", "job_progress", "job_preview", "job_finished", "job_failed", "job_cancelled",
)
"""Events published on the event socket, topic `job.<job_id>`."""
JOB_STATES: tuple[str, ...] = ("queued", "running", "finished", "failed", "cancelled")


class ProtocolError(FilmscoreError):
    """A message that is malformed, of an unknown type, or whose content is wrongly typed or out of range."""

    ename = "ProtocolError"


class SignatureError(ProtocolError):
    """A message that is unsigned or whose HMAC does not match its frames."""

    ename = "SignatureError"


class ReplayError(ProtocolError):
    """A message already seen (same signature) or dated outside the replay window."""

    ename = "ReplayError"


class MessageTooLarge(ProtocolError):
    """A message over the size limits (total bytes, JSON part bytes, number of buffers)."""

    ename = "MessageTooLarge"


class VersionError(ProtocolError):
    """A peer whose protocol major version this module does not speak."""

    ename = "VersionError"


class EncodingError(ProtocolError):
    """A value JSON cannot carry between peers: a non-finite number (`1e400`, NaN), a lone UTF-16 surrogate
    (`"\\ud800"`), or nesting deeper than `MAX_JSON_DEPTH`. Refused on the way in, so nothing the server stores or
    echoes can fail to encode on the way out."""

    ename = "EncodingError"


MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in a JSON part (request content needs 4)."""
MAX_HEADER_STR = 128
"""Longest `msg_id`, `session`, `msg_type`, `version` or `date` accepted in a header."""
_VERSION_RE = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}", re.ASCII)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    """Size limits, in bytes unless named otherwise. Checked before any JSON is parsed, and before the HMAC is
    computed: an unauthenticated peer can make the server hash at most `max_message_bytes` per message.

    The largest legitimate message is a `render` with a 4 MiB inline MIDI buffer plus its JSON parts, so 8 MiB in
    all leaves room. `hard_frame_bytes` is what libzmq enforces per frame (`ZMQ_MAXMSGSIZE`): a frame above it
    drops the peer's connection while it is being read, so it never occupies memory; a message between the
    protocol limit and that cap is read and answered with `MessageTooLarge`."""

    max_message_bytes: int = 8 * 1024 * 1024  # whole message, buffers included
    max_json_bytes: int = 1024 * 1024  # each of header, parent_header, metadata, content
    max_buffers: int = 4
    max_idents: int = 16

    @property
    def hard_frame_bytes(self) -> int:
        return self.max_message_bytes + 1024 * 1024


@dataclass
class Message:
    """One protocol message. `buffers` are raw binary frames referenced from `content` by index."""

    header: dict[str, Any]
    parent_header: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)

    @property
    def msg_type(self) -> str:
        return self.header["msg_type"]

    @property
    def msg_id(self) -> str:
        return self.header["msg_id"]

    def to_json(self) -> dict[str, Any]:
        """The JSON form the WebSocket gateway sends (buffers are counted; they follow as binary messages)."""
        return {"header": self.header, "parent_header": self.parent_header, "metadata": self.metadata,
                "content": self.content, "buffers": len(self.buffers)}


def _reject_constant(name: str) -> Any:
    raise EncodingError(f"{name} is not a JSON number (numbers must be finite)")


# One encoder and one decoder, built once: json.dumps/loads with options build a new one on every call.
# allow_nan=False / parse_constant: NaN and Infinity are not JSON, and other peers (JavaScript, Rust) reject them.
def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise EncodingError(f"number {text[:24]} is not finite as a double")
    return value


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# In valid UTF-8 JSON text a lone surrogate can only arrive as an escape: text without one needs no walk.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _dumps(obj: Any) -> bytes:
    """Strict encoding: `EncodingError` (never another exception) for anything another peer could not decode."""
    try:
        return _ENCODER.encode(obj).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError, OverflowError) as e:
        raise EncodingError(f"a value cannot be encoded as JSON ({e.__class__.__name__})") from None


def check_json_value(obj: Any, part: str) -> None:
    """`EncodingError` unless `obj` (parsed JSON) holds only finite numbers, strings without lone surrogates and at
    most `MAX_JSON_DEPTH` levels of nesting: the values `_dumps` can always encode again."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE_RE.search(value):
                raise EncodingError(f"{part} holds a lone UTF-16 surrogate (not valid Unicode text)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise EncodingError(f"{part} holds a non-finite number (JSON numbers must be finite)")
        elif isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise EncodingError(f"{part} is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for k, v in value.items():
                    if not k.isascii() and _SURROGATE_RE.search(k):
                        raise EncodingError(f"{part} has a key holding a lone UTF-16 surrogate")
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in value)


def loads_strict(text: str | bytes, part: str) -> Any:
    """Parse one JSON document strictly (see `check_json_value`); `ProtocolError` naming `part` otherwise.
    Non-finite numbers are refused while parsing; the walk for surrogates and depth runs only when the text holds
    a surrogate escape or more than `MAX_JSON_DEPTH` brackets (most messages need neither)."""
    try:
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8")
        obj = _DECODER.decode(text)
    except RecursionError:
        raise EncodingError(f"{part} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"{part} is not valid UTF-8 JSON ({e.__class__.__name__})") from None
    if ("\\u" in text and _ESCAPED_SURROGATE.search(text)) or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        check_json_value(obj, part)
    return obj


def dumps_strict(obj: Any) -> str:
    """JSON text of `obj` (compact, UTF-8 safe); `EncodingError` when it holds what `check_json_value` refuses."""
    try:
        return _ENCODER.encode(obj)
    except (ValueError, TypeError, RecursionError, OverflowError) as e:
        raise EncodingError(f"a value cannot be encoded as JSON ({e.__class__.__name__})") from None


def _loads(data: bytes, part: str) -> dict[str, Any]:
    obj = loads_strict(bytes(data), part)
    if not isinstance(obj, dict):
        raise ProtocolError(f"{part} must be a JSON object, got {type(obj).__name__}")
    return obj


def make_encodable(obj: Any, _depth: int = 0) -> Any:
    """A copy of `obj` that always encodes: lone surrogates become `\\udXXX` escapes, non-finite numbers `None`,
    nesting past `MAX_JSON_DEPTH` a placeholder. For data the server did not just check (journal rows written by
    an older version), so one bad row is shown, escaped, instead of failing every reply that lists it."""
    if isinstance(obj, str):
        return obj if obj.isascii() or not _SURROGATE_RE.search(obj) else \
            obj.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int)):
        return obj
    if _depth >= MAX_JSON_DEPTH:
        return "<nested too deep>"
    if isinstance(obj, dict):
        return {make_encodable(str(k)): make_encodable(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [make_encodable(v, _depth + 1) for v in obj]
    return make_encodable(str(obj))


def safe_header(header: Any) -> dict[str, str]:
    """The standard fields of `header` that are short, encodable strings: what an error reply may echo as its
    parent when the full header cannot be echoed."""
    if not isinstance(header, dict):
        return {}
    out = {}
    for key in ("msg_id", "msg_type", "version", "session", "date"):
        v = header.get(key)
        if isinstance(v, str) and len(v) <= MAX_HEADER_STR and (v.isascii() or not _SURROGATE_RE.search(v)):
            out[key] = v
    return out


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    """128 random bits as 32 hex digits (what uuid4().hex carries, without building a UUID object)."""
    return os.urandom(16).hex()


def parse_version(version: Any) -> tuple[int, int]:
    """(major, minor) of a `"MAJOR.MINOR"` string: ASCII digits only, one dot, no spaces or signs (`"1"`,
    `" 1.0"`, `"1.0.0"` and `"١.0"` are refused with `VersionError`)."""
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise VersionError(f"protocol version {str(version)[:20]!r} is not MAJOR.MINOR (ASCII digits, e.g. "
                           f"{PROTOCOL_VERSION!r})")
    major, minor = version.split(".")
    return int(major), int(minor)


def version_major(version: str) -> int:
    return parse_version(version)[0]


def negotiate_version(offered: list[str]) -> str:
    """The highest of `offered` that this module speaks (same major, minor at most ours); `VersionError` when none
    is or when one is not MAJOR.MINOR."""
    ours = {parse_version(v): v for v in SUPPORTED_VERSIONS}
    parsed = sorted((parse_version(o) for o in offered), reverse=True)
    for major, minor in parsed:
        shared = [v for (M, m), v in ours.items() if M == major and m <= minor]
        if shared:
            return max(shared, key=parse_version)
    raise VersionError(f"no common protocol version: offered {[str(o)[:20] for o in offered[:8]]}, this server "
                       f"speaks {list(SUPPORTED_VERSIONS)}")


class Session:
    """Signs and verifies messages with one HMAC key, and remembers signatures inside the replay window.

    One `Session` per socket owner: the server keeps one for its request and event sockets, each client its own.
    `replay_window_s` bounds both clock skew and how long signatures are remembered; `max_history` bounds memory
    (when it is reached the oldest signatures are forgotten and messages dated at or before them are refused).
    """

    def __init__(self, key: bytes, *, session_id: str | None = None, limits: Limits | None = None,
                 replay_window_s: float = 60.0, max_history: int = 500_000, not_before_s: float | None = None) -> None:
        if not isinstance(key, bytes) or len(key) < 16:
            raise SignatureError("the HMAC key must be at least 16 bytes; there is no keyless mode")
        self._auth = hmac.new(key, digestmod=hashlib.sha256)
        self.session_id = session_id or new_id()
        self.limits = limits or Limits()
        self.replay_window_s = float(replay_window_s)
        self.max_history = int(max_history)
        self._seen: set[bytes] = set()
        self._history: deque[tuple[float, bytes]] = deque()  # (header date as POSIX s, signature), arrival order
        # Messages dated at or before this were forgotten, or predate this session (a server passes its start
        # time: a message captured before a restart cannot be replayed to the new server): refuse them.
        self._floor_s = -math.inf if not_before_s is None else float(not_before_s)
        # The packer must round-trip at start-up (jupyter_client does the same): fail here, not on the first message.
        probe = {"a": [1, 2.5, "é", None, True]}
        if _loads(_dumps(probe), "probe") != probe:
            raise ProtocolError("JSON packer does not round-trip")

    # -- building ------------------------------------------------------------------------------------------------
    def msg(self, msg_type: str, content: dict[str, Any] | None = None, *, parent: Message | dict | None = None,
            metadata: dict[str, Any] | None = None, buffers: list[bytes] | tuple[bytes, ...] = (),
            msg_id: str | None = None) -> Message:
        header = {"msg_id": msg_id or new_id(), "msg_type": msg_type, "version": PROTOCOL_VERSION,
                  "session": self.session_id, "date": utcnow().isoformat()}
        parent_header = parent.header if isinstance(parent, Message) else dict(parent or {})
        return Message(header, parent_header, dict(metadata or {}), dict(content or {}), list(buffers))

    def sign(self, parts: list[bytes] | list[memoryview]) -> bytes:
        h = self._auth.copy()
        for p in parts:
            h.update(p)
        return h.hexdigest().encode("ascii")

    def serialize(self, msg: Message, idents: list[bytes] | tuple[bytes, ...] = ()) -> list[bytes]:
        """Frames ready for `socket.send_multipart`; `EncodingError` (only) when a part cannot be encoded."""
        parts = [_dumps(msg.header), _dumps(msg.parent_header), _dumps(msg.metadata), _dumps(msg.content)]
        buffers = [bytes(b) for b in msg.buffers]
        return [*idents, DELIM, self.sign(parts + buffers), *parts, *buffers]

    # -- verifying -----------------------------------------------------------------------------------------------
    def split_idents(self, frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
        """(idents, frames after DELIM). `ProtocolError` when there is no delimiter within `max_idents` frames."""
        for i, f in enumerate(frames[: self.limits.max_idents + 1]):
            if f == DELIM:
                return list(frames[:i]), list(frames[i + 1:])
        raise ProtocolError("no <IDS|MSG> delimiter frame")

    def deserialize(self, frames: list[bytes], *, check_replay: bool = True,
                    computed_signature: bytes | None = None) -> Message:
        """Verify and parse the frames after DELIM: `[HMAC, header, parent, metadata, content, buffers...]`.
        `computed_signature`: `sign(frames[1:])` when the caller already computed it (off its loop thread)."""
        lim = self.limits
        total = sum(len(f) for f in frames)
        if total > lim.max_message_bytes:
            raise MessageTooLarge(f"message is {total} bytes; the limit is {lim.max_message_bytes}")
        if len(frames) < 5:
            raise ProtocolError(f"message has {len(frames)} frames after the delimiter; at least 5 are required")
        if len(frames) - 5 > lim.max_buffers:
            raise MessageTooLarge(f"message has {len(frames) - 5} buffers; the limit is {lim.max_buffers}")
        for name, part in zip(("header", "parent_header", "metadata", "content"), frames[1:5]):
            if len(part) > lim.max_json_bytes:
                raise MessageTooLarge(f"{name} is {len(part)} bytes; the limit is {lim.max_json_bytes}")
        signature = bytes(frames[0])
        if not signature:
            raise SignatureError("message is unsigned")
        # Check the signature before parsing any JSON: unauthenticated bytes never reach the parser.
        expected = computed_signature if computed_signature is not None else self.sign(frames[1:])  # no copies
        if not hmac.compare_digest(signature, expected):
            raise SignatureError("message signature does not match")
        header = _loads(frames[1], "header")
        for key in ("msg_id", "msg_type", "version", "session", "date"):
            v = header.get(key)
            if not isinstance(v, str) or not 0 < len(v) <= MAX_HEADER_STR or not v.isprintable():
                raise ProtocolError(f"header field {key!r} must be a string of 1-{MAX_HEADER_STR} printable "
                                    "characters")
        parse_version(header["version"])  # the format first: "1", " 1.0", "١.0" are not versions
        if header["version"] not in SUPPORTED_VERSIONS:
            raise VersionError(f"protocol version {header['version']} is not supported; "
                               f"this peer speaks {', '.join(SUPPORTED_VERSIONS)}")
        if check_replay:
            self._check_replay(header["date"], signature)
        return Message(header, _loads(frames[2], "parent_header"), _loads(frames[3], "metadata"),
                       _loads(frames[4], "content"), [bytes(b) for b in frames[5:]])

    def _check_replay(self, date: str, signature: bytes) -> None:
        try:
            sent = datetime.fromisoformat(date)
            if sent.tzinfo is None:
                raise ProtocolError("header date must carry a UTC offset")
            sent_s = sent.timestamp()
        except (ValueError, OverflowError):
            raise ProtocolError(f"header date {date[:40]!r} is not an ISO 8601 time") from None
        now_s = utcnow().timestamp()
        if abs(now_s - sent_s) > self.replay_window_s:
            raise ReplayError(f"message dated {date} is outside the {self.replay_window_s:g} s replay window")
        if sent_s <= self._floor_s or signature in self._seen:
            raise ReplayError("message was already received, or is dated before this server started (replay)")
        # Forget signatures whose date fell out of the window: a replay of them now fails the date check.
        hist, seen = self._history, self._seen
        while hist and hist[0][0] < now_s - self.replay_window_s:
            seen.discard(hist.popleft()[1])
        while len(hist) >= self.max_history:
            old_s, old_sig = hist.popleft()
            seen.discard(old_sig)
            self._floor_s = max(self._floor_s, old_s)
        hist.append((sent_s, signature))
        seen.add(signature)

    def recv(self, frames: list[bytes]) -> tuple[list[bytes], Message]:
        """Split idents and verify: the usual entry point for a received multipart message."""
        idents, rest = self.split_idents(frames)
        return idents, self.deserialize(rest)


def error_content(exc: BaseException) -> dict[str, Any]:
    """`{"status": "error", "ename", "evalue"}`: the content of every error reply."""
    ename = getattr(exc, "ename", None) or exc.__class__.__name__
    return {"status": "error", "ename": ename, "evalue": str(exc).splitlines()[0] if str(exc) else ename}


def reply_type(msg_type: str) -> str:
    return f"{msg_type}_reply" if msg_type in REQUEST_TYPES else "error"


# -- request content ---------------------------------------------------------------------------------------------
# Content is checked here, once, so handlers get typed values. Unknown keys are refused: a misspelt option must not
# be silently ignored.

_MISSING = object()


def _field(content: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any = _MISSING,
           where: str = "content") -> Any:
    value = content.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise ProtocolError(f"{where} field {name!r} is required")
        return default
    # bool is an int in Python; JSON true must not pass as a number.
    if isinstance(value, bool) and bool not in kinds:
        raise ProtocolError(f"{where} field {name!r} must be {'/'.join(k.__name__ for k in kinds)}, got bool")
    if not isinstance(value, kinds):
        raise ProtocolError(f"{where} field {name!r} must be {'/'.join(k.__name__ for k in kinds)}, "
                            f"got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"{where} field {name!r} must be finite")
    if isinstance(value, str) and "\x00" in value:
        raise ProtocolError(f"{where} field {name!r} contains a NUL character")
    return value


def _no_unknown(content: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(content) - set(allowed))
    if unknown:
        raise ProtocolError(f"unknown {where} field(s) {', '.join(map(repr, unknown[:5]))}; "
                            f"allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class RationalTime:
    """OTIO-style rational time: `value / rate` seconds. Positions and durations travel like this, never as float
    seconds, so frame-exact timeline positions stay exact (`{"value": 86400, "rate": 24}`)."""

    value: float
    rate: float

    @classmethod
    def from_json(cls, obj: Any, where: str) -> RationalTime:
        if not isinstance(obj, dict):
            raise ProtocolError(f"{where} must be a rational time {{\"value\": v, \"rate\": r}}, "
                                f"got {type(obj).__name__}")
        _no_unknown(obj, ("value", "rate"), where)
        value = _field(obj, "value", (int, float), where=where)
        rate = _field(obj, "rate", (int, float), where=where)
        if rate <= 0:
            raise ProtocolError(f"{where} rate must be > 0, got {rate}")
        # Bounds that keep value / rate a finite float (2**53: exact integers; a week at 192 kHz is ~2**37).
        if abs(value) > 2**53 or rate > 2**53 or not math.isfinite(value / rate):
            raise ProtocolError(f"{where} is out of range (|value|, rate <= 2**53)")
        return cls(value, rate)

    @classmethod
    def from_seconds(cls, seconds: float, rate: int = 48_000) -> RationalTime:
        """Seconds on the sample grid of `rate` (default 48 kHz): exact for any sample-aligned time."""
        return cls(round(seconds * rate), rate)

    def to_seconds(self) -> float:
        return self.value / self.rate

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "rate": self.rate}


@dataclass(frozen=True)
class TimelineRange:
    """A cue region of an editorial timeline (read by `filmscore.bridge.timelines`): a named cue (marker) or a
    half-open record range `[in, out)`."""

    path: str
    cue: str | None = None
    in_time: RationalTime | None = None
    out_time: RationalTime | None = None

    @classmethod
    def from_json(cls, obj: Any) -> TimelineRange:
        if not isinstance(obj, dict):
            raise ProtocolError(f"timeline must be an object, got {type(obj).__name__}")
        _no_unknown(obj, ("path", "cue", "in", "out"), "timeline")
        path = _field(obj, "path", (str,), where="timeline")
        cue = _field(obj, "cue", (str,), None, where="timeline")
        t_in = RationalTime.from_json(obj["in"], "timeline.in") if obj.get("in") is not None else None
        t_out = RationalTime.from_json(obj["out"], "timeline.out") if obj.get("out") is not None else None
        if cue is None and (t_in is None or t_out is None):
            raise ProtocolError("timeline needs either a cue name or both in and out")
        if cue is not None and (t_in is not None or t_out is not None):
            raise ProtocolError("timeline takes a cue name or in/out, not both")
        if t_in is not None and t_out is not None and t_out.to_seconds() <= t_in.to_seconds():
            raise ProtocolError("timeline out must be after in")
        return cls(path, cue, t_in, t_out)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "cue": self.cue, "in": self.in_time.to_json() if self.in_time else None,
                "out": self.out_time.to_json() if self.out_time else None}


_WIRE_KEYS = ("output", "overwrite", "video", "start", "duration", "timeline", "midi", "midi_track", "midi_channel",
              "reference_audio", "maestro", "theme", "hits", "plan", "preview", "variations")
"""A render request's own keys: where the output goes, the picture, the range, the theme source, the hit points."""
_RENDER_KEYS = (*_WIRE_KEYS, *option_names())
"""Every key a render request may hold: its own and one per render option (engine/options.py)."""
_JSON_KINDS: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}
_JSON_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def render_options_schema() -> list[dict[str, Any]]:
    """The render options as a render request takes them, for `hello`'s capabilities: per option its key, JSON type,
    whether null is a value, default, range or choices, unit, group ("render" or "plan") and help, from
    engine/options.py, so a panel or host script can build its fields without a copy of them."""
    return [{"name": f.name, "type": _JSON_TYPE_NAMES[f.kind], "nullable": f.optional, "default": f.default,
             "range": list(f.meta.range) if f.meta.range else None,
             "choices": list(f.meta.choices) if f.meta.choices else None, "unit": f.meta.unit or None,
             "group": f.group, "help": f.meta.help} for f in option_fields()]


MAX_PREVIEW_STEPS = 50
MAX_VARIATIONS = 16
"""Most takes one render request may ask for (`render_cue`'s own limit)."""


@dataclass(frozen=True)
class PreviewSpec:
    """A render request's `preview`: `{"steps": n}` (or `{}`: the engine's default, 4) asks for a few-step draft of
    the whole cue before the full render (same seed and plan). The worker writes it beside the output as
    OUT.draft.wav (named by rule, as the sidecars are, so it needs no path check of its own) and the server publishes
    `job_preview {job_id, path, steps, ready_after_s}` as soon as it exists, before `job_finished`."""

    steps: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> PreviewSpec:
        if not isinstance(obj, dict):
            raise ProtocolError(f"render preview must be an object {{\"steps\": n}}, got {type(obj).__name__}")
        _no_unknown(obj, ("steps",), "render preview")
        steps = _field(obj, "steps", (int,), None, where="render preview")
        if steps is not None and not 1 <= steps <= MAX_PREVIEW_STEPS:
            raise ProtocolError(f"render preview steps must be 1..{MAX_PREVIEW_STEPS}, got {steps}")
        return cls(steps)

    def to_json(self) -> dict[str, Any]:
        return {} if self.steps is None else {"steps": self.steps}


@dataclass(frozen=True)
class RenderParams(RenderOptions):
    """The content of a `render` request, typed: the render options (`RenderOptions`, engine/options.py: their keys,
    JSON types, defaults, ranges and choices come from there, inherited as keyword-only fields) and the request's
    own fields. Paths are as sent (the server checks them against its roots); `midi_buffer` is the index of the
    buffer holding an inline MIDI file. The options' ranges are checked here by `RenderOptions.validate`, the one
    check the command line and the engine make too, so a value is refused the same way everywhere."""

    output: str
    overwrite: bool = False
    video: str | None = None
    start: RationalTime | None = None
    duration: RationalTime | None = None
    timeline: TimelineRange | None = None
    midi: str | None = None
    midi_buffer: int | None = None
    midi_track: int | None = None
    midi_channel: int | None = None
    reference_audio: str | None = None
    maestro: str | None = None
    theme: str | None = None
    hits: tuple[RationalTime, ...] = ()
    # The cue plan (docs/plan.md) to render as it stands: a PLAN.json / PLAN.mid. The editor's overrides of the plan
    # the picture would choose are render options (tempo_bpm, key, ...; a key's spelling and a style are checked
    # by the server: `PlanSpec.check`).
    plan: str | None = None
    preview: PreviewSpec | None = None  # a draft first (`PreviewSpec`)
    # Takes of the request (issue 20): N > 1 renders seeds seed..seed+N-1 together, take k to OUT.takeK.wav
    # (`engine.render.take_path`) with its own sidecars; not with a preview (one take is drafted)
    variations: int = 1

    @classmethod
    def from_content(cls, content: dict[str, Any], n_buffers: int = 0) -> RenderParams:
        _no_unknown(content, _RENDER_KEYS, "render")
        kw: dict[str, Any] = {"output": _field(content, "output", (str,))}
        for name in ("video", "reference_audio", "maestro", "theme"):
            kw[name] = _field(content, name, (str,), None)
        kw["overwrite"] = _field(content, "overwrite", (bool,), False)
        for name in ("midi_track", "midi_channel"):
            kw[name] = _field(content, name, (int,), None)
        for f in option_fields():  # JSON type here (ProtocolError); range and choices by `validate` below
            value = _field(content, f.name, _JSON_KINDS[f.kind], f.default)
            kw[f.name] = float(value) if f.kind is float and value is not None else value
        for name in ("start", "duration"):
            if content.get(name) is not None:
                kw[name] = RationalTime.from_json(content[name], f"render {name}")
        if content.get("timeline") is not None:
            if kw["video"] is not None or content.get("start") is not None or content.get("duration") is not None:
                raise ProtocolError("render takes a video (with start and duration) or a timeline range (which sets "
                                    "both), not both")
            kw["timeline"] = TimelineRange.from_json(content["timeline"])
        midi = content.get("midi")
        if isinstance(midi, dict):
            _no_unknown(midi, ("buffer",), "render midi")
            index = _field(midi, "buffer", (int,), where="render midi")
            if not 0 <= index < n_buffers:
                raise ProtocolError(f"render midi buffer {index} does not exist; the message has {n_buffers} buffers")
            kw["midi_buffer"] = index
        elif midi is not None:
            kw["midi"] = _field(content, "midi", (str,))
        kw["plan"] = _field(content, "plan", (str,), None)
        if content.get("preview") is not None:
            kw["preview"] = PreviewSpec.from_json(content["preview"])
        kw["variations"] = _field(content, "variations", (int,), 1)
        if not 1 <= kw["variations"] <= MAX_VARIATIONS:
            raise ProtocolError(f"render variations must be 1..{MAX_VARIATIONS}, got {str(kw['variations'])[:24]}")
        if kw["variations"] > 1 and kw.get("preview") is not None:
            raise ProtocolError("render takes a preview (one take drafted) or variations, not both")
        hits = _field(content, "hits", (list,), [])
        if len(hits) > 1000:
            raise ProtocolError(f"render hits lists {len(hits)} points; the limit is 1000")
        kw["hits"] = tuple(RationalTime.from_json(h, f"render hits[{i}]") for i, h in enumerate(hits))
        params = cls(**kw)
        params.validate()
        return params

    def to_content(self) -> dict[str, Any]:
        """The wire form (inverse of `from_content`)."""
        out: dict[str, Any] = {}
        for name in _RENDER_KEYS:
            if name == "midi":
                value = {"buffer": self.midi_buffer} if self.midi_buffer is not None else self.midi
            else:
                value = getattr(self, name)
            if name == "variations" and value == 1:
                continue  # the default: one take, as a render without the field
            if isinstance(value, (RationalTime, TimelineRange, PreviewSpec)):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = [v.to_json() for v in value]
            if value is not None:
                out[name] = value
        return out


def parse_job_id(content: dict[str, Any], msg_type: str, required: bool = True) -> str | None:
    """The `job_id` of a status/cancel/result request."""
    _no_unknown(content, ("job_id",), msg_type)
    job_id = _field(content, "job_id", (str,), _MISSING if required else None)
    if job_id is not None and not (0 < len(job_id) <= 64 and job_id.isalnum()):
        raise ProtocolError(f"{msg_type} job_id {job_id[:70]!r} is not a job id (1-64 letters and digits)")
    return job_id


def parse_list_jobs(content: dict[str, Any]) -> tuple[tuple[str, ...], int, int, bool]:
    """(states, limit, offset, newest_first) of a `list_jobs` request; no states: all. `limit` is at most 1000 so
    a reply stays well under the JSON size limit; page with `offset`."""
    _no_unknown(content, ("states", "limit", "offset", "newest_first"), "list_jobs")
    states = _field(content, "states", (list,), list(JOB_STATES))
    for s in states:
        if s not in JOB_STATES:
            raise ProtocolError(f"list_jobs state {s!r} is not one of {', '.join(JOB_STATES)}")
    limit = _field(content, "limit", (int,), 100)
    if not 1 <= limit <= 1000:
        raise ProtocolError(f"list_jobs limit must be 1..1000, got {limit}")
    offset = _field(content, "offset", (int,), 0)
    if not 0 <= offset < 2**31:
        raise ProtocolError(f"list_jobs offset must be 0..2**31-1, got {str(offset)[:24]}")
    return tuple(states), limit, offset, _field(content, "newest_first", (bool,), False)


def parse_empty(content: dict[str, Any], msg_type: str) -> None:
    """Requests that take no content (`maestros`): refuse any field, so a client expecting a filter learns that
    there is none."""
    _no_unknown(content, (), msg_type)


def parse_hello(content: dict[str, Any]) -> str:
    """The protocol version negotiated from a `hello` request's `protocol_versions` (default: ours)."""
    _no_unknown(content, ("protocol_versions", "client"), "hello")
    offered = _field(content, "protocol_versions", (list,), [PROTOCOL_VERSION])
    if not offered or not all(isinstance(v, str) for v in offered):
        raise ProtocolError("hello protocol_versions must be a non-empty list of strings")
    _field(content, "client", (str,), None)
    return negotiate_version(offered)


def parse_shutdown(content: dict[str, Any]) -> bool:
    """`wait` of a `shutdown` request. False (default): running renders stop now and go back to the queue for the
    next start. True: running renders finish first. Queued jobs stay in the journal either way."""
    _no_unknown(content, ("wait",), "shutdown")
    return _field(content, "wait", (bool,), False)


def _seconds(content: dict[str, Any], name: str, where: str) -> float:
    value = float(_field(content, name, (int, float), where=where))
    if not math.isfinite(value) or value < 0:
        raise ProtocolError(f"{where} {name} must be a finite number of seconds >= 0, got {value}")
    return value


@dataclass(frozen=True)
class RegenerateParams:
    """The content of a `regenerate` request (issue 20, docs/editor_loop.md): a new take of `start`..`end` (seconds
    of the cue: 0 is its first sample) of the cue at `source`, written to `output` with its sidecars; outside the
    range the output is the source's samples exactly. `seed` None: the source's seed + 1. The cue's own request is
    read from its JSON sidecar, so nothing else is sent; the range's place in the cue is the engine's to check
    (`engine.regenerate.regenerate_cue`)."""

    source: str
    output: str
    start: float
    end: float
    seed: int | None = None
    overwrite: bool = False

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> RegenerateParams:
        _no_unknown(content, ("source", "output", "start", "end", "seed", "overwrite"), "regenerate")
        start, end = _seconds(content, "start", "regenerate"), _seconds(content, "end", "regenerate")
        if end <= start:
            raise ProtocolError(f"regenerate end ({end:g} s) must come after start ({start:g} s)")
        seed = _field(content, "seed", (int,), None)
        if seed is not None and not 0 <= seed < 2 ** 63:
            raise ProtocolError(f"regenerate seed must be 0..2**63-1, got {str(seed)[:24]}")
        return cls(_field(content, "source", (str,), where="regenerate"),
                   _field(content, "output", (str,), where="regenerate"), start, end, seed,
                   _field(content, "overwrite", (bool,), False, where="regenerate"))

    def to_content(self) -> dict[str, Any]:
        out = {"source": self.source, "output": self.output, "start": self.start, "end": self.end,
               "overwrite": self.overwrite}
        return out if self.seed is None else {**out, "seed": self.seed}


@dataclass(frozen=True)
class ConformParams:
    """The content of a `conform` request (issue 20, docs/editor_loop.md): the cues `filmscore score` delivered in
    `scored` for the edit `old` (an .otio / .edl / .xml / .fcpxml file), conformed to the edit `new` into the
    folder `outdir`, as `filmscore conform OLD NEW --scored DIR -o DIR2` does. `overwrite` false: `outdir` must not
    exist or be empty."""

    old: str
    new: str
    scored: str
    outdir: str
    overwrite: bool = False

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> ConformParams:
        _no_unknown(content, ("old", "new", "scored", "outdir", "overwrite"), "conform")
        return cls(*(_field(content, name, (str,), where="conform") for name in ("old", "new", "scored", "outdir")),
                   _field(content, "overwrite", (bool,), False, where="conform"))

    def to_content(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "scored": self.scored, "outdir": self.outdir,
                "overwrite": self.overwrite}
