"""The dated archive layout: templates, config validation, the download daemon storing files
fetched from a real FTP server (pyftpdlib on loopback) in their dated folders, and the
processing daemon writing a real sample volume into its dated folder (read back with netCDF4)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PYART_QUIET", "1")

import netCDF4

import daemon_helpers
from ftpserver import FTPServerThread
from radarlib.archive import (
    archive_folder,
    base_folder,
    dated_folder,
    fill_static,
    is_dated,
    recent_folders,
)
from radarlib.config import parse_config
from radarlib.errors import ConfigError
from radarlib.filename import BufrFileName
from radarlib.io.ftp import (
    DateBasedFTPDaemon,
    ProcessingDaemon,
    ProcessingDaemonConfig,
    SQLiteStateTracker,
)

T = datetime(2025, 1, 8, 3, 59, 59, tzinfo=timezone.utc)
HOURLY = "{year}/{month}/{day}/{hour}"
SAMPLE_TYPES = {"0315": {"01": ["DBZH", "DBZV", "ZDR", "KDP"], "02": ["VRAD", "WRAD"]}}


def test_templates_fill_zero_padded_utc_fields() -> None:
    template = "{root}/{radar}/nc/{year}/{month}/{day}/{hour}"
    assert archive_folder(template, "RMA1", T, root="/d") == Path("/d/RMA1/nc/2025/01/08/03")
    assert is_dated(template) and not is_dated("{root}/{radar}/nc")
    half = fill_static(template, root="/x{odd}", radar="RMA1")
    assert half == "/x{{odd}}/RMA1/nc/{year}/{month}/{day}/{hour}"
    assert base_folder(half) == Path("/x{odd}/RMA1/nc")
    assert dated_folder("/a/{year}-{month}", T) == Path("/a/2025-01")
    assert dated_folder("/flat", T) == Path("/flat")
    # the hours around midnight cross two day folders
    days = recent_folders("/a/{year}/{month}/{day}", T, hours=5)
    assert days == [Path("/a/2025/01/07"), Path("/a/2025/01/08")]


def _config(paths: dict[str, str], tmp_path: Path) -> Any:
    return parse_config(
        {
            "sources": {"main": {"host": "ftp.example.org"}},
            "radars": [{"code": "RMA1", "start_date": "2025-01-01T00:00:00Z"}],
            "paths": {"root": str(tmp_path), **paths},
        },
        env={},
    )


def test_config_accepts_dated_folders_and_refuses_them_for_the_database(tmp_path: Path) -> None:
    config = _config({"netcdf_dir": "{root}/{radar}/nc/{year}/{month}/{day}"}, tmp_path)
    folder = config.netcdf_dir("RMA1")
    assert str(folder) == f"{tmp_path.resolve()}/RMA1/nc/{{year}}/{{month}}/{{day}}"
    assert dated_folder(folder, T) == tmp_path.resolve() / "RMA1/nc/2025/01/08"
    assert config.processing_config("RMA1").local_netcdf_dir == folder
    with pytest.raises(ConfigError) as err:
        _config({"state_db": "{root}/{year}.db"}, tmp_path)
    assert err.value.key == "paths.state_db"
    with pytest.raises(ConfigError, match=r"\{minute\}"):
        _config({"bufr_dir": "{root}/{minute}"}, tmp_path)


def test_processing_writes_into_the_dated_folder(tmp_path: Path, rma11_dir: Path) -> None:
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as tracker:
        for path in sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR")):
            daemon_helpers.record_download(tracker, path, SAMPLE_TYPES)
    template = str(tmp_path / "nc" / "{year}" / "{month}" / "{day}")
    config = ProcessingDaemonConfig(
        local_bufr_dir=tmp_path / "bufr",
        local_netcdf_dir=Path(template),
        state_db=db,
        volume_types=SAMPLE_TYPES,
        radar_code="RMA11",
        poll_interval=0.2,
    )

    def done() -> bool:
        with SQLiteStateTracker(db) as tracker:
            return tracker.count_volumes_by_status("RMA11")["completed"] == 1

    run = functools.partial(daemon_helpers.run_until, timeout=180)
    asyncio.run(run(ProcessingDaemon(config), done))

    with SQLiteStateTracker(db) as tracker:
        row = tracker.get_volumes_by_status("completed", radar_code="RMA11")[0]
    written = Path(row["netcdf_path"])
    assert written.parent == tmp_path / "nc" / "2025" / "10" / "20"
    with netCDF4.Dataset(written) as nc:
        assert "DBZH" in nc.variables
    assert not (tmp_path / "nc" / "{year}").exists()  # no literal placeholder folder


def _publish(server: FTPServerThread, moments: list[datetime]) -> dict[str, bytes]:
    published = {}
    for moment in moments:
        name = BufrFileName("RMA11", "0315", "02", "VRAD", moment).name
        published[name] = daemon_helpers.bufr_bytes(3000)
        server.publish(name, published[name])
    return published


def test_download_daemon_stores_files_in_their_dated_folders(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    day = datetime(2025, 10, 20, tzinfo=timezone.utc)
    moments = [
        day + timedelta(hours=1, minutes=5),
        day + timedelta(hours=13),
        day + timedelta(days=1, hours=23, minutes=59),
    ]
    published = _publish(ftp_server, moments)
    source = {"host": "127.0.0.1", "port": ftp_server.port, "username": "radar"}
    radar = {"code": "RMA11", "start_date": "2025-10-20T00:00:00Z"}
    config = parse_config(
        {
            "sources": {"main": {**source, "password_env": "ARCHIVE_TEST_PW"}},
            "radars": [{**radar, "end_date": "2025-10-22T00:00:00Z"}],
            "paths": {"root": str(tmp_path), "bufr_dir": "{root}/{radar}/bufr/" + HOURLY},
            "download": {"poll_interval": 0.2, "retry_backoff": 0.05},
        },
        env={"ARCHIVE_TEST_PW": "secret"},
    ).download_config("RMA11")
    base = tmp_path.resolve() / "RMA11" / "bufr"
    asyncio.run(asyncio.wait_for(DateBasedFTPDaemon(config).run(), 120))

    stored = {p.name: p for p in base.rglob("*.BUFR")}
    assert set(stored) == set(published)
    with SQLiteStateTracker(config.state_db) as tracker:
        for name, content in published.items():
            t = BufrFileName.parse(name).time
            path = stored[name]
            assert path.parent == base / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}" / f"{t:%H}"
            assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(content).digest()
            row = tracker.get_download(name)
            assert row["status"] == "downloaded" and Path(row["local_path"]) == path
    assert (base / ".radarlib-download-RMA11.lock").exists()  # the lock is in the base folder
    assert not [p for p in tmp_path.rglob("*") if "{" in p.name]  # no literal placeholder
    assert not list(tmp_path.rglob("*.part"))


def test_download_daemon_keeps_dated_folders_inside_its_root(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    day = datetime(2025, 10, 20, tzinfo=timezone.utc)
    _publish(ftp_server, [day + timedelta(hours=1)])
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "2025").symlink_to(outside)  # a dated folder that escapes the root
    config = daemon_helpers.ftp_daemon_config(
        ftp_server,
        tmp_path,
        local_download_dir=tmp_path / "dl" / "{year}" / "{month}",
        start_date=day,
        end_date=day + timedelta(hours=2),
        max_attempts=1,
    )
    daemon = DateBasedFTPDaemon(config)
    asyncio.run(asyncio.wait_for(daemon.run(), 60))
    assert not list(outside.rglob("*"))
    assert daemon.get_stats()["failures"] == 1 and not ftp_server.retrieved
    with pytest.raises(ConfigError) as err:
        daemon_helpers.ftp_daemon_config(
            ftp_server, tmp_path, local_download_dir=tmp_path / "{year}", local_layout="date"
        )
    assert err.value.key == "local_layout"
