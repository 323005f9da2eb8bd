"""Bridge benchmark: request round trips and render load against a real `filmscore serve` on loopback.

    python bench/bench_bridge.py [--seconds 5] [--jobs-per-client 50] [--out bench/results/bridge.json]

Measures, each with the server in its own process and every client in its own process (so the GIL of one does not
throttle the others):
1. `status` round trips (signed request -> signed reply), 1 and 8 clients, idle server: messages/s, p50/p99/max ms;
   side by side, the same clients against a bare signed echo server (the host's floor at that moment).
   Also the server's CPU per request, in process (verify + handle + sign + send), per request type.
2. The same while renders run (1 worker rendering a tiny real bundle back to back).
3. Load: 8 clients x N render jobs (tiny real bundle, 1 s cues, 2 steps): lost and duplicated jobs (both must be 0),
   wall time, jobs/s.
Results are written as JSON (and printed). MEASURED.md's floor, for comparison: one Python process, 1 client
3,400 msg/s p99 0.4 ms; 8 clients 5,600 msg/s p99 2.7 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _status_loop(info: dict, seconds: float, start_at: float, q: mp.Queue) -> None:
    from filmscore.bridge.client import BridgeClient

    with BridgeClient(info) as c:  # type: ignore[arg-type]
        c.status()  # connect and warm up before the clock starts
        while time.time() < start_at:
            time.sleep(0.001)
        lat = []
        end = start_at + seconds
        while time.time() < end:
            t0 = time.perf_counter()
            c.request("status")
            lat.append(time.perf_counter() - t0)
    q.put(lat)


def round_trips(info: dict, n_clients: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    start_at = time.time() + 3.0  # spawned clients import filmscore first
    procs = [ctx.Process(target=_status_loop, args=(info, seconds, start_at, q)) for _ in range(n_clients)]
    for p in procs:
        p.start()
    lats = [q.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    all_ms = np.array([x for lat in lats for x in lat]) * 1000
    return {"clients": n_clients, "seconds": seconds, "messages": int(all_ms.size),
            "msg_per_s": round(all_ms.size / seconds, 1), "p50_ms": round(float(np.percentile(all_ms, 50)), 3),
            "p99_ms": round(float(np.percentile(all_ms, 99)), 3), "max_ms": round(float(all_ms.max()), 3)}


def _echo_server(key_hex: str, port_q: mp.Queue, stop_at: float) -> None:
    """Baseline: the least a signed request/reply server can do in Python (verify, sign a reply), nothing else."""
    import zmq

    from filmscore.bridge import protocol as P

    session = P.Session(bytes.fromhex(key_hex))
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:0")
    port_q.put(int(sock.last_endpoint.decode().rsplit(":", 1)[1]))
    while time.time() < stop_at:
        if not sock.poll(200):
            continue
        idents, msg = session.recv(sock.recv_multipart())
        sock.send_multipart(session.serialize(session.msg("status_reply", {"status": "ok", "server": {}},
                                                          parent=msg), idents))


def start_baseline(info: dict, seconds_alive: float) -> tuple[dict, mp.Process]:
    ctx = mp.get_context("spawn")
    port_q: mp.Queue = ctx.Queue()
    srv = ctx.Process(target=_echo_server, args=(info["key"], port_q, time.time() + seconds_alive), daemon=True)
    srv.start()
    return dict(info) | {"request_port": port_q.get(timeout=60)}, srv


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repeats of msg/s and of p50/p99 (the host is shared: single runs are noisy)."""
    return {"clients": runs[0]["clients"], "repeats": len(runs),
            "msg_per_s": round(statistics.median(r["msg_per_s"] for r in runs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
            "runs": runs}


def handler_cost(root: Path, bundle: Path, n: int = 5000) -> dict[str, float]:
    """Server CPU per request, in process: verify + handle + sign + send, for each request type (microseconds).
    Less at the mercy of a busy host than round trips: it bounds what the request loop can answer per second."""
    from filmscore.bridge import protocol as P
    from filmscore.bridge.connection import key_bytes
    from filmscore.bridge.server import BridgeServer, ServerConfig

    srv = BridgeServer(ServerConfig(state_dir=root / "state-inproc", connection_file=root / "inproc.json",
                                    media_roots=(root,), output_roots=(root,), bundle=bundle))
    info = srv.start()
    try:
        client = P.Session(key_bytes(info))
        out = {}
        for msg_type, content in (("status", {}), ("hello", {}), ("list_jobs", {"limit": 10}),
                                  ("status", {"job_id": "0" * 32})):
            frames = [client.serialize(client.msg(msg_type, content), [b"\0bench"]) for _ in range(n)]
            t0 = time.perf_counter()
            for f in frames:
                srv._handle_frames(f)  # the reply goes to a peer that does not exist: ROUTER drops it
            key = msg_type + ("(job)" if content.get("job_id") else "")
            out[key] = round((time.perf_counter() - t0) / n * 1e6, 1)
        return out
    finally:
        srv.close()


def _render_client(info: dict, out_dir: str, client: int, n_jobs: int, q: mp.Queue) -> None:
    from filmscore.bridge.client import BridgeClient

    ids = []
    with BridgeClient(info, timeout_s=30) as c:  # type: ignore[arg-type]
        for i in range(n_jobs):
            ids.append(c.render(Path(out_dir) / f"c{client}_j{i}.wav", duration_s=1.0, steps=2, seed=i, retries=3))
    q.put(ids)


def render_load(info: dict, out_dir: Path, n_clients: int, jobs_per_client: int, timeout_s: float) -> dict:
    from filmscore.bridge.client import BridgeClient

    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_render_client, args=(info, str(out_dir), k, jobs_per_client, q))
             for k in range(n_clients)]
    for p in procs:
        p.start()
    submitted = [j for _ in procs for j in q.get(timeout=600)]
    for p in procs:
        p.join()
    t_submit = time.perf_counter() - t0
    with BridgeClient(info) as c:  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            counts = c.status()["jobs"]
            if counts["queued"] == 0 and counts["running"] == 0:
                break
            time.sleep(0.5)
        jobs = c.all_jobs()
    wall = time.perf_counter() - t0
    expected = {str(out_dir / f"c{k}_j{i}.wav") for k in range(n_clients) for i in range(jobs_per_client)}
    ours = [j for j in jobs if j["output"] in expected]
    outputs = [j["output"] for j in ours]
    finished = [j for j in ours if j["state"] == "finished"]
    return {"clients": n_clients, "jobs_per_client": jobs_per_client, "submitted": len(submitted),
            "unique_job_ids": len(set(submitted)), "journal_jobs": len(ours),
            "lost": len(expected - set(outputs)), "duplicated": len(outputs) - len(set(outputs)),
            "finished": len(finished), "failed": [j["error"] for j in ours if j["state"] == "failed"][:5],
            "files_on_disk": sum(Path(o).is_file() for o in expected),
            "submit_s": round(t_submit, 2), "wall_s": round(wall, 2), "jobs_per_s": round(len(finished) / wall, 3),
            "render_s_median": round(statistics.median([j["ended"] - j["started"] for j in finished]), 3)
            if finished else None}


def _keep_rendering(info: dict, out_dir: str, stop_at: float) -> None:
    from filmscore.bridge.client import BridgeClient

    with BridgeClient(info) as c:  # type: ignore[arg-type]
        i = 0
        while time.time() < stop_at:
            job = c.render(Path(out_dir) / f"bg{i}.wav", duration_s=3.0, steps=8, overwrite=True)
            c.wait(job, timeout_s=300)
            i += 1


def _wait_workers_ready(info: dict, timeout_s: float = 120.0) -> None:
    """Workers import the engine (torch) when they start: measure after that, not during it."""
    from filmscore.bridge.client import BridgeClient

    with BridgeClient(info) as c:  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(w["ready"] for w in c.status()["workers"]):
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each round-trip run")
    ap.add_argument("--jobs-per-client", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="round-trip runs per setting (medians reported)")
    ap.add_argument("--render-timeout", type=float, default=3600.0)
    ap.add_argument("--skip-renders", action="store_true", help="round trips on an idle server only")
    ap.add_argument("--out", type=Path, default=Path("bench/results/bridge.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from filmscore.bridge.server.launch import launch_server
    from filmscore.engine.bundle_testing import make_tiny_bundle

    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "processor": platform.processor() or platform.machine(),
                                           "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]},
                               "floor_MEASURED_md": {"1": {"msg_per_s": 3400, "p99_ms": 0.4},
                                                     "8": {"msg_per_s": 5600, "p99_ms": 2.7}}}
    with tempfile.TemporaryDirectory(prefix="filmscore-bench-") as tmp:
        root = Path(tmp)
        out_dir = root / "out"
        out_dir.mkdir()
        bundle = make_tiny_bundle(root / "bundle", seed=0, feature_dim=16, feature_layout="bench")
        results["server_cpu_per_request_us"] = handler_cost(root, bundle)
        print(json.dumps(results["server_cpu_per_request_us"]), flush=True)
        with launch_server(root / "state", media_roots=[root], output_roots=[out_dir], bundle=bundle) as srv:
            info = dict(srv.info)
            _wait_workers_ready(info)
            # Interleaved with the same clients against a bare signed echo server (the host's floor at that
            # moment), repeated: the machine is shared, so a single run says little.
            echo, echo_proc = start_baseline(info, args.repeats * 2 * (2 * args.seconds + 30) + 60)
            runs: dict[str, dict[int, list]] = {"idle": {}, "baseline_signed_echo": {}}
            for _ in range(args.repeats):
                for n in (1, args.clients):
                    runs["idle"].setdefault(n, []).append(round_trips(info, n, args.seconds))
                    runs["baseline_signed_echo"].setdefault(n, []).append(round_trips(echo, n, args.seconds))
            echo_proc.terminate()
            for name, by_n in runs.items():
                results[name] = [summarize(r) for r in by_n.values()]
            results["idle_over_baseline_msg_per_s"] = [
                round(a["msg_per_s"] / b["msg_per_s"], 3)
                for a, b in zip(results["idle"], results["baseline_signed_echo"])]
            print(json.dumps({k: [{x: v for x, v in r.items() if x != "runs"} for r in results[k]]
                              for k in runs}, indent=1), flush=True)
            if not args.skip_renders:
                ctx = mp.get_context("spawn")
                stop_at = time.time() + 2 * args.seconds + 30
                bg = ctx.Process(target=_keep_rendering, args=(info, str(out_dir), stop_at))
                bg.start()
                time.sleep(8)  # the worker is rendering by now
                results["while_rendering"] = [summarize([round_trips(info, n, args.seconds)]) for n in
                                              (1, args.clients)]
                print(json.dumps(results["while_rendering"], indent=1), flush=True)
                bg.terminate()
                bg.join()
                results["render_load"] = render_load(info, out_dir, args.clients, args.jobs_per_client,
                                                     args.render_timeout)
                print(json.dumps(results["render_load"], indent=1), flush=True)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
