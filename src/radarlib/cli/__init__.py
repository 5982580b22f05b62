"""The ``radarlib`` command: one entry point, one module per sub-command.

Each module in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser
and sets ``handler`` (a function ``args -> exit code``). Heavy imports (Py-ART, netCDF4)
happen inside the handlers so ``radarlib --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from radarlib import __version__

__all__ = ["COMMANDS", "add_command", "add_state_arguments", "build_parser", "main"]

#: Sub-command modules under :mod:`radarlib.cli`, in ``--help`` order.
COMMANDS: tuple[str, ...] = (
    "inspect", "convert", "run", "rescan", "status", "reprocess", "products", "demo",
    "dashboard", "cleanup",
)  # fmt: skip


def add_command(subparsers: Any, name: str, help: str, doc: str | None) -> argparse.ArgumentParser:
    """A sub-command parser described by its module docstring (all but its first paragraph)."""
    return subparsers.add_parser(
        name,
        help=help,
        description=doc.split("\n\n", 1)[-1] if doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_state_arguments(parser: argparse.ArgumentParser, *, several_dbs: bool = False) -> None:
    """``--config FILE | --db FILE`` (the state databases to read) and ``--radar CODE``."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", "-c", help="the TOML config (its state database(s))")
    if several_dbs:
        where.add_argument(
            "--db", action="append", metavar="FILE", help="a state database file (repeatable)"
        )
    else:
        where.add_argument("--db", metavar="FILE", help="a state database file")
    parser.add_argument("--radar", action="append", metavar="CODE", help="only this radar")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="radarlib",
        description="Weather-radar BUFR to CF/Radial NetCDF: decode, download, process.",
    )
    parser.add_argument("--version", action="version", version=f"radarlib {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"radarlib.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `radarlib inspect … | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
