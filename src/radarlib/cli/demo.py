"""``radarlib demo``: the whole pipeline against a local FTP server, then a table and a picture.

    radarlib demo [--output demo-output] [--volumes 3] [--no-samples]

Serves synthetic volumes of two radars (plus the real samples in ../shared/data/bufr when
that folder exists) on 127.0.0.1, downloads and converts them with the same daemons as
``radarlib run``, prints progress, a table of the volumes (radar, time, fields, status,
NetCDF path, seconds) and writes a quicklook PNG of DBZH. While it runs, the dashboard is
served on a free 127.0.0.1 port (the URL is printed); at the end one scrape of its
``/metrics`` is saved as ``metrics.txt`` in the output folder. Exit code 0 when every volume
was written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from radarlib.cli import add_command
from radarlib.errors import RadarlibError

__all__ = ["register"]


def _handle(args: argparse.Namespace) -> int:
    from radarlib.demo import run_demo

    samples: Path | bool = False if args.no_samples else (args.samples or True)
    try:
        report = run_demo(
            Path(args.output),
            volumes=args.volumes,
            samples=samples,
            timeout=args.timeout,
            log_level=args.log_level,
            log_format=args.log_format,
        )
    except RadarlibError as exc:
        print(f"radarlib demo: {exc}", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    from radarlib.cli.run import add_logging_arguments

    parser = add_command(
        subparsers,
        "demo",
        "run the whole pipeline on a local FTP server with synthetic and sample volumes",
        __doc__,
    )
    parser.add_argument(
        "--output", "-o", default="demo-output", help="folder for everything the demo writes"
    )
    parser.add_argument(
        "--volumes", "-n", type=int, default=3, help="synthetic volumes per radar (default 3)"
    )
    parser.add_argument(
        "--samples", type=Path, help="folder of real BUFR samples (default: ../shared/data/bufr)"
    )
    parser.add_argument("--no-samples", action="store_true", help="serve synthetic volumes only")
    parser.add_argument(
        "--timeout", type=float, default=110.0, help="give up after this many seconds (110)"
    )
    add_logging_arguments(parser)
    parser.set_defaults(handler=_handle)
