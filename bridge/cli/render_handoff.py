"""`filmscore render` on a running bridge: the same request, rendered by a warm worker of `filmscore serve`.

Why: a render in a fresh process pays for importing torch and diffusers (4-6 s, docs/runtimes.md) before its first
model stage, about half of a 60 s cue's render on a 2-core machine; a bridge worker paid that once. So when a bridge
runs beside the editor (the panel needs one), `render` sends it the request, shows its progress and prints the same
summary; the cue, its sidecars and its bytes are what rendering here gives (same bundle, options and seed; the
worker runs the same `render_cue`).

Which bridge, and when:
- `--local`: never; the cue renders in this process.
- `--connection-file F`: that bridge must take the request; when it cannot, the command fails saying why.
- neither (auto): the newest connection file in the runtime folder (`connection.find_connection_file`), when its
  server answers within `HELLO_TIMEOUT_S`, renders with the bundle this command would load, has a free worker and
  nothing queued (a busy bridge would make the cue wait; rendering here runs beside it), and accepts the request's
  paths (its media and output roots). Otherwise the cue renders here; when a bridge was found, one line says why.
- Never handed over (rendered here): `--from/--regenerate`, `--bwf` without `--timeline`, plan overrides (`--tempo`,
  `--key`, ...: the plan is made and written here first).

A job that the bridge accepted and that then fails is reported as the failure it is, not rendered again here.
Ctrl-C cancels the job on the bridge. `--preview PATH`: the bridge publishes its draft as OUT.draft.wav (its rule,
which the cue's JSON records) and PATH is made the same file (a hard link), so both names hold the draft.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from filmscore.bridge.option_flags import given_options
from filmscore.engine.errors import FilmscoreError

from .common import bridge_path, parse_hits, stderr_console

HELLO_TIMEOUT_S = 1.0  # a live local bridge answers `hello` in milliseconds; a stale file must not stall the command
JOB_TIMEOUT_S = 24 * 3600.0


class HandoffError(FilmscoreError):
    """`--connection-file F` named a bridge that cannot take this render (the message says why)."""


def add_handoff_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--local", action="store_true",
                   help="render in this process even when a bridge (`filmscore serve`) is running")
    g.add_argument("--connection-file", type=Path, default=None, metavar="FILE",
                   help="render on this bridge (its connection file); default: a running bridge with the same "
                        "bundle and a free worker, else here")


def _why_here(args: argparse.Namespace) -> str | None:
    """Why this request is rendered here whatever bridge runs (None: a bridge may take it)."""
    from .plan import has_overrides

    if args.from_cue is not None or args.regenerate is not None:
        return "--regenerate renders here"
    if args.bwf and args.timeline is None:
        return "--bwf without --timeline renders here"
    if has_overrides(args):
        return "plan overrides make the plan here first"
    return None


@dataclass
class Bridge:
    """A bridge that will take the request: its client (open), connection file and server pid."""

    client: Any  # bridge.client.BridgeClient
    connection_file: Path
    pid: int | None


def find_bridge(args: argparse.Namespace) -> Bridge | None:
    """The bridge to render on, or None to render here (auto mode says why when a bridge was found). Raises
    HandoffError when `--connection-file` was given and that bridge cannot take the request."""
    if args.local:
        return None
    explicit = args.connection_file is not None
    why = _why_here(args)
    if why is not None:
        if explicit:
            raise HandoffError(f"--connection-file: {why}; drop --connection-file")
        return None
    from filmscore.bridge.connection import ConnectionFileError, find_connection_file

    try:
        path = args.connection_file if explicit else find_connection_file()
    except ConnectionFileError:  # auto: no bridge runs (the usual case)
        return None
    try:
        bridge = _open(path, args, explicit)
    except HandoffError as e:
        if explicit:
            raise
        stderr_console.print(f"filmscore render: rendering here, not on the running bridge: {e}", highlight=False)
        return None
    return bridge


def _open(path: Path, args: argparse.Namespace, explicit: bool) -> Bridge:
    from filmscore.bridge.client import BridgeClient, BridgeTimeout, RemoteError
    from filmscore.bridge.connection import ConnectionFileError, read_connection_file
    from filmscore.bridge.server.capabilities import bundle_info

    try:
        info = read_connection_file(Path(path))
    except ConnectionFileError as e:
        raise HandoffError(str(e)) from e
    if not explicit and info.get("pid") and not _alive(int(info["pid"])):
        raise HandoffError(f"{path} is left from a bridge that no longer runs (pid {info['pid']})")
    client = BridgeClient(info, timeout_s=HELLO_TIMEOUT_S if not explicit else 10.0)
    try:
        try:
            hello = client.hello()
            server = client.status()
        except (BridgeTimeout, RemoteError) as e:
            raise HandoffError(f"the bridge of {path} did not answer ({e})") from e
        theirs = hello["capabilities"].get("bundle", {}).get("path")
        ours = bundle_info(args.bundle)["path"]
        if theirs is None or Path(theirs).resolve() != Path(ours).resolve():
            raise HandoffError(f"it renders with bundle {theirs}, this render asks for {ours}")
        busy = all(w.get("job_id") for w in server.get("workers", [])) or server.get("queued", 0) > 0
        if busy and not explicit:
            raise HandoffError(f"it is busy ({server.get('queued', 0)} queued, every worker rendering)")
    except BaseException:
        client.close()
        raise
    client.timeout_s = 10.0  # requests from here on: the bridge's usual reply time
    return Bridge(client, Path(path), server.get("pid"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and its bridge will refuse our key anyway
        return True
    return True


def request_of(args: argparse.Namespace) -> dict[str, Any]:
    """The `render` request's keywords (`client.render_content`) for `render`'s arguments."""
    kw: dict[str, Any] = {**given_options(args), "video": bridge_path(args.video),
                          "midi": bridge_path(args.midi), "reference_audio": bridge_path(args.reference),
                          "maestro": args.maestro, "theme": args.theme, "midi_track": args.track,
                          "midi_channel": args.channel, "hits_s": parse_hits(args.hits), "plan": bridge_path(args.plan)}
    if args.timeline is not None:
        kw.update(timeline=bridge_path(args.timeline), cue=args.cue)
    else:
        kw.update(start_s=args.start or None, duration_s=args.duration)
    if args.preview is not None:
        kw["preview"] = {}
    if args.variations != 1:
        kw["variations"] = args.variations
    if args.overwrite:
        kw["overwrite"] = True
    return {k: v for k, v in kw.items() if v is not None and v != ()}


def submit(bridge: Bridge, args: argparse.Namespace, explicit: bool) -> str | None:
    """Queue the render on `bridge`; its job id, or None when the bridge refused it in auto mode (rendered here,
    with the refusal printed). Subscribes to the job's events first, so none is missed."""
    from filmscore.bridge.client import BridgeTimeout, RemoteError

    c = bridge.client
    try:
        c.subscribe(wait_s=10.0)
        return c.render(bridge_path(args.output), **request_of(args))
    except (RemoteError, BridgeTimeout) as e:
        if explicit:
            raise HandoffError(f"the bridge of {bridge.connection_file} refused the render: {e}") from e
        stderr_console.print(f"filmscore render: rendering here; the running bridge refused the render: {e}",
                             highlight=False)
        return None


def wait_for(bridge: Bridge, job_id: str, args: argparse.Namespace,
             progress: Callable[[str, float, str], None],
             on_draft: Callable[[Path, float], None]) -> dict[str, Any]:
    """Follow job `job_id` to its end: progress to `progress`, the draft copied to --preview (and `on_draft`
    called) when the bridge publishes it. Returns the render's result; raises FilmscoreError when the job failed
    or was cancelled. Ctrl-C cancels the job."""
    c = bridge.client
    drafted: list[Path] = []

    def on_event(ev: Any) -> None:
        if ev.msg_type == "job_progress":
            progress(ev.content["stage"], float(ev.content["fraction"]), ev.content.get("message") or "")
        elif ev.msg_type == "job_preview" and args.preview is not None and not drafted:
            published = Path(ev.content["path"])
            if published.resolve() != args.preview.resolve():
                _link_atomic(published, args.preview)
            drafted.append(published)
            on_draft(args.preview, float(ev.content.get("ready_after_s") or 0.0))

    from filmscore.bridge.client import BridgeTimeout

    try:
        final = c.wait(job_id, timeout_s=JOB_TIMEOUT_S, on_event=on_event)
    except KeyboardInterrupt:
        try:
            c.cancel(job_id)
        finally:
            raise
    except BridgeTimeout as e:  # the bridge went away mid-job: its worker went with it, the output was not written
        raise FilmscoreError(f"the bridge of {bridge.connection_file} stopped answering while it rendered job "
                             f"{job_id} ({e}); {args.output} was not written: render again, or with --local to "
                             "render in this process") from e
    if final["state"] != "finished":
        if drafted and args.preview is not None and drafted[0].resolve() != args.preview.resolve():
            args.preview.unlink(missing_ok=True)  # the bridge took its draft back: so does this command
        raise FilmscoreError(f"the bridge's job {job_id} {final['state']}"
                             + (f": {final['error']}" if final.get("error") else ""))
    result = c.result(job_id)
    draft = result["metadata"].get("preview")
    if args.preview is not None and draft:
        if not drafted:  # the job ended before its events were read (a short cue): the draft is in place all the same
            on_event(SimpleNamespace(msg_type="job_preview", content=draft))
        # The summary reports --preview, as a local render does; the cue's JSON keeps the bridge's name for it.
        result["metadata"]["preview"] = {**draft, "path": str(args.preview), "published": draft["path"]}
    return result


def _link_atomic(src: Path, dst: Path) -> None:
    """`dst` becomes the file `src` is (a hard link: the same bytes, no copy; a copy across file systems), replacing
    what `dst` was in one step."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.resolve().parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or links refused
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
