"""Misconfiguration is not silent: warned once at WARNING, recorded, shown by status and healthz."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from radarlib.io.ftp import ProcessingDaemon
from radarlib.status import collect_status, healthz
from test_cli_run import python_env
from test_processing_daemon import FAKE, Env, run_until

T0 = datetime(2025, 11, 18, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e
    e.tracker.close()


def test_unknown_fields_are_warned_once_recorded_and_shown_by_status(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="radarlib.pipeline.processing")
    for minutes in (0, 5):
        for field in ("VRAD", "WRAD", "CM"):  # CM: a field radarlib does not know
            env.add("RMA1", "02", field, T0 + timedelta(minutes=minutes))
    # KPD: a typo for KDP in volume_types (its volumes would wait for a field never produced)
    types = {"0315": {"01": ["DBZH", "KPD"], "02": ["VRAD", "WRAD"]}}
    daemon = ProcessingDaemon(env.config(volume_types=types), converter=FAKE)
    asyncio.run(run_until(daemon, lambda: env.statuses().get("completed", 0) == 2))

    unknown = [r for r in caplog.records if "has field 'CM'" in r.getMessage()]
    assert len(unknown) == 1 and unknown[0].levelno == logging.WARNING  # once, not per volume
    config = [r for r in caplog.records if "'KPD'" in r.getMessage()]
    assert len(config) == 1 and "did you mean KDP?" in config[0].getMessage()

    report = collect_status(env.db, ["RMA1"])
    kinds = {(p["kind"], p["subject"]) for p in report.problems}
    assert kinds == {("unknown_field", "CM"), ("config", "volume_types.0315.01")}

    shown = subprocess.run(
        [sys.executable, "-m", "radarlib", "status", "--db", str(env.db)],
        capture_output=True, text=True, timeout=60, env=python_env(),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "problems to look at:" in shown.stdout
    assert "field 'KPD' is not a field the radars produce (did you mean KDP?)" in shown.stdout
    assert "has field 'CM'" in shown.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "radarlib", "status", "--db", str(env.db), "--json"],
        capture_output=True, text=True, timeout=60, env=python_env(),
    )  # fmt: skip
    problems = json.loads(as_json.stdout)["databases"][0]["problems"]
    assert {p["subject"] for p in problems} == {"CM", "volume_types.0315.01"}


def test_healthz_is_per_radar(env: Env) -> None:
    now = datetime.now(timezone.utc)
    env.tracker._clock = lambda: now - timedelta(minutes=5)  # type: ignore[attr-defined]
    env.add("RMA1", "02", "VRAD", T0)
    env.tracker._clock = lambda: now - timedelta(hours=2)  # type: ignore[attr-defined]
    env.add("RMA2", "02", "VRAD", T0)
    report = healthz([(env.db, ["RMA1", "RMA2", "RMA3"])], max_age_minutes=30, now=now)
    assert not report.healthy
    by_radar = {r.radar: r for r in report.radars}
    assert by_radar["RMA1"].healthy and by_radar["RMA1"].age_minutes == pytest.approx(5, abs=0.1)
    assert not by_radar["RMA2"].healthy
    assert "downloaded 120 min ago (limit 30 min)" in str(by_radar["RMA2"].reason)
    assert by_radar["RMA3"].reason == "has never downloaded anything"
    assert [r.radar for r in report.unhealthy] == ["RMA2", "RMA3"]
    only_fresh = healthz([(env.db, ["RMA1"])], max_age_minutes=30, now=now)
    assert only_fresh.healthy
    assert healthz([(env.db, ["RMA1", "RMA2"])], max_age_minutes=180, now=now).healthy
    missing = healthz([(env.db.parent / "nope.db", ["RMA1"])], now=now)
    assert not missing.healthy and missing.errors and not missing.radars[0].healthy


def test_health_max_age_is_a_config_key(tmp_path: Path) -> None:
    from radarlib.config import load_config

    text = (
        '[sources.main]\nhost = "h"\n[[radars]]\ncode = "RMA1"\nstart_date = 2025-11-17\n'
        "[health]\nmax_age_minutes = 45\n"
    )
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path, env={}).health.max_age_minutes == 45
    path.write_text(text.replace("45", "-1"))
    from radarlib.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == "health.max_age_minutes"
