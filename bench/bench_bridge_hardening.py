"""Bridge hardening figures (issue 16) against real `filmscore serve` processes on loopback, tiny real bundle.

    python bench/bench_bridge_hardening.py [--fuzz 25000] [--flood-seconds 8] [--out bench/results/bridge_hardening.json]
        [--parts fuzz,floods,faults] [--floods KIND,...]

Parts not run keep their figures from the existing --out file (e.g. `--parts floods` re-measures the flood table
in one run and leaves the fuzz and fault figures as they were measured).

1. Fuzz: frames sent / answered / server exits / "internal error" replies, and the error names, for random
   mutations of valid requests (flipped bytes, truncation, unsigned, garbage frames, wrongly typed fields) and the
   single-request crash classes (non-finite numbers, lone surrogates, deep nesting, header fields, paths).
2. Floods by a client without the key, each for --flood-seconds in its own processes, while one signed client
   does `status` round trips: RSS of the server with its gateway process (peak growth over idle) and status
   p50/p99/max and count.
   Kinds: none; ZeroMQ 31 MiB frames; ZeroMQ 7 MiB frames (under the protocol limit: hashed, then refused);
   WebSocket 30 MiB tokenless messages; 1,100 idle connections on each listener of a server at `ulimit -n 1024`.
3. Faults: jobs submitted / finished / lost / duplicated for a worker SIGKILLed mid-render, the server SIGKILLed
   and restarted, re-sends with the same msg_id from two sessions, and a worker killed during the descriptor flood.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


# -- 1. fuzz -----------------------------------------------------------------------------------------------------
def fuzz(info: dict, n: int, pid: int, out_dir: Path) -> dict[str, Any]:
    import zmq

    from filmscore.bridge import protocol as P
    from filmscore.bridge.connection import endpoint, key_bytes
    from filmscore.bridge.protocol_testing import crash_classes, signed

    rng = random.Random(0)
    good = P.Session(key_bytes(info))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint(info, "request_port"))
    base = [("status", {}), ("render", {"output": str(out_dir / "fz.wav"), "duration": {"value": 2, "rate": 1}}),
            ("cancel", {"job_id": "abc"}), ("list_jobs", {"limit": 2}), ("hello", {"protocol_versions": ["1.0"]})]
    junk_values = [5, "x", None, [1], {"a": {"b": []}}, -1.5, True, 2**64, -(2**63), 1e308, "\u00b2", "\u0661.0",
                   "n" * 300, " 1.0", "1.999", "\U0001F3B5"]

    def mutant(i: int) -> list[bytes]:
        msg_type, content = base[i % len(base)]
        kind = i % 8
        if kind == 7:  # a crash class, signed with the key
            hdr, body = rng.choice(list(crash_classes().values()))
            return signed(good, hdr, body.replace("OUT/", str(out_dir) + "/"))
        frames = good.serialize(good.msg(msg_type, content))[1:]
        if kind == 0:
            j = rng.randrange(len(frames))
            f = bytearray(frames[j] or b"\0")
            f[rng.randrange(len(f))] = rng.randrange(256)
            frames[j] = bytes(f)
        elif kind == 1:
            frames = frames[: rng.randrange(0, len(frames))] or [b""]
        elif kind == 2:
            frames[0] = b""
        elif kind == 3:
            frames = [os.urandom(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 9))]
        else:
            c = dict(content) | {rng.choice(["job_id", "limit", "offset", "states", "output", "seed", "steps", "midi",
                                             "start", "target_lufs", "midi_channel", "hits", "protocol_versions"]):
                                 rng.choice(junk_values)}
            m = good.msg(rng.choice([msg_type, "hello", "result", "maestros", "render"]), c)
            if kind >= 5:
                m.header[rng.choice(["msg_id", "version", "date", "session"])] = rng.choice(junk_values)
            try:
                frames = good.serialize(m)[1:]
            except P.ProtocolError:
                frames = good.serialize(good.msg(msg_type, content))[1:]
        return frames

    answered, internal, names = 0, 0, {}
    window = 250
    t0 = time.perf_counter()
    for start in range(0, n, window):
        k = min(window, n - start)
        for i in range(start, start + k):
            sock.send_multipart([P.DELIM, *mutant(i)])
        for _ in range(k):
            if not sock.poll(30_000):
                break
            try:
                _, reply = good.recv(sock.recv_multipart())
            except P.ProtocolError:
                continue
            answered += 1
            ename = reply.content.get("ename", "ok")
            names[ename] = names.get(ename, 0) + 1
            internal += "internal error" in str(reply.content.get("evalue", ""))
    sock.close()
    return {"frames_fuzzed": n, "answered": answered, "internal_errors": internal,
            "server_alive": _alive(pid), "server_exits": 0 if _alive(pid) else 1, "enames": names,
            "seconds": round(time.perf_counter() - t0, 1)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


# -- 2. floods ---------------------------------------------------------------------------------------------------
def _flood_ws(port: int, seconds: float, n_conns: int, ready, go) -> None:
    from websockets.sync.client import connect

    payload = b"\0" * (30 * MiB)
    ready.set()
    go.wait()
    stop_at = time.time() + seconds

    def one() -> None:
        while time.time() < stop_at:
            try:
                with connect(f"ws://127.0.0.1:{port}", max_size=None, open_timeout=10) as ws:
                    ws.send(payload)
                    ws.recv(timeout=10)
            except Exception:  # noqa: BLE001 - the server closing on us is the expected outcome
                pass

    threads = [threading.Thread(target=one) for _ in range(n_conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _flood_idle(ports: list[int], seconds: float, per_port: int, ready=None, go=None) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if go is not None:
        ready.set()
        go.wait()
    stop_at = time.time() + seconds
    socks = []
    for port in ports:
        for _ in range(per_port):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
    while time.time() < stop_at:
        time.sleep(0.1)
    for s in socks:
        s.close()


FLOODS = ("none", "zmq_31MiB_frames", "zmq_7MiB_frames", "ws_30MiB_tokenless", "idle_connections_1100_per_listener")


def measure_flood(info: dict, pid: int, kind: str, seconds: float) -> dict[str, Any]:
    from filmscore.bridge.client import BridgeClient
    from filmscore.bridge.flood_testing import flood_zmq, server_rss_mb

    ctx = mp.get_context("spawn")
    go = ctx.Event()
    readies = []

    def proc(target, *a):
        readies.append(ctx.Event())
        return ctx.Process(target=target, args=(*a, readies[-1], go))

    flood_s = seconds + 2.0  # the flood starts 1 s before the measurement and ends after it
    procs = []
    if kind == "zmq_31MiB_frames":
        procs = [proc(flood_zmq, info, 31 * MiB, flood_s, 4) for _ in range(2)]
    elif kind == "zmq_7MiB_frames":
        procs = [proc(flood_zmq, info, 7 * MiB, flood_s, 4) for _ in range(2)]
    elif kind == "ws_30MiB_tokenless":
        procs = [proc(_flood_ws, info["ws_port"], flood_s, 10)]
    elif kind == "idle_connections_1100_per_listener":
        procs = [proc(_flood_idle, [info["request_port"], info["ws_port"]], flood_s, 1100)]
    lat: list[float] = []
    errors = 0
    # The measuring client connects before the flood: the requirement is that clients already here keep being
    # served (new connections may be refused while a flood holds the connection cap).
    with BridgeClient(info, timeout_s=30) as c:  # type: ignore[arg-type]
        c.status()
        workers = [w["pid"] for w in c.status()["workers"]]
        idle_rss = server_rss_mb(pid, workers)
        peak = [idle_rss]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak.append(server_rss_mb(pid, workers))
                except OSError:
                    return
                time.sleep(0.05)

        for p in procs:
            p.start()
        for r in readies:  # spawned flooders import first; the clock starts when all are connected
            r.wait(300)
        go.set()
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            time.sleep(1.0)
            end = time.time() + seconds
            while time.time() < end:
                t0 = time.perf_counter()
                try:
                    c.request("status")
                    lat.append(time.perf_counter() - t0)
                except Exception:  # noqa: BLE001 - counted: a status that got no reply
                    errors += 1
            status = c.status()
        finally:
            stop.set()
            sampler.join()
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.terminate()
    ms = sorted(x * 1000 for x in lat)
    return {"flood": kind, "seconds": seconds, "status_round_trips": len(ms), "status_failed": errors,
            "status_p50_ms": round(statistics.median(ms), 3) if ms else None,
            "status_p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3) if ms else None,
            "status_max_ms": round(ms[-1], 3) if ms else None,
            "rss_idle_mb": round(idle_rss, 1), "rss_peak_mb": round(max(peak), 1),
            "rss_growth_mb": round(max(peak) - idle_rss, 1), "server_alive": _alive(pid),
            "connections": status.get("connections")}


# -- 3. faults ---------------------------------------------------------------------------------------------------
def _tally(c, expected: dict[str, str], acked: list[str], timeout_s: float = 600.0) -> dict[str, Any]:
    """expected: output path -> label. Waits for every job on those outputs to end, then counts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = [j for j in c.all_jobs() if j["output"] in expected]
        if jobs and all(j["state"] in ("finished", "failed", "cancelled") for j in jobs) and \
                {j["output"] for j in jobs} >= set(expected):
            break
        time.sleep(0.5)
    jobs = [j for j in c.all_jobs() if j["output"] in expected]
    outputs = [j["output"] for j in jobs]
    return {"submitted": len(expected), "acknowledged": len(set(acked)),
            "finished": sum(j["state"] == "finished" for j in jobs),
            "failed": sum(j["state"] == "failed" for j in jobs),
            "lost": len(set(expected) - set(outputs)) + len(set(acked) - {j["job_id"] for j in jobs}),
            "duplicated": len(outputs) - len(set(outputs)),
            "files_on_disk": sum(Path(o).is_file() for o in expected),
            "errors": sorted({j["error"] for j in jobs if j["error"]})[:3]}


def faults(root: Path, bundle: Path) -> dict[str, Any]:
    from filmscore.bridge.client import BridgeClient, render_content
    from filmscore.bridge.server.launch import launch_server, start_server

    out: dict[str, Any] = {}

    def dirs(name: str) -> tuple[Path, Path]:
        state, o = root / name / "state", root / name / "out"
        o.mkdir(parents=True)
        return state, o

    # a worker SIGKILLed during its first render (it is retried once)
    state, o = dirs("worker_kill")
    with launch_server(state, media_roots=[root], output_roots=[o], bundle=bundle) as srv, \
            BridgeClient(srv.info, timeout_s=30) as c:
        exp = {str(o / f"w{i}.wav"): "" for i in range(6)}
        acked = [c.render(p, duration_s=1.0, steps=2 if i else 200) for i, p in enumerate(exp)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and c.status(acked[0])["state"] != "running":
            time.sleep(0.1)
        time.sleep(1.0)
        worker = next(w["pid"] for w in c.status()["workers"] if w["job_id"] == acked[0])
        os.kill(worker, signal.SIGKILL)
        out["worker_sigkill"] = _tally(c, exp, acked)

    # the server SIGKILLed with jobs queued and one running, then restarted on the same state and connection file
    state, o = dirs("server_kill")
    srv = start_server(state, media_roots=[root], output_roots=[o], bundle=bundle)
    exp = {str(o / f"s{i}.wav"): "" for i in range(6)}
    with BridgeClient(srv.info, timeout_s=30) as c:
        acked = [c.render(p, duration_s=1.0, steps=2 if i else 200) for i, p in enumerate(exp)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and c.status(acked[0])["state"] != "running":
            time.sleep(0.1)
    srv.process.send_signal(signal.SIGKILL)
    srv.process.wait()
    with launch_server(state, connection_file=srv.connection_file, media_roots=[root], output_roots=[o],
                       bundle=bundle) as srv2, BridgeClient(srv2.info, timeout_s=30) as c:
        out["server_sigkill_restart"] = _tally(c, exp, acked)

    # re-sends with the same msg_id, from two sessions that both use the docs' ids
    state, o = dirs("resend")
    with launch_server(state, media_roots=[root], output_roots=[o], bundle=bundle) as srv, \
            BridgeClient(srv.info, timeout_s=30) as a, BridgeClient(srv.info, timeout_s=30) as b:
        exp, acked = {}, []
        for name, c in (("a", a), ("b", b)):
            for i in range(3):
                p = o / f"{name}{i}.wav"
                exp[str(p)] = ""
                content, buffers = render_content(p, duration_s=1.0, steps=2)
                for _ in range(2):  # the reply "lost": the same request again
                    acked.append(c.request("render", content, buffers, msg_id=f"r-{i + 1}")["job_id"])
        out["resend_same_msg_id_two_sessions"] = _tally(a, exp, acked) | {"replies": len(acked)}

    # a worker killed while 1,100 idle connections sit on each listener of a server at ulimit -n 1024
    state, o = dirs("fd_flood")
    with launch_server(state, media_roots=[root], output_roots=[o], bundle=bundle, ws="127.0.0.1:0",
                       fd_limit=1024) as srv, BridgeClient(srv.info, timeout_s=30) as c:
        ctx = mp.get_context("spawn")
        flood = ctx.Process(target=_flood_idle, args=([srv.info["request_port"], srv.info["ws_port"]], 40, 1100))
        flood.start()
        time.sleep(5)
        exp = {str(o / f"f{i}.wav"): "" for i in range(4)}
        acked = [c.render(p, duration_s=1.0, steps=2 if i else 200) for i, p in enumerate(exp)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and c.status(acked[0])["state"] != "running":
            time.sleep(0.1)
        os.kill(next(w["pid"] for w in c.status()["workers"]), signal.SIGKILL)
        out["worker_sigkill_during_fd_flood"] = _tally(c, exp, acked) | {
            "connections": c.status()["connections"], "server_alive": srv.process.poll() is None}
        flood.join(60)
    out["worker_sigkill_during_fd_flood"]["server_log_lines"] = srv.stderr().count("\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz", type=int, default=25_000, help="frames to fuzz")
    ap.add_argument("--flood-seconds", type=float, default=8.0)
    ap.add_argument("--skip-faults", action="store_true")
    ap.add_argument("--parts", default="fuzz,floods,faults", help="comma-separated parts to run: fuzz,floods,faults")
    ap.add_argument("--floods", default=",".join(FLOODS), help=f"comma-separated flood kinds of {','.join(FLOODS)}")
    ap.add_argument("--out", type=Path, default=Path("bench/results/bridge_hardening.json"))
    args = ap.parse_args(argv)
    parts = set(args.parts.split(",")) - ({"faults"} if args.skip_faults else set())
    kinds = [k for k in args.floods.split(",") if k]
    if parts - {"fuzz", "floods", "faults"} or set(kinds) - set(FLOODS):
        ap.error(f"unknown part or flood kind in --parts {args.parts} / --floods {args.floods}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from filmscore.bridge.server.launch import launch_server
    from filmscore.engine.bundle_testing import make_tiny_bundle

    results: dict[str, Any] = {"command": " ".join(["python", "bench/bench_bridge_hardening.py", *(argv or
                                                                                                 sys.argv[1:])]),
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}}
    with tempfile.TemporaryDirectory(prefix="filmscore-bench-hard-") as tmp:
        root = Path(tmp)
        bundle = make_tiny_bundle(root / "bundle", seed=0, feature_dim=16, feature_layout="bench")
        out_dir = root / "out"
        out_dir.mkdir()
        shared_kinds = [k for k in kinds if k != "idle_connections_1100_per_listener"] if "floods" in parts else []
        if "fuzz" in parts or shared_kinds:
            with launch_server(root / "state", media_roots=[root], output_roots=[out_dir], bundle=bundle,
                               ws="127.0.0.1:0") as srv:
                if "fuzz" in parts:
                    results["fuzz"] = fuzz(dict(srv.info), args.fuzz, srv.pid, out_dir)
                    print(json.dumps(results["fuzz"]), flush=True)
                for kind in shared_kinds:
                    r = measure_flood(dict(srv.info), srv.pid, kind, args.flood_seconds)
                    results.setdefault("floods", []).append(r)
                    print(json.dumps(r), flush=True)
        if "floods" in parts and "idle_connections_1100_per_listener" in kinds:
            with launch_server(root / "state-fd", media_roots=[root], output_roots=[out_dir], bundle=bundle,
                               ws="127.0.0.1:0", fd_limit=1024) as srv:
                r = measure_flood(dict(srv.info), srv.pid, "idle_connections_1100_per_listener",
                                  args.flood_seconds)
                r["server_fd_limit"] = 1024
                results.setdefault("floods", []).append(r)
                print(json.dumps(r), flush=True)
        if "faults" in parts:
            results["faults"] = faults(root, bundle)
            print(json.dumps(results["faults"], indent=1), flush=True)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.out.exists():  # the parts not run keep the figures measured before, with their own command and load
        before = json.loads(args.out.read_text())
        for part in ("fuzz", "floods", "faults"):
            if part not in results and part in before:
                results[part] = before[part]
                results.setdefault("kept_from_earlier_run", {})[part] = {
                    "command": before.get("command"), "machine": before.get("machine")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
