"""Retention on a real dated archive and a real state database: files really deleted, rows kept
and marked, the BUFR safety rule, budgets, empty folders, a kill -9 of a cleanup subprocess
mid-way then a rerun, and a deleted file never downloaded again from a real FTP server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from daemon_helpers import ftp_daemon_config
from ftpserver import FTPServerThread
from radarlib.archive import archive_folder
from radarlib.config import Config, parse_config
from radarlib.filename import BufrFileName
from radarlib.io.ftp import DateBasedFTPDaemon
from radarlib.retention import CleanupBusyError, _exclusive, run_cleanup
from radarlib.state.sqlite import SQLiteStateTracker

UTC = timezone.utc
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TYPES = {"0315": {"02": ["VRAD", "WRAD"]}}
BUFR_TEMPLATE = "{root}/{radar}/bufr/{year}/{month}/{day}"
NC_TEMPLATE = "{root}/{radar}/nc/{year}/{month}/{day}"
ROOT = Path(__file__).resolve().parents[1]


def make_config(root: Path, retention: dict[str, Any], radar: str = "RMA1") -> Config:
    return parse_config(
        {
            "sources": {"main": {"host": "127.0.0.1"}},
            "radars": [{"code": radar, "start_date": "2020-01-01T00:00:00Z"}],
            "paths": {"root": str(root), "bufr_dir": BUFR_TEMPLATE, "netcdf_dir": NC_TEMPLATE},
            "volume_types": TYPES,
            "retention": retention,
        },
        env={},
    )


def write_config(root: Path, retention: dict[str, Any]) -> Path:
    lines = [
        "[sources.main]",
        'host = "127.0.0.1"',
        "[[radars]]",
        'code = "RMA1"',
        "start_date = 2020-01-01T00:00:00Z",
        "[paths]",
        f'root = "{root}"',
        f'bufr_dir = "{BUFR_TEMPLATE}"',
        f'netcdf_dir = "{NC_TEMPLATE}"',
        "[volume_types.0315]",
        '"02" = ["VRAD", "WRAD"]',
        "[retention]",
    ]
    for key, value in retention.items():
        if isinstance(value, dict):
            continue
        lines.append(f"{key} = {json.dumps(value)}")
    for kind, table in retention.items():
        if isinstance(table, dict):
            lines.append(f"[retention.{kind}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = root / "radarlib.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Archive:
    """Volumes of RMA1 one per ``step`` back from NOW, with BUFR and NetCDF files on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "state.db"
        self.tracker = SQLiteStateTracker(self.db)

    def add(self, when: datetime, outcome: str = "completed", size: int = 1000) -> str:
        volume_id = ""
        fields = TYPES["0315"]["02"][:1] if outcome == "waiting" else TYPES["0315"]["02"]
        for field in fields:
            name = BufrFileName("RMA1", "0315", "02", field, when)
            folder = archive_folder(BUFR_TEMPLATE, "RMA1", when, root=self.root)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name.name
            path.write_bytes(b"B" * size)
            self.tracker.mark_downloaded(
                name.name, f"/L2/RMA1/{name.name}", str(path), size, None,
                expected_fields=TYPES["0315"]["02"],
            )  # fmt: skip
            volume_id = name.volume_key.volume_id
        if outcome == "waiting":  # incomplete: its other field has not arrived
            return volume_id
        later = datetime(2100, 1, 1, tzinfo=UTC)
        claimed = self.tracker.claim_volumes("test", 1, radar_code="RMA1", now=later)
        assert [v["volume_id"] for v in claimed] == [volume_id]
        if outcome == "completed":
            folder = archive_folder(NC_TEMPLATE, "RMA1", when, root=self.root)
            folder.mkdir(parents=True, exist_ok=True)
            nc = folder / BufrFileName("RMA1", "0315", "02", "VRAD", when).volume_key.netcdf_name
            nc.write_bytes(b"N" * 3 * size)
            self.tracker.finish_volume(volume_id, "test", nc)
        else:
            self.tracker.fail_volume(volume_id, "test", "VolumeError: corrupt", retry_at=None)
        return volume_id

    def rows(self) -> list[dict[str, Any]]:
        with self.tracker._use() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM downloads ORDER BY filename")]

    def volumes(self) -> dict[str, dict[str, Any]]:
        with self.tracker._use() as conn:
            rows = conn.execute("SELECT * FROM volume_processing").fetchall()
        return {r["volume_id"]: dict(r) for r in rows}


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    a = Archive(tmp_path)
    yield a
    a.tracker.close()


def assert_consistent(archive: Archive) -> None:
    """Every row marked deleted has no file; every row not marked has its file."""
    for row in archive.rows():
        assert row["status"] == "downloaded"
        assert (row["deleted_at"] is None) == Path(row["local_path"]).exists(), row
    for vol in archive.volumes().values():
        if vol["netcdf_path"]:
            assert (vol["netcdf_deleted_at"] is None) == Path(vol["netcdf_path"]).exists(), vol
    assert archive.tracker.integrity_check() == []


def test_age_rules_delete_files_keep_rows_and_hold_unconverted_bufr(archive: Archive) -> None:
    days = {d: NOW - timedelta(days=d, hours=1) for d in range(1, 41)}
    ids = {d: archive.add(t) for d, t in days.items() if d not in (35, 36)}
    failed = archive.add(days[35], "failed")
    waiting = archive.add(days[36], "waiting")
    config = make_config(archive.root, {"bufr": {"keep_days": 10}, "netcdf": {"keep_days": 20}})

    dry = run_cleanup(config, dry_run=True, now=NOW)
    by_kind = {k.kind: k for k in dry.kinds}
    assert by_kind["bufr"].files_deleted == 2 * 30  # days 10..40 but the waiting one
    assert by_kind["bufr"].held_unconverted == 1
    assert by_kind["bufr"].files_kept == 19 and by_kind["bufr"].bytes_kept == 19_000
    assert by_kind["netcdf"].files_kept == 19 and by_kind["netcdf"].bytes_kept is None
    assert all(Path(p).exists() for k in dry.kinds for p in k.deleted)  # nothing touched
    assert all(r["deleted_at"] is None for r in archive.rows())

    report = run_cleanup(config, now=NOW)
    assert report.summary()["RMA1/bufr"]["files_deleted"] == 60
    assert report.summary()["RMA1/netcdf"]["files_deleted"] == 19  # days 20..40 but 35 (failed), 36
    assert report.summary()["RMA1/bufr"]["files_kept"] == 19
    assert report.summary()["RMA1/netcdf"]["files_kept"] == 19
    assert_consistent(archive)
    rows = {r["filename"]: r for r in archive.rows()}
    assert len(rows) == 79  # no row lost
    for name, row in rows.items():
        day = (NOW - BufrFileName.parse(name).time).days
        gone = day >= 10 and day != 36
        assert (row["deleted_at"] is not None) == gone, name
        assert archive.tracker.is_downloaded(name)  # still "done" for the download side
    vols = archive.volumes()
    assert vols[failed]["status"] == "failed" and vols[waiting]["status"] == "pending"
    assert vols[failed]["netcdf_path"] is None
    assert vols[ids[25]]["netcdf_deleted_at"] and not vols[ids[15]]["netcdf_deleted_at"]
    assert Path(vols[ids[25]]["netcdf_path"]).name.endswith(".nc")  # the record says where
    # empty day folders went, the base folders and the kept days stay
    old_day = archive_folder(BUFR_TEMPLATE, "RMA1", days[20], root=archive.root)
    assert not old_day.exists()
    assert archive_folder(BUFR_TEMPLATE, "RMA1", days[36], root=archive.root).is_dir()
    assert (archive.root / "RMA1" / "bufr").is_dir() and (archive.root / "RMA1" / "nc").is_dir()
    assert report.folders_removed > 0
    again = run_cleanup(config, now=NOW)  # idempotent
    assert sum(k.files_deleted for k in again.kinds) == 0


def test_budget_deletes_oldest_converted_first(archive: Archive) -> None:
    times = [NOW - timedelta(hours=h) for h in range(10, 0, -1)]  # oldest first
    ids = [archive.add(t, "waiting" if i == 0 else "completed") for i, t in enumerate(times)]
    # 19 BUFR files of 1000 bytes; budget 6000 bytes
    config = make_config(archive.root, {"bufr": {"max_gb": 6000 / 1024**3}})
    report = run_cleanup(config, now=NOW)
    bufr = report.kinds[0]
    assert bufr.bytes_kept == 6000 and bufr.held_unconverted == 1
    kept = {r["volume_id"] for r in archive.rows() if r["deleted_at"] is None}
    assert {ids[0], *ids[-2:]} <= kept  # the waiting one and the newest
    assert not kept & set(ids[1:7])  # the oldest converted went first
    assert_consistent(archive)


def test_products_by_modification_time(tmp_path: Path) -> None:
    folder = tmp_path / "RMA1" / "products" / "2026" / "01"
    folder.mkdir(parents=True)
    old, new = folder / "old.png", tmp_path / "RMA1" / "products" / "new.png"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    stamp = (NOW - timedelta(days=40)).timestamp()
    os.utime(old, (stamp, stamp))
    config = make_config(
        tmp_path,
        {"products_dir": "{root}/{radar}/products/{year}/{month}", "products": {"keep_days": 30}},
    )
    run_cleanup(config, now=NOW)
    assert not old.exists() and new.exists() and not folder.exists()


def test_one_cleanup_at_a_time(archive: Archive) -> None:
    config = make_config(archive.root, {"bufr": {"keep_days": 1}})
    with _exclusive(archive.db), pytest.raises(CleanupBusyError):
        run_cleanup(config, now=NOW)


def _cli(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "radarlib", "cleanup", "--config", str(config), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_kill_9_mid_cleanup_then_rerun_leaves_a_consistent_database(archive: Archive) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(400):  # 800 BUFR files over 400 hours, all converted
        archive.add(start + timedelta(hours=i), size=100)
    archive.tracker.close()
    config = write_config(archive.root, {"max_deletes_per_second": 250, "bufr": {"keep_days": 30}})
    dry = _cli(config, "--dry-run", "--json")
    out, err = dry.communicate(timeout=120)
    assert dry.returncode == 0, err
    assert len(json.loads(out)["would_delete"]) == 800

    proc = _cli(config)
    bufr_files = lambda: len(list((archive.root / "RMA1" / "bufr").rglob("*.BUFR")))  # noqa: E731
    deadline = time.monotonic() + 60
    while bufr_files() > 500:  # well under way (about 3 s of work at 250 files/s)
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert 0 < bufr_files() <= 500

    archive.tracker = SQLiteStateTracker(archive.db)
    rows = archive.rows()
    marked = [r for r in rows if r["deleted_at"]]
    assert 0 < len(marked) < 800
    assert not any(Path(r["local_path"]).exists() for r in marked)  # marked => gone
    archive.tracker.close()

    rerun = _cli(config)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    archive.tracker = SQLiteStateTracker(archive.db)
    assert_consistent(archive)
    assert all(r["deleted_at"] for r in archive.rows()) and bufr_files() == 0
    assert not [p for p in (archive.root / "RMA1" / "bufr").iterdir()]  # empty years gone


def test_a_deleted_file_is_not_downloaded_again(
    ftp_server: FTPServerThread, tmp_path: Path, rma11_dir: Path
) -> None:
    for path in sorted(rma11_dir.glob("RMA11_0315_02_*.BUFR")):
        ftp_server.publish(path.name, path)
    day = datetime(2025, 10, 20, tzinfo=UTC)
    dl = ftp_daemon_config(ftp_server, tmp_path, start_date=day, end_date=day + timedelta(days=1))
    asyncio.run(asyncio.wait_for(DateBasedFTPDaemon(dl).run(), 60))
    names = [p.name for p in rma11_dir.glob("RMA11_0315_02_*.BUFR")]
    assert all(ftp_server.retr_count(n) == 1 for n in names)
    with SQLiteStateTracker(tmp_path / "state.db") as tracker:
        later = datetime(2100, 1, 1, tzinfo=UTC)
        [vol] = tracker.claim_volumes("t", 5, radar_code="RMA11", now=later)
        nc = tmp_path / "out.nc"
        nc.write_bytes(b"N")
        tracker.finish_volume(vol["volume_id"], "t", nc)
    config = parse_config(
        {
            "sources": {"main": {"host": "127.0.0.1"}},
            "radars": [{"code": "RMA11", "start_date": "2025-10-20T00:00:00Z"}],
            "paths": {"root": str(tmp_path), "bufr_dir": str(tmp_path / "dl")},
            "retention": {"bufr": {"keep_days": 1}},
        },
        env={},
    )
    report = run_cleanup(config, now=NOW)
    assert report.kinds[0].files_deleted == 2
    assert not list((tmp_path / "dl").rglob("*.BUFR"))

    asyncio.run(asyncio.wait_for(DateBasedFTPDaemon(dl).run(), 60))  # the same window again
    assert all(ftp_server.retr_count(n) == 1 for n in names)
    assert not list((tmp_path / "dl").rglob("*.BUFR"))


def test_radarlib_run_applies_retention_at_its_pace(archive: Archive) -> None:
    from radarlib.operations import watcher
    from radarlib.pipeline.supervisor import Pipeline, run_pipeline

    real_now = datetime.now(UTC)  # radarlib run uses the wall clock
    for day in (40, 39, 2):
        archive.add(real_now - timedelta(days=day))
    archive.tracker.close()
    config = make_config(archive.root, {"interval_minutes": 0.01, "bufr": {"keep_days": 30}})
    pipeline = Pipeline(config, roles=("processing",))
    housekeeping = watcher(config)

    async def main() -> int:
        async def stop_when_cleaned(p: Any) -> None:
            watch = asyncio.create_task(housekeeping(p))
            try:
                while len(list((archive.root / "RMA1" / "bufr").rglob("*.BUFR"))) != 2:
                    await asyncio.sleep(0.1)
                p.stop()
                await asyncio.sleep(3600)
            finally:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)

        return await asyncio.wait_for(
            run_pipeline(pipeline, handle_signals=False, watcher=stop_when_cleaned), 120
        )

    assert asyncio.run(main()) == 0
    archive.tracker = SQLiteStateTracker(archive.db)
    assert_consistent(archive)
    assert sum(1 for r in archive.rows() if r["deleted_at"]) == 4
