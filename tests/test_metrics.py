"""Prometheus metrics scraped over HTTP from the dashboard and from the ``[metrics] listen``
server of ``radarlib run``, parsed with ``prometheus_client.parser``."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from radarlib.config import parse_config
from radarlib.dashboard import Dashboard, DashboardSettings
from radarlib.filename import BufrFileName
from radarlib.metrics import serve_metrics
from radarlib.state.ops_rows import record_conversion_seconds
from radarlib.state.sqlite import SQLiteStateTracker

UTC = timezone.utc
LATER = datetime(2100, 1, 1, tzinfo=UTC)


def build(root: Path) -> Path:
    """RMA1: 2 completed volumes (conversions 1.5 s and 40 s), 1 failed, 1 ready, 1 incomplete,
    one failed download; RMA2: nothing but one file."""
    db = root / "state.db"
    now = datetime.now(UTC).replace(microsecond=0)
    with SQLiteStateTracker(db) as tracker:

        def add(radar: str, minutes: int, fields: tuple[str, ...], size: int = 1000) -> str:
            when = now - timedelta(minutes=minutes)
            vid = ""
            for field in fields:
                name = BufrFileName(radar, "0315", "02", field, when)
                path = root / name.name
                path.write_bytes(b"x" * size)
                tracker.mark_downloaded(name.name, "/L2/x", str(path), size, None,
                                        expected_fields=["VRAD", "WRAD"])  # fmt: skip
                vid = name.volume_key.volume_id
            return vid

        for minutes, seconds in ((50, 1.5), (40, 40.0)):
            vid = add("RMA1", minutes, ("VRAD", "WRAD"))
            [claimed] = tracker.claim_volumes("w", 1, radar_code="RMA1", now=LATER)
            nc = root / f"{minutes}.nc"
            nc.write_bytes(b"n" * 5000)
            tracker.finish_volume(claimed["volume_id"], "w", nc)
            record_conversion_seconds(tracker, vid, seconds)
        add("RMA1", 30, ("VRAD", "WRAD"))
        [claimed] = tracker.claim_volumes("w", 1, radar_code="RMA1", now=LATER)
        tracker.fail_volume(claimed["volume_id"], "w", "VolumeError: bad", retry_at=None)
        add("RMA1", 20, ("VRAD", "WRAD"))  # ready, waiting in the queue
        add("RMA1", 10, ("VRAD",))  # incomplete: the newest observation
        tracker.mark_download_failed(
            BufrFileName("RMA1", "0315", "02", "WRAD", now - timedelta(minutes=10)).name,
            "/L2/y", "550 gone", next_attempt_at=LATER,
        )  # fmt: skip
        add("RMA2", 300, ("VRAD",), size=7)
    return db


def scrape(url: str) -> dict[str, list[Any]]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    matches = [
        s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (name, labels, samples.get(name))
    return float(matches[0])


def check(samples: dict[str, list[Any]]) -> None:
    assert value(samples, "radarlib_files_downloaded_total", radar="RMA1") == 9
    assert value(samples, "radarlib_bytes_downloaded_total", radar="RMA1") == 9000
    assert value(samples, "radarlib_files_downloaded_total", radar="RMA2") == 1
    assert value(samples, "radarlib_download_failures", radar="RMA1") == 1
    assert value(samples, "radarlib_volumes", radar="RMA1", status="completed") == 2
    assert value(samples, "radarlib_volumes", radar="RMA1", status="failed") == 1
    assert value(samples, "radarlib_volumes", radar="RMA1", status="pending") == 2
    assert value(samples, "radarlib_volumes_incomplete", radar="RMA1") == 1
    assert value(samples, "radarlib_queue_depth", radar="RMA1") == 1
    assert value(samples, "radarlib_conversion_duration_seconds_count", radar="RMA1") == 2
    assert value(samples, "radarlib_conversion_duration_seconds_sum", radar="RMA1") == 41.5
    assert (
        value(samples, "radarlib_conversion_duration_seconds_bucket", radar="RMA1", le="2.0") == 1
    )
    assert (
        value(samples, "radarlib_conversion_duration_seconds_bucket", radar="RMA1", le="+Inf") == 2
    )
    age = value(samples, "radarlib_newest_observation_age_seconds", radar="RMA1")
    assert 590 <= age < 700  # the incomplete volume 10 minutes ago
    assert value(samples, "radarlib_newest_observation_age_seconds", radar="RMA2") > 900  # stale
    assert value(samples, "radarlib_archive_bytes", radar="RMA1", kind="bufr") == 9000
    assert value(samples, "radarlib_archive_bytes", radar="RMA1", kind="netcdf") == 10000


def test_dashboard_serves_metrics_from_the_database(tmp_path: Path) -> None:
    db = build(tmp_path)
    dashboard = Dashboard(
        DashboardSettings(targets=((db, None), (tmp_path / "missing.db", None)), port=0)
    )
    dashboard.start()
    try:
        samples = scrape(dashboard.url + "metrics")
        check(samples)
        down = [s for s in samples["radarlib_state_db_up"] if s.value == 0]
        assert [s.labels["path"] for s in down] == [str(tmp_path / "missing.db")]
    finally:
        dashboard.stop()


def test_radarlib_run_metrics_listener(tmp_path: Path) -> None:
    build(tmp_path)
    config = parse_config(
        {
            "sources": {"main": {"host": "127.0.0.1"}},
            "radars": [
                {"code": "RMA1", "start_date": "2025-01-01T00:00:00Z"},
                {"code": "RMA2", "start_date": "2025-01-01T00:00:00Z"},
            ],
            "paths": {"root": str(tmp_path)},
            "metrics": {"listen": "127.0.0.1:0"},
        },
        env={},
    )
    assert config.operations.metrics.listen == ("127.0.0.1", 0)
    server = serve_metrics(config, *config.operations.metrics.listen)
    try:
        samples = scrape(f"http://127.0.0.1:{server.port}/metrics")
        check(samples)
        assert [s.value for s in samples["radarlib_state_db_up"]] == [1]
    finally:
        server.stop()
