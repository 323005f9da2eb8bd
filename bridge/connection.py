"""The connection file: where a bridge server listens and the secrets that let a client in (Jupyter-like keys).

The server writes it when it starts (fresh key from `os.urandom`, ports chosen by binding to port 0 so no two
servers race for one) and deletes it when it exits. It is written owner-only (0600) because whoever can read it
can sign messages: the key *is* the authorisation.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import NotRequired, TypedDict

from filmscore.engine.errors import FilmscoreError

from .protocol import SIGNATURE_SCHEME


class ConnectionFileError(FilmscoreError):
    """A connection file that is missing, unreadable, too open (not 0600) or lacks a required key."""


class ConnectionInfo(TypedDict):
    """Contents of a connection file. Ports are 0 until the server has bound them."""

    transport: str  # "tcp"
    ip: str  # "127.0.0.1" unless the server runs with --allow-remote
    request_port: int  # ROUTER: requests and replies
    event_port: int  # PUB: job events (0 when events go over `event_endpoint`)
    event_endpoint: NotRequired[str]  # ipc://<owner-only folder>/events: the event socket on POSIX without --allow-remote
    key: str  # HMAC-SHA256 key, hex
    signature_scheme: str  # "hmac-sha256"
    ws_port: NotRequired[int]  # WebSocket gateway, when it runs
    ws_ip: NotRequired[str]
    ws_token: NotRequired[str]  # bearer token a WebSocket client presents first
    curve_server_public: NotRequired[str]  # z85; present when the server uses CURVE (--allow-remote)
    curve_client_public: NotRequired[str]  # the one client keypair the server admits (z85)
    curve_client_secret: NotRequired[str]
    pid: NotRequired[int]


REQUIRED_KEYS = ("transport", "ip", "request_port", "event_port", "key", "signature_scheme")


def runtime_dir() -> Path:
    """Where connection files live by default: `$XDG_RUNTIME_DIR/filmscore` or `~/.local/share/filmscore/runtime`."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "filmscore" if base else Path.home() / ".local" / "share" / "filmscore" / "runtime"


def default_connection_file() -> Path:
    return runtime_dir() / f"bridge-{os.getpid()}.json"


def find_connection_file() -> Path:
    """The newest connection file in `runtime_dir()`: what a client uses when not told which server."""
    d = runtime_dir()
    files = sorted(d.glob("bridge-*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if d.is_dir() else []
    if not files:
        raise ConnectionFileError(f"no running bridge found: no connection file in {d}; start one with "
                               "`filmscore serve` or pass --connection-file")
    return files[0]


def new_connection_info(ip: str = "127.0.0.1") -> ConnectionInfo:
    """Fresh secrets, ports still 0 (the server fills them in after binding)."""
    return ConnectionInfo(transport="tcp", ip=ip, request_port=0, event_port=0,
                          key=os.urandom(32).hex(), signature_scheme=SIGNATURE_SCHEME)


def new_ws_token() -> str:
    return secrets.token_urlsafe(32)


def write_connection_file(path: Path, info: ConnectionInfo) -> Path:
    """Write `info` as JSON with mode 0600, atomically (temp file in the same folder + rename), so a client never
    reads half a file and the key is never readable by others, not even for an instant."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(info, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_connection_file(path: Path) -> ConnectionInfo:
    """Read and check a connection file; refuses one that others can read (its key would be shared)."""
    path = Path(path)
    try:
        st = path.stat()
        text = path.read_text()
    except OSError as e:
        raise ConnectionFileError(f"cannot read connection file {path}: {e.strerror}") from None
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConnectionFileError(f"connection file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                               "it must be 0600")
    try:
        info = json.loads(text)
    except ValueError:
        raise ConnectionFileError(f"connection file {path} is not JSON") from None
    if not isinstance(info, dict):
        raise ConnectionFileError(f"connection file {path} must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in info]
    if missing:
        raise ConnectionFileError(f"connection file {path} lacks {', '.join(missing)}")
    if info["signature_scheme"] != SIGNATURE_SCHEME:
        raise ConnectionFileError(f"connection file {path}: signature scheme {info['signature_scheme']!r} is not "
                               f"supported; use {SIGNATURE_SCHEME!r}")
    try:
        key = bytes.fromhex(info["key"])
    except (TypeError, ValueError):
        raise ConnectionFileError(f"connection file {path}: key must be hex") from None
    if len(key) < 16:
        raise ConnectionFileError(f"connection file {path}: key must be at least 16 bytes")
    return info  # type: ignore[return-value]


def key_bytes(info: ConnectionInfo) -> bytes:
    return bytes.fromhex(info["key"])


def endpoint(info: ConnectionInfo, port_key: str) -> str:
    """`tcp://IP:PORT` for one of the ports (`request_port`, `event_port`); for events, the `ipc://` endpoint
    instead when the server publishes them there."""
    if port_key == "event_port" and info.get("event_endpoint"):
        return info["event_endpoint"]  # type: ignore[typeddict-item]
    ip = info["ip"]
    host = f"[{ip}]" if ":" in ip else ip
    return f"{info['transport']}://{host}:{info[port_key]}"  # type: ignore[literal-required]
