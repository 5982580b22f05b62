"""ProcessingDaemon scheduling on a real SQLite state store, with a stand-in converter.

The stand-in runs in the real worker processes and behaves by the content of its input
files (``BAD`` raises like a corrupt BUFR, ``CRASH`` kills the worker, ``SLOW`` takes its
time), so retries, dead workers, shutdown and recovery are exercised without Py-ART.
Conversion with the real converter is in test_processing_convert.py and the pipeline tests.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import daemon_helpers
from radarlib.errors import VolumeError
from radarlib.filename import BufrFileName
from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig
from radarlib.state.events import announce_ready
from radarlib.state.sqlite import SQLiteStateTracker

FAKE = f"{__name__}:fake_convert"
TYPES = {"0315": {"01": ["DBZH", "ZDR"], "02": ["VRAD", "WRAD"]}}
T0 = datetime(2025, 11, 18, 12, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class FakeResult:
    """Same attribute names as radarlib.convert.ConversionResult."""

    path: Path
    fields: tuple[str, ...]
    missing_fields: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def fake_convert(
    files: Sequence[str],
    output_dir: str,
    *,
    options: Any = None,
    expected_fields: Sequence[str] | None = None,
) -> FakeResult:
    """Write ``<volume>.nc`` atomically and log the conversion; misbehave on request."""
    names = [BufrFileName.parse(f) for f in files]
    contents = [Path(f).read_text() for f in files]
    if any("CRASH" in c for c in contents):
        os._exit(7)
    for name, content in zip(names, contents, strict=True):
        if "BAD" in content:
            raise VolumeError("corrupt section 4 (truncated)", source=name.name)
    if any("SLOW" in c for c in contents):
        time.sleep(4)
    out_dir = Path(output_dir)
    out = out_dir / names[0].volume_key.netcdf_name
    fields = tuple(sorted(n.field for n in names))
    tmp = out.with_suffix(".tmp")
    tmp.write_text(",".join(fields))
    os.replace(tmp, out)
    with open(out_dir / "conversions.log", "a") as log:
        log.write(f"{names[0].volume_key.volume_id} {os.getpid()}\n")
    missing = tuple(sorted(set(expected_fields or ()) - set(fields)))
    return FakeResult(out, fields, missing)


class Env:
    """A state DB, a BUFR folder and an output folder, with helpers to record files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bufr = root / "bufr"
        self.netcdf = root / "netcdf"
        self.db = root / "state.db"
        self.bufr.mkdir()
        self.tracker = SQLiteStateTracker(self.db)

    def add(
        self,
        radar: str,
        vol: str,
        field: str,
        when: datetime,
        content: str = "ok",
        *,
        announce: bool = False,
        typed: bool = True,
    ) -> list[str]:
        """Record a file as the download daemon does (``typed``: with its expected fields)."""
        name = BufrFileName(radar, "0315", vol, field, when).name
        path = self.bufr / name
        path.write_text(content)
        ready = self.tracker.mark_downloaded(
            name,
            f"/L2/{radar}/{name}",
            str(path),
            path.stat().st_size,
            None,
            expected_fields=TYPES["0315"][vol] if typed else None,
        )
        if announce and ready:
            announce_ready(self.db)
        return list(ready)

    def volume(self, radar: str, vol: str, when: datetime) -> dict[str, Any]:
        key = BufrFileName(radar, "0315", vol, "DBZH", when).volume_key
        return dict(self.tracker.get_volume(key.volume_id))

    def conversions(self) -> list[str]:
        log = self.netcdf / "conversions.log"
        return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []

    def config(self, **overrides: Any) -> ProcessingDaemonConfig:
        values: dict[str, Any] = {
            "local_bufr_dir": self.bufr,
            "local_netcdf_dir": self.netcdf,
            "state_db": self.db,
            "volume_types": TYPES,
            "radar_code": "RMA1",
            "poll_interval": 0.2,
            "max_concurrent_processing": 2,
            "retry_backoff_seconds": 0.2,
            "shutdown_grace_seconds": 10,
        }
        values.update(overrides)
        return ProcessingDaemonConfig(**values)

    def statuses(self) -> dict[str, int]:
        return {k: v for k, v in self.tracker.count_volumes_by_status("RMA1").items() if v}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e
    e.tracker.close()


run_until = functools.partial(daemon_helpers.run_until, timeout=60)


def test_complete_volumes_are_converted_once_incomplete_ones_wait(env: Env) -> None:
    times = [T0 + timedelta(minutes=5 * i) for i in range(5)]
    # out of order, and one volume with a single field; expected fields left to sync_volumes
    for when in reversed(times):
        env.add("RMA1", "02", "WRAD", when, typed=False)
    for when in times[:4]:
        env.add("RMA1", "02", "VRAD", when, typed=False)
    env.add("RMA1", "01", "DBZH", T0)
    env.add("RMA2", "02", "VRAD", T0)  # another radar: not this daemon's job
    env.add("RMA2", "02", "WRAD", T0)
    daemon = ProcessingDaemon(env.config(), converter=FAKE)

    asyncio.run(run_until(daemon, lambda: env.statuses().get("completed", 0) == 4))

    done = env.tracker.get_volumes_by_status("completed", radar_code="RMA1")
    assert sorted(v["volume_id"] for v in done) == sorted(env.conversions())
    assert len(set(env.conversions())) == 4
    for row in done:
        assert Path(row["netcdf_path"]).read_text() == "VRAD,WRAD"
        assert row["claimed_by"] in (None, "", daemon.worker_id)
    assert env.volume("RMA1", "02", times[4])["status"] == "pending"
    assert env.volume("RMA1", "01", T0)["is_complete"] == 0
    assert env.volume("RMA2", "02", T0)["status"] == "pending"  # untouched
    stats = daemon.get_stats()
    assert stats["running"] is False
    assert stats["volumes_processed"] == 4
    assert stats["volumes_failed"] == 0
    assert stats["pending_volumes"] == env.statuses()["pending"] == 2
    assert stats["complete_unprocessed"] == 0
    assert stats["incomplete_volumes_detected"] == 2
    assert not list(env.netcdf.glob("*.tmp"))


def test_late_file_of_an_old_volume_is_picked_up(env: Env) -> None:
    """Files recorded after newer volumes were processed still complete their volume."""
    new, old = T0 + timedelta(hours=3), T0
    env.add("RMA1", "02", "VRAD", new)
    env.add("RMA1", "02", "WRAD", new)
    env.add("RMA1", "02", "VRAD", old)
    daemon = ProcessingDaemon(env.config(), converter=FAKE)

    def late() -> None:
        if (
            env.statuses().get("completed") == 1
            and env.volume("RMA1", "02", old)["status"] == ("pending")
            and not env.volume("RMA1", "02", old)["is_complete"]
        ):
            env.add("RMA1", "02", "WRAD", old)

    asyncio.run(run_until(daemon, lambda: env.statuses().get("completed", 0) == 2, during=late))
    assert sorted(env.conversions()) == sorted(
        [env.volume("RMA1", "02", old)["volume_id"], env.volume("RMA1", "02", new)["volume_id"]]
    )


def test_ready_announcement_wakes_the_daemon_before_its_poll(env: Env) -> None:
    daemon = ProcessingDaemon(env.config(poll_interval=120), converter=FAKE)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        while daemon.get_stats()["last_poll"] is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the daemon is now asleep for up to 120 s
        await asyncio.to_thread(env.add, "RMA1", "02", "VRAD", T0)
        await asyncio.to_thread(env.add, "RMA1", "02", "WRAD", T0, announce=True)
        deadline = time.monotonic() + 60  # far below the 120 s poll
        while env.statuses().get("completed") != 1:
            assert time.monotonic() < deadline, "not woken by announce_ready"
            await asyncio.sleep(0.1)
        daemon.stop()
        await task

    asyncio.run(scenario())


def test_corrupt_file_is_retried_with_backoff_then_succeeds_when_replaced(env: Env) -> None:
    env.add("RMA1", "02", "VRAD", T0, "BAD")
    env.add("RMA1", "02", "WRAD", T0)
    env.add("RMA1", "02", "VRAD", T0 + timedelta(minutes=5))
    env.add("RMA1", "02", "WRAD", T0 + timedelta(minutes=5))
    daemon = ProcessingDaemon(env.config(retry_backoff_seconds=1.0, max_attempts=5), converter=FAKE)
    vid = env.volume("RMA1", "02", T0)["volume_id"]
    fixed = []

    def repair() -> None:
        row = env.volume("RMA1", "02", T0)
        if not fixed and row["attempts"] >= 2 and row["status"] == "pending":
            assert "RMA1_0315_02_VRAD_20251118T120000Z.BUFR" in row["error_message"]
            assert "corrupt section 4" in row["error_message"]
            assert row["next_attempt_at"] > row["updated_at"] or row["next_attempt_at"]
            (env.bufr / "RMA1_0315_02_VRAD_20251118T120000Z.BUFR").write_text("ok")  # re-download
            fixed.append(True)

    asyncio.run(run_until(daemon, lambda: env.statuses().get("completed", 0) == 2, during=repair))
    row = env.volume("RMA1", "02", T0)
    assert row["status"] == "completed" and fixed
    assert row["attempts"] >= 3
    assert env.conversions().count(vid) == 1
    stats = daemon.get_stats()
    assert stats["conversion_errors"] == row["attempts"] - 1
    assert stats["volumes_failed"] == 0


def test_permanent_failure_after_max_attempts_then_manual_reset(env: Env) -> None:
    env.add("RMA1", "02", "VRAD", T0, "BAD")
    env.add("RMA1", "02", "WRAD", T0)
    daemon = ProcessingDaemon(env.config(max_attempts=2, retry_backoff_seconds=0.1), converter=FAKE)
    asyncio.run(run_until(daemon, lambda: env.statuses().get("failed", 0) == 1))
    row = env.volume("RMA1", "02", T0)
    assert row["attempts"] == 2
    assert row["error_message"].startswith(f"{row['volume_id']}: VolumeError: ")
    assert "RMA1_0315_02_VRAD_20251118T120000Z.BUFR: corrupt section 4" in row["error_message"]
    assert daemon.get_stats()["volumes_failed"] == 1
    assert env.conversions() == []

    # stays failed across a restart...
    again = ProcessingDaemon(env.config(max_attempts=2), converter=FAKE)

    async def short() -> None:
        task = asyncio.create_task(again.run())
        await asyncio.sleep(1.5)
        again.stop()
        await task

    asyncio.run(short())
    assert env.volume("RMA1", "02", T0)["status"] == "failed"
    # ...until reset by hand, as the design shows
    (env.bufr / "RMA1_0315_02_VRAD_20251118T120000Z.BUFR").write_text("ok")
    env.tracker.mark_volume_processing(row["volume_id"], "pending")
    third = ProcessingDaemon(env.config(max_attempts=2), converter=FAKE)
    asyncio.run(run_until(third, lambda: env.statuses().get("completed", 0) == 1))


def test_dead_worker_does_not_kill_the_daemon(env: Env) -> None:
    env.add("RMA1", "02", "VRAD", T0, "CRASH")
    env.add("RMA1", "02", "WRAD", T0)
    for i in range(1, 4):
        env.add("RMA1", "02", "VRAD", T0 + timedelta(minutes=5 * i))
        env.add("RMA1", "02", "WRAD", T0 + timedelta(minutes=5 * i))
    daemon = ProcessingDaemon(env.config(max_attempts=2, retry_backoff_seconds=0.1), converter=FAKE)
    asyncio.run(
        run_until(
            daemon,
            lambda: env.statuses().get("completed", 0) == 3 and env.statuses().get("failed") == 1,
        )
    )
    crashed = env.volume("RMA1", "02", T0)
    assert "WorkerDiedError" in crashed["error_message"]
    assert "the worker process died" in crashed["error_message"]
    assert crashed["volume_id"] in crashed["error_message"]
    assert daemon.get_stats()["worker_restarts"] >= 2
    assert not env.tracker.get_volumes_by_status("processing")
    assert len(env.conversions()) == len(set(env.conversions())) == 3


def test_incomplete_timeout_expires_without_allow_incomplete(env: Env) -> None:
    env.add("RMA1", "01", "DBZH", T0)
    env.add("RMA1", "02", "VRAD", T0)
    env.add("RMA1", "02", "WRAD", T0)
    clock = [datetime.now(timezone.utc)]
    daemon = ProcessingDaemon(
        env.config(incomplete_timeout_hours=0.5), converter=FAKE, clock=lambda: clock[0]
    )

    def later() -> None:
        if env.statuses().get("completed") == 1:
            clock[0] = datetime.now(timezone.utc) + timedelta(hours=0.6)

    asyncio.run(run_until(daemon, lambda: env.statuses().get("expired", 0) == 1, during=later))
    row = env.volume("RMA1", "01", T0)
    assert row["status"] == "expired"
    assert row["missing_fields"] == "ZDR"
    assert [v["volume_id"] for v in env.tracker.get_volumes_by_status("expired")] == [
        row["volume_id"]
    ]
    assert row["volume_id"] not in env.conversions()
    stats = daemon.get_stats()
    assert stats["volumes_expired"] == 1
    assert stats["incomplete_volumes_detected"] == 1


def test_incomplete_timeout_processes_with_allow_incomplete_and_late_field_rewrites(
    env: Env,
) -> None:
    env.add("RMA1", "01", "DBZH", T0)
    clock = [datetime.now(timezone.utc) + timedelta(hours=0.2)]  # 0.2 h > 0.1 h: due at once
    daemon = ProcessingDaemon(
        env.config(incomplete_timeout_hours=0.1, allow_incomplete=True),
        converter=FAKE,
        clock=lambda: clock[0],
    )
    asyncio.run(run_until(daemon, lambda: env.statuses().get("completed", 0) == 1))
    row = env.volume("RMA1", "01", T0)
    assert row["missing_fields"] == "ZDR"
    assert Path(row["netcdf_path"]).read_text() == "DBZH"
    assert daemon.get_stats()["volumes_allowed_incomplete"] == 1

    env.add("RMA1", "01", "ZDR", T0)  # the late field
    assert env.volume("RMA1", "01", T0)["status"] == "pending"
    again = ProcessingDaemon(env.config(), converter=FAKE)

    def rewritten() -> bool:
        r = env.volume("RMA1", "01", T0)
        return r["status"] == "completed" and not r["missing_fields"]

    asyncio.run(run_until(again, rewritten))
    assert Path(env.volume("RMA1", "01", T0)["netcdf_path"]).read_text() == "DBZH,ZDR"
    assert env.conversions() == [row["volume_id"]] * 2


def test_stop_returns_unfinished_conversions_to_pending(env: Env) -> None:
    env.add("RMA1", "02", "VRAD", T0, "SLOW")
    env.add("RMA1", "02", "WRAD", T0)
    daemon = ProcessingDaemon(env.config(shutdown_grace_seconds=0.2), converter=FAKE)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 60
        while env.statuses().get("processing") != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        started = time.monotonic()
        daemon.stop()
        await task
        assert time.monotonic() - started < 3.5  # did not wait for the 4 s conversion

    asyncio.run(scenario())
    row = env.volume("RMA1", "02", T0)
    assert row["status"] == "pending"
    assert row["attempts"] == 0  # release does not count an attempt
    assert not row["claimed_by"]
    assert daemon.get_stats()["volumes_released"] == 1
    time.sleep(4.5)  # the killed worker must not finish the file behind our back
    assert not list(env.netcdf.glob("*.nc"))
    assert env.conversions() == []


def test_stop_lets_running_conversions_finish_within_grace(env: Env) -> None:
    env.add("RMA1", "02", "VRAD", T0, "SLOW")
    env.add("RMA1", "02", "WRAD", T0)
    daemon = ProcessingDaemon(env.config(shutdown_grace_seconds=30), converter=FAKE)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        while env.statuses().get("processing") != 1:
            await asyncio.sleep(0.05)
        daemon.stop()
        await task

    asyncio.run(scenario())
    assert env.volume("RMA1", "02", T0)["status"] == "completed"
    assert env.statuses() == {"completed": 1}


def test_start_up_recovers_claims_of_dead_processes_and_own_id(env: Env) -> None:
    for i in range(3):
        env.add("RMA1", "02", "VRAD", T0 + timedelta(minutes=5 * i))
        env.add("RMA1", "02", "WRAD", T0 + timedelta(minutes=5 * i))
    host = socket.gethostname()
    dead = f"{host}:{_dead_pid()}:deadbeef"
    own = "fixed-worker"
    live_other_host = "elsewhere:1:cafe"
    assert len(env.tracker.claim_volumes(dead, 1, radar_code="RMA1")) == 1
    assert len(env.tracker.claim_volumes(own, 1, radar_code="RMA1")) == 1
    assert len(env.tracker.claim_volumes(live_other_host, 1, radar_code="RMA1")) == 1
    assert env.statuses() == {"processing": 3}

    daemon = ProcessingDaemon(env.config(worker_id=own), converter=FAKE)
    asyncio.run(run_until(daemon, lambda: env.statuses().get("completed", 0) == 2))
    # the claim of a process on another host is left alone until it is stale
    assert env.statuses() == {"completed": 2, "processing": 1}
    assert daemon.get_stats()["claims_recovered"] == 2

    stale = ProcessingDaemon(env.config(stale_claim_seconds=0.001), converter=FAKE)
    asyncio.run(run_until(stale, lambda: env.statuses().get("completed", 0) == 3))
    assert sorted(env.conversions()) == sorted(set(env.conversions()))


def _dead_pid() -> int:
    """A pid that is not running (a child that has exited and been reaped)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_stop_before_run_returns_at_once_and_a_later_run_works(env: Env) -> None:
    env.add("RMA1", "02", "VRAD", T0)
    env.add("RMA1", "02", "WRAD", T0)
    daemon = ProcessingDaemon(env.config(), converter=FAKE)
    daemon.stop()
    asyncio.run(asyncio.wait_for(daemon.run(), 60))
    assert env.statuses() == {"pending": 1}  # stopped before claiming anything
    assert daemon.get_stats()["running"] is False
    asyncio.run(run_until(daemon, lambda: env.statuses() == {"completed": 1}))


def test_cancelling_run_releases_claims_and_leaves_nothing_processing(env: Env) -> None:
    env.add("RMA1", "02", "VRAD", T0, "SLOW")
    env.add("RMA1", "02", "WRAD", T0)
    daemon = ProcessingDaemon(env.config(shutdown_grace_seconds=0), converter=FAKE)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        while env.statuses().get("processing") != 1:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert env.statuses() == {"pending": 1}
