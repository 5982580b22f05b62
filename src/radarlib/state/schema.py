"""The state database's tables, its schema version, and the migrations between versions.

The version lives in ``PRAGMA user_version``. :func:`ensure_schema` creates the current schema
in an empty file, migrates an older one in a single transaction, and refuses a newer one with
:class:`~radarlib.errors.SchemaVersionError`.

Version 1 is the original design's schema (``downloads`` + ``volume_processing`` with
free-form ``isoformat()`` times, ``radar_name``/``strategy``/``vol_nr`` columns, no
version stamp: an unversioned file with a ``downloads`` table is taken as version 1).
Version 2: one time format (``YYYY-MM-DDTHH:MM:SSZ``), one row per file with its parsed
identity and ``volume_id``, retry counters, the processing queue columns, checkpoints, and
indexes for every hot query. Version 3 adds ``remote_files``, the download side's memory of
the server: every wanted file seen (size, first seen), fetched, short, failed or rejected,
and when to try it next. Version 4 adds ``problems`` and ``bad_fields``. Version 5 adds what
retention records (``downloads.deleted_at``, ``volume_processing.netcdf_deleted_at``) and the
conversion time the metrics report (``volume_processing.conversion_seconds``). Version 6 adds
``products``, one row per volume x product of the product stage (:mod:`radarlib.products`).

>>> import sqlite3
>>> conn = sqlite3.connect(":memory:", isolation_level=None)
>>> ensure_schema(conn, ":memory:")
6
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone

from radarlib.errors import FileNameError, SchemaVersionError, StateError
from radarlib.filename import BufrFileName, VolumeKey, parse_iso
from radarlib.state.records import iso_utc, join_fields, split_fields

__all__ = [
    "CURRENT_VERSION",
    "SCHEMA_V1",
    "SCHEMA_V2",
    "SCHEMA_V3",
    "SCHEMA_V4",
    "SCHEMA_V6",
    "check_version",
    "create_version_1",
    "ensure_schema",
    "schema_version",
]

CURRENT_VERSION = 6

#: The original design's schema (version 1), kept verbatim in shape so that old files and
#: tests can create it; never used for new databases.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS downloads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    filename TEXT UNIQUE NOT NULL,
    remote_path TEXT NOT NULL,
    local_path TEXT,
    downloaded_at TEXT NOT NULL,
    file_size INTEGER,
    checksum TEXT,
    radar_name TEXT,
    strategy TEXT,
    vol_nr TEXT,
    field_type TEXT,
    observation_datetime TEXT,
    status TEXT DEFAULT 'completed',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_filename ON downloads(filename);
CREATE INDEX IF NOT EXISTS idx_radar_datetime ON downloads(radar_name, observation_datetime);
CREATE INDEX IF NOT EXISTS idx_status ON downloads(status);
CREATE TABLE IF NOT EXISTS volume_processing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    volume_id TEXT UNIQUE NOT NULL,
    radar_name TEXT NOT NULL,
    strategy TEXT NOT NULL,
    vol_nr TEXT NOT NULL,
    observation_datetime TEXT NOT NULL,
    status TEXT DEFAULT 'pending',
    netcdf_path TEXT,
    processed_at TEXT,
    error_message TEXT,
    is_complete INTEGER DEFAULT 0,
    expected_fields TEXT,
    downloaded_fields TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_volume_id ON volume_processing(volume_id);
CREATE INDEX IF NOT EXISTS idx_volume_radar_datetime
    ON volume_processing(radar_name, observation_datetime);
CREATE INDEX IF NOT EXISTS idx_volume_status ON volume_processing(status);
"""

# Version 2. `downloads.id` doubles as the change sequence that sync_volumes() follows: a row
# gets a fresh, larger id each time it becomes 'downloaded' (writers are serialised, so ids are
# committed in increasing order).
SCHEMA_V2 = """
CREATE TABLE volume_processing (
    id                   INTEGER PRIMARY KEY,
    volume_id            TEXT    NOT NULL UNIQUE,
    radar_code           TEXT    NOT NULL,
    vol_code             TEXT    NOT NULL,
    vol_number           TEXT    NOT NULL,
    observation_datetime TEXT    NOT NULL,
    status               TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'expired')),
    netcdf_path          TEXT,
    is_complete          INTEGER NOT NULL DEFAULT 0 CHECK (is_complete IN (0, 1)),
    expected_fields      TEXT,
    downloaded_fields    TEXT    NOT NULL DEFAULT '',
    missing_fields       TEXT,
    error_message        TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at      TEXT    NOT NULL,
    claimed_by           TEXT,
    claimed_at           TEXT,
    process_incomplete   INTEGER NOT NULL DEFAULT 0 CHECK (process_incomplete IN (0, 1)),
    completed_at         TEXT,
    last_file_at         TEXT,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL,
    processed_at         TEXT
);
CREATE INDEX ix_volumes_status ON volume_processing(status, radar_code, observation_datetime);
CREATE INDEX ix_volumes_radar_time ON volume_processing(radar_code, observation_datetime);
CREATE INDEX ix_volumes_ready ON volume_processing(status, observation_datetime)
    WHERE status = 'pending' AND (is_complete = 1 OR process_incomplete = 1);
CREATE INDEX ix_volumes_ready_radar
    ON volume_processing(status, radar_code, observation_datetime)
    WHERE status = 'pending' AND (is_complete = 1 OR process_incomplete = 1);

CREATE TABLE downloads (
    id                   INTEGER PRIMARY KEY,
    filename             TEXT    NOT NULL UNIQUE,
    remote_path          TEXT    NOT NULL,
    local_path           TEXT,
    file_size            INTEGER CHECK (file_size IS NULL OR file_size >= 0),
    checksum             TEXT,
    radar_code           TEXT    NOT NULL,
    vol_code             TEXT    NOT NULL,
    vol_number           TEXT    NOT NULL,
    field                TEXT    NOT NULL,
    observation_datetime TEXT    NOT NULL,
    volume_id            TEXT    NOT NULL
        REFERENCES volume_processing(volume_id) DEFERRABLE INITIALLY DEFERRED,
    status               TEXT    NOT NULL CHECK (status IN ('downloaded', 'failed')),
    attempts             INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error           TEXT,
    next_attempt_at      TEXT,
    downloaded_at        TEXT,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
);
CREATE INDEX ix_downloads_volume ON downloads(volume_id, status, field);
CREATE INDEX ix_downloads_retry ON downloads(radar_code, next_attempt_at)
    WHERE status = 'failed';

CREATE TABLE checkpoints (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE migration_rejects (
    id           INTEGER PRIMARY KEY,
    source_table TEXT NOT NULL,
    row_json     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
"""


def schema_version(conn: sqlite3.Connection) -> int:
    """The ``PRAGMA user_version`` of an open database."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def create_version_1(conn: sqlite3.Connection) -> None:
    """Create the original design's (version 1) schema; for migration tests and tools."""
    conn.executescript(SCHEMA_V1)
    conn.execute("PRAGMA user_version = 1")


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {r[0] for r in rows}


def check_version(conn: sqlite3.Connection, where: str) -> int:
    """The schema version, without changing anything; refuses what this code cannot open.

    Reads ``sqlite_master`` (so a corrupt file fails here, before anything is written) and
    takes an unversioned file holding the original ``downloads`` table as version 1.

    Raises:
        SchemaVersionError: the file is newer than :data:`CURRENT_VERSION`.
        StateError: a SQLite file holding some other application's tables.
    """
    version = schema_version(conn)
    if version > CURRENT_VERSION:
        raise SchemaVersionError(
            f"{where}: state database has schema version {version}, newer than the version "
            f"{CURRENT_VERSION} this radarlib understands; upgrade radarlib (the file was not "
            "modified)"
        )
    if version == 0:
        tables = _tables(conn)
        if not tables:
            return 0
        if "downloads" in tables:
            return 1
        raise StateError(
            f"{where}: not a radarlib state database (it holds tables {sorted(tables)}); "
            "refusing to modify it"
        )
    return version


def ensure_schema(conn: sqlite3.Connection, where: str) -> int:
    """Bring the database to :data:`CURRENT_VERSION` (create or migrate); return that version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). The check and any change
    happen under ``BEGIN IMMEDIATE``, so two processes opening the same old file migrate it
    once; a failed migration rolls back and leaves the file as it was.
    """
    if check_version(conn, where) == CURRENT_VERSION:
        return CURRENT_VERSION
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = check_version(conn, where)  # again, now that we hold the write lock
        if version == 0:  # a new file: version 2's tables, then every later step
            for statement in _statements(SCHEMA_V2):
                conn.execute(statement)
            version = 2
        while version < CURRENT_VERSION:
            _MIGRATIONS[version](conn)
            version += 1
        conn.execute(f"PRAGMA user_version = {CURRENT_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return CURRENT_VERSION


def _statements(script: str) -> list[str]:
    """Split a DDL script into statements (no ';' inside our DDL strings)."""
    return [s.strip() for s in script.split(";") if s.strip()]


# --------------------------------------------------------------------------- migrations


def _norm_time(text: object) -> str | None:
    """Any ISO-ish stored time (``isoformat()`` with or without offset, ``Z``) -> our format."""
    if text is None or text == "":
        return None
    try:
        return iso_utc(parse_iso(str(text)))
    except ValueError:
        return None


def _reject(conn: sqlite3.Connection, table: str, row: sqlite3.Row, reason: str, now: str) -> None:
    conn.execute(
        "INSERT INTO migration_rejects(source_table, row_json, reason, created_at)"
        " VALUES (?, ?, ?, ?)",
        (table, json.dumps(dict(row), default=str), reason, now),
    )


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 (original design) -> 2: rename the old tables, copy every row, drop them.

    Times are normalised to ``YYYY-MM-DDTHH:MM:SSZ``; file identity comes from the file name;
    download status ``completed`` becomes ``downloaded``; volumes left ``processing`` by a
    version-1 daemon go back to ``pending``. A row that cannot be understood (a file name that
    is not a radar file, an unknown status) is kept verbatim in ``migration_rejects``.
    """
    now = iso_utc(datetime.now(timezone.utc))
    old_row_factory = conn.row_factory
    conn.row_factory = sqlite3.Row
    try:
        tables = _tables(conn)
        conn.execute("ALTER TABLE downloads RENAME TO v1_downloads")
        if "volume_processing" in tables:
            conn.execute("ALTER TABLE volume_processing RENAME TO v1_volume_processing")
        for statement in _statements(SCHEMA_V2):
            conn.execute(statement)

        volumes: dict[str, dict[str, object]] = {}
        if "volume_processing" in tables:
            _copy_v1_volumes(conn, volumes, now)
        _copy_v1_downloads(conn, volumes, now)

        for vid, vol in volumes.items():
            expected = vol["expected"]
            downloaded = join_fields(vol["fields"])  # type: ignore[arg-type]
            missing = (
                None
                if expected is None
                else join_fields(split_fields(str(expected)) - split_fields(downloaded))
            )
            complete = 1 if vol["is_complete"] or missing == "" else 0
            conn.execute(
                "UPDATE volume_processing SET downloaded_fields = ?, missing_fields = ?,"
                " is_complete = ?, completed_at = CASE WHEN ? = 1 THEN"
                " COALESCE(completed_at, updated_at) END WHERE volume_id = ?",
                (downloaded, missing, complete, complete, vid),
            )

        conn.execute("DROP TABLE v1_downloads")
        if "volume_processing" in tables:
            conn.execute("DROP TABLE v1_volume_processing")
    finally:
        conn.row_factory = old_row_factory


_V1_VOLUME_STATUS = {
    "pending": "pending",
    "processing": "pending",  # nobody holds a version-1 claim any more
    "completed": "completed",
    "failed": "failed",
}


def _insert_volume(conn: sqlite3.Connection, key: VolumeKey, values: dict[str, object]) -> None:
    conn.execute(
        "INSERT INTO volume_processing(volume_id, radar_code, vol_code, vol_number,"
        " observation_datetime, status, netcdf_path, is_complete, expected_fields,"
        " downloaded_fields, error_message, next_attempt_at, last_file_at, created_at,"
        " updated_at, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?)",
        (
            key.volume_id,
            key.radar,
            key.strategy,
            key.volume_number,
            iso_utc(key.time),
            values["status"],
            values.get("netcdf_path"),
            values.get("is_complete", 0),
            values.get("expected"),
            values.get("error_message"),
            values["created_at"],
            values["created_at"],
            values["created_at"],
            values["updated_at"],
            values.get("processed_at"),
        ),
    )


def _copy_v1_volumes(
    conn: sqlite3.Connection, volumes: dict[str, dict[str, object]], now: str
) -> None:
    for row in conn.execute("SELECT * FROM v1_volume_processing ORDER BY id").fetchall():
        status = _V1_VOLUME_STATUS.get(row["status"] or "pending")
        moment = _norm_time(row["observation_datetime"])
        if status is None or moment is None:
            reason = f"unknown status {row['status']!r}" if status is None else "unreadable time"
            _reject(conn, "volume_processing", row, reason, now)
            continue
        try:
            key = VolumeKey(row["radar_name"], row["strategy"], row["vol_nr"], parse_iso(moment))
            key.bufr_name("DBZH")  # validates radar / strategy / volume number
        except (FileNameError, ValueError) as exc:
            _reject(conn, "volume_processing", row, f"bad volume identity: {exc}", now)
            continue
        if key.volume_id in volumes:
            _reject(conn, "volume_processing", row, f"duplicate of {key.volume_id}", now)
            continue
        expected = join_fields(split_fields(row["expected_fields"])) or None
        created = _norm_time(row["created_at"]) or now
        _insert_volume(
            conn,
            key,
            {
                "status": status,
                "netcdf_path": row["netcdf_path"],
                "is_complete": 1 if row["is_complete"] else 0,
                "expected": expected,
                "error_message": row["error_message"],
                "created_at": created,
                "updated_at": _norm_time(row["updated_at"]) or created,
                "processed_at": _norm_time(row["processed_at"]),
            },
        )
        volumes[key.volume_id] = {
            "expected": expected,
            "fields": set(split_fields(row["downloaded_fields"])),
            "is_complete": bool(row["is_complete"]),
        }


_V1_DOWNLOAD_STATUS = {"completed": "downloaded", "downloaded": "downloaded", "failed": "failed"}


def _copy_v1_downloads(
    conn: sqlite3.Connection, volumes: dict[str, dict[str, object]], now: str
) -> None:
    insert = (
        "INSERT INTO downloads(filename, remote_path, local_path, file_size, checksum,"
        " radar_code, vol_code, vol_number, field, observation_datetime, volume_id, status,"
        " attempts, downloaded_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)"
    )
    seen: set[str] = set()
    cursor = conn.execute("SELECT * FROM v1_downloads ORDER BY id")
    while rows := cursor.fetchmany(5000):
        batch = []
        for row in rows:
            status = _V1_DOWNLOAD_STATUS.get(row["status"] or "completed")
            try:
                name = BufrFileName.parse(row["filename"])
            except FileNameError as exc:
                _reject(conn, "downloads", row, str(exc), now)
                continue
            if status is None or name.name in seen:
                why = f"unknown status {row['status']!r}" if status is None else "duplicate name"
                _reject(conn, "downloads", row, why, now)
                continue
            seen.add(name.name)
            key = name.volume_key
            created = _norm_time(row["created_at"]) or now
            if key.volume_id not in volumes:
                _insert_volume(
                    conn, key, {"status": "pending", "created_at": created, "updated_at": created}
                )
                volumes[key.volume_id] = {"expected": None, "fields": set(), "is_complete": False}
            if status == "downloaded":
                volumes[key.volume_id]["fields"].add(name.field)  # type: ignore[attr-defined]
            size = row["file_size"]
            batch.append(
                (
                    name.name,
                    row["remote_path"],
                    row["local_path"],
                    size if isinstance(size, int) and size >= 0 else None,
                    row["checksum"],
                    key.radar,
                    key.strategy,
                    key.volume_number,
                    name.field,
                    iso_utc(key.time),
                    key.volume_id,
                    status,
                    _norm_time(row["downloaded_at"]) if status == "downloaded" else None,
                    created,
                    _norm_time(row["updated_at"]) or created,
                )
            )
        conn.executemany(insert, batch)


# Version 3: the download side's memory of the server. ``next_attempt_at`` is set exactly
# while a file waits to be fetched (pending, failed); short, downloaded and rejected files wait
# for the server's size to change, which a listing notices.
SCHEMA_V3 = """
CREATE TABLE remote_files (
    filename             TEXT    PRIMARY KEY,
    radar_code           TEXT    NOT NULL,
    observation_datetime TEXT    NOT NULL,
    remote_path          TEXT    NOT NULL,
    status               TEXT    NOT NULL
        CHECK (status IN ('pending', 'short', 'downloaded', 'failed', 'rejected')),
    listed_size          INTEGER CHECK (listed_size IS NULL OR listed_size >= 0),
    fetched_size         INTEGER CHECK (fetched_size IS NULL OR fetched_size >= 0),
    attempts             INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error           TEXT,
    next_attempt_at      TEXT,
    part_size            INTEGER,
    part_sha256          TEXT,
    first_seen_at        TEXT    NOT NULL,
    last_seen_at         TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX ix_remote_due ON remote_files(radar_code, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX ix_remote_status ON remote_files(radar_code, status)
"""


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Add ``remote_files``, seeded from the recorded downloads (done and failed files)."""
    for statement in _statements(SCHEMA_V3):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO remote_files (filename, radar_code, observation_datetime, remote_path,"
        " status, listed_size, fetched_size, attempts, last_error, next_attempt_at,"
        " first_seen_at, last_seen_at, updated_at)"
        " SELECT filename, radar_code, observation_datetime, remote_path, status, file_size,"
        " file_size, attempts, last_error,"
        " CASE WHEN status = 'failed' THEN COALESCE(next_attempt_at, updated_at) END,"
        " created_at, updated_at, updated_at FROM downloads"
    )


#: Version 4 (additive): problems worth an operator's attention, and fields dropped from volumes.
SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS problems (
    radar_code  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    message     TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (radar_code, kind, subject)
);
CREATE TABLE IF NOT EXISTS bad_fields (
    volume_id     TEXT NOT NULL,
    field         TEXT NOT NULL,
    filename      TEXT NOT NULL,
    error         TEXT NOT NULL,
    checksum      TEXT,
    downloaded_at TEXT,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (volume_id, field)
);
"""


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Version 3 -> 4: add the ``problems`` and ``bad_fields`` tables (nothing else changes)."""
    for statement in _statements(SCHEMA_V4):
        conn.execute(statement)


def _migrate_4_to_5(conn: sqlite3.Connection) -> None:
    """Version 4 -> 5 (additive): when retention deleted a file, rows are kept.

    ``downloads.deleted_at``: the BUFR file was deleted by retention (the row stays
    ``downloaded``, and so does its ``remote_files`` row, which is all the download side reads:
    the file is never fetched again); ``volume_processing.netcdf_deleted_at``:
    the volume's NetCDF was deleted (``netcdf_path`` keeps saying where it was);
    ``volume_processing.conversion_seconds``: duration of the last successful conversion
    (the metrics' histogram).
    """
    conn.execute("ALTER TABLE downloads ADD COLUMN deleted_at TEXT")
    conn.execute("ALTER TABLE volume_processing ADD COLUMN netcdf_deleted_at TEXT")
    conn.execute("ALTER TABLE volume_processing ADD COLUMN conversion_seconds REAL")
    conn.execute(
        "CREATE INDEX ix_downloads_kept ON downloads(radar_code, observation_datetime)"
        " WHERE status = 'downloaded' AND deleted_at IS NULL"
    )


#: Version 6 (additive): one row per volume x product of the product stage (radarlib.products).
SCHEMA_V6 = """
CREATE TABLE products (
    id              INTEGER PRIMARY KEY,
    volume_id       TEXT    NOT NULL
        REFERENCES volume_processing(volume_id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    radar_code      TEXT    NOT NULL,
    product         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    path            TEXT,
    error_message   TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    claimed_by      TEXT,
    claimed_at      TEXT,
    done_at         TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    UNIQUE (volume_id, product)
);
CREATE INDEX ix_products_ready ON products(status, radar_code, next_attempt_at)
"""


def _migrate_5_to_6(conn: sqlite3.Connection) -> None:
    """Version 5 -> 6: add ``products`` (volume x product state of the product stage)."""
    for statement in _statements(SCHEMA_V6):
        conn.execute(statement)


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
    5: _migrate_5_to_6,
}
