"""``radarlib status``: what the pipeline has done, per radar, read from the state database.

    radarlib status --config radarlib.toml      # every state DB the config uses
    radarlib status --db /srv/radarlib/state.db [--radar RMA1] [--json] [--limit 10]

Shows per radar: downloaded files and the time of the last download, volumes per status;
then the incomplete volumes with the fields they miss (waiting or expired), the latest
failures with their messages (volumes that failed or wait for a retry, files whose download
failed), problems the daemons recorded (a ``volume_types`` field no radar produces, a file
with an unknown field) and fields left out of written volumes. ``--json`` prints the same as
one JSON document. Exit code 0; 2 when the config or
database cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from radarlib.cli import add_command, add_state_arguments
from radarlib.errors import RadarlibError
from radarlib.status import DatabaseStatus, RadarStatus, collect_status, status_targets

# DatabaseStatus, RadarStatus and collect_status live in radarlib.status (shared with
# `radarlib dashboard`); they stay importable from here.
__all__ = ["DatabaseStatus", "RadarStatus", "collect_status", "format_status", "register"]


def _when(text: object) -> str:
    return str(text).replace("T", " ").rstrip("Z") if text else "never"


def format_status(statuses: Sequence[DatabaseStatus]) -> str:
    """The human-readable report."""
    from radarlib.state.records import VOLUME_STATUSES

    out: list[str] = []
    for db in statuses:
        out.append(f"state database: {db.path}")
        if not db.radars:
            out.append("  (no radar has recorded anything yet)")
            out.append("")
            continue
        header = ["radar", "files", "last download (UTC)", *VOLUME_STATUSES]
        body = [
            [r.radar, str(r.files_downloaded), _when(r.last_download)]
            + [str(r.volumes.get(s, 0)) for s in VOLUME_STATUSES]
            for r in db.radars
        ]
        widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
        for line in [header, *body]:
            out.append("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        out.append("")
        if db.incomplete:
            out.append("incomplete volumes:")
            for v in db.incomplete:
                state = "expired" if v["status"] == "expired" else "waiting"
                out.append(
                    f"  {v['volume_id']}  {state}, missing {v['missing_fields']}"
                    f" (has {v['downloaded_fields'] or 'nothing'})"
                )
            out.append("")
        if db.failures:
            out.append("latest failures:")
            for v in db.failures:
                if v["status"] == "failed":
                    state = f"failed after {v['attempts']} attempt(s)"
                else:
                    state = f"retry at {_when(v['next_attempt_at'])}"
                out.append(f"  {v['volume_id']}  {state}: {v['error_message']}")
            out.append("")
        if db.download_failures:
            out.append("failed downloads:")
            for d in db.download_failures:
                out.append(
                    f"  {d['filename']}  {d['attempts']} attempt(s), next "
                    f"{_when(d['next_attempt_at'])}: {d['last_error']}"
                )
            out.append("")
        if db.problems:
            out.append("problems to look at:")
            for problem in db.problems:
                seen = f" ({problem['occurrences']}x, last {_when(problem['last_seen'])})"
                out.append(f"  {problem['radar_code']}  {problem['message']}{seen}")
            out.append("")
        if db.dropped_fields:
            out.append("fields left out of written volumes:")
            for d in db.dropped_fields:
                out.append(f"  {d['volume_id']}  {d['field']}: {d['error']}")
            out.append("")
        if not (db.incomplete or db.failures or db.download_failures or db.problems):
            out.append("no incomplete volumes, no failures")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _targets(args: argparse.Namespace) -> list[tuple[Path, list[str] | None]]:
    """(database, radars) pairs from --db or --config."""
    return status_targets(args.config, [args.db] if args.db else [], args.radar)


def _handle(args: argparse.Namespace) -> int:
    try:
        statuses = [collect_status(db, radars, limit=args.limit) for db, radars in _targets(args)]
    except RadarlibError as exc:
        print(f"radarlib status: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"databases": [asdict(s) for s in statuses]}, indent=2))
    else:
        sys.stdout.write(format_status(statuses))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``status`` sub-command."""
    parser = add_command(
        subparsers,
        "status",
        "volumes per radar and status, incomplete volumes, failures, last download",
        __doc__,
    )
    add_state_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--limit", type=int, default=10, help="entries per list (default 10)")
    parser.set_defaults(handler=_handle)
