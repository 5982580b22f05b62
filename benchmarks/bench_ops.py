"""Benchmark what the operations features cost on a year of one radar (1,000,000 download rows).

Builds the same ``state.db`` as ``bench_state.py`` (125,000 time steps of RMA1, 250,000
volumes, almost all processed), then measures the median of:

* one Prometheus scrape of the state collector (``/metrics``) while its per-minute totals are
  cached, and the first, cold scrape (totals and NetCDF sizes read: once a minute);
* ``radarlib status``'s data (``collect_status``), the baseline: what the dashboard already
  computes per request;
* one dashboard snapshot (``/api/status``: status plus newest observation and timeline);
* retention in dry-run mode: the first pass over the year (``keep_days = 30``: every file
  selected) and the steady state (an hourly pass finding about an hour of files).

Prints medians and ratios to the baseline measured in the same run; no bar is enforced.

    python benchmarks/bench_ops.py [--rows 1000000] [--reps 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench_state import RADAR, START, STEP, build
from radarlib.config import parse_config
from radarlib.dashboard import snapshot
from radarlib.filename import format_iso
from radarlib.metrics import make_registry, render
from radarlib.retention import run_cleanup
from radarlib.status import collect_status


def _median(func: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _mark_deleted_before(db: Path, cutoff: str | None) -> None:
    """Record every file observed before ``cutoff`` as deleted (None: undo every mark)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE downloads SET deleted_at = NULL WHERE deleted_at IS NOT NULL")
        conn.execute(
            "UPDATE volume_processing SET netcdf_deleted_at = NULL"
            " WHERE netcdf_deleted_at IS NOT NULL"
        )
        if cutoff is not None:
            conn.execute(
                "UPDATE downloads SET deleted_at = ? WHERE observation_datetime < ?",
                (cutoff, cutoff),
            )
            conn.execute(
                "UPDATE volume_processing SET netcdf_deleted_at = ? WHERE observation_datetime < ?",
                (cutoff, cutoff),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


def config_data(folder: Path, db: Path) -> dict[str, Any]:
    """A config of the benchmark's radar and database (the caller adds retention rules)."""
    return {
        "sources": {"main": {"host": "127.0.0.1"}},
        "radars": [{"code": RADAR, "start_date": "2024-01-01T00:00:00Z"}],
        "paths": {"root": str(folder), "state_db": str(db)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--keep", type=Path, help="build the database in this folder and keep it (or reuse it)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "state.db"
        if db.exists() and args.keep:
            print(f"reusing {db}")
            _mark_deleted_before(db, None)
        else:
            steps, seconds = build(db, args.rows)
            print(f"built {steps} time steps ({args.rows} download rows) in {seconds:.1f} s")

        registry = make_registry([(db, [RADAR])])
        t0 = time.perf_counter()
        render(registry)
        cold = time.perf_counter() - t0
        base = _median(lambda: collect_status(db, [RADAR]), args.reps)
        scrape = _median(lambda: render(registry), args.reps)
        snap = _median(lambda: snapshot([(db, [RADAR])]), args.reps)
        rules = {"bufr": {"keep_days": 30}, "netcdf": {"keep_days": 30}}
        config = parse_config({**config_data(folder, db), "retention": rules}, env={})
        dry = _median(lambda: run_cleanup(config, dry_run=True), max(3, args.reps // 2))
        selected = sum(k.files_deleted for k in run_cleanup(config, dry_run=True).kinds)
        # the steady state: earlier passes recorded everything older as deleted, an hourly
        # pass finds about one hour of files past the limit
        end = START + (args.rows // 8) * STEP
        _mark_deleted_before(db, format_iso(end - timedelta(hours=2)))
        days = (datetime.now(timezone.utc) - end + timedelta(hours=1)) / timedelta(days=1)
        rules = {"bufr": {"keep_days": days}, "netcdf": {"keep_days": days}}
        hourly = parse_config({**config_data(folder, db), "retention": rules}, env={})
        steady = _median(lambda: run_cleanup(hourly, dry_run=True), args.reps)
        found = sum(k.files_deleted for k in run_cleanup(hourly, dry_run=True).kinds)
    print(f"baseline collect_status (radarlib status): {base * 1000:8.1f} ms")
    print(
        f"/metrics scrape, warm:                     {scrape * 1000:8.1f} ms  x{scrape / base:.2f}"
    )
    print(f"/metrics scrape, cold (NetCDF sizes):      {cold * 1000:8.1f} ms  x{cold / base:.2f}")
    print(f"dashboard snapshot (/api/status):          {snap * 1000:8.1f} ms  x{snap / base:.2f}")
    print(f"retention, first pass ({selected} files): {dry * 1000:8.1f} ms  x{dry / base:.2f}")
    print(f"retention, hourly pass ({found} files): {steady * 1000:8.1f} ms  x{steady / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
