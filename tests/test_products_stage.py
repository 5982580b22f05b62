"""The product stage: its state rows (schema v3), the queue rules, the daemon in real worker
processes, and kill -9 + restart of a real daemon process: no partial product visible, none
made twice, every product done.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import matplotlib.image
import pytest

from radarlib.convert import ConvertOptions, convert_volume
from radarlib.errors import StateError
from radarlib.filename import VolumeKey
from radarlib.pipeline.products import ProductDaemon, ProductDaemonConfig
from radarlib.products.settings import ProductSettings
from radarlib.qc import QCConfig
from radarlib.state.products import ProductStore
from radarlib.state.schema import CURRENT_VERSION
from radarlib.state.sqlite import SQLiteStateTracker

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2025, 10, 20, 15, 28, 28, tzinfo=timezone.utc)
PRODUCTS = ["colmax.png", "colmax.tif"]


@pytest.fixture(scope="module")
def qc_netcdf(rma11_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    out = tmp_path_factory.mktemp("nc")
    return convert_volume(files, out, options=ConvertOptions(qc=QCConfig())).path


def _completed_volumes(db: Path, netcdf: Path, folder: Path, count: int) -> list[str]:
    """``count`` completed RMA11 volumes 10 minutes apart, each with its own NetCDF copy."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    with SQLiteStateTracker(db) as tracker:
        for k in range(count):
            key = VolumeKey("RMA11", "0315", "01", BASE + timedelta(minutes=10 * k))
            path = folder / key.netcdf_name
            shutil.copyfile(netcdf, path)
            tracker.register_volume(key.volume_id, "RMA11", "0315", "01", key.time, ["DBZH"])
            tracker.mark_volume_processing(key.volume_id, "completed", netcdf_path=str(path))
            ids.append(key.volume_id)
    return ids


def test_store_queue_rules(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for k in range(3):
            key = VolumeKey("RMA11", "0315", "01", BASE + timedelta(minutes=k))
            tracker.register_volume(key.volume_id, "RMA11", "0315", "01", key.time, ["DBZH"])
            status = "completed" if k < 2 else "pending"
            tracker.mark_volume_processing(key.volume_id, status, netcdf_path=f"/x/{k}.nc")
        version = tracker._conn.execute("PRAGMA user_version").fetchone()[0]  # type: ignore[union-attr]
        assert version == CURRENT_VERSION
        store = ProductStore(tracker)
        assert store.enqueue("RMA11", PRODUCTS) == 4  # 2 completed volumes x 2 products
        assert store.enqueue("RMA11", PRODUCTS) == 0  # never twice
        first = store.claim("w1", "RMA11", max_volumes=1)
        second = store.claim("w2", "RMA11", max_volumes=5)
        assert [c.volume_id for c in first] != [c.volume_id for c in second]
        assert set(first[0].rows) == set(PRODUCTS) and first[0].netcdf_path == "/x/0.nc"
        assert store.claim("w3", "RMA11", max_volumes=5) == []  # nothing left
        row = first[0].rows["colmax.tif"]
        with pytest.raises(StateError):
            store.finish(row, "w2", "/p")  # not w2's claim
        store.finish(row, "w1", "/p/colmax.tif")
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        store.fail(first[0].rows["colmax.png"], "w1", "boom", retry_at=later)
        assert store.claim("w3", "RMA11", max_volumes=5) == []  # retry not yet due
        due = store.claim("w3", "RMA11", now=later + timedelta(seconds=1))
        assert list(due[0].rows) == ["colmax.png"] and due[0].attempts["colmax.png"] == 2
        store.fail(due[0].rows["colmax.png"], "w3", "boom again", retry_at=None)
        assert store.recover(worker_id="w2") == 2  # w2's two rows back to pending
        assert store.counts("RMA11") == {"done": 1, "failed": 1, "pending": 2}
        # no worker could be started: the rows go back without using an attempt, due later
        taken = store.claim("w4", "RMA11", max_volumes=1)
        tif = taken[0].rows["colmax.tif"]
        assert store.release("w4", row_ids=[tif], retry_at=later) == 1
        assert store.claim("w5", "RMA11") == []  # not before retry_at
        rows = {r["id"]: r for r in store.rows(taken[0].volume_id)}
        assert rows[tif]["status"] == "pending" and rows[tif]["attempts"] == 1
        assert rows[taken[0].rows["colmax.png"]]["status"] == "processing"  # not in row_ids
        assert store.release("w4") == 1
        assert store.counts("RMA11") == {"done": 1, "failed": 1, "pending": 2}
        # `radarlib products` resets a period: failed and done rows become pending again
        assert store.reset("RMA11", PRODUCTS, start=BASE, end=BASE + timedelta(minutes=1)) == 2
        assert store.counts("RMA11") == {"pending": 4}
        # retention deleting a volume deletes its product rows
        with tracker._write() as conn:
            conn.execute("DELETE FROM downloads")
            conn.execute("DELETE FROM volume_processing WHERE volume_id = ?", (first[0].volume_id,))
        assert store.counts("RMA11") == {"pending": 2}


def test_daemon_makes_products_in_workers_and_retries_failures(
    qc_netcdf: Path, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    ids = _completed_volumes(db, qc_netcdf, tmp_path / "nc", 2)
    Path(tmp_path / "nc" / VolumeKey.from_volume_id(ids[1]).netcdf_name).unlink()  # broken
    settings = ProductSettings(
        enabled=True, transparent=False, ppi_sweeps=(0,), poll_interval=0.2,
        max_attempts=2, retry_backoff_seconds=0.0,
    )  # fmt: skip
    config = ProductDaemonConfig(
        radar_code="RMA11", state_db=db, output_dir=tmp_path / "products", settings=settings,
        fsync=False,
    )  # fmt: skip
    daemon = ProductDaemon(config)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            counts = daemon.get_stats()["products_by_status"]
            if counts.get("done", 0) == 3 and counts.get("failed", 0) == 3:
                break
        daemon.stop()
        await task

    asyncio.run(scenario())
    with SQLiteStateTracker(db) as tracker:
        rows = ProductStore(tracker).rows()
    good = [r for r in rows if r["volume_id"] == ids[0]]
    bad = [r for r in rows if r["volume_id"] == ids[1]]
    assert {r["product"] for r in good} == {"colmax.png", "colmax.tif", "ppi_DBZH_0.png"}
    assert all(r["status"] == "done" and Path(r["path"]).is_file() for r in good)
    assert all(r["status"] == "failed" and r["attempts"] == 2 for r in bad)
    assert all("cannot open NetCDF" in r["error_message"] for r in bad)
    assert daemon.get_stats()["running"] is False


_DAEMON = textwrap.dedent(
    """
    import asyncio, signal, sys
    from pathlib import Path
    from radarlib.pipeline.products import ProductDaemon, ProductDaemonConfig
    from radarlib.products.settings import ProductSettings

    if __name__ == "__main__":
        settings = ProductSettings(enabled=True, ppi_sweeps=(0, 1), poll_interval=0.2)
        daemon = ProductDaemon(ProductDaemonConfig(
            radar_code="RMA11", state_db=Path(sys.argv[1]), output_dir=Path(sys.argv[2]),
            settings=settings))

        async def main():
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, daemon.stop)
            await daemon.run()

        asyncio.run(main())
    """
)


def _done(db: Path) -> int:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM products WHERE status='done'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _start(script: Path, db: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYART_QUIET": "1"}
    return subprocess.Popen([sys.executable, str(script), str(db), str(out)], env=env)


def _valid_product(path: Path) -> None:
    if path.suffix == ".png":
        assert matplotlib.image.imread(path).shape[0] >= 480, path  # colmax transparent: 480
    else:
        import rasterio

        with rasterio.open(path) as ds:
            assert ds.read(1).shape == (480, 480)


def test_kill_9_and_restart_leave_no_partial_product_and_make_none_twice(
    qc_netcdf: Path, tmp_path: Path
) -> None:
    db, out = tmp_path / "state.db", tmp_path / "products"
    ids = _completed_volumes(db, qc_netcdf, tmp_path / "nc", 4)
    per_volume = len(ProductSettings(ppi_sweeps=(0, 1)).product_names())
    total = len(ids) * per_volume
    script = tmp_path / "daemon.py"
    script.write_text(_DAEMON)

    first = _start(script, db, out)
    deadline = time.monotonic() + 180
    while _done(db) < per_volume + 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.poll() is None, "the daemon ended early"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    time.sleep(1.0)  # its worker dies with it (PR_SET_PDEATHSIG)
    done_at_kill = _done(db)
    assert 0 < done_at_kill < total, done_at_kill
    finals = {p: p.stat().st_ino for p in out.glob("RMA11_*") if p.is_file()}
    for path in finals:  # whatever is visible is complete
        _valid_product(path)

    second = _start(script, db, out)
    deadline = time.monotonic() + 240
    while _done(db) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0

    with SQLiteStateTracker(db) as tracker:
        rows = ProductStore(tracker).rows()
    assert len(rows) == total and all(r["status"] == "done" for r in rows)
    assert len({(r["volume_id"], r["product"]) for r in rows}) == total
    produced = sorted(out.glob("RMA11_*"))
    assert len(produced) == total == len({r["path"] for r in rows})
    for path in produced:
        _valid_product(path)
    for path, inode in finals.items():  # made before the kill: kept, not made again
        assert path.stat().st_ino == inode, f"{path.name} was made twice"
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
