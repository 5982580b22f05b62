"""What retention, metrics and the monitor read from and record into the state database
(the schema version 5 columns: ``deleted_at``, ``netcdf_deleted_at``, ``conversion_seconds``).

A deleted file keeps its row: a BUFR row stays ``status = 'downloaded'`` with ``deleted_at``
set (and its ``remote_files`` row, all the download daemon reads, stays ``downloaded``), so the
file is never fetched again; a volume keeps ``netcdf_path`` and gets
``netcdf_deleted_at``. Only rows not yet marked are returned as candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radarlib.state.sqlite import SQLiteStateTracker

__all__ = [
    "StoredFile",
    "bufr_files",
    "kept_totals",
    "mark_bufr_deleted",
    "mark_netcdf_deleted",
    "netcdf_files",
    "newest_netcdf",
    "record_conversion_seconds",
    "volume_timeline",
]

#: volume statuses after which no conversion will read the BUFR files again by itself
TERMINAL_UNCONVERTED = ("failed", "expired")


@dataclass(frozen=True)
class StoredFile:
    """One file retention may delete: its row key, path, size, time and volume outcome."""

    key: str  # downloads.filename or volume_processing.volume_id
    path: str
    size: int | None
    observation: str  # YYYY-MM-DDTHH:MM:SSZ
    volume_status: str
    converted: bool  # the volume's NetCDF was written (it may have been deleted since)


_END_OF_TIME = "9999-12-31T23:59:59Z"


def bufr_files(
    tracker: SQLiteStateTracker, radar: str, *, before: str | None = None
) -> list[StoredFile]:
    """The radar's downloaded, not yet deleted BUFR files (observed before ``before``), oldest
    observation first."""
    sql = (
        "SELECT d.filename, d.local_path, d.file_size, d.observation_datetime,"
        " COALESCE(v.status, 'pending'), v.netcdf_path"
        " FROM downloads d LEFT JOIN volume_processing v ON v.volume_id = d.volume_id"
        " WHERE d.radar_code = ? AND d.status = 'downloaded' AND d.deleted_at IS NULL"
        " AND d.observation_datetime < ?"
        " AND d.local_path IS NOT NULL ORDER BY d.observation_datetime, d.filename"
    )
    with tracker._use() as conn:
        rows = conn.execute(sql, (radar, before or _END_OF_TIME)).fetchall()
    return [
        StoredFile(
            str(r[0]), str(r[1]), r[2], str(r[3]), str(r[4]), r[4] == "completed" and bool(r[5])
        )
        for r in rows
    ]


def netcdf_files(
    tracker: SQLiteStateTracker, radar: str, *, before: str | None = None
) -> list[StoredFile]:
    """The radar's written, not yet deleted NetCDF volumes (observed before ``before``), oldest
    observation first."""
    sql = (
        "SELECT volume_id, netcdf_path, observation_datetime, status FROM volume_processing"
        " WHERE radar_code = ? AND observation_datetime < ? AND netcdf_path IS NOT NULL"
        " AND netcdf_deleted_at IS NULL ORDER BY observation_datetime, volume_id"
    )
    with tracker._use() as conn:
        rows = conn.execute(sql, (radar, before or _END_OF_TIME)).fetchall()
    return [StoredFile(str(r[0]), str(r[1]), None, str(r[2]), str(r[3]), True) for r in rows]


def kept_totals(tracker: SQLiteStateTracker, radar: str, kind: str) -> tuple[int, int | None]:
    """(files, bytes) of a kind not deleted; NetCDF bytes are not recorded (None)."""
    if kind == "bufr":
        sql = (
            "SELECT COUNT(*), SUM(file_size) FROM downloads WHERE radar_code = ?"
            " AND status = 'downloaded' AND deleted_at IS NULL AND local_path IS NOT NULL"
        )
    else:
        sql = (
            "SELECT COUNT(*), NULL FROM volume_processing WHERE radar_code = ?"
            " AND netcdf_path IS NOT NULL AND netcdf_deleted_at IS NULL"
        )
    with tracker._use() as conn:
        files, size = conn.execute(sql, (radar,)).fetchone()
    return int(files), None if kind != "bufr" else int(size or 0)


def _mark(tracker: SQLiteStateTracker, sql: str, keys: Iterable[str], when: str) -> int:
    params = [(when, key) for key in keys]
    if not params:
        return 0
    with tracker._write() as conn:
        conn.executemany(sql, params)
    return len(params)


def mark_bufr_deleted(tracker: SQLiteStateTracker, filenames: Iterable[str], when: str) -> int:
    """Record that these BUFR files were deleted (one transaction); the rows stay downloaded."""
    sql = "UPDATE downloads SET deleted_at = ? WHERE filename = ? AND deleted_at IS NULL"
    return _mark(tracker, sql, filenames, when)


def mark_netcdf_deleted(tracker: SQLiteStateTracker, volume_ids: Iterable[str], when: str) -> int:
    """Record that these volumes' NetCDF files were deleted (one transaction)."""
    sql = (
        "UPDATE volume_processing SET netcdf_deleted_at = ?"
        " WHERE volume_id = ? AND netcdf_deleted_at IS NULL"
    )
    return _mark(tracker, sql, volume_ids, when)


def record_conversion_seconds(tracker: SQLiteStateTracker, volume_id: str, seconds: float) -> None:
    """Store how long the volume's last successful conversion took (for the metrics)."""
    with tracker._write() as conn:
        conn.execute(
            "UPDATE volume_processing SET conversion_seconds = ? WHERE volume_id = ?",
            (float(seconds), volume_id),
        )


def volume_timeline(tracker: SQLiteStateTracker, radar: str, since: str) -> list[dict[str, str]]:
    """The radar's volumes observed since ``since``: id, time, and a display state
    (``complete``, ``incomplete``, ``failed``, ``pending``), oldest first."""
    sql = (
        "SELECT volume_id, observation_datetime, CASE"
        " WHEN status = 'completed' THEN 'complete'"
        " WHEN status = 'failed' THEN 'failed'"
        " WHEN status = 'expired' OR (status = 'pending' AND is_complete = 0"
        "   AND process_incomplete = 0) THEN 'incomplete'"
        " ELSE 'pending' END FROM volume_processing"
        " WHERE radar_code = ? AND observation_datetime >= ? ORDER BY observation_datetime"
    )
    with tracker._use() as conn:
        rows = conn.execute(sql, (radar, since)).fetchall()
    return [{"volume_id": str(r[0]), "time": str(r[1]), "state": str(r[2])} for r in rows]


def newest_netcdf(tracker: SQLiteStateTracker, radar: str) -> tuple[str, str] | None:
    """(volume id, NetCDF path) of the radar's newest written volume still on disk, or None."""
    sql = (
        "SELECT volume_id, netcdf_path FROM volume_processing WHERE radar_code = ?"
        " AND status = 'completed' AND netcdf_path IS NOT NULL AND netcdf_deleted_at IS NULL"
        " ORDER BY observation_datetime DESC LIMIT 1"
    )
    with tracker._use() as conn:
        row = conn.execute(sql, (radar,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))
