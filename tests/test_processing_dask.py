"""ProcessingDaemon with executor="dask": real LocalCluster, real state DB, real sample volumes.

A LocalCluster of two worker processes (with nannies, as `dask worker` runs them) stands in for
a cluster of machines sharing the BUFR and NetCDF folders. Its scheduler gives up on a task at
the first lost worker (``allowed-failures = 0``), so a killed worker reaches the daemon as
``KilledWorker`` and the state database counts the attempt, as with a dead local worker.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PYART_QUIET", "1")

import dask
import distributed
import netCDF4

import daemon_helpers
from radarlib.errors import ConfigError
from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig, SQLiteStateTracker
from radarlib.pipeline.dask_pool import DaskConversionPool, import_distributed
from radarlib.pipeline.workers import ConversionJob, ExecutorUnavailableError

SAMPLE_TYPES = {"0315": {"01": ["DBZH", "DBZV", "ZDR", "KDP"], "02": ["VRAD", "WRAD"]}}
HELD = f"{__name__}:held_convert"


def held_convert(
    files: Sequence[str],
    output_dir: str,
    *,
    options: Any = None,
    expected_fields: Sequence[str] | None = None,
) -> Any:
    """The real converter, but while ``<root>/hold`` exists it first announces itself and waits."""
    root = Path(output_dir).parent
    hold = root / "hold"
    if hold.exists():
        (root / f"running.{os.getpid()}").write_text(socket.gethostname())
        deadline = time.monotonic() + 60
        while hold.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    from radarlib.convert import convert_volume

    return convert_volume(files, output_dir, options=options, expected_fields=expected_fields)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, Any]]:
    """A two-worker LocalCluster on 127.0.0.1 and a (synchronous) client to inspect it."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        local = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            host="127.0.0.1",
        )
    try:
        with distributed.Client(local) as client:
            yield local.scheduler_address, client
    finally:
        local.close()


def record(tracker: Any, path: Path) -> list[str]:
    """Record ``path`` as downloaded, with its volume's expected fields."""
    return daemon_helpers.record_download(tracker, path, SAMPLE_TYPES)


def make_config(tmp_path: Path, address: str, **kw: Any) -> ProcessingDaemonConfig:
    values: dict[str, Any] = {
        "local_bufr_dir": tmp_path / "bufr",
        "local_netcdf_dir": tmp_path / "netcdf",
        "state_db": tmp_path / "state.db",
        "volume_types": SAMPLE_TYPES,
        "radar_code": "RMA11",
        "poll_interval": 0.2,
        "max_concurrent_processing": 2,
        "retry_backoff_seconds": 0.1,
        "executor": "dask",
        "dask_scheduler": address,
    }
    values.update(kw)
    return ProcessingDaemonConfig(**values)


def rows(db: Path) -> dict[str, dict[str, Any]]:
    """vol_number -> volume row of RMA11."""
    with SQLiteStateTracker(db) as tracker:
        return {
            str(r["vol_number"]): dict(r)
            for status in ("pending", "processing", "completed", "failed", "expired")
            for r in tracker.get_volumes_by_status(status, radar_code="RMA11")
        }


def statuses(db: Path) -> dict[str, int]:
    with SQLiteStateTracker(db) as tracker:
        return {k: v for k, v in tracker.count_volumes_by_status("RMA11").items() if v}


run_until = functools.partial(daemon_helpers.run_until, timeout=120)


def our_tasks(client: Any) -> list[str]:
    """Keys of radarlib conversions the scheduler still knows about."""

    def keys(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if "radarlib-convert" in str(k)]

    return list(client.run_on_scheduler(keys))


# --------------------------------------------------------------------------- configuration


def _config(**kw: Any) -> ProcessingDaemonConfig:
    return make_config(Path("/tmp/radarlib-unused"), "tcp://127.0.0.1:8786", **kw)


def test_config_dask_fields_are_validated() -> None:
    config = _config()
    assert (config.executor, config.dask_scheduler) == ("dask", "tcp://127.0.0.1:8786")
    default = _config(executor="processes", dask_scheduler=None)
    assert (default.executor, default.dask_scheduler) == ("processes", None)
    with pytest.raises(ConfigError) as err:
        _config(dask_scheduler=None)
    assert err.value.key == "dask_scheduler" and "required" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _config(executor="threads")
    assert err.value.key == "executor"
    with pytest.raises(ConfigError) as err:
        _config(dask_scheduler="scheduler:8786")
    assert err.value.key == "dask_scheduler" and "tcp://host:8786" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _config(executor="processes")
    assert err.value.key == "dask_scheduler" and "only used" in str(err.value)


def test_missing_distributed_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "distributed" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError) as err:
        _config()
    assert err.value.key == "executor" and "radarlib[distributed]" in str(err.value)
    assert _config(executor="processes", dask_scheduler=None).executor == "processes"

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    with pytest.raises(ConfigError) as err:
        import_distributed()
    assert err.value.key == "executor" and "radarlib[distributed]" in str(err.value)


def test_unreachable_scheduler_is_not_the_volume_s_fault(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = DaskConversionPool(f"tcp://127.0.0.1:{port}", 1, connect_timeout=1)
    job = ConversionJob("RMA11_0315_02_X", (str(tmp_path / "x.BUFR"),), str(tmp_path))

    async def scenario() -> None:
        await pool.warm_up()  # swallowed: the daemon keeps running
        with pytest.raises(ExecutorUnavailableError, match=f"127.0.0.1:{port}"):
            await pool.convert(job)
        await pool.close(abandon=False)

    asyncio.run(scenario())
    assert pool.restarts == 0


# --------------------------------------------------------------------------- on the cluster


def test_real_sample_volumes_are_converted_on_the_cluster(
    tmp_path: Path, rma11_dir: Path, cluster: tuple[str, Any]
) -> None:
    address, _client = cluster
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in sorted(rma11_dir.glob("*.BUFR")):
            record(tracker, path)
    daemon = ProcessingDaemon(make_config(tmp_path, address))
    asyncio.run(run_until(daemon, lambda: statuses(db).get("completed", 0) == 2))

    done = rows(db)
    assert statuses(db) == {"completed": 2}
    assert {v: r["attempts"] for v, r in done.items()} == {"01": 1, "02": 1}  # exactly once
    stats = daemon.get_stats()
    assert (stats["volumes_processed"], stats["conversion_errors"]) == (2, 0)
    vol1, vol2 = Path(done["01"]["netcdf_path"]), Path(done["02"]["netcdf_path"])
    assert vol1.name == "RMA11_0315_01_20251020T152828Z.nc"
    assert vol2.name == "RMA11_0315_02_20251020T152429Z.nc"
    for path, fields, nsweeps in (
        (vol1, {"DBZH", "DBZV", "ZDR", "KDP"}, 15),
        (vol2, {"VRAD", "WRAD"}, 5),
    ):
        with netCDF4.Dataset(path) as ds:
            assert fields <= set(ds.variables)
            assert ds.dimensions["sweep"].size == nsweeps
            assert ds.time_coverage_start.startswith("2025-10-20T15:2")
    assert sorted(p.name for p in (tmp_path / "netcdf").iterdir()) == sorted([vol1.name, vol2.name])
    assert our_tasks(_client) == []  # the daemon's futures are released


def test_corrupt_file_fails_naming_the_file(
    tmp_path: Path, rma11_dir: Path, cluster: tuple[str, Any]
) -> None:
    address, _client = cluster
    db = tmp_path / "state.db"
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    vrad = next(rma11_dir.glob("*_VRAD_*.BUFR"))
    corrupt = bufr / vrad.name
    corrupt.write_bytes(vrad.read_bytes()[: vrad.stat().st_size // 2])
    with SQLiteStateTracker(db) as tracker:
        record(tracker, corrupt)
        record(tracker, next(rma11_dir.glob("*_WRAD_*.BUFR")))
    daemon = ProcessingDaemon(make_config(tmp_path, address, max_attempts=1, on_bad_field="fail"))
    asyncio.run(run_until(daemon, lambda: statuses(db).get("failed", 0) == 1))
    row = rows(db)["02"]
    assert row["status"] == "failed" and row["attempts"] == 1
    assert vrad.name in row["error_message"]
    assert row["error_message"].startswith(row["volume_id"])
    assert not list((tmp_path / "netcdf").glob("*.nc"))


def test_corrupt_field_is_dropped_on_the_cluster_too(
    tmp_path: Path, rma11_dir: Path, cluster: tuple[str, Any]
) -> None:
    """on_bad_field = "drop" (the default) travels with the job to the Dask workers."""
    address, _client = cluster
    db = tmp_path / "state.db"
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    vrad = next(rma11_dir.glob("*_VRAD_*.BUFR"))
    corrupt = bufr / vrad.name
    corrupt.write_bytes(vrad.read_bytes()[: vrad.stat().st_size // 2])
    with SQLiteStateTracker(db) as tracker:
        record(tracker, corrupt)
        record(tracker, next(rma11_dir.glob("*_WRAD_*.BUFR")))
    daemon = ProcessingDaemon(make_config(tmp_path, address, max_attempts=1))
    asyncio.run(run_until(daemon, lambda: statuses(db).get("completed", 0) == 1))
    with SQLiteStateTracker(db) as tracker:
        (bad,) = tracker.get_bad_fields(rows(db)["02"]["volume_id"])
    assert (bad["field"], bad["filename"]) == ("VRAD", vrad.name)
    assert len(list((tmp_path / "netcdf").glob("*.nc"))) == 1


def test_stop_cancels_conversions_on_the_cluster_and_releases_them(
    tmp_path: Path, rma11_dir: Path, cluster: tuple[str, Any]
) -> None:
    address, client = cluster
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in sorted(rma11_dir.glob("RMA11_0315_02_*.BUFR")):
            record(tracker, path)
    (tmp_path / "hold").touch()
    daemon = ProcessingDaemon(
        make_config(tmp_path, address, shutdown_grace_seconds=0.3), converter=HELD
    )

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("running.*")):
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.05)
        assert len(our_tasks(client)) == 1
        daemon.stop()
        await asyncio.wait_for(task, 30)

    try:
        asyncio.run(scenario())
        row = rows(db)["02"]
        assert row["status"] == "pending" and row["attempts"] == 0 and not row["claimed_by"]
        assert statuses(db) == {"pending": 1}
        assert daemon.get_stats()["volumes_released"] == 1
        assert our_tasks(client) == []  # the future was cancelled on the scheduler
    finally:
        (tmp_path / "hold").unlink()


def test_killed_worker_returns_the_volume_and_it_completes_on_retry(
    tmp_path: Path, rma11_dir: Path, cluster: tuple[str, Any]
) -> None:
    address, client = cluster
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in sorted(rma11_dir.glob("RMA11_0315_02_*.BUFR")):
            record(tracker, path)
    hold = tmp_path / "hold"
    hold.touch()
    worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2
    killed: list[int] = []
    seen: set[str] = set()

    def kill_the_worker() -> None:
        seen.add(rows(db)["02"]["status"])
        running = list(tmp_path.glob("running.*"))
        if running and not killed:
            pid = int(running[0].name.split(".")[1])
            assert pid in worker_pids  # a cluster worker, not this process
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            hold.unlink()  # the retry converts normally

    daemon = ProcessingDaemon(make_config(tmp_path, address, max_attempts=3), converter=HELD)
    asyncio.run(
        run_until(daemon, lambda: statuses(db).get("completed", 0) == 1, during=kill_the_worker)
    )
    assert killed
    row = rows(db)["02"]
    assert row["status"] == "completed" and row["attempts"] == 2  # the loss counted one attempt
    assert statuses(db) == {"completed": 1}  # nothing left in processing after stop()
    stats = daemon.get_stats()
    assert stats["worker_restarts"] == 1
    assert (stats["conversion_errors"], stats["retries_scheduled"], stats["volumes_processed"]) == (
        1,
        1,
        1,
    )
    with netCDF4.Dataset(row["netcdf_path"]) as ds:
        assert {"VRAD", "WRAD"} <= set(ds.variables)
    # the nanny replaces the killed worker: the cluster keeps two workers
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in set(client.run(os.getpid).values())
