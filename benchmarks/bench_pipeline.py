"""Whole-pipeline throughput and latency: FTP server -> download daemon -> processing -> NetCDF.

    .venv/bin/python benchmarks/bench_pipeline.py [--volumes 40] [--latency-volumes 8]
                                                   [--poll 2] [--workers 1 2]

Synthetic 0315/02-sized volumes (VRAD + WRAD, 5 sweeps x 360 rays x 320 gates) are served by
pyftpdlib in a subprocess (tests/ftpserver.py, so it does not share our GIL). The download and
processing daemons run together in this process, sharing one state DB and event loop (the
combined pipeline of the original design's Example 2); conversions run in
``max_concurrent_processing`` worker processes. For each worker count, in a fresh folder:

* throughput: ``--volumes`` volumes land on the server at once (atomic renames); volumes per
  minute from the first landing to the last NetCDF written (bar: >= 30 with 2 workers);
* latency: ``--latency-volumes`` volumes land one at a time, each after the previous one was
  written; the time from a volume's last file landing to its NetCDF being written, median
  (bar: <= poll interval + 2 s), split into download (landing -> local file) and processing
  (local file -> NetCDF) parts.

Both daemons poll every ``--poll`` seconds; the download daemon takes a file in a still-open
hour once two listings a poll apart agree on its size, and wakes the processing daemon at
once when a volume completes. Timings on a shared 2-core machine are noisy: medians.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("PYART_QUIET", "1")

from radarlib.bufr.synthetic import write_synthetic_volume
from radarlib.filename import BufrFileName
from radarlib.io.ftp import (
    DateBasedDaemonConfig,
    DateBasedFTPDaemon,
    ProcessingDaemon,
    ProcessingDaemonConfig,
)
from radarlib.products.settings import ProductSettings
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "bench", "bench-secret"
GEOMETRY = {"nsweeps": 5, "nrays": 360, "ngates": 320}


@dataclass
class Volume:
    """One staged synthetic volume: its files and the NetCDF it should become."""

    files: list[Path]
    netcdf_name: str
    landed: float = 0.0


def stage(
    folder: Path,
    count: int,
    first: datetime,
    radar: str = "RMA1",
    volume_number: str = "02",
    fields: list[str] | None = None,
) -> list[Volume]:
    """Write ``count`` synthetic 0315/02 volumes (flat) to ``folder``, 20 s apart."""
    volumes = []
    for i in range(count):
        when = first + timedelta(seconds=20 * i)
        files = write_synthetic_volume(
            folder, radar, "0315", volume_number, when, fields, seed=i, **GEOMETRY
        )
        volumes.append(Volume(files, BufrFileName.parse(files[0].name).volume_key.netcdf_name))
    return volumes


def land(server_root: Path, volume: Volume) -> None:
    """Put a volume's files into the server tree with atomic renames; record when."""
    for path in volume.files:
        name = BufrFileName.parse(path.name)
        folder = server_root / name.remote_dir("/L2").lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = server_root / f".{path.name}.part"
        shutil.copyfile(path, tmp)
        os.replace(tmp, folder / path.name)
    volume.landed = time.time()


def start_server(root: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "ftpserver.py"),
            "--root",
            str(root),
            "--user",
            USER,
            "--password",
            PASSWORD,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def wait_for(paths: list[Path], timeout: float, tasks: list[asyncio.Task[None]]) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for task in tasks:
            if task.done():
                task.result()
                raise RuntimeError("a daemon stopped by itself")
        if time.monotonic() > deadline:
            missing = [p.name for p in paths if not p.exists()]
            raise TimeoutError(f"not written in {timeout}s: {missing[:3]} …")
        await asyncio.sleep(0.02)


#: with ``products``: 0315/01 volumes of DBZH alone (same geometry), so COLMAX and PPIs apply
PRODUCT_VOLUMES = {"volume_number": "01", "fields": ["DBZH"]}
PRODUCT_VOLUME_TYPES = {"0315": {"01": ["DBZH"], "02": ["VRAD", "WRAD"]}}


async def run_case(
    workers: int, args: argparse.Namespace, base: Path, *, products: bool | None = None
) -> dict[str, float]:
    """One worker count; ``products`` (default ``args.products``) runs the product stage too:
    throughput then counts until every volume's products are written (see bench_products)."""
    products = getattr(args, "products", False) if products is None else products
    kind = PRODUCT_VOLUMES if getattr(args, "product_volumes", False) or products else {}
    work = base / f"workers-{workers}{'-products' if products else ''}"
    server_root, out, bufr = work / "ftproot", work / "netcdf", work / "bufr"
    (server_root / "L2" / "RMA1").mkdir(parents=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # recent times (the download daemon re-lists the open hours), distinct per case
    first = now - timedelta(minutes=40) + timedelta(seconds=workers)
    staged = stage(work / "staging", args.volumes + args.latency_volumes, first, **kind)
    volume_types = PRODUCT_VOLUME_TYPES if kind else DEFAULT_VOLUME_TYPES
    burst, singles = staged[: args.volumes], staged[args.volumes :]
    proc, port = start_server(server_root)
    download = DateBasedFTPDaemon(
        DateBasedDaemonConfig(
            "127.0.0.1",
            port=port,
            username=USER,
            password=PASSWORD,
            radar_code="RMA1",
            local_download_dir=bufr,
            state_db=work / "state.db",
            start_date=now - timedelta(hours=1),
            volume_types=volume_types,
            poll_interval=args.poll,
            max_concurrent_downloads=4,
        )
    )
    processing = ProcessingDaemon(
        ProcessingDaemonConfig(
            local_bufr_dir=bufr,
            local_netcdf_dir=out,
            state_db=work / "state.db",
            volume_types=volume_types,
            radar_code="RMA1",
            poll_interval=args.poll,
            max_concurrent_processing=workers,
        )
    )
    daemons: list[Any] = [download, processing]
    product_dir = work / "products"
    if products:
        from radarlib.pipeline.products import ProductDaemon, ProductDaemonConfig

        settings = ProductSettings(enabled=True, poll_interval=args.poll)
        daemons.append(
            ProductDaemon(
                ProductDaemonConfig(
                    radar_code="RMA1", state_db=work / "state.db", output_dir=product_dir,
                    settings=settings,
                )
            )
        )  # fmt: skip
    names = ProductSettings().product_names() if products else []

    def outputs(volume: Volume) -> list[Path]:
        stem = Path(volume.netcdf_name).stem
        return [out / volume.netcdf_name] + [product_dir / f"{stem}_{n}" for n in names]

    tasks = [asyncio.create_task(d.run()) for d in daemons]
    try:
        await asyncio.sleep(max(4.0, 2 * args.poll))  # workers spawned and warm, first polls done
        t0 = time.time()
        for volume in burst:
            land(server_root, volume)
        expected = [p for v in burst for p in outputs(v)]
        await wait_for(expected, timeout=60 + 30 * len(burst), tasks=tasks)
        last = max(p.stat().st_mtime for p in expected)
        throughput = len(burst) / ((last - t0) / 60.0)

        totals, downloads, conversions = [], [], []
        for volume in singles:
            land(server_root, volume)
            target = out / volume.netcdf_name
            await wait_for(outputs(volume), timeout=60 + 10 * args.poll, tasks=tasks)
            written = target.stat().st_mtime
            local = max((bufr / p.name).stat().st_mtime for p in volume.files)
            totals.append(written - volume.landed)
            downloads.append(local - volume.landed)
            conversions.append(written - local)
            await asyncio.sleep(0.5 + (time.time() % args.poll))  # land at varied poll phases
        stats = processing.get_stats()
        assert stats["volumes_processed"] == len(staged), stats
        assert stats["volumes_failed"] == 0, stats
    finally:
        for daemon in daemons:
            daemon.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    return {
        "throughput": throughput,
        "latency": statistics.median(totals),
        "latency_max": max(totals),
        "download": statistics.median(downloads),
        "processing": statistics.median(conversions),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=40)
    parser.add_argument("--latency-volumes", type=int, default=8)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--products",
        action="store_true",
        help="also run the product stage (0315/01 DBZH volumes; see bench_products.py)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("radarlib.pipeline.processing").setLevel(logging.ERROR)
    print(
        f"pipeline: {args.volumes} + {args.latency_volumes} volumes 0315/02 "
        f"(VRAD+WRAD, {GEOMETRY['nsweeps']}x{GEOMETRY['nrays']}x{GEOMETRY['ngates']}), "
        f"poll {args.poll:g} s, {os.cpu_count()} CPUs"
    )
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        for workers in args.workers:
            r = results[workers] = asyncio.run(run_case(workers, args, Path(tmp)))
            print(
                f"  {workers} worker(s): {r['throughput']:6.1f} volumes/min; latency last file "
                f"landed -> NetCDF written: median {r['latency']:.2f} s (max "
                f"{r['latency_max']:.2f} s) = download {r['download']:.2f} s + processing "
                f"{r['processing']:.2f} s"
            )
    if 1 in results and 2 in results:
        print(
            f"  speed-up 2 vs 1 workers: {results[2]['throughput'] / results[1]['throughput']:.2f}x"
        )
    if 2 in results:
        ok_rate = results[2]["throughput"] >= 30
        ok_latency = results[2]["latency"] <= args.poll + 2
        print(f"  bar >= 30 volumes/min with 2 workers: {'PASS' if ok_rate else 'FAIL'}")
        print(
            f"  bar median latency <= poll + 2 s ({args.poll + 2:g} s): "
            f"{'PASS' if ok_latency else 'FAIL'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
