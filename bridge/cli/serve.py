"""`filmscore serve`: run the ZeroMQ bridge (and optionally its WebSocket gateway) until shut down.

    filmscore serve [--connection-file F] [--ws HOST:PORT] [--allow-remote] [--media-root DIR ...]
                    [--executor local|ray [--address ADDR] [--num-cpus N] [--num-gpus N] [--ship-inputs]]

Prints where it listens once ready (with --json: one JSON line with the connection file path and ports, for
scripts), then serves until a signed `shutdown` request, SIGINT or SIGTERM.

With `--executor ray` each render worker renders through its own Ray actor (`--workers` actors, each asking for
`--num-cpus`/`--num-gpus`) on the cluster at `--address`, or on a Ray this command starts on this machine and stops
when it exits; the job queue, journal, events and delivery stay in this process (docs/scale_out.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_json_flag
from .executor_options import add_executor_options, check_executor_args


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (port 0..65535; 0 picks a free one)")
    return host.strip("[]") or "127.0.0.1", int(port)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the ZeroMQ bridge for editing software",
                              description="Serve render requests over ZeroMQ (signed protocol, docs/protocol.md).")
    p.add_argument("--connection-file", type=Path, default=None,
                   help="connection file to use (written with a fresh key when it does not exist; default: "
                        "$XDG_RUNTIME_DIR/filmscore/bridge-PID.json)")
    p.add_argument("--ip", default=None, help="address to bind (default 127.0.0.1; 0.0.0.0 needs --allow-remote)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --ip; turns on CURVE encryption (keys in the connection file)")
    p.add_argument("--ws", type=_host_port, default=None, metavar="HOST:PORT",
                   help="also serve the WebSocket gateway for UXP panels (e.g. 127.0.0.1:0)")
    p.add_argument("--ws-origin", action="append", default=[], metavar="ORIGIN",
                   help="an Origin a browser-hosted panel may connect from (repeatable; clients that send no "
                        "Origin, like UXP panels and scripts, are always allowed with the token)")
    p.add_argument("--state-dir", type=Path, default=None, help="job journal folder (default "
                   "$XDG_STATE_HOME/filmscore/bridge)")
    p.add_argument("--media-root", action="append", type=Path, default=[], metavar="DIR",
                   help="a folder requests may read media from (repeatable; default: your home)")
    p.add_argument("--output-root", action="append", type=Path, default=[], metavar="DIR",
                   help="a folder requests may write cues to (repeatable; default: your home)")
    p.add_argument("--workers", type=int, default=1, help="render worker processes (default 1)")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle folder (default: the shipped one)")
    p.add_argument("--max-queued", type=int, default=1000,
                   help="renders that may wait at once; more are refused with QueueFull (default 1000)")
    p.add_argument("--max-connections", type=int, default=None,
                   help="connections per ZeroMQ socket (default: derived from the file-descriptor limit)")
    p.add_argument("--ws-cert", type=Path, default=None,
                   help="TLS certificate chain (PEM) for the WebSocket gateway; required off loopback")
    p.add_argument("--ws-key", type=Path, default=None, help="the TLS certificate's private key (PEM)")
    add_executor_options(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from filmscore.bridge.server import BridgeServer, ServerConfig
    from filmscore.bridge.server.config import default_state_dir

    check_executor_args(args)
    ip = args.ip or ("0.0.0.0" if args.allow_remote else "127.0.0.1")
    executor: dict = {}
    stop_ray = None
    if args.executor == "ray":  # each worker process renders through a Ray actor (bridge/executors/ray_executor.py)
        from filmscore.bridge.executors import ExecutorError
        from filmscore.bridge.executors.ray_executor import RAY_RENDERER, RayOptions, start_for_server

        if args.actors is not None:
            raise ExecutorError("--actors: in serve each of the --workers renders through one Ray actor")
        stop_ray = start_for_server(RayOptions(address=args.address, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                                               ship_inputs=args.ship_inputs), args.workers, args.bundle)
        executor["renderer"] = RAY_RENDERER
    cfg = ServerConfig(state_dir=args.state_dir or default_state_dir(), connection_file=args.connection_file,
                       ip=ip, allow_remote=args.allow_remote, media_roots=tuple(args.media_root),
                       output_roots=tuple(args.output_root), workers=args.workers, bundle=args.bundle,
                       ws=args.ws, ws_origins=tuple(args.ws_origin), max_queued=args.max_queued,
                       max_connections=args.max_connections, ws_cert=args.ws_cert, ws_key=args.ws_key, **executor)
    server = BridgeServer(cfg)
    try:
        info = server.start()
    except BaseException:
        server.close()
        raise
    summary = {"connection_file": str(server.connection_file), "ip": info["ip"],
               "request_port": info["request_port"], "event_port": info["event_port"],
               "ws_port": info.get("ws_port"), "state_dir": str(cfg.state_dir), "pid": info.get("pid"),
               "curve": bool(info.get("curve_server_public"))}
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        ws = f", WebSocket on {cfg.ws[0]}:{info['ws_port']}" if cfg.ws else ""
        print(f"filmscore bridge on {info['ip']} (requests {info['request_port']}, events {info['event_port']}{ws}); "
              f"connection file {server.connection_file}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        if stop_ray is not None:  # the Ray this command started (the actors died with their worker processes)
            stop_ray()
    return 0


if __name__ == "__main__":  # `python -m filmscore.bridge.cli.serve ...`: the same command without the other ones
    import logging

    from filmscore.engine.errors import FilmscoreError

    parser = argparse.ArgumentParser(prog="filmscore")
    parser.add_argument("-v", "--verbose", action="store_true")
    register(parser.add_subparsers(dest="command", required=True))
    argv = sys.argv[2:] if sys.argv[1:2] == ["serve"] else sys.argv[1:]
    flags = [x for x in argv if x in ("-v", "--verbose")]  # -v may come anywhere, as with `filmscore -v serve`
    a = parser.parse_args([*flags, "serve", *[x for x in argv if x not in flags]])
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        sys.exit(a.run(a))
    except FilmscoreError as e:
        print(f"filmscore serve: error: {e}", file=sys.stderr)
        sys.exit(2)
