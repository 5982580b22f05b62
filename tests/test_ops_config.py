"""The operations tables of the TOML config: parsed into dataclasses, errors name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from radarlib.config import ConfigErrors, example_config_path, load_config, parse_config
from radarlib.errors import ConfigError

BASE: dict[str, Any] = {
    "sources": {"main": {"host": "ftp.example.org"}},
    "radars": [{"code": "RMA1", "start_date": "2025-01-01T00:00:00Z"}],
}


def parse(tmp_path: Path, **tables: Any) -> Any:
    return parse_config({**BASE, **tables}, env={}, base_dir=tmp_path).operations


def parse_health(tmp_path: Path, **tables: Any) -> Any:
    return parse_config({**BASE, **tables}, env={}, base_dir=tmp_path).health


def test_defaults_are_off_or_safe(tmp_path: Path) -> None:
    ops = parse(tmp_path)
    assert not ops.retention.active and not ops.notifications.active
    assert ops.metrics.listen is None and parse_health(tmp_path).max_age_minutes == 30
    assert ops.dashboard.token_env == "RADARLIB_DASHBOARD_TOKEN"


def test_full_tables(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    ops = parse(
        tmp_path,
        retention={
            "interval_minutes": 30,
            "bufr": {"keep_days": 30, "max_gb": 200},
            "netcdf": {"keep_days": 3650},
            "radars": {"RMA5": {"bufr": {"keep_days": 7}}},
        },
        notifications={
            "on_volume_completed": True,
            "silent_minutes": 20,
            "webhooks": [
                {
                    "url": "https://hooks.example.org/x",
                    "secret_env": "HOOK",
                    "events": ["volume_failed", "radar_silent"],
                }
            ],
            "email": {
                "host": "smtp.example.org",
                "sender": "a@b.c",
                "recipients": ["o@b.c"],
                "username": "radar",
                "tls_ca_file": "ca.pem",
            },
        },
        metrics={"listen": "[::1]:9108"},
    )
    assert ops.retention.rule("RMA5", "bufr").keep_days == 7
    assert ops.retention.rule("RMA5", "bufr").max_gb is None  # the override replaces the rule
    assert ops.retention.rule("RMA1", "bufr").max_gb == 200
    assert ops.retention.rule("RMA1", "products").active is False
    assert ops.notifications.webhooks[0].events == ("volume_failed", "radar_silent")
    assert ops.notifications.email.tls_ca_file == ca and ops.notifications.email.port == 587
    assert ops.metrics.listen == ("::1", 9108)
    assert parse_health(tmp_path, health={"max_age_minutes": 10}).max_age_minutes == 10


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        ({"retention": {"bufr": {"keep_days": 0}}}, "retention.bufr.keep_days"),
        ({"retention": {"bufr": {"keep": 3}}}, "retention.bufr.keep"),
        ({"retention": {"radars": {"rma1": {}}}}, "retention.radars.rma1"),
        ({"notifications": {"webhooks": [{"url": "ftp://x"}]}}, "notifications.webhooks[0].url"),
        ({"notifications": {"webhooks": [{"url": "http://x", "events": ["nope"]}]}},
         "notifications.webhooks[0].events"),
        ({"notifications": {"email": {"host": "h", "sender": "s@x"}}},
         "notifications.email.recipients"),
        ({"metrics": {"listen": "9108"}}, "metrics.listen"),
        ({"health": {"max_age_minutes": -1}}, "health.max_age_minutes"),
        ({"dashboard": {"token_env": "not a name"}}, "dashboard.token_env"),
    ],
)  # fmt: skip
def test_errors_name_the_key(tmp_path: Path, tables: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(tmp_path, **tables)
    assert err.value.key == key


def test_every_bad_operations_key_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as err:
        parse(
            tmp_path,
            retention={"bufr": {"keep_days": 0}},
            metrics={"listen": "9108"},
            dashboard={"token_env": "not a name"},
            download={"max_concurrent_downloads": 0},
        )
    keys = {problem.key for problem in err.value.problems}
    assert {"retention.bufr.keep_days", "metrics.listen", "dashboard.token_env"} <= keys
    assert "download.max_concurrent_downloads" in keys


def test_example_config_has_the_operations_tables() -> None:
    config = load_config(example_config_path(), env={"RADARLIB_FTP_PASSWORD": "x",
                                                     "RADARLIB_FTP_PASSWORD_B": "y"})  # fmt: skip
    ops = config.operations
    assert ops.retention.active and ops.retention.rule("RMA1", "bufr").keep_days
    assert config.health.max_age_minutes == 30
