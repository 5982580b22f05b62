"""ProcessingDaemonConfig: the design's fields and defaults, radar_name == radar_code, errors."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from radarlib.errors import ConfigError
from radarlib.io.ftp import ProcessingDaemonConfig
from radarlib.volume_types import DEFAULT_VOLUME_TYPES


def _config(**overrides: Any) -> ProcessingDaemonConfig:
    base: dict[str, Any] = {
        "local_bufr_dir": Path("./downloads/RMA1/bufr"),
        "local_netcdf_dir": Path("./downloads/RMA1/netcdf"),
        "state_db": Path("./downloads/RMA1/state.db"),
        "volume_types": DEFAULT_VOLUME_TYPES,
        "radar_name": "RMA1",
    }
    base.update(overrides)
    return ProcessingDaemonConfig(**base)


def test_design_fields_and_defaults() -> None:
    config = _config(poll_interval=30, max_concurrent_processing=2)
    assert config.radar_name == config.radar_code == config.radar == "RMA1"
    assert config.poll_interval == 30
    assert config.max_concurrent_processing == 2
    assert config.root_resources is None
    assert config.allow_incomplete is False
    assert config.incomplete_timeout_hours == 24
    assert config.max_attempts == 3
    assert config.compression_level == 4
    host, pid, tag = config.worker_id.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid()) and len(tag) == 8
    assert _config().worker_id != config.worker_id


def test_radar_code_is_the_same_setting() -> None:
    config = _config(radar_name=None, radar_code="RMA11")
    assert config.radar_name == "RMA11"
    assert _config(radar_code="RMA1").radar == "RMA1"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"radar_name": None}, "radar_code"),
        ({"radar_code": "RMA2"}, "radar_code"),
        ({"radar_name": "rma1"}, "radar_name"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": "30"}, "poll_interval"),
        ({"max_concurrent_processing": 0}, "max_concurrent_processing"),
        ({"max_concurrent_processing": 2.5}, "max_concurrent_processing"),
        ({"incomplete_timeout_hours": -1}, "incomplete_timeout_hours"),
        ({"allow_incomplete": "yes"}, "allow_incomplete"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"retry_backoff_seconds": -5}, "retry_backoff_seconds"),
        ({"compression_level": 10}, "compression_level"),
        ({"shutdown_grace_seconds": -1}, "shutdown_grace_seconds"),
        ({"stale_claim_seconds": 0}, "stale_claim_seconds"),
        ({"worker_id": " "}, "worker_id"),
        ({"state_db": None}, "state_db"),
        ({"volume_types": {"315": {"01": ["DBZH"]}}}, "volume_types.315"),
        ({"volume_types": {}}, "volume_types"),
    ],
)
def test_bad_values_name_the_field(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(**overrides)
    assert info.value.key == key
    assert str(info.value).startswith(key + ":")


def test_fractional_timeout_paths_from_strings_and_backoff() -> None:
    config = _config(
        incomplete_timeout_hours=0.25,
        state_db="x/state.db",
        retry_backoff_seconds=10,
        retry_backoff_max_seconds=35,
        root_resources="tables",
    )
    assert config.incomplete_timeout_hours == 0.25
    assert config.state_db == Path("x/state.db")
    assert config.root_resources == Path("tables")
    assert [config.retry_delay(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=35),
        timedelta(seconds=35),
    ]


def test_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ProcessingDaemonConfig(Path("a"), Path("b"), Path("c"), DEFAULT_VOLUME_TYPES, "RMA1")  # type: ignore[misc]
