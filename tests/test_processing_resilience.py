"""Transient failures are retried without consuming attempts, and say what really happened.

Real file systems that fill up (a small tmpfs mounted for the test: radarlib runs as root in
CI; without the right to mount, the tests that need one are skipped, naming why), the real
converter on the real sample files, real worker processes killed with SIGKILL. Each daemon
runs with ``max_attempts = 1``: a transient failure that burned an attempt would leave the
volume ``failed`` for good.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import netCDF4
import pytest

import daemon_helpers
from radarlib.filename import BufrFileName
from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig, SQLiteStateTracker
from test_processing_daemon import FakeResult

TYPES = {"0315": {"01": ["DBZH", "DBZV", "ZDR", "KDP"], "02": ["VRAD", "WRAD"]}}
GATED = f"{__name__}:gated_convert"


def gated_convert(
    files: Sequence[str],
    output_dir: str,
    *,
    options: Any = None,
    expected_fields: Sequence[str] | None = None,
) -> FakeResult:
    """Wait until the file named in the BUFR files' text exists, then write a small output."""
    gate = Path(Path(files[0]).read_text().strip())
    while not gate.exists():
        time.sleep(0.05)
    names = [BufrFileName.parse(f) for f in files]
    out = Path(output_dir) / names[0].volume_key.netcdf_name
    out.write_text("ok")
    fields = tuple(sorted(n.field for n in names))
    return FakeResult(out, fields, tuple(sorted(set(expected_fields or ()) - set(fields))))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB tmpfs (unmounted afterwards)."""
    mount = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill ``folder``'s file system until ``leave`` bytes are free; the filler file."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as out:
        out.write(b"\0" * max(0, free - leave))
    with open(filler, "ab") as out:  # tmpfs rounds to pages: top up byte-exact as needed
        while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave:
            try:
                out.write(b"\0" * 4096)
                out.flush()
            except OSError:
                break
    return filler


def config(tmp_path: Path, **kw: Any) -> ProcessingDaemonConfig:
    values: dict[str, Any] = {
        "local_bufr_dir": tmp_path / "bufr",
        "local_netcdf_dir": tmp_path / "netcdf",
        "state_db": tmp_path / "state.db",
        "volume_types": TYPES,
        "radar_name": "RMA11",
        "poll_interval": 0.2,
        "max_concurrent_processing": 1,
        "max_attempts": 1,
        "retry_backoff_seconds": 0.3,
        "shutdown_grace_seconds": 2,
    }
    values.update(kw)
    return ProcessingDaemonConfig(**values)


def volume(db: Path) -> dict[str, Any]:
    with SQLiteStateTracker(db) as tracker:
        rows = [
            row
            for status in ("pending", "processing", "completed", "failed", "expired")
            for row in tracker.get_volumes_by_status(status)
        ]
    assert len(rows) == 1, rows
    return rows[0]


async def wait_for(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("leave", [0, 8192], ids=["no-byte-free", "8KiB-free"])
def test_netcdf_disk_full_is_retried_without_attempts_and_named_enospc(
    tmp_path: Path, rma11_dir: Path, small_fs: Path, leave: int
) -> None:
    """0 bytes free made netCDF4 say Permission denied, 8 KiB free 'NetCDF: HDF error'."""
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in rma11_dir.glob("RMA11_0315_02_*.BUFR"):
            (bufr / path.name).write_bytes(path.read_bytes())
            daemon_helpers.record_download(tracker, bufr / path.name, TYPES)
    filler = fill(small_fs, leave)
    daemon = ProcessingDaemon(config(tmp_path, local_netcdf_dir=small_fs / "netcdf"))
    messages: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        try:

            def deferred() -> bool:
                row = volume(db)
                if "No space left on device" in str(row["error_message"]):
                    messages.append(str(row["error_message"]))
                twice = daemon.get_stats()["transient_failures"] >= 2
                if bool(messages) and twice and row["status"] == "pending":
                    waiting.append(row)
                return bool(waiting)

            waiting: list[dict[str, Any]] = []
            await wait_for(deferred, "two deferred attempts on a full disk")
            assert waiting[0]["attempts"] == 0  # read in one go with its status
            filler.unlink()
            await wait_for(lambda: volume(db)["status"] == "completed", "the conversion")
        finally:
            daemon.stop()
            await task

    asyncio.run(scenario())
    first = messages[0]
    assert first.startswith("OSError: [Errno 28] No space left on device: cannot write the NetCDF")
    assert "RMA11_0315_02_2025-10-20T15:24:29Z" in first
    assert "Permission denied" not in first.split("the writer reported")[0]
    assert str(small_fs / "netcdf") in first
    row = volume(db)
    assert row["attempts"] == 1 and row["error_message"] is None
    stats = daemon.get_stats()
    assert stats["transient_failures"] >= 2 and stats["volumes_failed"] == 0
    with netCDF4.Dataset(row["netcdf_path"]) as ds:
        assert {"VRAD", "WRAD"} <= set(ds.variables)
    assert not list((small_fs / "netcdf").glob(".*.tmp"))  # no half-written file left


def _gated_volume(tmp_path: Path, gate: Path) -> Path:
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for field in ("VRAD", "WRAD"):
            path = bufr / f"RMA11_0315_02_{field}_20251020T152429Z.BUFR"
            path.write_text(str(gate))
            daemon_helpers.record_download(tracker, path, TYPES)
    return db


def test_a_worker_killed_from_outside_does_not_cost_an_attempt(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    db = _gated_volume(tmp_path, gate)
    daemon = ProcessingDaemon(config(tmp_path), converter=GATED)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        try:
            await wait_for(lambda: volume(db)["status"] == "processing", "the claim")
            pool = daemon._pool
            assert pool is not None
            await wait_for(lambda: bool(pool.worker_pids()), "the worker")  # type: ignore[attr-defined]
            os.kill(pool.worker_pids()[0], signal.SIGKILL)  # type: ignore[attr-defined]  # OOM killer
            await wait_for(
                lambda: "killed by SIGKILL" in str(volume(db)["error_message"]), "the deferral"
            )
            assert volume(db)["status"] != "failed"  # max_attempts = 1: not counted
            gate.touch()
            await wait_for(lambda: volume(db)["status"] == "completed", "the conversion")
        finally:
            daemon.stop()
            await task

    asyncio.run(scenario())
    assert volume(db)["attempts"] == 1
    assert daemon.get_stats()["worker_restarts"] == 1


def test_a_full_state_database_recovers_without_a_restart(
    tmp_path: Path, small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outcome of a conversion is kept while the database's disk is full, then recorded."""
    caplog.set_level(logging.INFO, logger="radarlib.pipeline.processing")
    gate = tmp_path / "go"
    db = _gated_volume(tmp_path, gate)
    # move the database onto the small file system
    moved = small_fs / "state.db"
    with SQLiteStateTracker(db) as tracker:
        tracker.integrity_check()
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            Path(f"{moved}{suffix}").write_bytes(source.read_bytes())
            source.unlink()
    daemon = ProcessingDaemon(config(tmp_path, state_db=moved), converter=GATED)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        try:
            await wait_for(lambda: volume(moved)["status"] == "processing", "the claim")
            filler = fill(small_fs, 0)
            gate.touch()
            await wait_for(lambda: "could not record the outcome" in caplog.text, "a failed record")
            await asyncio.sleep(1.0)  # a few polls on a full disk: nothing crashes
            assert not task.done()
            filler.unlink()
            await wait_for(lambda: volume(moved)["status"] == "completed", "the recovery")
        finally:
            daemon.stop()
            await task

    asyncio.run(scenario())
    assert "database or disk is full" in caplog.text
    assert "outcome recorded after the database recovered" in caplog.text
    row = volume(moved)
    assert row["attempts"] == 1 and Path(row["netcdf_path"]).read_text() == "ok"


def test_claims_of_crashed_daemons_do_not_keep_their_attempts(tmp_path: Path) -> None:
    """'attempt 5 of 3': each crash of a daemon mid-conversion used to keep its attempt."""
    db = _gated_volume(tmp_path, tmp_path / "go")
    with SQLiteStateTracker(db) as tracker:
        for crash in range(5):
            (claimed,) = tracker.claim_volumes(f"host:{crash}:dead", 1)
            assert claimed["attempts"] == 1
            assert tracker.recover_stale_claims(worker_id=f"host:{crash}:dead")
        assert volume(db)["attempts"] == 0


def test_a_late_field_rewrite_is_not_a_retry(tmp_path: Path) -> None:
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        vrad = bufr / "RMA11_0315_02_VRAD_20251020T152429Z.BUFR"
        vrad.write_text("x")
        daemon_helpers.record_download(tracker, vrad, TYPES)
        volume_id = volume(db)["volume_id"]
        tracker.allow_incomplete(volume_id)
        tracker.claim_volumes("w", 1)
        tracker.finish_volume(volume_id, "w", "/nc/v.nc", missing_fields=["WRAD"])
        wrad = bufr / "RMA11_0315_02_WRAD_20251020T152429Z.BUFR"
        wrad.write_text("x")
        daemon_helpers.record_download(tracker, wrad, TYPES)
        row = volume(db)
        assert (row["status"], row["attempts"]) == ("pending", 0)
        (claimed,) = tracker.claim_volumes("w", 1)
        assert claimed["attempts"] == 1


def test_a_failure_is_one_error_line_that_says_how_to_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The traceback only at DEBUG; the suggested command works as printed."""
    import shlex
    import sys

    from test_processing_daemon import FAKE

    caplog.set_level(logging.DEBUG, logger="radarlib.pipeline.processing")
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for field in ("VRAD", "WRAD"):
            path = bufr / f"RMA11_0315_02_{field}_20251020T152429Z.BUFR"
            path.write_text("BAD" if field == "VRAD" else "ok")
            daemon_helpers.record_download(tracker, path, TYPES)
    daemon = ProcessingDaemon(config(tmp_path), converter=FAKE)
    asyncio.run(daemon_helpers.run_until(daemon, lambda: volume(db)["status"] == "failed"))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    line = errors[0].getMessage()
    assert "\n" not in line and "Traceback" not in line
    assert "corrupt section 4" in line
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("Traceback (most recent call last)" in m for m in debug)
    command = line.split("retry it with: ")[1].split(": ")[0]
    assert command.startswith("radarlib reprocess --status failed --volume RMA11_0315_02_")
    args = shlex.split(command)[1:]
    done = subprocess.run(
        [sys.executable, "-m", "radarlib", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert volume(db)["status"] == "pending"
