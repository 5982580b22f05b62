"""``radarlib reprocess``: put volumes back in the processing queue, by status, radar and time.

    radarlib reprocess --status failed [--radar RMA1] [--since 2025-11-18T00:00:00Z]
                       [--until T] [--volume ID ...] [--dry-run] (--config FILE | --db FILE)

Each selected volume is reset with ``mark_volume_processing(volume_id, "pending")`` (attempts
back to 0, due now), so a running ``radarlib run`` (or the next one) converts it again and
rewrites its NetCDF. ``--status completed`` rewrites written volumes (e.g. after an
upgrade); ``--status expired`` lets incomplete volumes be written with the fields they have.
``--since``/``--until`` bound the volumes' observation time (inclusive).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from radarlib.cli import add_command, add_state_arguments
from radarlib.errors import ConfigError, RadarlibError
from radarlib.filename import parse_iso
from radarlib.status import status_targets

__all__ = ["register", "reprocess"]


def _moment(text: str) -> datetime:
    try:
        return parse_iso(text if "T" in text else f"{text}T00:00:00Z")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time such as 2025-11-18T00:00:00Z or 2025-11-18"
        ) from None


def reprocess(
    db_path: Path,
    status: str,
    *,
    radars: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    volume_ids: Sequence[str] | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Reset the matching volumes of one database to pending; their ids (oldest first)."""
    from radarlib.state.sqlite import SQLiteStateTracker

    if not db_path.is_file():
        raise ConfigError("--db", f"no state database at {db_path}")
    chosen: list[str] = []
    with SQLiteStateTracker(db_path) as tracker:
        scopes: list[str | None] = list(radars) if radars else [None]
        for radar in scopes:
            for row in tracker.get_volumes_by_status(status, radar_code=radar):
                moment = parse_iso(str(row["observation_datetime"]))
                if since is not None and moment < since:
                    continue
                if until is not None and moment > until:
                    continue
                if volume_ids and row["volume_id"] not in volume_ids:
                    continue
                chosen.append(str(row["volume_id"]))
        chosen.sort(key=lambda v: (v.split("_", 3)[-1], v))
        if not dry_run:
            for volume_id in chosen:
                if status == "expired":
                    tracker.allow_incomplete(volume_id)
                else:
                    tracker.mark_volume_processing(volume_id, "pending")
    return chosen


def _handle(args: argparse.Namespace) -> int:
    total = 0
    try:
        for db, radars in status_targets(args.config, [args.db] if args.db else [], args.radar):
            ids = reprocess(
                db,
                args.status,
                radars=radars,
                since=args.since,
                until=args.until,
                volume_ids=args.volume,
                dry_run=args.dry_run,
            )
            verb = "would reset" if args.dry_run else "reset"
            for volume_id in ids:
                print(
                    f"{volume_id}: {args.status} -> pending"
                    + (" (dry run)" if args.dry_run else "")
                )
            print(f"{db}: {verb} {len(ids)} {args.status} volume(s) to pending")
            total += len(ids)
    except RadarlibError as exc:
        print(f"radarlib reprocess: {exc}", file=sys.stderr)
        return 2
    if total and not args.dry_run:
        print("a running `radarlib run` converts them at its next poll; otherwise start one")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``reprocess`` sub-command."""
    parser = add_command(
        subparsers,
        "reprocess",
        "put failed (or completed, expired) volumes back to pending",
        __doc__,
    )
    add_state_arguments(parser)
    parser.add_argument(
        "--status",
        required=True,
        choices=["failed", "completed", "expired"],
        help="which volumes to reset",
    )
    parser.add_argument("--since", type=_moment, help="observation time from (UTC, inclusive)")
    parser.add_argument("--until", type=_moment, help="observation time to (UTC, inclusive)")
    parser.add_argument("--volume", action="append", metavar="ID", help="only this volume id")
    parser.add_argument("--dry-run", action="store_true", help="list, change nothing")
    parser.set_defaults(handler=_handle)
