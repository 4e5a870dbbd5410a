"""The ``trackside`` command: one argparse front, one module per command group.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
sub-commands and sets ``func`` (called with the parsed namespace, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

COMMAND_MODULES = (
    "trackside.fusion.cli",      # fusion run (device / host / offline filters)
    "trackside.aggregator.cli",  # record, sessions, show, trace, replay, flash, demo
    "trackside.kinematics.cli",  # gait, export
    "trackside.plan.cli",        # plan, stats
    "trackside.flash.cli",       # flash
    "trackside.demo.cli",        # demo: the whole chain on virtual nodes
)


class UsageError(Exception):
    """Bad command-line input: printed as a one-line message, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackside",
        description="Motion capture and training plans for track and field.",
    )
    parser.add_argument("--version", action="version", version="trackside " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def _version() -> str:
    from trackside import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"trackside {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
