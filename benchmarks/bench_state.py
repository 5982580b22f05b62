"""Benchmark the state store's hot paths on a year of one radar (1,000,000 download rows).

Builds ``state.db`` with 125,000 time steps of RMA1 (volume 0315/01 with 6 fields and
0315/02 with 2 fields each: 1,000,000 files, 250,000 volumes, almost all processed), then
measures the median of:

* ``mark_downloaded`` of a file that completes its volume (the daemon's hot path: record
  the file and learn which volume became ready), and of a file that completes nothing;
* ``get_complete_unprocessed_volumes()`` with a realistic handful of volumes ready;
* a plain ``SELECT * FROM downloads WHERE id = ?`` (primary key) on the same file, in the
  same run, as the baseline.

Bar (issue 4): both hot paths under 20x the primary-key lookup, i.e. index-backed, no scans.

    python benchmarks/bench_state.py [--rows 1000000] [--reps 300] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from radarlib.filename import BufrFileName, VolumeKey, format_iso
from radarlib.state.sqlite import SQLiteStateTracker
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

RADAR = "RMA1"
STRATEGY = "0315"
FIELDS = {num: sorted(fields) for num, fields in DEFAULT_VOLUME_TYPES[STRATEGY].items()}
STEP = timedelta(minutes=5)
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
BAR = 20.0


def _rows(steps: int, now: str) -> Iterator[tuple[tuple[object, ...], list[tuple[object, ...]]]]:
    """(volume row, its download rows) for every volume of ``steps`` time steps, in time order."""
    for step in range(steps):
        moment = START + step * STEP
        iso = format_iso(moment)
        for number, fields in FIELDS.items():
            key = VolumeKey(RADAR, STRATEGY, number, moment)
            joined = ",".join(fields)
            volume = (
                key.volume_id,
                RADAR,
                STRATEGY,
                number,
                iso,
                "completed",
                1,
                joined,
                joined,
                "",
                now,
                f"/nc/{key.netcdf_name}",
                now,
                now,
                now,
                now,
                now,
            )
            names = [BufrFileName(RADAR, STRATEGY, number, f, moment).name for f in fields]
            folder = key.bufr_name(fields[0]).remote_dir("/L2")
            files = [
                (
                    name,
                    f"{folder}/{name}",
                    f"/data/{name}",
                    1_700_000,
                    "0" * 64,
                    RADAR,
                    STRATEGY,
                    number,
                    field,
                    iso,
                    key.volume_id,
                    now,
                    now,
                    now,
                )
                for name, field in zip(names, fields, strict=True)
            ]
            yield volume, files


def build(db: Path, rows: int) -> tuple[int, float]:
    """Create the schema with the tracker, then bulk-load ``rows`` downloads in one transaction."""
    SQLiteStateTracker(db).close()
    per_step = sum(len(f) for f in FIELDS.values())
    steps = rows // per_step
    now = format_iso(datetime.now(timezone.utc))
    t0 = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN IMMEDIATE")
    # Load without secondary indexes, then create them (same definitions) in the transaction.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    volume_sql = (
        "INSERT INTO volume_processing(volume_id, radar_code, vol_code, vol_number,"
        " observation_datetime, status, is_complete, expected_fields, downloaded_fields,"
        " missing_fields, next_attempt_at, netcdf_path, completed_at, last_file_at, created_at,"
        " updated_at, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    download_sql = (
        "INSERT INTO downloads(filename, remote_path, local_path, file_size, checksum, radar_code,"
        " vol_code, vol_number, field, observation_datetime, volume_id, status, attempts,"
        " downloaded_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'downloaded', 1, ?, ?, ?)"
    )
    batch_v: list[tuple[object, ...]] = []
    batch_d: list[tuple[object, ...]] = []
    for volume, files in _rows(steps, now):
        batch_v.append(volume)
        batch_d.extend(files)
        if len(batch_d) >= 50_000:
            conn.executemany(volume_sql, batch_v)
            conn.executemany(download_sql, batch_d)
            batch_v, batch_d = [], []
    conn.executemany(volume_sql, batch_v)
    conn.executemany(download_sql, batch_d)
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return steps, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Build the database, time the hot paths, print medians and ratios; 1 if over the bar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--keep", type=Path, default=None, help="build in this folder, keep it")
    args = parser.parse_args(argv)
    reps = max(200, args.reps)

    with tempfile.TemporaryDirectory(prefix="bench_state_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "state.db"
        for leftover in folder.glob("state.db*"):
            leftover.unlink()
        steps, seconds = build(db, args.rows)

        tracker = SQLiteStateTracker(db)
        total = tracker.count()
        print(f"built {db.name}: {total:,} download rows, {2 * steps:,} volumes in {seconds:.1f} s")

        # Future volumes: 0315/02 with VRAD already recorded; timed calls record WRAD, which
        # completes the volume. 5 of them are left ready (as if the processing daemon had
        # handled the rest) before the timing starts, and the daemon's work is kept up with
        # between repetitions (untimed), so get_complete_unprocessed_volumes sees ~5 ready.
        future = [START + (steps + i) * STEP for i in range(reps + 5)]
        two = FIELDS["02"]
        for moment in future:
            name = BufrFileName(RADAR, STRATEGY, "02", two[0], moment).name
            tracker.mark_downloaded(
                name, f"/L2/{name}", f"/data/{name}", 1, None, expected_fields=two
            )
        ready_ids = [VolumeKey(RADAR, STRATEGY, "02", m).volume_id for m in future]
        for vid in ready_ids[:5]:
            tracker.register_volume(vid, RADAR, STRATEGY, "02", vid[-20:], two, is_complete=True)

        def record_completing(i: int) -> None:
            name = BufrFileName(RADAR, STRATEGY, "02", two[1], future[5 + i]).name
            done = tracker.mark_downloaded(
                name, f"/L2/{name}", f"/data/{name}", 1, None, expected_fields=two
            )
            if done != [ready_ids[5 + i]]:
                raise SystemExit(f"{name} should have completed its volume, got {done}")

        def record_plain(i: int) -> None:
            moment = START + (steps + reps + 5 + i) * STEP
            name = BufrFileName(RADAR, STRATEGY, "01", FIELDS["01"][0], moment).name
            if tracker.mark_downloaded(
                name, f"/L2/{name}", f"/data/{name}", 1, None, expected_fields=FIELDS["01"]
            ):
                raise SystemExit(f"{name} completed a volume it cannot complete")

        plain = sqlite3.connect(db)
        rng = random.Random(7)

        def pk_lookup(_i: int) -> None:
            key = rng.randint(1, total)
            plain.execute("SELECT * FROM downloads WHERE id = ?", (key,)).fetchone()

        timed: dict[str, list[float]] = {}

        def clock(label: str, fn: Callable[[int], object], i: int) -> None:
            t0 = time.perf_counter()
            fn(i)
            timed.setdefault(label, []).append(time.perf_counter() - t0)

        # Interleaved, so machine noise hits every operation and the baseline alike.
        ready_counts = []
        for i in range(reps):
            for _ in range(3):
                clock("pk", pk_lookup, i)
            clock("complete", record_completing, i)
            clock("plain", record_plain, i)
            ready_counts.append(len(tracker.get_complete_unprocessed_volumes()))
            clock("ready", lambda _i: tracker.get_complete_unprocessed_volumes(), i)
            clock("ready_radar", lambda _i: tracker.get_complete_unprocessed_volumes(RADAR), i)
            tracker.mark_volume_processing(ready_ids[i], "completed", netcdf_path="/nc/x.nc")
        # The same lookup back to back (warm page cache, no writes in between): usually the
        # faster baseline; the ratios use the faster of the two.
        for i in range(reps * 3):
            clock("pk_block", pk_lookup, i)
        plain.close()
        tracker.close()

    med = {label: statistics.median(values) * 1e6 for label, values in timed.items()}
    pk = min(med["pk"], med["pk_block"])
    mark_complete, mark_plain = med["complete"], med["plain"]
    get_ready, get_ready_radar = med["ready"], med["ready_radar"]
    ready_count = round(statistics.median(ready_counts))
    print(f"{'operation':58s} {'median':>10s} {'x PK':>7s}")
    rows = [
        ("primary-key SELECT, interleaved with the writes", med["pk"]),
        ("primary-key SELECT, back to back", med["pk_block"]),
        ("mark_downloaded, completes its volume -> [volume_id]", mark_complete),
        ("mark_downloaded, completes nothing -> []", mark_plain),
        (f"get_complete_unprocessed_volumes() ({ready_count} ready)", get_ready),
        (f"get_complete_unprocessed_volumes('{RADAR}')", get_ready_radar),
    ]
    for label, value in rows:
        print(f"{label:58s} {value:8.1f} us {value / pk:6.1f}x")
    worst = max(mark_complete, mark_plain, get_ready, get_ready_radar) / pk
    verdict = "PASS" if worst < BAR else "FAIL"
    print(
        f"{verdict}: worst hot path {worst:.1f}x the faster primary-key lookup "
        f"({pk:.1f} us; bar {BAR:.0f}x)"
    )
    return 0 if worst < BAR else 1


if __name__ == "__main__":
    sys.exit(main())
