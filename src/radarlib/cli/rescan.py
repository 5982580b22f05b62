"""``radarlib rescan``: list a period of the server again and download whatever is missing.

    radarlib rescan --config radarlib.toml --since 2025-11-17 --until 2025-11-18T12:00:00Z
                    [--radar RMA1]

For radar links that were down for hours and then pushed their backlog, or any other doubt.
When no ``radarlib run`` downloads the radar, this command does the rescan itself and returns
when it is done. When one does (it owns the radar's download folder), the request is left in
the state database and that daemon takes it at its next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any

from radarlib.cli import add_command
from radarlib.cli.reprocess import _moment
from radarlib.config import load_config
from radarlib.errors import OwnershipError, RadarlibError

__all__ = ["register", "rescan"]


def rescan(config_path: str, radars: list[str] | None, since: datetime, until: datetime) -> int:
    """Rescan ``[since, until]`` for each radar; print what happened; the exit code."""
    from radarlib.pipeline.download import DateBasedFTPDaemon, request_rescan
    from radarlib.state.sqlite import SQLiteStateTracker

    config = load_config(config_path)
    codes = radars or [r.code for r in config.enabled_radars()]
    for code in codes:
        download = config.download_config(code)
        try:
            stats = asyncio.run(DateBasedFTPDaemon(download).rescan(since, until))
        except OwnershipError:
            with SQLiteStateTracker(download.state_db) as tracker:
                request_rescan(tracker, download, since, until)
            print(f"{code}: a running daemon owns this radar; it rescans at its next poll")
            continue
        print(
            f"{code}: {stats['files_downloaded']} file(s) downloaded, "
            f"{stats['short_files']} short, {stats['rejected_files']} rejected, "
            f"{stats['failures']} failing"
        )
    return 0


def _handle(args: argparse.Namespace) -> int:
    if args.until < args.since:
        print("radarlib rescan: --until is before --since", file=sys.stderr)
        return 2
    try:
        return rescan(args.config, args.radar, args.since, args.until)
    except RadarlibError as exc:
        print(f"radarlib rescan: {exc}", file=sys.stderr)
        return 2


def register(subparsers: Any) -> None:
    """Add the ``rescan`` sub-command."""
    parser = add_command(
        subparsers, "rescan", "list a period of the server again, download what is missing", __doc__
    )
    parser.add_argument("--config", "-c", required=True, help="the TOML config file")
    parser.add_argument("--radar", action="append", metavar="CODE", help="only this radar")
    parser.add_argument("--since", type=_moment, required=True, help="from (UTC, inclusive)")
    parser.add_argument("--until", type=_moment, required=True, help="to (UTC, inclusive)")
    parser.set_defaults(handler=_handle)
