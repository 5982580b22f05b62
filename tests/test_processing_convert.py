"""ProcessingDaemon with the real converter: real sample volumes and synthetic ones, read back.

Files are recorded in a real state DB the way the download daemon records them; the daemon
converts them in its worker processes and the NetCDF is read back with xradar / netCDF4.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PYART_QUIET", "1")

import netCDF4
import numpy as np
import xradar

import daemon_helpers
from radarlib.bufr.synthetic import write_synthetic_volume
from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig, SQLiteStateTracker
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

SAMPLE_TYPES = {"0315": {"01": ["DBZH", "DBZV", "ZDR", "KDP"], "02": ["VRAD", "WRAD"]}}
SMALL = {"nsweeps": 2, "nrays": 360, "ngates": 120}


record = daemon_helpers.record_download


def config(tmp_path: Path, radar: str, types: Any, **kw: Any) -> ProcessingDaemonConfig:
    values: dict[str, Any] = {
        "local_bufr_dir": tmp_path / "bufr",
        "local_netcdf_dir": tmp_path / "netcdf",
        "state_db": tmp_path / "state.db",
        "volume_types": types,
        "radar_name": radar,
        "poll_interval": 0.2,
        "max_concurrent_processing": 2,
        "retry_backoff_seconds": 0.1,
    }
    values.update(kw)
    return ProcessingDaemonConfig(**values)


run_until = functools.partial(daemon_helpers.run_until, timeout=180)


def count(db: Path, status: str, radar: str) -> int:
    with SQLiteStateTracker(db) as tracker:
        return tracker.count_volumes_by_status(radar)[status]


def test_real_sample_volumes_become_correct_netcdf(
    tmp_path: Path, rma11_dir: Path, expected: dict[str, Any]
) -> None:
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in sorted(rma11_dir.glob("*.BUFR"), reverse=True):  # any order
            record(tracker, path, SAMPLE_TYPES)
    daemon = ProcessingDaemon(config(tmp_path, "RMA11", SAMPLE_TYPES))
    asyncio.run(run_until(daemon, lambda: count(db, "completed", "RMA11") == 2))

    with SQLiteStateTracker(db) as tracker:
        done = {v["vol_number"]: v for v in tracker.get_volumes_by_status("completed")}
    assert set(done) == {"01", "02"}
    assert all(v["missing_fields"] == "" or v["missing_fields"] is None for v in done.values())
    vol1 = Path(done["01"]["netcdf_path"])
    assert vol1.name == "RMA11_0315_01_20251020T152828Z.nc"
    tree = xradar.io.open_cfradial1_datatree(str(vol1))
    sweeps = [k for k in tree.children if k.startswith("sweep_")]
    assert len(sweeps) == 15
    assert {"DBZH", "DBZV", "ZDR", "KDP"} <= set(tree["sweep_0"].ds.data_vars)
    assert str(tree["sweep_0"].ds.time.values.min()).startswith("2025-10-20T15:28")
    with netCDF4.Dataset(vol1) as ds:
        assert ds.time_coverage_start.startswith("2025-10-20T15:28")
    # every valid gate of every field file is in the NetCDF, and nothing else
    for vol, fields in (
        (vol1, ("DBZH", "DBZV", "ZDR", "KDP")),
        (done["02"]["netcdf_path"], ("VRAD", "WRAD")),
    ):
        tree = xradar.io.open_cfradial1_datatree(str(vol))
        for field in fields:
            name = next(n for n in expected if f"_{field}_" in n and n.startswith("RMA11"))
            values = [tree[s].ds[field].values for s in tree.children if s.startswith("sweep_")]
            valid = sum(int(np.isfinite(v).sum()) for v in values)
            assert valid == expected[name]["counts"]["valid"], (vol, field)
            low = min(float(np.nanmin(v)) for v in values if np.isfinite(v).any())
            assert low == pytest.approx(expected[name]["valid_min"], abs=1e-4)
    tree2 = xradar.io.open_cfradial1_datatree(str(done["02"]["netcdf_path"]))
    assert len([k for k in tree2.children if k.startswith("sweep_")]) == 5
    assert not [p for p in (tmp_path / "netcdf").iterdir() if p.name.startswith(".")]
    stats = daemon.get_stats()
    assert (stats["volumes_processed"], stats["volumes_failed"]) == (2, 0)


def test_production_types_wait_then_write_incomplete_with_missing_fields(
    tmp_path: Path, rma11_dir: Path
) -> None:
    """RMA11 0315/01 lacks RHOHV and PHIDP: after the timeout it is written with what it has."""
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR")):
            record(tracker, path, DEFAULT_VOLUME_TYPES)
    clock = [datetime.now(timezone.utc)]
    daemon = ProcessingDaemon(
        config(
            tmp_path,
            "RMA11",
            DEFAULT_VOLUME_TYPES,
            allow_incomplete=True,
            incomplete_timeout_hours=1.5,
        ),
        clock=lambda: clock[0],
    )

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(1.5)  # several polls: incomplete, not due, nothing written
        assert count(db, "pending", "RMA11") == 1
        assert not list((tmp_path / "netcdf").glob("*.nc"))
        assert daemon.get_stats()["incomplete_volumes_detected"] == 1
        clock[0] += timedelta(hours=1.6)
        deadline = time.monotonic() + 180
        while count(db, "completed", "RMA11") != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        daemon.stop()
        await task

    asyncio.run(scenario())
    with SQLiteStateTracker(db) as tracker:
        (row,) = tracker.get_volumes_by_status("completed")
    assert row["missing_fields"] == "PHIDP,RHOHV"
    assert row["is_complete"] == 0
    with netCDF4.Dataset(row["netcdf_path"]) as ds:
        assert ds.missing_fields == "PHIDP, RHOHV"
        assert {"DBZH", "DBZV", "ZDR", "KDP"} <= set(ds.variables)


def test_late_field_rewrites_a_volume_written_incomplete(tmp_path: Path) -> None:
    when = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
    bufr = tmp_path / "bufr"
    paths = write_synthetic_volume(bufr, "RMA1", "0315", "01", when, **SMALL)
    late = next(p for p in paths if "_PHIDP_" in p.name)
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in paths:
            if path != late:
                record(tracker, path, DEFAULT_VOLUME_TYPES)
    clock = [datetime.now(timezone.utc) + timedelta(hours=1)]
    cfg = config(
        tmp_path, "RMA1", DEFAULT_VOLUME_TYPES, allow_incomplete=True, incomplete_timeout_hours=0.5
    )
    first = ProcessingDaemon(cfg, clock=lambda: clock[0])
    asyncio.run(run_until(first, lambda: count(db, "completed", "RMA1") == 1))
    with SQLiteStateTracker(db) as tracker:
        row = tracker.get_volumes_by_status("completed")[0]
        assert row["missing_fields"] == "PHIDP"
        with netCDF4.Dataset(row["netcdf_path"]) as ds:
            assert "PHIDP" not in ds.variables and ds.missing_fields == "PHIDP"
        mtime = Path(row["netcdf_path"]).stat().st_mtime_ns
        assert record(tracker, late, DEFAULT_VOLUME_TYPES) == [row["volume_id"]]
        assert tracker.get_volume(row["volume_id"])["status"] == "pending"

    second = ProcessingDaemon(cfg)

    def rewritten() -> bool:
        with SQLiteStateTracker(db) as t:
            v = t.get_volume(row["volume_id"])
        return v["status"] == "completed" and not v["missing_fields"]

    asyncio.run(run_until(second, rewritten))
    path = Path(row["netcdf_path"])
    assert path.stat().st_mtime_ns > mtime
    with netCDF4.Dataset(path) as ds:
        assert "PHIDP" in ds.variables and ds.missing_fields == ""
    assert list((tmp_path / "netcdf").iterdir()) == [path]


def test_corrupt_field_file_fails_with_its_name_and_others_proceed(
    tmp_path: Path, rma11_dir: Path
) -> None:
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    for path in rma11_dir.glob("RMA11_0315_02_*.BUFR"):
        data = path.read_bytes()
        if "_WRAD_" in path.name:
            data = data[: len(data) // 3]  # truncated download
        (bufr / path.name).write_bytes(data)
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in bufr.iterdir():
            record(tracker, path, SAMPLE_TYPES)
        for path in rma11_dir.glob("RMA11_0315_01_*.BUFR"):
            record(tracker, path, SAMPLE_TYPES)
    daemon = ProcessingDaemon(
        config(tmp_path, "RMA11", SAMPLE_TYPES, max_attempts=2, on_bad_field="fail")
    )
    asyncio.run(
        run_until(
            daemon,
            lambda: count(db, "failed", "RMA11") == 1 and count(db, "completed", "RMA11") == 1,
        )
    )
    with SQLiteStateTracker(db) as tracker:
        (failed,) = tracker.get_volumes_by_status("failed")
    assert failed["vol_number"] == "02" and failed["attempts"] == 2
    assert "RMA11_0315_02_WRAD_20251020T152429Z.BUFR" in failed["error_message"]
    assert "VolumeError" in failed["error_message"]
    assert not (tmp_path / "netcdf" / "RMA11_0315_02_20251020T152429Z.nc").exists()


def _flip(data: bytes, start: int, length: int = 64) -> bytes:
    flipped = bytearray(data)
    for i in range(start, start + length):
        flipped[i] ^= 0xFF
    return bytes(flipped)


def test_a_corrupt_field_is_dropped_recorded_and_rewritten_when_a_good_copy_arrives(
    tmp_path: Path, rma11_dir: Path
) -> None:
    """on_bad_field = "drop" (the default): DBZV with flipped bytes costs only DBZV."""
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    bad_name = "RMA11_0315_01_DBZV_20251020T152828Z.BUFR"
    for path in rma11_dir.glob("RMA11_0315_01_*.BUFR"):
        data = path.read_bytes()
        (bufr / path.name).write_bytes(
            _flip(data, len(data) // 2) if path.name == bad_name else data
        )
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in bufr.iterdir():
            record(tracker, path, SAMPLE_TYPES)
    daemon = ProcessingDaemon(config(tmp_path, "RMA11", SAMPLE_TYPES))
    assert daemon.config.on_bad_field == "drop"
    asyncio.run(run_until(daemon, lambda: count(db, "completed", "RMA11") == 1))
    nc = tmp_path / "netcdf" / "RMA11_0315_01_20251020T152828Z.nc"
    with netCDF4.Dataset(nc) as ds:
        assert {"DBZH", "ZDR", "KDP"} <= set(ds.variables) and "DBZV" not in ds.variables
        assert ds.getncattr("dropped_fields") == "DBZV"
        assert ds.getncattr("dropped_field_errors").startswith(f"DBZV: {bad_name}: cannot decode")
    with SQLiteStateTracker(db) as tracker:
        (volume,) = tracker.get_volumes_by_status("completed")
        (bad,) = tracker.get_bad_fields(volume["volume_id"])
        assert volume["attempts"] == 1
    assert (bad["field"], bad["filename"]) == ("DBZV", bad_name)
    assert "cannot decode" in bad["error"]
    assert daemon.get_stats()["fields_dropped"] == 1

    # a good copy of the field is downloaded again: the volume is rewritten with it
    (bufr / bad_name).write_bytes((rma11_dir / bad_name).read_bytes())
    with SQLiteStateTracker(db) as tracker:
        record(tracker, bufr / bad_name, SAMPLE_TYPES)
    again = ProcessingDaemon(config(tmp_path, "RMA11", SAMPLE_TYPES))

    def rewritten() -> bool:
        with SQLiteStateTracker(db) as tracker:
            return (
                tracker.get_bad_fields(volume["volume_id"]) == []
                and count(db, "completed", "RMA11") == 1
            )

    asyncio.run(run_until(again, rewritten))
    with netCDF4.Dataset(nc) as ds:
        assert {"DBZH", "DBZV", "ZDR", "KDP"} <= set(ds.variables)
        assert "dropped_fields" not in ds.ncattrs()
    with SQLiteStateTracker(db) as tracker:
        assert tracker.get_volume(volume["volume_id"])["attempts"] == 1  # a rewrite, not a retry
    assert again.get_stats()["volumes_repaired"] == 1
