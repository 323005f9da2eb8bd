"""Start `filmscore serve` as a child process and wait until it is ready (tests, benchmarks, host scripts).

    with launch_server(state_dir=..., media_roots=[...], output_roots=[...]) as srv:
        client = BridgeClient(srv.info)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..connection import ConnectionInfo, read_connection_file
from .app import ServerError


@dataclass
class LaunchedServer:
    process: subprocess.Popen
    connection_file: Path
    info: ConnectionInfo
    summary: dict[str, Any]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, then SIGKILL after `timeout_s`; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(state_dir: Path, *, connection_file: Path | None = None, media_roots: Sequence[Path] = (),
                 output_roots: Sequence[Path] = (), bundle: Path | None = None, workers: int = 1,
                 ws: str | None = None, ws_origins: Sequence[str] = (), allow_remote: bool = False,
                 ip: str | None = None, extra_args: Sequence[str] = (), timeout_s: float = 60.0,
                 env: dict[str, str] | None = None, fd_limit: int | None = None,
                 verbose: bool = False) -> LaunchedServer:
    """Run `python -m filmscore.bridge.cli.serve --json ...` and return once it printed its summary line.
    `fd_limit`: soft and hard RLIMIT_NOFILE of the server process (as `ulimit -n N` sets both); `verbose`: -v."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    connection_file = Path(connection_file or state_dir / "connection.json")
    args = [sys.executable, "-m", "filmscore.bridge.cli.serve", "--json", "--state-dir", str(state_dir),
            "--connection-file", str(connection_file), "--workers", str(workers)]
    for r in media_roots:
        args += ["--media-root", str(r)]
    for r in output_roots:
        args += ["--output-root", str(r)]
    if bundle is not None:
        args += ["--bundle", str(bundle)]
    if ws is not None:
        args += ["--ws", ws]
    for o in ws_origins:
        args += ["--ws-origin", o]
    if allow_remote:
        args.append("--allow-remote")
    if ip is not None:
        args += ["--ip", ip]
    args += list(extra_args)
    if verbose:
        args.append("-v")
    stderr_path = state_dir / f"serve-{time.time_ns()}.log"
    def limit_fds() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env or {**os.environ,
                                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
                                preexec_fn=limit_fds if fd_limit is not None else None)
    deadline = time.monotonic() + timeout_s
    line = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline() if proc.stdout else b""  # type: ignore[union-attr]
        if line or proc.poll() is not None:
            break
    if not line:
        proc.kill()
        proc.wait()
        raise ServerError(f"filmscore serve did not start: {stderr_path.read_text(errors='replace')[-2000:]}")
    summary = json.loads(line)
    return LaunchedServer(proc, connection_file, read_connection_file(connection_file), summary, stderr_path)


@contextmanager
def launch_server(state_dir: Path, **kw: Any) -> Iterator[LaunchedServer]:
    srv = start_server(state_dir, **kw)
    try:
        yield srv
    finally:
        srv.stop()
