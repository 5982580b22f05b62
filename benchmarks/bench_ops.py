"""Benchmark what the operations features cost on a year of one radar (1,000,000 download rows).

Builds the same ``state.db`` as ``bench_state.py`` (125,000 time steps of RMA1, 250,000
volumes, almost all processed), then measures the median of:

* one Prometheus scrape of the state collector (``/metrics``) while its per-minute totals are
  cached, and the first, cold scrape (totals and NetCDF sizes read: once a minute);
* ``radarlib status``'s data (``collect_status``), the baseline: what the dashboard already
  computes per request;
* one dashboard snapshot (``/api/status``: status plus newest observation and timeline);
* one retention pass in dry-run mode (``keep_days = 30``: ~240,000 volumes' files selected).

Prints medians and ratios to the baseline measured in the same run; no bar is enforced.

    python benchmarks/bench_ops.py [--rows 1000000] [--reps 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_state import RADAR, build
from radarlib.config import parse_config
from radarlib.dashboard import snapshot
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
        config = parse_config(
            {
                "sources": {"main": {"host": "127.0.0.1"}},
                "radars": [{"code": RADAR, "start_date": "2024-01-01T00:00:00Z"}],
                "paths": {"root": str(folder), "state_db": str(db)},
                "retention": {"bufr": {"keep_days": 30}, "netcdf": {"keep_days": 30}},
            },
            env={},
        )
        dry = _median(lambda: run_cleanup(config, dry_run=True), max(3, args.reps // 2))
        selected = sum(k.files_deleted for k in run_cleanup(config, dry_run=True).kinds)
    print(f"baseline collect_status (radarlib status): {base * 1000:8.1f} ms")
    print(
        f"/metrics scrape, warm:                     {scrape * 1000:8.1f} ms  x{scrape / base:.2f}"
    )
    print(f"/metrics scrape, cold (NetCDF sizes):      {cold * 1000:8.1f} ms  x{cold / base:.2f}")
    print(f"dashboard snapshot (/api/status):          {snap * 1000:8.1f} ms  x{snap / base:.2f}")
    print(f"retention dry run ({selected} files):     {dry * 1000:8.1f} ms  x{dry / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
