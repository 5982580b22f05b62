"""Scan planning (radarlib.pipeline.scan) and DateBasedDaemonConfig validation: pure, no network."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from radarlib.errors import ConfigError
from radarlib.io.ftp import DateBasedDaemonConfig, DateBasedFTPDaemon
from radarlib.pipeline.download import PASSWORD_ENV
from radarlib.pipeline.scan import (
    Coverage,
    advance_coverage,
    floor_hour,
    hour_dir,
    hours_to_list,
    in_range,
    is_closed,
    resume_point,
)

UTC = timezone.utc
T = datetime(2025, 10, 20, 15, 28, 28, tzinfo=UTC)
H = timedelta(hours=1)


def test_floor_hour_and_folders() -> None:
    assert floor_hour(T) == datetime(2025, 10, 20, 15, tzinfo=UTC)
    assert hour_dir("/L2/", "RMA11", T) == "/L2/RMA11/2025/10/20/15"
    with pytest.raises(ValueError, match="naive"):
        floor_hour(datetime(2025, 1, 1))


def test_hours_to_list_stops_at_present_or_end() -> None:
    now = datetime(2025, 10, 20, 18, 5, tzinfo=UTC)
    hours = hours_to_list(resume=T - 2 * H, now=now, end=None)
    assert [h.hour for h in hours] == [13, 14, 15, 16, 17, 18]
    end = datetime(2025, 10, 20, 16, 0, 0, tzinfo=UTC)
    assert [h.hour for h in hours_to_list(resume=T, now=now, end=end)] == [15, 16]
    assert hours_to_list(resume=now + 2 * H, now=now, end=None) == []


def test_closed_and_range() -> None:
    hour = floor_hour(T)
    assert not is_closed(hour, hour + 3 * H - timedelta(seconds=1), 2 * H)
    assert is_closed(hour, hour + 3 * H, 2 * H)
    assert in_range(T, T, T)
    assert not in_range(T, T + timedelta(seconds=1), None)
    assert not in_range(T, None, T - timedelta(seconds=1))


def test_coverage_round_trip_and_garbage() -> None:
    cov = Coverage(floor_hour(T), floor_hour(T) + 5 * H)
    assert Coverage.parse(cov.format()) == cov
    assert cov.format() == "2025-10-20T15:00:00Z/2025-10-20T20:00:00Z"
    assert Coverage.parse(None) is None
    assert Coverage.parse("not a date") is None
    assert Coverage.parse("2025-10-20T20:00:00Z/2025-10-20T15:00:00Z") is None
    assert cov.covers(T) and not cov.covers(T + 5 * H)


def test_resume_point_comes_from_the_state_not_now() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cov = Coverage(floor_hour(T), floor_hour(T) + 3 * H)
    # continuous: coverage wins, then the newest file, only then "now - lookback"
    assert (
        resume_point(coverage=cov, start=None, latest_observation=None, now=now, lookback=2 * H)
        == cov.through
    )
    assert (
        resume_point(coverage=None, start=None, latest_observation=T, now=now, lookback=2 * H)
        == floor_hour(T) - 2 * H
    )
    assert (
        resume_point(coverage=None, start=None, latest_observation=None, now=now, lookback=2 * H)
        == now - 2 * H
    )
    # a start date inside the coverage resumes after it; outside it starts at the start date
    assert (
        resume_point(coverage=cov, start=T, latest_observation=None, now=now, lookback=H)
        == cov.through
    )
    earlier = T - 10 * H
    assert resume_point(
        coverage=cov, start=earlier, latest_observation=None, now=now, lookback=H
    ) == floor_hour(earlier)


def test_advance_coverage_stops_at_gaps_and_merges() -> None:
    r = floor_hour(T)
    assert advance_coverage(None, r, []) is None
    cov = advance_coverage(None, r, [r, r + H, r + 3 * H])
    assert cov == Coverage(r, r + 2 * H)  # the gap at r+2h stops it
    cov2 = advance_coverage(cov, r + 2 * H, [r + 2 * H, r + 3 * H])
    assert cov2 == Coverage(r, r + 4 * H)
    # a new span that grows into an old one merges with it
    old = Coverage(r + 2 * H, r + 10 * H)
    assert advance_coverage(old, r, [r, r + H]) == Coverage(r, r + 10 * H)


# -- configuration -----------------------------------------------------------------------------


def _config(tmp_path: Path, **kw: object) -> DateBasedDaemonConfig:
    base: dict[str, object] = {"local_download_dir": tmp_path / "dl", "state_db": tmp_path / "s.db"}
    base.update(kw)
    return DateBasedDaemonConfig("ftp.example.com", **base)  # type: ignore[arg-type]


def test_original_design_example_constructs() -> None:
    config = DateBasedDaemonConfig(
        host="ftp.example.com",
        username="user",
        password="pass",
        remote_base_path="/L2",
        radar_code="RMA1",
        local_download_dir=Path("./downloads"),
        state_db=Path("./state.db"),
        start_date=datetime(2025, 1, 1, 0, 0, tzinfo=UTC),
        end_date=datetime(2025, 1, 2, 0, 0, tzinfo=UTC),
        verify_checksums=True,
    )
    daemon = DateBasedFTPDaemon(config)
    assert config.port == 21 and config.poll_interval == 60.0
    assert config.max_concurrent_downloads == 5 and config.resume_partial
    assert config.volume_types["0315"]["02"] == ["VRAD", "WRAD"]
    assert daemon.get_stats()["running"] is False
    assert "pass" not in repr(config) and "pass" not in repr(daemon)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("port", 0),
        ("port", 70000),
        ("poll_interval", 0),
        ("poll_interval", "1"),
        ("max_concurrent_downloads", 0),
        ("max_attempts", 0),
        ("data_timeout", -1),
        ("connect_timeout", 0),
        ("lookback_hours", -1),
        ("local_layout", "tree"),
        ("remote_base_path", "L2"),
        ("remote_base_path", "/L2/../etc"),
        ("radar_code", "rma1"),
        ("start_date", datetime(2025, 1, 1)),
        ("volume_types", {"315": {"01": ["DBZH"]}}),
        ("use_tls", "yes"),
        ("local_download_dir", 5),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, **{key: value})
    assert info.value.key.startswith(key)


def test_end_before_start_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="end_date"):
        _config(tmp_path, start_date=T, end_date=T - H)


def test_password_from_environment_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env-s3cret")
    config = _config(tmp_path, username="radar", remote_base_path="/L2/")
    assert config.password is None and config.resolved_password() == "from-env-s3cret"
    assert "s3cret" not in repr(config)
    assert config.remote_base_path == "/L2"
    assert _config(tmp_path, password="x").resolved_password() == "x"
    monkeypatch.delenv(PASSWORD_ENV)
    assert _config(tmp_path).resolved_password() == "anonymous@"


def test_deep_rescan_walks_back_a_slice_per_poll_then_waits_for_the_next_pass() -> None:
    from radarlib.pipeline.scan import RescanCursor

    now = datetime(2025, 10, 20, 12, 0, tzinfo=timezone.utc)
    newest = now - timedelta(hours=3)
    cursor = RescanCursor.parse(None)
    seen: list[datetime] = []
    for poll in range(30):  # 2 days back (46 hours), a pass an hour at a 60 s poll: 1 a poll
        hours, cursor = cursor.advance(
            now=now + timedelta(seconds=60 * poll),
            newest=newest,
            days=2,
            interval=3600,
            poll=60,
        )
        seen += hours
    assert seen[0] == newest and seen == sorted(seen, reverse=True)
    assert len(seen) == 30 and cursor.next_hour == newest - timedelta(hours=30)
    assert RescanCursor.parse(cursor.format()) == cursor
    # the end of the window: the pass is over until an interval after it began
    oldest = now - timedelta(days=2)
    far = RescanCursor(oldest, now)
    hours, done = far.advance(now=now, newest=newest, days=2, interval=3600, poll=60)
    assert hours == [oldest] and done.next_hour is None
    assert done.advance(now=now + timedelta(minutes=30), newest=newest, days=2,
                        interval=3600, poll=60)[0] == []  # fmt: skip
    again, _ = done.advance(now=now + timedelta(hours=1), newest=newest, days=2,
                            interval=3600, poll=60)  # fmt: skip
    assert again == [newest]
    assert RescanCursor.parse("garbage") == RescanCursor()
