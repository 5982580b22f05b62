"""The dated archive layout: templates, config validation, and the processing daemon writing a
real sample volume into its dated folder (read back with netCDF4)."""

from __future__ import annotations

import asyncio
import functools
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PYART_QUIET", "1")

import netCDF4

import daemon_helpers
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
from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig, SQLiteStateTracker

T = datetime(2025, 1, 8, 3, 59, 59, tzinfo=timezone.utc)
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
