"""``radarlib dashboard``: a read-only web page, JSON and health check of the state database(s).

    radarlib dashboard --config radarlib.toml [--host 127.0.0.1] [--port 8080]
    radarlib dashboard --db /srv/radarlib/state.db [--db other.db] [--radar RMA1]
                       [--refresh 30] [--limit 10] [--max-download-age 900]
                       [--max-age 15] [--token-env RADARLIB_DASHBOARD_TOKEN]

Serves ``/`` (HTML, updates itself), ``/api/status`` (JSON, as ``radarlib status --json``),
``/metrics`` (Prometheus), ``/quicklook/<RADAR>.png`` and ``/healthz`` (200, or 503 with the
reasons when a state database cannot be read, with ``--max-download-age`` its newest download
is older than that many seconds, or with ``--max-age`` (or a config's ``[health]``) a radar's
newest download is older than that many minutes or it has none, by
:func:`radarlib.status.healthz`). It listens on 127.0.0.1 by default; binding another
address needs a token (``$RADARLIB_DASHBOARD_TOKEN`` or ``--token-env``), which every route
but ``/healthz`` then requires. ``--port 0`` picks a free port. The bound URL is printed on
stdout. SIGINT/SIGTERM stop it, exit code 0; 2 when the config cannot be read, the address
cannot be bound or a token is missing.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from radarlib.cli import add_command, add_state_arguments
from radarlib.errors import RadarlibError

__all__ = ["register"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _bounded(low: int, high: int | None = None) -> Callable[[str], int]:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            limits = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} must be {limits}")
        return value

    return check


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _handle(args: argparse.Namespace) -> int:
    from radarlib.dashboard import Dashboard, DashboardSettings
    from radarlib.logsetup import setup_logging
    from radarlib.status import status_targets

    setup_logging(args.log_level)
    max_age: float | None = args.max_age
    token_env = args.token_env or "RADARLIB_DASHBOARD_TOKEN"
    try:
        targets = status_targets(args.config, args.db or [], args.radar)
        health = status_targets(args.config, args.db or [], args.radar, enabled_only=True)
        if args.config:
            from radarlib.config import load_config

            config = load_config(args.config, resolve_secrets=False)
            if max_age is None:
                max_age = config.health.max_age_minutes
            token_env = args.token_env or config.operations.dashboard.token_env
    except RadarlibError as exc:
        print(f"radarlib dashboard: {exc}", file=sys.stderr)
        return 2
    token = os.environ.get(token_env) or None
    if token is None and not _loopback(args.host):
        print(
            f"radarlib dashboard: {args.host} is not a loopback address: set a token in "
            f"${token_env} (clients send 'Authorization: Bearer <token>'), or bind 127.0.0.1 "
            "behind a reverse proxy",
            file=sys.stderr,
        )
        return 2
    settings = DashboardSettings(
        targets=tuple(targets),
        health_targets=tuple(health),
        host=args.host,
        port=args.port,
        refresh_seconds=args.refresh,
        limit=args.limit,
        max_download_age=args.max_download_age,
        max_age_minutes=max_age,
        token=token,
    )
    dashboard = Dashboard(settings)
    try:
        dashboard.start()
    except OSError as exc:
        print(
            f"radarlib dashboard: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"radarlib dashboard: serving {dashboard.url} (read-only)", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        dashboard.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``dashboard`` sub-command."""
    parser = add_command(
        subparsers,
        "dashboard",
        "serve a read-only status page, /api/status (JSON) and /healthz over HTTP",
        __doc__,
    )
    add_state_arguments(parser, several_dbs=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_bounded(0, 65535), default=8080, help="TCP port, 0 = any free one"
    )
    parser.add_argument(
        "--refresh", type=_bounded(0), default=30, metavar="SECONDS",
        help="page refresh interval (default 30; 0 = off)",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=_bounded(1), default=10, help="entries per list (default 10)"
    )
    parser.add_argument(
        "--max-download-age", type=_seconds, metavar="SECONDS",
        help="/healthz fails when a database's newest download is older than this",
    )  # fmt: skip
    parser.add_argument(
        "--max-age", type=_seconds, metavar="MINUTES",
        help="/healthz fails naming each radar whose newest download is older than this, or "
        "that has none (default with --config: [health] max_age_minutes, 30)",
    )  # fmt: skip
    parser.add_argument(
        "--token-env", metavar="NAME",
        help="environment variable holding the access token (default RADARLIB_DASHBOARD_TOKEN);"
        " required to bind an address other than loopback",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (default INFO; DEBUG logs every request)",
    )  # fmt: skip
    parser.set_defaults(handler=_handle)
