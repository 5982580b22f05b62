"""``radarlib run``: the download and processing daemons of every configured radar, in one process.

    radarlib run --config radarlib.toml [--radar RMA1] [--only download|processing]
                 [--log-level INFO] [--log-format text|json]

One task pair (download daemon, processing daemon) per enabled radar shares one event loop;
SIGINT or SIGTERM calls ``stop()`` on every daemon and the command exits 0 once they have shut
down cleanly (a second signal cancels them). A daemon that ends with an error (wrong FTP
credentials, a missing remote path, a bug) is logged with its radar, the other daemons are
stopped and the command exits 1; a configuration it refuses before starting exits 2.
Transient trouble (network, full disk, busy database) is retried inside the daemons.
``--only`` runs one kind of daemon, so downloads and processing can live in separate
processes (or hosts) on a shared state DB; ``--only processing`` needs no FTP password.
Beside the daemons it runs the config's housekeeping (radarlib.operations): retention every
``retention.interval_minutes``, notifications, and ``/metrics`` when ``metrics.listen`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from radarlib.cli import add_command
from radarlib.config import Config, load_config
from radarlib.errors import ConfigError
from radarlib.logsetup import setup_logging
from radarlib.operations import watcher
from radarlib.pipeline.supervisor import EXIT_CONFIG, Pipeline, Role, run_pipeline

__all__ = ["add_logging_arguments", "register"]


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``, overriding the config file's [logging] table."""
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        help="log level (default: the config's logging.level, else INFO)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text lines for people or JSON lines for collectors (default: logging.format)",
    )


def configure_logging(args: argparse.Namespace, config: Config | None) -> None:
    """Set up logging from the command line, falling back to the config file's settings."""
    level = args.log_level or (config.logging.level if config else "INFO")
    fmt = args.log_format or (config.logging.format if config else "text")
    setup_logging(level, fmt, secrets=config.secrets() if config else ())


def _handle(args: argparse.Namespace) -> int:
    try:
        # processing alone never talks to FTP: it needs no password
        config = load_config(args.config, resolve_secrets=args.only != "processing")
    except ConfigError as exc:
        print(f"radarlib run: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(args, config)
    roles: tuple[Role, ...] = (args.only,) if args.only else ("download", "processing")
    if "processing" not in roles:  # else each processing daemon warns (and records it)
        for warning in config.warnings:
            logging.getLogger("radarlib.run").warning("configuration: %s", warning)
    try:
        pipeline = Pipeline(config, radars=args.radar, roles=roles)
        housekeeping = watcher(config)  # retention, notifications, metrics (radarlib.operations)
    except ConfigError as exc:
        print(f"radarlib run: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(run_pipeline(pipeline, watcher=housekeeping))


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    parser = add_command(
        subparsers,
        "run",
        "run the download and processing daemons of the configured radars",
        __doc__,
    )
    parser.add_argument("--config", "-c", required=True, help="the TOML config file")
    parser.add_argument(
        "--radar",
        action="append",
        metavar="CODE",
        help="run only this radar (repeatable; default: every enabled radar)",
    )
    parser.add_argument(
        "--only",
        choices=["download", "processing"],
        help="run only one kind of daemon (to run them as separate processes)",
    )
    add_logging_arguments(parser)
    parser.set_defaults(handler=_handle)
