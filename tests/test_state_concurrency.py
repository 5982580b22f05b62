"""Several processes on one state file: exclusive claims, and SIGKILL in mid-transaction."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import sqlite3
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from radarlib.filename import BufrFileName, VolumeKey
from radarlib.state.records import split_fields
from radarlib.state.sqlite import SQLiteStateTracker

T0 = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
VOL02 = ["VRAD", "WRAD"]
SPAWN = mp.get_context("spawn")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _when(i: int) -> datetime:
    return T0 + timedelta(minutes=5 * i)


# --------------------------------------------------------------------------- child processes


def _claimer(db: str, worker: str, start: object, results: object) -> None:
    """Claim small random batches until none is left; finish each; report what it took."""
    rng = random.Random(worker)
    taken: list[str] = []
    error = ""
    try:
        with SQLiteStateTracker(db, timeout=120) as tracker:
            start.wait()  # type: ignore[attr-defined]
            while batch := tracker.claim_volumes(worker, rng.randint(1, 7)):
                for volume in batch:
                    taken.append(volume["volume_id"])
                    tracker.finish_volume(volume["volume_id"], worker, f"/nc/{worker}.nc")
    except Exception as exc:  # reported to the parent, which fails the test with it
        error = repr(exc)
    results.put((worker, taken, error))  # type: ignore[attr-defined]


def _long_raw_batch(db: str, flag: str) -> None:
    """One BEGIN IMMEDIATE batch of valid rows that never commits (small cache: spills to WAL)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    conn.execute("PRAGMA cache_size = 8")
    conn.execute("BEGIN IMMEDIATE")
    now = "2025-11-18T12:30:00Z"
    i = 0
    while True:
        key = VolumeKey("RMA9", "0315", "02", _when(i))
        conn.execute(
            "INSERT INTO volume_processing(volume_id, radar_code, vol_code, vol_number,"
            " observation_datetime, status, next_attempt_at, created_at, updated_at)"
            " VALUES (?, 'RMA9', '0315', '02', ?, 'pending', ?, ?, ?)",
            (key.volume_id, key.volume_id[-20:], now, now, now),
        )
        for field in VOL02:
            filename = key.bufr_name(field).name
            conn.execute(
                "INSERT INTO downloads(filename, remote_path, radar_code, vol_code, vol_number,"
                " field, observation_datetime, volume_id, status, created_at, updated_at)"
                " VALUES (?, ?, 'RMA9', '0315', '02', ?, ?, ?, 'downloaded', ?, ?)",
                (filename, "/L2/" + "x" * 300, field, key.volume_id[-20:], key.volume_id, now, now),
            )
        i += 1
        if i == 2000:
            Path(flag).write_text(str(i))
        if i > 2000:
            time.sleep(0.001)


def _record_forever(db: str, flag: str) -> None:
    """Record files through the tracker as fast as possible, forever."""
    with SQLiteStateTracker(db, timeout=60) as tracker:
        i = 0
        while True:
            for field in VOL02:
                filename = BufrFileName("RMA1", "0315", "02", field, _when(i)).name
                tracker.mark_downloaded(filename, "/r", "/l", 1, None, expected_fields=VOL02)
            i += 1
            if i == 30:
                Path(flag).write_text("go")


def _wait_for(flag: Path, process: mp.process.BaseProcess, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not flag.exists():
        assert process.is_alive(), f"child died early (exit code {process.exitcode})"
        assert time.monotonic() < deadline, "child never signalled"
        time.sleep(0.01)


def _kill(process: mp.process.BaseProcess) -> None:
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    assert process.exitcode == -signal.SIGKILL


# --------------------------------------------------------------------------- tests


def test_four_processes_claim_each_of_1000_volumes_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    ids = []
    with SQLiteStateTracker(db) as tracker:
        for i in range(1000):
            key = VolumeKey("RMA1", "0315", "02", _when(i))
            tracker.register_volume(
                key.volume_id, "RMA1", "0315", "02", _when(i), VOL02, is_complete=True
            )
            ids.append(key.volume_id)
        assert len(tracker.get_complete_unprocessed_volumes()) == 1000

    start = SPAWN.Event()
    results = SPAWN.Queue()
    workers = [f"proc-{n}" for n in range(4)]
    procs = [SPAWN.Process(target=_claimer, args=(str(db), w, start, results)) for w in workers]
    for p in procs:
        p.start()
    start.set()
    reports = [results.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [error for _, _, error in reports if error] == []
    taken = {worker: volumes for worker, volumes, _ in reports}

    claimed = [v for w in workers for v in taken[w]]
    assert len(claimed) == 1000  # none twice ...
    assert sorted(claimed) == sorted(ids)  # ... none lost
    assert sum(1 for w in workers if taken[w]) >= 2  # they really competed
    with SQLiteStateTracker(db) as tracker:
        assert tracker.count_volumes_by_status()["completed"] == 1000
        owner = {v: w for w in workers for v in taken[w]}
        for volume in tracker.get_volumes_by_status("completed"):
            assert volume["attempts"] == 1
            assert volume["netcdf_path"] == f"/nc/{owner[volume['volume_id']]}.nc"
        assert tracker.integrity_check() == []


def test_sigkill_mid_transaction_leaves_a_consistent_database(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for field in VOL02:
            tracker.mark_downloaded(
                BufrFileName("RMA1", "0315", "02", field, T0).name,
                "/r",
                "/l",
                1,
                None,
                expected_fields=VOL02,
            )
        before = tracker.count()
        flag = tmp_path / "flag"
        child = SPAWN.Process(target=_long_raw_batch, args=(str(db), str(flag)))
        child.start()
        _wait_for(flag, child)
        wal = Path(f"{db}-wal").stat().st_size
        assert wal > 1_000_000  # the half batch really reached the disk
        _kill(child)

        # the same tracker, and a fresh one, see exactly the committed state
        assert tracker.count() == before
        with SQLiteStateTracker(db, timeout=5) as fresh:
            assert fresh.integrity_check() == []
            assert fresh.count() == before
            assert fresh.count_volumes_by_status("RMA9") == dict.fromkeys(
                ("pending", "processing", "completed", "failed", "expired"), 0
            )
            assert fresh.get_files_by_date_range(T0, T0 + timedelta(days=30), "RMA9") == []
            # the write lock died with the child: writing works at once
            assert (
                fresh.mark_downloaded(
                    BufrFileName("RMA1", "0315", "02", "VRAD", _when(1)).name,
                    "/r",
                    "/l",
                    1,
                    None,
                    expected_fields=VOL02,
                )
                == []
            )
            [claimed] = fresh.claim_volumes("after-crash", 5)
            assert claimed["volume_id"] == VolumeKey("RMA1", "0315", "02", T0).volume_id


def test_sigkill_while_recording_keeps_files_and_volumes_in_step(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SQLiteStateTracker(db).close()
    flag = tmp_path / "flag"
    child = SPAWN.Process(target=_record_forever, args=(str(db), str(flag)))
    child.start()
    _wait_for(flag, child)
    time.sleep(random.uniform(0.05, 0.3))
    _kill(child)

    with SQLiteStateTracker(db, timeout=5) as tracker:
        assert tracker.integrity_check() == []
        volumes = tracker.get_volumes_by_status("pending")
        assert len(volumes) >= 30
        for volume in volumes:
            # every recorded file is in its volume, and nothing else: no half transaction
            files = {f["field"] for f in tracker.get_volume_files(volume["volume_id"])}
            assert split_fields(volume["downloaded_fields"]) == files
            assert volume["is_complete"] == (1 if files == set(VOL02) else 0)
        complete = [v for v in volumes if v["is_complete"]]
        assert len(complete) == len(tracker.get_complete_unprocessed_volumes())
        # recording carries on where the child stopped
        last = max(
            int(
                (
                    datetime.fromisoformat(v["observation_datetime"][:-1]) - T0.replace(tzinfo=None)
                ).total_seconds()
                // 300
            )
            for v in volumes
        )
        for field in VOL02:
            tracker.mark_downloaded(
                BufrFileName("RMA1", "0315", "02", field, _when(last)).name,
                "/r",
                "/l",
                1,
                None,
                expected_fields=VOL02,
            )
        assert (
            tracker.get_volume(VolumeKey("RMA1", "0315", "02", _when(last)).volume_id)[
                "is_complete"
            ]
            == 1
        )


def test_daemons_opening_a_new_database_together_all_get_it(tmp_path: Path) -> None:
    """Regression (CI, session 3): two daemons starting on a fresh file at once.

    Switching a new file to WAL may answer "database is locked" at once, without the busy
    handler; the opener must wait and retry instead of failing its daemon.
    """
    failures: list[str] = []
    for round_ in range(150):
        db = tmp_path / f"fresh{round_}.db"
        barrier = threading.Barrier(4)

        def open_and_close(db: Path = db, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                SQLiteStateTracker(db).close()
            except Exception as exc:  # collected and asserted below
                failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_and_close) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    with SQLiteStateTracker(tmp_path / "fresh0.db") as tracker:
        assert tracker.get_volumes_by_status("pending") == []
