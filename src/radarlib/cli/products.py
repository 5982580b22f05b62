"""``radarlib products``: (re)make the products of a period's converted volumes.

    radarlib products --config radarlib.toml --start 2025-11-18T00:00Z --end 2025-11-19T00:00Z
    radarlib products --config radarlib.toml --radar RMA1 --start … --end … --product colmax.tif

For every enabled radar (or ``--radar``), the products of the ``[products]`` table (or only
``--product NAME``) of the volumes completed in ``[start, end)`` are queued again in the
state database (done and failed ones too) and made in worker processes, with the same
claims, retries and atomic writes as ``radarlib run``; a running ``radarlib run`` may share
the work. Prints the rows per status of each radar; exit code 1 if any product failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any

from radarlib.cli import add_command
from radarlib.errors import RadarlibError
from radarlib.filename import parse_iso

__all__ = ["register", "run"]


def _moment(text: str) -> datetime:
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time: {exc}") from None


def register(subparsers: Any) -> None:
    """Add the ``products`` sub-command."""
    parser = add_command(subparsers, "products", "(re)make products for a period", __doc__)
    parser.add_argument("--config", "-c", required=True, help="the TOML config")
    parser.add_argument("--radar", action="append", metavar="CODE", help="only this radar")
    parser.add_argument("--start", type=_moment, required=True, help="first volume time (ISO)")
    parser.add_argument("--end", type=_moment, required=True, help="end (exclusive, ISO)")
    parser.add_argument(
        "--product", action="append", metavar="NAME", help="only this product (repeatable)"
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes")
    parser.set_defaults(handler=run)


def _one_radar(config: Any, code: str, args: argparse.Namespace) -> dict[str, int]:
    from dataclasses import replace

    from radarlib.pipeline.products import ProductDaemon
    from radarlib.state.products import ProductStore
    from radarlib.state.sqlite import SQLiteStateTracker

    daemon_config = config.product_config(code)
    settings = daemon_config.settings
    names = args.product or settings.product_names()
    unknown = sorted(set(names) - set(settings.product_names()))
    if unknown:
        raise RadarlibError(
            f"{code}: unknown product(s) {', '.join(unknown)} (configured: "
            f"{', '.join(settings.product_names())})"
        )
    with SQLiteStateTracker(daemon_config.state_db) as tracker:
        needs = {n: f for n, f in settings.required_fields().items() if n in names}
        queued = ProductStore(tracker).reset(code, needs, start=args.start, end=args.end)
    print(f"{code}: {queued} products queued for {args.start:%Y-%m-%dT%H:%MZ}..{args.end:%H:%MZ}")
    workers = args.workers or settings.max_concurrent
    daemon_config = replace(
        daemon_config,
        settings=replace(
            settings, max_concurrent=workers, poll_interval=0.5, retry_backoff_seconds=0.0
        ),
        enqueue=False,
        exit_when_idle=True,
        force=True,
    )
    daemon = ProductDaemon(daemon_config)
    asyncio.run(daemon.run())
    with SQLiteStateTracker(daemon_config.state_db) as tracker:
        return ProductStore(tracker).counts(code, start=args.start, end=args.end)


def run(args: argparse.Namespace) -> int:
    """Queue and make the period's products of each radar; 1 if any failed."""
    from radarlib.config import load_config

    if args.end <= args.start:
        print("radarlib products: --end must be after --start", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, resolve_secrets=False)
        radars = args.radar or [r.code for r in config.enabled_radars()]
        failed = False
        for code in radars:
            counts = _one_radar(config, code, args)
            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
            print(f"{code}: products {summary}")
            failed = failed or counts.get("failed", 0) > 0
    except RadarlibError as exc:
        print(f"radarlib products: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0
