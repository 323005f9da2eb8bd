"""`filmscore client ...`: talk to a running bridge from scripts and shells.

    filmscore client render --output /abs/cue.wav --video /abs/clip.mov --duration 12 --wait
    filmscore client status [JOB]      filmscore client jobs [--state queued ...]
    filmscore client cancel JOB        filmscore client result JOB
    filmscore client hello             filmscore client maestros        filmscore client shutdown [--wait]

The server is found from --connection-file, else the newest connection file in the runtime folder. The client's
own options (--connection-file, --timeout) may come before or after the request's name
(`filmscore client jobs --connection-file F` and `filmscore client --connection-file F jobs` are the same).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from filmscore.bridge.option_flags import given_options

from .common import add_json_flag, add_render_options, bridge_path, emit, progress_bar


def _add_client_options(p: argparse.ArgumentParser, after_verb: bool) -> None:
    """The client's own options. After the verb their default is SUPPRESS, so a value given before the verb (or
    the default) stands unless the option is repeated after it."""
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if after_verb else {}
    p.add_argument("--connection-file", type=Path, help="the server's connection file",
                   **(kw or {"default": None}))
    p.add_argument("--timeout", type=float, help="seconds to wait for a reply (default 10)",
                   **(kw or {"default": 10.0}))


class _ClientSubparsers(argparse._SubParsersAction):
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:  # type: ignore[override]
        parser = super().add_parser(name, **kwargs)
        _add_client_options(parser, after_verb=True)
        return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("client", help="send requests to a running bridge (filmscore serve)",
                              description="Client of the filmscore bridge (docs/protocol.md).")
    _add_client_options(p, after_verb=False)
    p.register("action", "client_parsers", _ClientSubparsers)
    sub = p.add_subparsers(dest="client_command", required=True, metavar="REQUEST", action="client_parsers")

    r = sub.add_parser("render", help="queue a render")
    r.add_argument("--output", required=True, help="WAV to write (inside the server's output roots)")
    r.add_argument("--video", help="video file")
    r.add_argument("--start", type=float, help="start in the video, seconds")
    r.add_argument("--duration", type=float, help="cue length, seconds")
    r.add_argument("--timeline", help="timeline file (OTIO, FCP XML, EDL, ...)")
    r.add_argument("--cue", help="cue (marker) name on the timeline")
    r.add_argument("--in", dest="in_s", type=float, help="timeline in point, seconds")
    r.add_argument("--out", dest="out_s", type=float, help="timeline out point, seconds")
    r.add_argument("--midi", help="MIDI theme (a path the server reads)")
    r.add_argument("--midi-inline", help="MIDI theme read here and sent as bytes (for remote servers)")
    r.add_argument("--reference-audio", help="reference audio file")
    r.add_argument("--maestro", help="maestro from the library")
    add_render_options(r)  # every render option (engine/options.py); the ones given are sent, the rest default
    r.add_argument("--overwrite", action="store_true", help="replace an existing output")
    r.add_argument("--wait", action="store_true", help="wait for the job to end, showing progress")
    add_json_flag(r)

    for name, helptext in (("status", "server status, or one job's"), ("cancel", "cancel a job"),
                           ("result", "the result of a finished job")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("job_id", nargs="?" if name == "status" else None)
        add_json_flag(s)
    j = sub.add_parser("jobs", help="list jobs")
    j.add_argument("--state", action="append", choices=("queued", "running", "finished", "failed", "cancelled"))
    j.add_argument("--limit", type=int, default=100)
    j.add_argument("--newest", action="store_true", help="newest first (default: oldest first, queue order)")
    add_json_flag(j)
    for name, helptext in (("hello", "protocol version and capabilities"), ("maestros", "the maestro library")):
        add_json_flag(sub.add_parser(name, help=helptext))
    sd = sub.add_parser("shutdown", help="stop the server (signed with the connection file's key)")
    sd.add_argument("--wait", action="store_true", help="let running renders finish first")
    add_json_flag(sd)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from filmscore.bridge.client import BridgeClient

    with BridgeClient.from_connection_file(args.connection_file, timeout_s=args.timeout) as c:
        return _COMMANDS[args.client_command](c, args)


def _render(c: Any, args: argparse.Namespace) -> int:
    kw: dict[str, Any] = {"start_s": args.start, "duration_s": args.duration, "cue": args.cue, "in_s": args.in_s,
                          "out_s": args.out_s, "maestro": args.maestro,
                          **given_options(args)}
    for name in ("video", "timeline", "midi", "reference_audio"):
        if getattr(args, name):
            kw[name] = bridge_path(getattr(args, name))
    if args.midi_inline:
        kw["midi_bytes"] = Path(args.midi_inline).read_bytes()
    if args.overwrite:
        kw["overwrite"] = True
    job = c.render(bridge_path(args.output), **{k: v for k, v in kw.items() if v is not None})
    if not args.wait:
        emit(args, {"job_id": job, "state": "queued"}, job)
        return 0
    with progress_bar(enabled=not args.json) as bar:
        task = bar.add_task("queued", total=100)

        def show(ev: Any) -> None:
            if ev.msg_type == "job_progress":
                eta = ev.content.get("eta_s")
                bar.update(task, completed=round(100 * ev.content["fraction"]),
                           description=f"{ev.content['stage']}" + (f" (~{eta:.0f} s left)" if eta else ""))

        st = c.wait(job, timeout_s=24 * 3600, on_event=show)
    emit(args, st, f"{job}: {st['state']}" + (f" -> {st['output']}" if st["state"] == "finished" else
                                              f" ({st['error']})" if st.get("error") else ""))
    return 0 if st["state"] == "finished" else 1


def _status(c: Any, args: argparse.Namespace) -> int:
    st = c.status(args.job_id)
    if args.job_id:
        prog = st.get("progress") or {}
        human = f"{st['job_id']}: {st['state']}" + (f", {prog['stage']} {100 * prog['fraction']:.0f}%"
                                                     if prog.get("stage") else "")
    else:
        human = (f"pid {st['pid']}, up {st['uptime_s']:.0f} s, {st['queued']} queued, "
                 f"workers: {', '.join(str(w['pid']) + (' busy' if w['job_id'] else '') for w in st['workers'])}")
    emit(args, st, human)
    return 0


def _jobs(c: Any, args: argparse.Namespace) -> int:
    jobs = c.list_jobs(tuple(args.state) if args.state else None, args.limit, newest_first=args.newest)

    def human() -> None:
        for j in jobs:
            when = time.strftime("%H:%M:%S", time.localtime(j["created"]))
            print(f"{j['job_id']}  {j['state']:<9}  {when}  {j['output']}")

    emit(args, {"jobs": jobs}, human)
    return 0


def _simple(name: str):
    def do(c: Any, args: argparse.Namespace) -> int:
        if name == "cancel":
            out: Any = {"job_id": args.job_id, "state": c.cancel(args.job_id)}
            human = f"{args.job_id}: {out['state']}"
        elif name == "result":
            out = c.result(args.job_id)
            human = f"{out.get('output')}  ({out.get('duration_s')} s, {out.get('sample_rate')} Hz, seed {out.get('seed')})"
        elif name == "hello":
            out = c.hello()
            caps = out["capabilities"]
            human = (f"protocol {out['protocol_version']}, server {out['server_version']}, bundle "
                     f"{caps['bundle'].get('name')}, backends {caps['backends']}")
        elif name == "maestros":
            out = {"maestros": c.maestros()}
            human = "\n".join(m["name"] for m in out["maestros"])
        else:
            out = c.shutdown(wait=args.wait)
            human = "server stopping" + (" after running renders" if args.wait else "")
        emit(args, out, human)
        return 0

    return do


_COMMANDS = {"render": _render, "status": _status, "jobs": _jobs, "cancel": _simple("cancel"),
             "result": _simple("result"), "hello": _simple("hello"), "maestros": _simple("maestros"),
             "shutdown": _simple("shutdown")}
