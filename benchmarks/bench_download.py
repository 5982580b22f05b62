"""The download daemon over an emulated WAN, beside a plain sequential aioftp loop (same run).

    .venv/bin/python benchmarks/bench_download.py [--files 200] [--rtt 0.04] [--repeats 3]
        [--poll 2] [--latency-files 8] [--no-fail]

Exits 1 when a bar is missed (``--no-fail``: report only).

A pyftpdlib server (tests/ftpserver.py, its own process, a thread per connection) waits one
round trip (``--rtt``, 40 ms by default) before each reply and before each data connection,
as a radar link does; the files have the network's real sizes (the six RMA11 sample sizes,
1.7 MB down to 110 kB, one volume of six fields every five minutes) and are whole BUFR
envelopes. Each repeat moves the same ``--files`` backlog with

- the plain loop: one aioftp connection, MLSD of each folder, ``download_stream`` of each
  file into a local file, nothing else (no verification, no database);
- the daemon with ``max_concurrent_downloads=4`` (a date range: it returns when done), with
  everything it does per file (BUFR envelope check, sha256, fsync, rename, SQLite rows).

Bar: the daemon moves the backlog >= 3x faster than the plain loop (median of the per-repeat
ratios). CPU seconds per file are the client process's, over the daemon's run.
Latency: a continuous daemon polls every ``--poll`` s while whole files appear one at a time
(atomic rename into the server tree) at random moments; from a file's appearance to its row
in the state database, median. Bar: <= poll interval + 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aioftp

from radarlib.filename import BufrFileName
from radarlib.io.ftp import DateBasedDaemonConfig, DateBasedFTPDaemon
from radarlib.state.sqlite import SQLiteStateTracker

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "bench", "bench-secret"
#: the RMA11 samples' fields and sizes (bytes): the network's real files
FILES = (
    ("DBZH", 1_732_158),
    ("DBZV", 1_674_160),
    ("ZDR", 1_636_994),
    ("KDP", 110_328),
    ("VRAD", 782_904),
    ("WRAD", 721_950),
)
DAY = datetime(2025, 1, 1, tzinfo=timezone.utc)
TYPES = {"0315": {"01": ["DBZH", "DBZV", "ZDR", "KDP"], "02": ["VRAD", "WRAD"]}}


def bufr(size: int) -> bytes:
    """Random content in a whole BUFR envelope (section 0 length, ``7777`` at the end)."""
    return b"BUFR" + size.to_bytes(3, "big") + b"\x04" + os.urandom(size - 12) + b"7777"


def name_of(field: str, moment: datetime) -> BufrFileName:
    volume = "02" if field in ("VRAD", "WRAD") else "01"
    return BufrFileName("RMA1", "0315", volume, field, moment)


def publish(root: Path, name: BufrFileName, data: bytes) -> Path:
    """Write a file into the server tree atomically (it appears whole)."""
    folder = root / name.remote_dir("/L2").lstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder.parent / f".{name.name}.tmp"
    temp.write_bytes(data)
    os.replace(temp, folder / name.name)
    return folder / name.name


def build_backlog(root: Path, count: int) -> list[str]:
    names = []
    for i in range(count):
        field, size = FILES[i % len(FILES)]
        moment = DAY + timedelta(minutes=5 * (i // len(FILES)))
        name = name_of(field, moment)
        publish(root, name, bufr(size))
        names.append(name.name)
    return names


def start_server(root: Path, rtt: float) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, FTP_TEST_PASSWORD=PASSWORD)
    server = [sys.executable, str(ROOT / "tests" / "ftpserver.py"), "--root", str(root)]
    proc = subprocess.Popen(
        [*server, "--user", USER, "--rtt", str(rtt)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit(f"the test FTP server did not start: {line!r}")
    return proc, int(line)


async def plain_loop(port: int, out: Path) -> int:
    """The baseline: one connection, list each folder, download each file in turn."""
    count = 0
    async with aioftp.Client.context("127.0.0.1", port, USER, PASSWORD) as client:
        hours = []
        async for path, info in client.list("/L2/RMA1/2025/01/01"):
            if info["type"] == "dir":
                hours.append(path)
        for hour in sorted(hours):
            folders = [p for p, info in await client.list(hour) if info["type"] == "dir"]
            for folder in sorted(folders):
                files = [p for p, info in await client.list(folder) if info["type"] == "file"]
                for remote in files:
                    with open(out / remote.name, "wb") as handle:
                        async with client.download_stream(remote) as stream:
                            async for block in stream.iter_by_block(65536):
                                handle.write(block)
                    count += 1
    return count


def daemon_config(port: int, work: Path, **kw: object) -> DateBasedDaemonConfig:
    options: dict[str, object] = {
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "radar_code": "RMA1",
        "local_download_dir": work / "dl",
        "state_db": work / "state.db",
        "volume_types": TYPES,
        "max_concurrent_downloads": 4,
        "retry_backoff": 0.2,
        "rescan_days": 0,
    }
    options.update(kw)
    return DateBasedDaemonConfig("127.0.0.1", **options)  # type: ignore[arg-type]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_daemon(port: int, work: Path, files: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds per file for the daemon to take the whole backlog."""
    end = DAY + timedelta(minutes=5 * ((files - 1) // len(FILES)))
    config = daemon_config(port, work, start_date=DAY, end_date=end, poll_interval=1.0)
    daemon = DateBasedFTPDaemon(config)
    cpu, started = cpu_seconds(), time.perf_counter()
    asyncio.run(daemon.run())
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    done = daemon.get_stats()["files_downloaded"]
    if done != files:
        raise SystemExit(f"the daemon took {done} of {files} files")
    return wall, cpu / files


def measure_latency(root: Path, port: int, work: Path, poll: float, count: int) -> list[float]:
    """Seconds from a whole file's appearance to its database row, one file at a time."""
    config = daemon_config(port, work, poll_interval=poll, lookback_hours=1.0)
    daemon = DateBasedFTPDaemon(config)
    thread = threading.Thread(target=lambda: asyncio.run(daemon.run()), daemon=True)
    thread.start()
    latencies: list[float] = []
    rng = random.Random(7)
    try:
        while not config.state_db.exists() or daemon.get_stats()["polls"] < 2:
            time.sleep(0.05)
        with SQLiteStateTracker(config.state_db) as tracker:
            for i in range(count):
                time.sleep(rng.uniform(0.0, poll))
                field, size = FILES[i % len(FILES)]
                now = datetime.now(timezone.utc).replace(microsecond=0)
                name = name_of(field, now - timedelta(seconds=30))
                data = bufr(size)
                appeared = time.perf_counter()
                publish(root, name, data)
                while not tracker.is_downloaded(name.name):
                    time.sleep(0.01)
                    if time.perf_counter() - appeared > 10 * poll + 30:
                        raise SystemExit(f"{name} was not taken")
                latencies.append(time.perf_counter() - appeared)
    finally:
        daemon.stop()
        thread.join(30)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rtt", type=float, default=0.04)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--latency-files", type=int, default=8)
    parser.add_argument("--no-fail", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    base = Path(tempfile.mkdtemp(prefix="bench-download-"))
    server, port = start_server(base / "server", args.rtt)
    try:
        build_backlog(base / "server", args.files)
        plain, daemon, cpu = [], [], []
        for repeat in range(args.repeats):
            for which in ("plain", "daemon") if repeat % 2 == 0 else ("daemon", "plain"):
                work = base / f"run-{repeat}-{which}"
                work.mkdir()
                if which == "plain":
                    (work / "dl").mkdir()
                    started = time.perf_counter()
                    taken = asyncio.run(plain_loop(port, work / "dl"))
                    plain.append(time.perf_counter() - started)
                    if taken != args.files:
                        raise SystemExit(f"the plain loop took {taken} of {args.files} files")
                else:
                    wall, per_file = run_daemon(port, work, args.files)
                    daemon.append(wall)
                    cpu.append(per_file)
                shutil.rmtree(work)
        ratios = [p / d for p, d in zip(plain, daemon, strict=True)]
        latency = measure_latency(
            base / "server", port, base / "latency", args.poll, args.latency_files
        )
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(30)
        shutil.rmtree(base, ignore_errors=True)

    ratio, lat = statistics.median(ratios), statistics.median(latency)
    print(f"backlog: {args.files} files, rtt {args.rtt * 1000:.0f} ms, {args.repeats} repeats")
    print(f"  plain sequential aioftp loop  median {statistics.median(plain):7.2f} s  {plain}")
    print(f"  daemon, 4 connections         median {statistics.median(daemon):7.2f} s")
    print(f"  speed-up (per-repeat ratios)  median {ratio:7.2f} x   bar >= 3.0")
    print(f"  daemon CPU per file           median {statistics.median(cpu) * 1000:7.1f} ms")
    print(f"latency (poll {args.poll:g} s): median {lat:.2f} s over {len(latency)} files, "
          f"max {max(latency):.2f} s   bar <= {args.poll + 1:.1f} s")  # fmt: skip
    ok = ratio >= 3.0 and lat <= args.poll + 1.0
    print("bars met" if ok else "BAR MISSED")
    return 0 if ok or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
