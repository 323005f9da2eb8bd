"""`--executor local|ray` and the Ray options, shared by `filmscore score` and `filmscore serve`."""

from __future__ import annotations

import argparse
from pathlib import Path

from filmscore.bridge.executors import EXECUTORS, Executor, ExecutorError, make_executor


def add_executor_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor (docs/scale_out.md)")
    g.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local: this machine's processes (default); ray: Ray actors on this machine or a cluster "
                        "(pip install 'filmscore[ray]')")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster: HOST:PORT of a head started with `ray start --head`, ray://HOST:10001 "
                        "(Ray Client) or auto (the cluster this machine joined); default: a Ray started here")
    g.add_argument("--num-cpus", type=float, default=1.0, metavar="N",
                   help="CPUs each Ray render actor asks for (its torch threads; default 1)")
    g.add_argument("--num-gpus", type=float, default=0.0, metavar="N",
                   help="GPUs each Ray render actor asks for (1: one actor per GPU; 0.5: two share one; default 0)")
    g.add_argument("--actors", type=int, default=None, metavar="N",
                   help="Ray render actors (default: as many as the cluster's CPUs/GPUs hold)")
    g.add_argument("--ship-inputs", action="store_true",
                   help="send media and MIDI to the actors through Ray's object store (nodes without shared "
                        "storage); default: actors read them by path")


def check_executor_args(args: argparse.Namespace) -> None:
    """Ray options without `--executor ray` are an error, not ignored."""
    if args.executor != "ray":
        given = [f for f, v in (("--address", args.address), ("--num-gpus", args.num_gpus),
                                ("--actors", args.actors), ("--ship-inputs", args.ship_inputs)) if v]
        if given or args.num_cpus != 1.0:
            raise ExecutorError(f"{', '.join(given or ['--num-cpus'])}: Ray options, they need --executor ray")


def executor_from_args(args: argparse.Namespace, bundle: Path | None) -> Executor:
    """The executor the options name."""
    check_executor_args(args)
    return make_executor(args.executor, bundle=bundle, address=args.address, num_cpus=args.num_cpus,
                         num_gpus=args.num_gpus, actors=args.actors, ship_inputs=args.ship_inputs)
