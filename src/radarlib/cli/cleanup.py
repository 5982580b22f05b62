"""``radarlib cleanup``: apply the config's ``[retention]`` rules now (or show what they would do).

    radarlib cleanup --config radarlib.toml [--dry-run] [--radar RMA1] [--json]

Deletes, per radar and kind (bufr, netcdf, products), files older than ``keep_days`` and the
oldest beyond ``max_gb``; a BUFR file only once its volume's NetCDF exists (or, by age, when
its volume failed). Rows stay in the state database with the deletion time, so a deleted file
is not downloaded again. ``--dry-run`` deletes nothing and lists what would go. Prints one
line per radar and kind (``--json``: the report as JSON). Exit code 0; 2 for a configuration
error; 3 when another cleanup is running on the same state database. ``radarlib run`` also
runs it every ``retention.interval_minutes``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from radarlib.cli import add_command
from radarlib.errors import ConfigError, RadarlibError

__all__ = ["register"]


def _handle(args: argparse.Namespace) -> int:
    from radarlib.config import load_config
    from radarlib.logsetup import setup_logging
    from radarlib.retention import CleanupBusyError, run_cleanup

    setup_logging(args.log_level)
    try:
        config = load_config(args.config, resolve_secrets=False)
        if not config.operations.retention.active:
            print("radarlib cleanup: no [retention] rule in the configuration; nothing to do")
            return 0
        report = run_cleanup(config, dry_run=args.dry_run, radars=args.radar)
    except CleanupBusyError as exc:
        print(f"radarlib cleanup: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"radarlib cleanup: configuration error: {exc}", file=sys.stderr)
        return 2
    except RadarlibError as exc:
        print(f"radarlib cleanup: {exc}", file=sys.stderr)
        return 2
    if args.json:
        data = {"dry_run": report.dry_run, "started_at": report.started_at,
                "folders_removed": report.folders_removed, "kinds": report.summary()}  # fmt: skip
        if args.dry_run:
            data["would_delete"] = [p for k in report.kinds for p in k.deleted]
        print(json.dumps(data, indent=2))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    for kind in report.kinds:
        held = f", {kind.held_unconverted} held until converted" if kind.held_unconverted else ""
        budget = "" if kind.budget_percent is None else f", {kind.budget_percent:.0f}% of budget"
        print(
            f"{kind.radar} {kind.kind}: {verb} {kind.files_deleted} files "
            f"({kind.bytes_deleted / 1e6:.1f} MB), kept {kind.files_kept}"
            + ("" if kind.bytes_kept is None else f" ({kind.bytes_kept / 1e6:.1f} MB{budget})")
            + held
        )
        if args.dry_run:
            for path in kind.deleted:
                print(f"  {path}")
    if not args.dry_run:
        print(f"empty folders removed: {report.folders_removed}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``cleanup`` sub-command."""
    parser = add_command(
        subparsers, "cleanup", "delete old archive files by the [retention] rules", __doc__
    )
    parser.add_argument("--config", "-c", required=True, help="the TOML config file")
    parser.add_argument("--radar", action="append", metavar="CODE", help="only this radar")
    parser.add_argument("--dry-run", action="store_true", help="delete nothing; list what would go")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (default WARNING)",
    )  # fmt: skip
    parser.set_defaults(handler=_handle)
