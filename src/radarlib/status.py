"""What the pipeline has done, per radar, read from the state database(s): one model, many views.

``radarlib status`` prints it as text or JSON and ``radarlib dashboard`` serves it as HTML and
JSON; both gather it here, so the figures are computed once.

>>> from pathlib import Path
>>> for db, radars in status_targets(db_paths=[Path("state.db")]):   # doctest: +SKIP
...     report = collect_status(db, radars, limit=10)
...     print(report.radars[0].volumes)                               # {'pending': 3, ...}

Every database is opened through :class:`~radarlib.state.sqlite.SQLiteStateTracker` for the
duration of one call and closed again, so a reader never holds a lock between calls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from radarlib.errors import ConfigError
from radarlib.filename import BufrFileName

__all__ = [
    "DEFAULT_MAX_AGE_MINUTES",
    "DatabaseStatus",
    "HealthReport",
    "RadarHealth",
    "RadarStatus",
    "collect_status",
    "healthz",
    "named_file",
    "require_database",
    "status_targets",
]


@dataclass
class RadarStatus:
    """The figures of one radar."""

    radar: str
    files_downloaded: int
    last_download: str | None
    volumes: dict[str, int]


@dataclass
class DatabaseStatus:
    """Everything ``status`` reports for one state database."""

    path: str
    radars: list[RadarStatus] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    download_failures: list[dict[str, Any]] = field(default_factory=list)
    #: problems the daemons recorded for an operator: ``config`` (a volume_types field no
    #: radar produces), ``unknown_field`` (a file with a field radarlib does not know), …
    problems: list[dict[str, Any]] = field(default_factory=list)
    #: field files left out of written volumes (``on_bad_field = "drop"``), newest first
    dropped_fields: list[dict[str, Any]] = field(default_factory=list)


#: default of ``[health] max_age_minutes``: a radar whose newest file is older is unhealthy
DEFAULT_MAX_AGE_MINUTES = 30.0


@dataclass
class RadarHealth:
    """Whether one radar's data is fresh: its newest download and how old it is."""

    radar: str
    healthy: bool
    last_download: str | None
    age_minutes: float | None
    reason: str | None = None


@dataclass
class HealthReport:
    """``/healthz`` data: healthy only when every radar is (503 naming the others)."""

    healthy: bool
    max_age_minutes: float
    radars: list[RadarHealth] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def unhealthy(self) -> list[RadarHealth]:
        """The radars that make the report unhealthy."""
        return [r for r in self.radars if not r.healthy]


_DOWNLOAD_FAILURE_KEYS = (
    "filename", "radar_code", "attempts", "last_error", "next_attempt_at", "updated_at",
)  # fmt: skip

_VOLUME_KEYS = (
    "volume_id", "radar_code", "observation_datetime", "status", "downloaded_fields",
    "missing_fields", "expected_fields", "error_message", "attempts", "next_attempt_at",
    "netcdf_path", "updated_at",
)  # fmt: skip

# Candidate words of an error message that may be BUFR file names; the file name model decides.
_NAME_CANDIDATE = re.compile(r"[^\s:;,'\"()\[\]/\\]+\.BUFR")


def _volume_brief(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in _VOLUME_KEYS}


def _missing(row: dict[str, Any]) -> str:
    if row.get("missing_fields"):
        return str(row["missing_fields"])
    expected = set(str(row.get("expected_fields") or "").split(",")) - {""}
    have = set(str(row.get("downloaded_fields") or "").split(",")) - {""}
    return ",".join(sorted(expected - have)) or "?"


def named_file(message: object) -> str | None:
    """The first valid BUFR file name an error message mentions (``None`` if it names none)."""
    for candidate in _NAME_CANDIDATE.findall(str(message or "")):
        parsed = BufrFileName.try_parse(candidate)
        if parsed is not None:
            return parsed.name
    return None


def require_database(db_path: Path) -> None:
    """Refuse a path that holds no state database, before the tracker would create one there."""
    if not db_path.is_file():
        raise ConfigError("--db", f"no state database at {db_path}")
    if db_path.stat().st_size == 0:
        raise ConfigError("--db", f"{db_path} is an empty file, not a state database")


def collect_status(
    db_path: Path, radars: Sequence[str] | None = None, *, limit: int = 10
) -> DatabaseStatus:
    """Gather the status of one database (only ``radars`` when given).

    Raises:
        ConfigError: no database at ``db_path``.
        StateError: the file is not a usable state database.
    """
    from radarlib.state.sqlite import SQLiteStateTracker

    require_database(db_path)
    result = DatabaseStatus(str(db_path))
    with SQLiteStateTracker(db_path) as tracker:
        chosen = list(radars) if radars else tracker.radar_codes()
        for radar in chosen:
            files, last = tracker.download_summary(radar)
            counts = tracker.count_volumes_by_status(radar_code=radar)
            result.radars.append(RadarStatus(radar, files, last, counts))
            result.download_failures += [
                {k: row.get(k) for k in _DOWNLOAD_FAILURE_KEYS}
                for row in tracker.get_failed_downloads(radar, limit=limit)
            ]
            waiting = tracker.get_incomplete_volumes(radar_code=radar)
            expired = tracker.get_volumes_by_status("expired", radar_code=radar, limit=limit)
            for row in [*waiting[-limit:], *expired]:
                entry = _volume_brief(row)
                entry["missing_fields"] = _missing(row)
                result.incomplete.append(entry)
            failed = tracker.get_volumes_by_status("failed", radar_code=radar, limit=limit)
            retrying = [
                r
                for r in tracker.get_volumes_by_status("pending", radar_code=radar)
                if r.get("error_message")
            ]
            for row in [*failed, *retrying[:limit]]:
                entry = _volume_brief(row)
                entry["file"] = named_file(row.get("error_message"))
                result.failures.append(entry)
            result.problems += tracker.get_problems(radar)[:limit]
            result.dropped_fields += tracker.get_dropped_fields(radar, limit=limit)
    for rows in (result.failures, result.download_failures):
        rows.sort(key=lambda r: str(r.get("updated_at") or ""), reverse=True)
        del rows[limit:]
    return result


def healthz(
    targets: Sequence[tuple[Path, Sequence[str] | None]],
    *,
    max_age_minutes: float = DEFAULT_MAX_AGE_MINUTES,
    now: datetime | None = None,
) -> HealthReport:
    """Per radar: healthy when its newest downloaded file is at most ``max_age_minutes`` old.

    A radar that never downloaded anything is unhealthy, and so is every radar of a database
    that cannot be read (listed in ``errors``). ``targets`` are ``(database, radars)`` pairs
    as :func:`status_targets` returns them (``None``: every radar the database knows).
    """
    from radarlib.filename import parse_iso
    from radarlib.state.sqlite import SQLiteStateTracker

    moment = now or datetime.now(timezone.utc)
    report = HealthReport(healthy=True, max_age_minutes=float(max_age_minutes))
    for db_path, radars in targets:
        try:
            require_database(db_path)
            with SQLiteStateTracker(db_path) as tracker:
                chosen = list(radars) if radars else tracker.radar_codes()
                summaries = {code: tracker.download_summary(code) for code in chosen}
        except Exception as exc:  # the database itself is the problem
            report.errors.append(f"{db_path}: {exc}")
            for code in radars or ():
                report.radars.append(
                    RadarHealth(code, False, None, None, f"state database unreadable: {exc}")
                )
            continue
        for code, (_, last) in summaries.items():
            if last is None:
                report.radars.append(
                    RadarHealth(code, False, None, None, "has never downloaded anything")
                )
                continue
            age = (moment - parse_iso(last)).total_seconds() / 60.0
            fresh = age <= max_age_minutes
            reason = (
                None
                if fresh
                else (f"newest file downloaded {age:.0f} min ago (limit {max_age_minutes:g} min)")
            )
            report.radars.append(RadarHealth(code, fresh, last, round(age, 1), reason))
    report.healthy = not report.errors and all(r.healthy for r in report.radars)
    return report


def status_targets(
    config_path: str | Path | None = None,
    db_paths: Sequence[str | Path] = (),
    radars: Sequence[str] | None = None,
    *,
    enabled_only: bool = False,
) -> list[tuple[Path, list[str] | None]]:
    """The (database, radars) pairs to report on, from a config file or from database paths.

    With a config every radar it lists (``enabled_only``: the enabled ones) is grouped by the
    state database it records into; ``radars`` narrows that to some codes
    (:class:`ConfigError` for a code the file does not list). With ``db_paths`` each database
    is paired with ``radars`` (``None``: every radar the database knows). The config is read
    without resolving passwords: reading the state needs none.
    """
    if config_path is None:
        return [(Path(db), list(radars) if radars else None) for db in db_paths]
    from radarlib.config import load_config

    config = load_config(config_path, resolve_secrets=False)
    listed = config.enabled_radars() if enabled_only and not radars else config.radars
    wanted = list(radars) if radars else [r.code for r in listed]
    targets: dict[Path, list[str]] = {}
    for code in wanted:
        config.radar(code)
        targets.setdefault(config.state_db(code), []).append(code)
    return list(targets.items())
