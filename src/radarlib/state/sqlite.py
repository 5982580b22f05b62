"""SQLiteStateTracker: the state database shared by the download and processing daemons.

One row per remote file (``downloads``) and one per radar volume (``volume_processing``).
Recording a file updates its volume in the same transaction, so a volume's completeness is
always computed from all of its files, whatever order or day they arrive in; a volume
becomes complete exactly once, and ``mark_downloaded`` says so by returning its id.
Workers take volumes with :meth:`SQLiteStateTracker.claim_volumes`, a single
``UPDATE … RETURNING`` under ``BEGIN IMMEDIATE``, so no two workers or processes ever hold the
same volume; claims left by a dead worker are recovered by age or by worker id.

>>> from pathlib import Path
>>> from radarlib.io.ftp import SQLiteStateTracker        # doctest: +SKIP
>>> with SQLiteStateTracker(Path("state.db")) as tracker:  # doctest: +SKIP
...     ready = tracker.mark_downloaded("RMA1_0315_02_VRAD_20251118T123000Z.BUFR", "/L2/…",
...                                     "/data/…", 1024, None, expected_fields=["VRAD", "WRAD"])

The database runs in WAL mode with a busy timeout and foreign keys on; every multi-statement
change is one ``BEGIN IMMEDIATE`` transaction; upserts (``INSERT … ON CONFLICT DO UPDATE``)
never reset counters. All times are stored as ``YYYY-MM-DDTHH:MM:SSZ``. One tracker may be
shared by threads (calls are serialised by a lock); each process opens its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from radarlib.errors import FileNameError, StateError, UnknownVolumeError
from radarlib.filename import BufrFileName, VolumeKey, parse_iso
from radarlib.state.records import (
    VOLUME_STATUSES,
    download_status,
    iso_utc,
    join_fields,
    split_fields,
    volume_status,
)
from radarlib.state.remote_files import RemoteFilesMixin
from radarlib.state.schema import check_version, ensure_schema
from radarlib.volume_types import VolumeTypes, expected_fields

__all__ = ["DownloadedFile", "SQLiteStateTracker"]

_SQLITE_MAGIC = b"SQLite format 3\x00"

# Column aliases of the original design, added to every returned dict.
_VOLUME_ALIASES = {"radar_name": "radar_code", "strategy": "vol_code", "vol_nr": "vol_number"}
_DOWNLOAD_ALIASES = {**_VOLUME_ALIASES, "field_type": "field"}

_SYNC_CURSOR = "sync_volumes/{consumer}"
_SYNC_BATCH = 2000

_VOLUME_INSERT = """
INSERT INTO volume_processing (
    volume_id, radar_code, vol_code, vol_number, observation_datetime, status, is_complete,
    expected_fields, downloaded_fields, missing_fields, next_attempt_at, completed_at,
    last_file_at, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# Everything _merge_volume may change; counters, paths and errors are never touched.
_VOLUME_MERGE = """
UPDATE volume_processing SET
    status = ?, is_complete = ?, expected_fields = ?, downloaded_fields = ?, missing_fields = ?,
    next_attempt_at = ?, claimed_by = ?, claimed_at = ?, completed_at = ?, last_file_at = ?,
    updated_at = ?
WHERE id = ?
"""

_VOLUME_STATE = """
SELECT id, status, is_complete, expected_fields, downloaded_fields, missing_fields,
       next_attempt_at, claimed_by, claimed_at, completed_at, last_file_at
FROM volume_processing WHERE volume_id = ?
"""

_DOWNLOAD_UPSERT = """
INSERT INTO downloads (
    filename, remote_path, local_path, file_size, checksum, radar_code, vol_code, vol_number,
    field, observation_datetime, volume_id, status, attempts, downloaded_at, created_at,
    updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'downloaded', 1, ?, ?, ?)
ON CONFLICT (filename) DO UPDATE SET
    id = CASE WHEN downloads.status = 'downloaded' THEN downloads.id
              ELSE (SELECT MAX(id) FROM downloads) + 1 END,
    remote_path = excluded.remote_path,
    local_path = excluded.local_path,
    file_size = excluded.file_size,
    checksum = excluded.checksum,
    status = 'downloaded',
    attempts = downloads.attempts + 1,
    next_attempt_at = NULL,
    downloaded_at = excluded.downloaded_at,
    updated_at = excluded.updated_at
"""

_FAILURE_UPSERT = """
INSERT INTO downloads (
    filename, remote_path, radar_code, vol_code, vol_number, field, observation_datetime,
    volume_id, status, attempts, last_error, next_attempt_at, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'failed', 1, ?, ?, ?, ?)
ON CONFLICT (filename) DO UPDATE SET
    attempts = downloads.attempts + 1,
    last_error = excluded.last_error,
    next_attempt_at = CASE WHEN downloads.status = 'downloaded' THEN NULL
                           ELSE excluded.next_attempt_at END,
    updated_at = excluded.updated_at
RETURNING attempts
"""

# Ready = pending, complete (or allowed incomplete), due. Written exactly as the partial
# indexes ix_volumes_ready / ix_volumes_ready_radar so the planner uses them.
_READY = "status = 'pending' AND (is_complete = 1 OR process_incomplete = 1)"


@dataclass(frozen=True)
class _Volume:
    """A volume's identity as stored (strings formatted once per call: the hot path)."""

    key: VolumeKey
    volume_id: str
    observation: str

    @classmethod
    def of(cls, key: VolumeKey) -> _Volume:
        vid = key.volume_id
        return cls(key, vid, vid[-len("YYYY-MM-DDTHH:MM:SSZ") :])


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _volume_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A volume row as a dict, with the original design's alias keys."""
    data = dict(row)
    for alias, column in _VOLUME_ALIASES.items():
        data[alias] = data[column]
    return data


def _download_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A download row as a dict, with the original design's alias keys."""
    data = dict(row)
    for alias, column in _DOWNLOAD_ALIASES.items():
        data[alias] = data[column]
    return data


def _expected_text(fields: Sequence[str] | None) -> str | None:
    if fields is None:
        return None
    if isinstance(fields, str):
        fields = fields.split(",")
    text = join_fields(fields)
    return text or None


def _file_name(filename: str | os.PathLike[str]) -> BufrFileName:
    return BufrFileName.parse(os.fspath(filename))


@dataclass(frozen=True)
class DownloadedFile:
    """One file for :meth:`SQLiteStateTracker.mark_downloaded_many` (its arguments, as a record)."""

    filename: str | os.PathLike[str]
    remote_path: str
    local_path: str | os.PathLike[str] | None
    file_size: int | None
    checksum: str | None
    expected_fields: Sequence[str] | None = None


#: a DownloadedFile checked and parsed: (name, volume, expected fields, local path, record)
_PreparedDownload = tuple[BufrFileName, "_Volume", str | None, str | None, DownloadedFile]


def _prepare_download(item: DownloadedFile) -> _PreparedDownload:
    """Check and parse one record before anything is written (FileNameError, StateError)."""
    name = _file_name(item.filename)
    size = item.file_size
    if size is not None and (not isinstance(size, int) or size < 0):
        raise StateError(f"{name}: file_size must be a non-negative integer, got {size!r}")
    local = None if item.local_path is None else os.fspath(item.local_path)
    return name, _Volume.of(name.volume_key), _expected_text(item.expected_fields), local, item


class SQLiteStateTracker(RemoteFilesMixin):
    """The download/volume/queue state of the pipeline in one SQLite file.

    Args:
        db_path: the database file (created with its parent folder if missing).
        timeout: seconds to wait for another connection's write lock before
            :class:`~radarlib.errors.StateError`.
        clock: returns the current aware UTC time (tests inject one); default the wall clock.

    Raises:
        StateError: the file is not a SQLite database or is corrupt (it is left untouched).
        SchemaVersionError: the file was written by a newer radarlib.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.timeout = float(timeout)
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = self._open()

    # ------------------------------------------------------------------ connection

    @property
    def _in_memory(self) -> bool:
        return str(self.db_path) == ":memory:"

    def _open(self) -> sqlite3.Connection:
        """Connect and configure, retrying while another connection holds the file busy.

        Switching a fresh file to WAL and the first schema transaction take locks for which
        SQLite may answer ``SQLITE_BUSY`` at once instead of calling the busy handler (to avoid
        a deadlock between two openers), so two daemons starting together on a new database
        retry here, with a growing pause, until :attr:`timeout` has passed.
        """
        path = self.db_path
        if not self._in_memory:
            self._check_header(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"{path}: cannot create its folder: {exc}") from exc
        deadline = time.monotonic() + self.timeout
        pause = 0.005
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + pause > deadline:
                    raise StateError(f"{path}: unusable state database: {exc}") from exc
            except sqlite3.Error as exc:
                raise StateError(f"{path}: unusable state database: {exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _connect(self) -> sqlite3.Connection:
        """One attempt: connect, check the version, switch to WAL, create or migrate the schema."""
        path = self.db_path
        try:
            conn = sqlite3.connect(
                str(path), timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot open state database: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            check_version(conn, str(path))  # refuse corrupt/newer/foreign files untouched
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode != "wal" and not self._in_memory:
                raise StateError(f"{path}: cannot switch to WAL mode (journal_mode={mode})")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across crashes in WAL mode
            conn.execute("PRAGMA foreign_keys = ON")
            ensure_schema(conn, str(path))
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _check_header(path: Path) -> None:
        """Refuse a non-empty file that does not start with the SQLite header (never touch it).

        The header is read through SQLite (read-only), never with a plain ``open()``: closing
        such a descriptor drops every POSIX lock this process's other connections hold on the
        file, after which another process may delete the live WAL and commits are lost
        (https://www.sqlite.org/howtocorrupt.html, section 2.2.1; regression test:
        tests/test_cli_status.py::test_opening_a_second_tracker_keeps_the_wal_alive).
        """
        try:
            if path.stat().st_size == 0:
                return
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateError(f"{path}: cannot read state database: {exc}") from exc
        try:
            probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                probe.execute("PRAGMA schema_version").fetchone()
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"{path}: not a SQLite database (bad header: {exc}); refusing to use it"
            ) from None
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot read state database: {exc}") from exc

    @contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the tracker lock; SQLite errors become StateError."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StateError(f"{self.db_path}: tracker is closed")
            if os.getpid() != self._pid:
                raise StateError(
                    f"{self.db_path}: tracker was opened in process {self._pid}; "
                    "open a new SQLiteStateTracker in each process"
                )
            try:
                yield conn
            except sqlite3.Error as exc:
                raise StateError(f"{self.db_path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        with self._use() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")  # may fail (deferred foreign key): rolled back below
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                with suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> SQLiteStateTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStateTracker({str(self.db_path)!r})"

    def _now(self) -> str:
        return iso_utc(self._clock())

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` plus a foreign-key check; ``[]`` when the file is sound."""
        with self._use() as conn:
            problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            problems = [] if problems == ["ok"] else problems
            problems += [
                f"foreign key: {tuple(r)}" for r in conn.execute("PRAGMA foreign_key_check")
            ]
        return problems

    # ------------------------------------------------------------------ volumes (internal)

    def _merge_volume(
        self,
        conn: sqlite3.Connection,
        vol: _Volume,
        now: str,
        fields: Iterable[str] = (),
        expected: str | None = None,
        *,
        force_complete: bool = False,
    ) -> bool:
        """Merge downloaded ``fields`` into a volume (registering it); True if it became ready.

        Fields only accumulate and ``is_complete`` only goes 0 -> 1 (once). ``expected`` fills
        unknown expected fields, and replaces them while the volume is not yet complete. A new
        field for an ``expired`` volume, or for a ``completed`` one whose written file lacks
        that field, puts it back to ``pending``.
        """
        row = conn.execute(_VOLUME_STATE, (vol.volume_id,)).fetchone()
        if row is None:
            old_fields: frozenset[str] = frozenset()
            old_expected = old_missing = claimed_by = claimed_at = completed_at = None
            last_file_at: str | None = None
            old_complete, status, next_attempt_at = False, "pending", now
        else:
            (_, status, old_complete, old_expected, old_downloaded, old_missing) = row[:6]
            (next_attempt_at, claimed_by, claimed_at, completed_at, last_file_at) = row[6:]
            old_fields = split_fields(old_downloaded)

        new_fields = old_fields | frozenset(fields)
        added = new_fields - old_fields
        exp_text = old_expected
        if expected is not None and (old_expected is None or not old_complete):
            exp_text = expected
        exp_set = None if exp_text is None else split_fields(exp_text)
        complete = old_complete or force_complete or (exp_set is not None and exp_set <= new_fields)

        revive = bool(added) and (
            status == "expired"
            or (
                status == "completed"
                and (old_missing is None or bool(added & split_fields(old_missing)))
            )
        )
        if revive:
            status, next_attempt_at, claimed_by, claimed_at = "pending", now, None, None
            if row is not None:  # a rewrite for a late field is not a retry: attempts from 0
                conn.execute("UPDATE volume_processing SET attempts = 0 WHERE id = ?", (row[0],))
        if status == "completed":
            missing = old_missing  # describes the file written; unchanged by unrelated fields
        else:
            missing = None if exp_set is None else join_fields(exp_set - new_fields)
        became_complete = complete and not old_complete
        if row is not None and not (added or revive or became_complete or exp_text != old_expected):
            return False
        if added or row is None:
            last_file_at = now
        completed_at = now if became_complete else completed_at
        if row is None:
            conn.execute(
                _VOLUME_INSERT,
                (
                    vol.volume_id,
                    vol.key.radar,
                    vol.key.strategy,
                    vol.key.volume_number,
                    vol.observation,
                    int(complete),
                    exp_text,
                    join_fields(new_fields),
                    missing,
                    now,
                    completed_at,
                    now,
                    now,
                    now,
                ),
            )
        else:
            conn.execute(
                _VOLUME_MERGE,
                (
                    status,
                    int(complete),
                    exp_text,
                    join_fields(new_fields),
                    missing,
                    next_attempt_at,
                    claimed_by,
                    claimed_at,
                    completed_at,
                    last_file_at,
                    now,
                    row[0],
                ),
            )
        return became_complete and status == "pending"

    def _volume_row(self, conn: sqlite3.Connection, volume_id: str) -> sqlite3.Row:
        row = conn.execute(
            "SELECT * FROM volume_processing WHERE volume_id = ?", (volume_id,)
        ).fetchone()
        if row is None:
            raise UnknownVolumeError(f"{volume_id}: unknown volume id in {self.db_path}")
        return row

    def _fields_on_disk(self, conn: sqlite3.Connection, volume_id: str) -> set[str]:
        rows = conn.execute(
            "SELECT field FROM downloads WHERE volume_id = ? AND status = 'downloaded'",
            (volume_id,),
        )
        return {r[0] for r in rows}

    # ------------------------------------------------------------------ downloads

    def is_downloaded(self, filename: str | os.PathLike[str]) -> bool:
        """True when the file is recorded as downloaded (a non-radar name is never downloaded)."""
        name = BufrFileName.try_parse(os.fspath(filename))
        if name is None:
            return False
        with self._use() as conn:
            row = conn.execute(
                "SELECT 1 FROM downloads WHERE filename = ? AND status = 'downloaded'",
                (name.name,),
            ).fetchone()
        return row is not None

    def mark_downloaded(
        self,
        filename: str | os.PathLike[str],
        remote_path: str,
        local_path: str | os.PathLike[str] | None,
        file_size: int | None,
        checksum: str | None,
        *,
        expected_fields: Sequence[str] | None = None,
    ) -> list[str]:
        """Record a downloaded file and update its volume in one transaction.

        Returns ``[volume_id]`` when this file made its volume complete and ready (exactly
        once per volume), else ``[]``. A repeated call for the same file updates paths, size
        and checksum and counts an attempt; it never completes the volume twice.
        ``expected_fields`` None leaves the volume's expected fields to :meth:`sync_volumes`.

        Raises:
            FileNameError: ``filename`` is not a radar file name (nothing is recorded).
        """
        record = DownloadedFile(
            filename, remote_path, local_path, file_size, checksum, expected_fields
        )
        return self.mark_downloaded_many([record])[0]

    def mark_downloaded_many(self, files: Sequence[DownloadedFile]) -> list[list[str]]:
        """Record several downloaded files in one transaction (for bursts: one commit).

        Each file is recorded exactly as :meth:`mark_downloaded` would, in order; returns one
        list per file, ``[volume_id]`` when that file made its volume complete and ready.
        All or nothing: every name is checked before anything is written, and a failure
        rolls the whole batch back.

        Raises:
            FileNameError: a file name is not a radar file name (nothing is recorded).
        """
        prepared = [_prepare_download(item) for item in files]
        if not prepared:
            return []
        with self._write() as conn:
            return self._insert_downloads(conn, prepared)

    def _insert_downloads(
        self, conn: sqlite3.Connection, prepared: Sequence[_PreparedDownload]
    ) -> list[list[str]]:
        """Write prepared 'downloaded' rows and merge their volumes, inside a transaction."""
        results: list[list[str]] = []
        for name, vol, expected, local, item in prepared:
            now = self._now()
            # A row that (re)becomes 'downloaded' gets the next id, so sync_volumes() sees it.
            conn.execute(
                _DOWNLOAD_UPSERT,
                (
                    str(name),
                    str(item.remote_path),
                    local,
                    item.file_size,
                    item.checksum,
                    name.radar,
                    name.strategy,
                    name.volume_number,
                    name.field,
                    vol.observation,
                    vol.volume_id,
                    now,
                    now,
                    now,
                ),
            )
            # The volume's field set is the aggregate of its downloaded rows: every change
            # of a row to 'downloaded' happens here, in the same transaction as this merge.
            ready = self._merge_volume(conn, vol, now, (name.field,), expected)
            results.append([vol.volume_id] if ready else [])
        return results

    def mark_download_failed(
        self,
        filename: str | os.PathLike[str],
        remote_path: str,
        error: str,
        *,
        next_attempt_at: datetime | None,
    ) -> int:
        """Record a failed download attempt; returns the attempts so far (never reset).

        ``next_attempt_at`` None means "do not retry automatically". A file already
        downloaded stays downloaded (the error and the attempt are still recorded).
        """
        with self._write() as conn:
            return self._insert_failure(conn, filename, remote_path, error, next_attempt_at)

    def _insert_failure(
        self,
        conn: sqlite3.Connection,
        filename: str | os.PathLike[str],
        remote_path: str,
        error: str,
        next_attempt_at: datetime | None,
    ) -> int:
        """Write a failed download attempt (and register its volume), inside a transaction."""
        name = _file_name(filename)
        vol = _Volume.of(name.volume_key)
        retry = None if next_attempt_at is None else iso_utc(next_attempt_at)
        now = self._now()
        self._merge_volume(conn, vol, now)  # registers the volume if new, else no change
        row = conn.execute(
            _FAILURE_UPSERT,
            (
                str(name),
                str(remote_path),
                name.radar,
                name.strategy,
                name.volume_number,
                name.field,
                vol.observation,
                vol.volume_id,
                str(error),
                retry,
                now,
                now,
            ),
        ).fetchone()
        return int(row[0])

    def get_download(self, filename: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The download row of a file (any status) as a dict, or None."""
        name = BufrFileName.try_parse(os.fspath(filename))
        if name is None:
            return None
        with self._use() as conn:
            row = conn.execute(
                "SELECT * FROM downloads WHERE filename = ?", (name.name,)
            ).fetchone()
        return None if row is None else _download_dict(row)

    def get_file_info(self, filename: str | os.PathLike[str]) -> dict[str, Any] | None:
        """Original design's name for :meth:`get_download` (has ``file_size`` and ``checksum``)."""
        return self.get_download(filename)

    def downloads_due_for_retry(
        self, radar_code: str, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Failed downloads of a radar whose ``next_attempt_at`` has come, oldest first."""
        moment = iso_utc(now) if now is not None else self._now()
        with self._use() as conn:
            rows = conn.execute(
                "SELECT * FROM downloads WHERE status = 'failed' AND radar_code = ?"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at",
                (radar_code, moment),
            ).fetchall()
        return [_download_dict(r) for r in rows]

    def count(self, status: str = "downloaded") -> int:
        """Number of files with a download status (``'completed'`` = the design's downloaded)."""
        checked = download_status(status)
        with self._use() as conn:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM downloads WHERE status = ?", (checked,)
                ).fetchone()[0]
            )

    def get_files_by_date_range(
        self, start: datetime, end: datetime, radar_code: str | None = None
    ) -> list[str]:
        """Names of downloaded files observed in ``[start, end]`` (naive times are UTC).

        Goes through the volumes' (radar, time) index, then each volume's files.
        """
        sql = (
            "SELECT d.filename FROM volume_processing AS v"
            " CROSS JOIN downloads AS d"  # volumes drive the join (CROSS JOIN fixes the order)
            " ON d.volume_id = v.volume_id AND d.status = 'downloaded'"
            " WHERE v.observation_datetime >= ? AND v.observation_datetime <= ?"
        )
        params: list[Any] = [iso_utc(start), iso_utc(end)]
        if radar_code is not None:
            sql += " AND v.radar_code = ?"
            params.append(radar_code)
        with self._use() as conn:
            rows = conn.execute(sql + " ORDER BY d.observation_datetime, d.filename", params)
            return [r[0] for r in rows.fetchall()]

    def latest_observation(self, radar_code: str) -> datetime | None:
        """Observation time of the newest downloaded file of a radar (restart point), or None."""
        with self._use() as conn:
            row = conn.execute(
                "SELECT observation_datetime FROM volume_processing"
                " WHERE radar_code = ? AND downloaded_fields <> ''"
                " ORDER BY observation_datetime DESC LIMIT 1",
                (radar_code,),
            ).fetchone()
        return None if row is None else parse_iso(row[0])

    def get_checkpoint(self, name: str) -> str | None:
        """A named checkpoint value (e.g. a daemon's last fully scanned hour), or None."""
        with self._use() as conn:
            row = conn.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_checkpoint(self, name: str, value: str) -> None:
        """Store a named checkpoint value (upsert)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO checkpoints(name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (name, str(value), self._now()),
            )

    def take_checkpoints(self, prefix: str) -> list[tuple[str, str]]:
        """Remove and return every checkpoint whose name starts with ``prefix`` (atomically)."""
        with self._write() as conn:
            rows = conn.execute(
                "DELETE FROM checkpoints WHERE substr(name, 1, ?) = ? RETURNING name, value",
                (len(prefix), prefix),
            ).fetchall()
        return sorted((str(r[0]), str(r[1])) for r in rows)

    # ------------------------------------------------------------------ volumes (design API)

    def register_volume(
        self,
        volume_id: str,
        radar_code: str,
        vol_code: str,
        vol_number: str,
        observation_datetime: str | datetime,
        expected_fields: Sequence[str] | None,
        is_complete: bool = False,
    ) -> None:
        """Register a volume, or update an existing one's expected fields (idempotent).

        Never resets counters or status; ``is_complete=True`` marks it complete (once).

        Raises:
            FileNameError: the parts do not form a valid volume, or ``volume_id`` does not
                match them (``RADAR_STRATEGY_VOLNR_YYYY-MM-DDTHH:MM:SSZ``).
        """
        moment = (
            _utc(observation_datetime)
            if isinstance(observation_datetime, datetime)
            else parse_iso(str(observation_datetime))
        )
        key = VolumeKey(radar_code, vol_code, vol_number, moment)
        key.bufr_name("DBZH")  # validates radar / strategy / volume number
        if key.volume_id != volume_id:
            raise FileNameError(
                f"volume id {volume_id!r} does not match its parts (expected {key.volume_id!r})"
            )
        with self._write() as conn:
            self._merge_volume(
                conn,
                _Volume.of(key),
                self._now(),
                (),
                _expected_text(expected_fields),
                force_complete=bool(is_complete),
            )

    def update_volume_fields(
        self, volume_id: str, downloaded_fields: Sequence[str], is_complete: bool
    ) -> None:
        """Add downloaded fields to a volume (fields never shrink; completeness never undone)."""
        with self._write() as conn:
            self._volume_row(conn, volume_id)
            key = VolumeKey.from_volume_id(volume_id)
            fields = set(downloaded_fields) | self._fields_on_disk(conn, volume_id)
            self._merge_volume(
                conn, _Volume.of(key), self._now(), fields, force_complete=bool(is_complete)
            )

    def mark_volume_processing(
        self,
        volume_id: str,
        status: str,
        netcdf_path: str | os.PathLike[str] | None = None,
        error_message: str | None = None,
    ) -> None:
        """Set a volume's status by hand (the original design's call).

        ``pending`` is a manual reset: attempts -> 0, due now, claim cleared.
        ``processing`` marks an unnamed claim (attempt counted, ``claimed_at`` now),
        ``completed`` records ``netcdf_path`` and ``processed_at``; ``failed`` and
        ``expired`` clear the claim. ``error_message``/``netcdf_path`` are kept unless given.
        """
        checked = volume_status(status)
        now = self._now()
        sets = ["status = :status", "updated_at = :now"]
        if checked == "pending":
            sets += [
                "attempts = 0",
                "next_attempt_at = :now",
                "claimed_by = NULL",
                "claimed_at = NULL",
            ]
        elif checked == "processing":
            sets += ["attempts = attempts + 1", "claimed_by = NULL", "claimed_at = :now"]
        else:
            sets += ["claimed_by = NULL", "claimed_at = NULL"]
        if checked == "completed":
            sets.append("processed_at = :now")
        if netcdf_path is not None:
            sets.append("netcdf_path = :netcdf_path")
        if error_message is not None:
            sets.append("error_message = :error_message")
        with self._write() as conn:
            self._volume_row(conn, volume_id)
            conn.execute(
                f"UPDATE volume_processing SET {', '.join(sets)} WHERE volume_id = :volume_id",
                {
                    "status": checked,
                    "now": now,
                    "netcdf_path": None if netcdf_path is None else os.fspath(netcdf_path),
                    "error_message": error_message,
                    "volume_id": volume_id,
                },
            )

    def _select(
        self,
        table: str,
        where: str,
        params: Sequence[Any] = (),
        *,
        radar_code: str | None = None,
        order: str,
        limit: int | None = None,
    ) -> list[sqlite3.Row]:
        """``SELECT *`` rows of ``table`` matching ``where`` (and the radar), ordered, capped."""
        sql = f"SELECT * FROM {table} WHERE {where}"
        args = list(params)
        if radar_code is not None:
            sql += " AND radar_code = ?"
            args.append(radar_code)
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._use() as conn:
            return conn.execute(sql, args).fetchall()

    def get_complete_unprocessed_volumes(
        self, radar_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Complete volumes still ``pending``, oldest observation first."""
        rows = self._select(
            "volume_processing",
            "status = 'pending' AND is_complete = 1",
            radar_code=radar_code,
            order="observation_datetime, id",
        )
        return [_volume_dict(r) for r in rows]

    def get_volume_files(self, volume_id: str) -> list[dict[str, Any]]:
        """The downloaded files of a volume (rows with filename, local_path, field …), by field."""
        with self._use() as conn:
            self._volume_row(conn, volume_id)
            rows = conn.execute(
                "SELECT * FROM downloads WHERE volume_id = ? AND status = 'downloaded'"
                " ORDER BY field",
                (volume_id,),
            ).fetchall()
        return [_download_dict(r) for r in rows]

    def get_volumes_by_status(
        self, status: str, radar_code: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Volumes with a status, newest observation first (``limit`` caps the list)."""
        rows = self._select(
            "volume_processing",
            "status = ?",
            [volume_status(status)],
            radar_code=radar_code,
            order="observation_datetime DESC, id DESC",
            limit=limit,
        )
        return [_volume_dict(r) for r in rows]

    def get_volume(self, volume_id: str) -> dict[str, Any]:
        """One volume as a dict; :class:`UnknownVolumeError` if it is not recorded."""
        with self._use() as conn:
            return _volume_dict(self._volume_row(conn, volume_id))

    def sync_volumes(self, volume_types: VolumeTypes, *, consumer: str = "processing") -> list[str]:
        """Apply ``volume_types`` to the volumes of files recorded since this consumer's cursor.

        Each such volume gets its expected fields (when configured) and its downloaded fields
        recomputed from all its files; returns the ids that became ready. Follows the
        ``downloads`` id sequence from a per-consumer checkpoint, in batches, one transaction
        per batch (the cursor moves with the batch): no table scan, nothing skipped.
        """
        cursor_name = _SYNC_CURSOR.format(consumer=consumer)
        ready: list[str] = []
        while True:
            with self._write() as conn:
                row = conn.execute(
                    "SELECT value FROM checkpoints WHERE name = ?", (cursor_name,)
                ).fetchone()
                cursor = int(row[0]) if row is not None else 0
                rows = conn.execute(
                    "SELECT id, volume_id FROM downloads WHERE id > ? AND status = 'downloaded'"
                    " ORDER BY id LIMIT ?",
                    (cursor, _SYNC_BATCH),
                ).fetchall()
                if not rows:
                    return ready
                now = self._now()
                for vid in dict.fromkeys(r["volume_id"] for r in rows):
                    key = VolumeKey.from_volume_id(vid)
                    expected = expected_fields(volume_types, key.strategy, key.volume_number)
                    fields = self._fields_on_disk(conn, vid)
                    if self._merge_volume(
                        conn, _Volume.of(key), now, fields, _expected_text(expected)
                    ):
                        ready.append(vid)
                conn.execute(
                    "INSERT INTO checkpoints(name, value, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                    " updated_at = excluded.updated_at",
                    (cursor_name, str(rows[-1]["id"]), now),
                )

    # ------------------------------------------------------------------ queue

    def claim_volumes(
        self,
        worker_id: str,
        limit: int = 1,
        *,
        radar_code: str | None = None,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Atomically take up to ``limit`` ready volumes for ``worker_id``, oldest first.

        Ready = ``pending`` and (complete or allowed incomplete) and due. The chosen rows
        become ``processing`` with ``claimed_by``/``claimed_at`` set and ``attempts + 1`` in a
        single ``UPDATE … RETURNING`` under ``BEGIN IMMEDIATE``: concurrent workers and
        processes never receive the same volume.
        """
        if not worker_id:
            raise StateError("claim_volumes: worker_id must be a non-empty string")
        if limit < 1:
            return []
        moment = iso_utc(now) if now is not None else self._now()
        inner = f"SELECT id FROM volume_processing WHERE {_READY} AND next_attempt_at <= :now"
        if radar_code is not None:
            inner += " AND radar_code = :radar"
        inner += " ORDER BY observation_datetime, id LIMIT :limit"
        sql = (
            "UPDATE volume_processing SET status = 'processing', claimed_by = :worker,"
            " claimed_at = :now, attempts = attempts + 1, updated_at = :now"
            f" WHERE id IN ({inner}) RETURNING *"
        )
        params = {"worker": worker_id, "now": moment, "radar": radar_code, "limit": int(limit)}
        with self._write() as conn:
            rows = conn.execute(sql, params).fetchall()
        volumes = [_volume_dict(r) for r in rows]
        volumes.sort(key=lambda v: (v["observation_datetime"], v["id"]))
        return volumes

    def _claimed_row(self, conn: sqlite3.Connection, volume_id: str, worker_id: str) -> sqlite3.Row:
        row = self._volume_row(conn, volume_id)
        if row["status"] != "processing" or row["claimed_by"] != worker_id:
            raise StateError(
                f"{volume_id}: not claimed by worker {worker_id!r} (status {row['status']!r}, "
                f"claimed by {row['claimed_by']!r}); result not recorded"
            )
        return row

    def finish_volume(
        self,
        volume_id: str,
        worker_id: str,
        netcdf_path: str | os.PathLike[str],
        *,
        missing_fields: Sequence[str] = (),
        bad_fields: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """Record a claimed volume as written: ``completed`` with its NetCDF path.

        ``bad_fields`` are ``(field, filename, error)`` of field files left out because they
        could not be decoded (``on_bad_field = "drop"``); they replace the volume's earlier
        record (see :meth:`requeue_repaired_volumes`). ``missing_fields`` are the fields the
        written file lacks. If one of them was
        downloaded while the volume was being processed, the volume goes back to
        ``pending`` at once so it is rewritten with it.

        Raises:
            UnknownVolumeError: no such volume.
            StateError: the volume is not (any more) claimed by ``worker_id``.
        """
        missing = join_fields(missing_fields)
        with self._write() as conn:
            row = self._claimed_row(conn, volume_id, worker_id)
            now = self._now()
            on_disk = split_fields(row["downloaded_fields"])
            dropped = {name for name, *_ in bad_fields}  # on disk but unreadable: not late
            late = (split_fields(missing) - dropped) & on_disk
            status = "pending" if late else "completed"
            if late and row["expected_fields"] is not None:
                missing = join_fields(split_fields(row["expected_fields"]) - on_disk)
            elif late:
                missing = join_fields(split_fields(missing) - on_disk)
            conn.execute(
                "UPDATE volume_processing SET status = ?, netcdf_path = ?, missing_fields = ?,"
                " processed_at = ?, error_message = NULL, claimed_by = NULL, claimed_at = NULL,"
                " next_attempt_at = ?, updated_at = ?,"
                " attempts = CASE WHEN ? THEN 0 ELSE attempts END WHERE id = ?",
                (status, os.fspath(netcdf_path), missing, now, now, now, bool(late), row["id"]),
            )
            self._store_bad_fields(conn, volume_id, bad_fields, now)

    def fail_volume(
        self,
        volume_id: str,
        worker_id: str,
        error_message: str,
        *,
        retry_at: datetime | None,
    ) -> None:
        """Record a claimed volume's failure: retry at ``retry_at`` (pending) or give up (failed).

        Raises:
            UnknownVolumeError: no such volume.
            StateError: the volume is not (any more) claimed by ``worker_id``.
        """
        with self._write() as conn:
            row = self._claimed_row(conn, volume_id, worker_id)
            now = self._now()
            status, due = ("failed", now) if retry_at is None else ("pending", iso_utc(retry_at))
            conn.execute(
                "UPDATE volume_processing SET status = ?, error_message = ?, next_attempt_at = ?,"
                " claimed_by = NULL, claimed_at = NULL, updated_at = ? WHERE id = ?",
                (status, str(error_message), due, now, row["id"]),
            )

    def defer_volume(
        self, volume_id: str, worker_id: str, reason: str, *, retry_at: datetime
    ) -> None:
        """Give a claimed volume back after a transient failure: ``pending`` at ``retry_at``.

        The attempt is not counted (disk full, a worker killed from outside: not the volume's
        fault) and ``error_message`` says why it waits.

        Raises:
            UnknownVolumeError: no such volume.
            StateError: the volume is not (any more) claimed by ``worker_id``.
        """
        with self._write() as conn:
            row = self._claimed_row(conn, volume_id, worker_id)
            conn.execute(
                "UPDATE volume_processing SET status = 'pending', claimed_by = NULL,"
                " claimed_at = NULL, attempts = MAX(attempts - 1, 0), error_message = ?,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (str(reason), iso_utc(retry_at), self._now(), row["id"]),
            )

    def release_volume(self, volume_id: str, worker_id: str) -> None:
        """Give a claimed volume back (e.g. at shutdown): ``pending``, attempt not counted.

        A volume not claimed by ``worker_id`` is left alone.
        """
        with self._write() as conn:
            self._volume_row(conn, volume_id)
            now = self._now()
            conn.execute(
                "UPDATE volume_processing SET status = 'pending', claimed_by = NULL,"
                " claimed_at = NULL, attempts = MAX(attempts - 1, 0), next_attempt_at = ?,"
                " updated_at = ? WHERE volume_id = ? AND status = 'processing' AND claimed_by = ?",
                (now, now, volume_id, worker_id),
            )

    def recover_stale_claims(
        self, *, older_than: timedelta | None = None, worker_id: str | None = None
    ) -> list[str]:
        """Put ``processing`` volumes of dead workers back to ``pending``; returns their ids.

        ``older_than``: claims at least this old; ``worker_id``: every claim of that worker
        (call it at start-up with your own id). Both given: claims matching both; neither:
        every claim. The attempt is not counted (the process was stopped or crashed, which is
        not the volume's fault) and ``error_message`` says what happened.
        """
        now_dt = _utc(self._clock())
        now = iso_utc(now_dt)
        sql = (
            "UPDATE volume_processing SET status = 'pending', next_attempt_at = :now,"
            " attempts = MAX(attempts - 1, 0),"
            " error_message = 'claim by ' || COALESCE(claimed_by, '(manual)') || ' at '"
            " || COALESCE(claimed_at, '?') || ' recovered at ' || :now,"
            " claimed_by = NULL, claimed_at = NULL, updated_at = :now"
            " WHERE status = 'processing'"
        )
        params: dict[str, Any] = {"now": now}
        if older_than is not None:
            sql += " AND (claimed_at IS NULL OR claimed_at <= :cutoff)"
            params["cutoff"] = iso_utc(now_dt - older_than)
        if worker_id is not None:
            sql += " AND claimed_by = :worker"
            params["worker"] = worker_id
        with self._write() as conn:
            rows = conn.execute(sql + " RETURNING volume_id", params).fetchall()
        return sorted(r[0] for r in rows)

    def get_incomplete_volumes(
        self, *, older_than: datetime | None = None, radar_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Pending incomplete volumes not allowed incomplete, oldest observation first.

        Only volumes with at least one downloaded field count: a volume known only from a
        failed download has nothing to process yet. ``older_than``: only those whose newest
        file was recorded at or before that time (so a backfill of old data is not expired
        while its files are still arriving).
        """
        where = (
            "status = 'pending' AND is_complete = 0 AND process_incomplete = 0"
            " AND COALESCE(downloaded_fields, '') != ''"
        )
        params: list[Any] = []
        if older_than is not None:
            where += " AND last_file_at <= ?"
            params.append(iso_utc(older_than))
        rows = self._select(
            "volume_processing",
            where,
            params,
            radar_code=radar_code,
            order="observation_datetime, id",
        )
        return [_volume_dict(r) for r in rows]

    def allow_incomplete(self, volume_id: str) -> None:
        """Let a volume be claimed with the fields it has (an expired one becomes pending)."""
        with self._write() as conn:
            self._volume_row(conn, volume_id)
            now = self._now()
            conn.execute(
                "UPDATE volume_processing SET process_incomplete = 1, updated_at = ?,"
                " next_attempt_at = CASE WHEN status = 'expired' THEN ? ELSE next_attempt_at END,"
                " status = CASE WHEN status = 'expired' THEN 'pending' ELSE status END"
                " WHERE volume_id = ?",
                (now, now, volume_id),
            )

    def expire_incomplete(self, volume_id: str) -> bool:
        """Mark a pending incomplete volume ``expired``; False (unchanged) if it is not one.

        The check and the change are one statement, so a volume completed meanwhile is
        never expired. Expired volumes stay listed and revive when a late field arrives.
        """
        with self._write() as conn:
            self._volume_row(conn, volume_id)
            cursor = conn.execute(
                "UPDATE volume_processing SET status = 'expired', updated_at = ?"
                " WHERE volume_id = ? AND status = 'pending' AND is_complete = 0",
                (self._now(), volume_id),
            )
            return cursor.rowcount == 1

    # ------------------------------------------------------------------ problems, bad fields

    def record_problem(self, radar_code: str, kind: str, subject: str, message: str) -> bool:
        """Note a problem an operator should see (``radarlib status``); True the first time.

        One row per (radar, kind, subject): repeats update ``last_seen``, ``message`` and
        count ``occurrences``.
        """
        now = self._now()
        with self._write() as conn:
            row = conn.execute(
                "INSERT INTO problems (radar_code, kind, subject, message, first_seen, last_seen)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (radar_code, kind, subject) DO UPDATE SET"
                " message = excluded.message, last_seen = excluded.last_seen,"
                " occurrences = problems.occurrences + 1 RETURNING occurrences",
                (radar_code, kind, subject, message, now, now),
            ).fetchone()
        return int(row[0]) == 1

    def clear_problems(self, radar_code: str, kind: str) -> None:
        """Forget the problems of one kind for a radar (e.g. its config warnings at start)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM problems WHERE radar_code = ? AND kind = ?", (radar_code, kind)
            )

    def get_problems(self, radar_code: str | None = None) -> list[dict[str, Any]]:
        """Recorded problems, most recent first."""
        rows = self._select(
            "problems", "1 = 1", radar_code=radar_code, order="last_seen DESC, kind, subject"
        )
        return [dict(r) for r in rows]

    def _store_bad_fields(
        self,
        conn: sqlite3.Connection,
        volume_id: str,
        bad_fields: Sequence[tuple[str, str, str]],
        now: str,
    ) -> None:
        conn.execute("DELETE FROM bad_fields WHERE volume_id = ?", (volume_id,))
        for field_name, filename, error in bad_fields:
            conn.execute(
                "INSERT INTO bad_fields (volume_id, field, filename, error, checksum,"
                " downloaded_at, recorded_at) SELECT ?, ?, ?, ?, d.checksum, d.downloaded_at, ?"
                " FROM (SELECT 1) LEFT JOIN downloads d ON d.filename = ?",
                (volume_id, field_name, filename, error, now, filename),
            )

    def get_bad_fields(self, volume_id: str) -> list[dict[str, Any]]:
        """The field files left out of a volume's NetCDF, with their errors."""
        with self._use() as conn:
            rows = conn.execute(
                "SELECT * FROM bad_fields WHERE volume_id = ? ORDER BY field", (volume_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def get_dropped_fields(
        self, radar_code: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Field files left out of written volumes, newest first (with the volume's status)."""
        sql = (
            "SELECT b.*, v.radar_code, v.status FROM bad_fields b"
            " JOIN volume_processing v ON v.volume_id = b.volume_id"
        )
        params: list[Any] = []
        if radar_code is not None:
            sql += " WHERE v.radar_code = ?"
            params.append(radar_code)
        sql += " ORDER BY b.recorded_at DESC, b.volume_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._use() as conn:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]

    def requeue_repaired_volumes(self, radar_code: str | None = None) -> list[str]:
        """Volumes written without a bad field whose file has been downloaded again: pending.

        A new copy (another checksum or download time) may be good, so the volume is
        rewritten with it; attempts start from 0 (a rewrite is not a retry).
        """
        sql = (
            "SELECT DISTINCT v.volume_id FROM bad_fields b"
            " JOIN volume_processing v ON v.volume_id = b.volume_id"
            " JOIN downloads d ON d.filename = b.filename AND d.status = 'downloaded'"
            " WHERE v.status = 'completed'"
            " AND (COALESCE(d.checksum, '') != COALESCE(b.checksum, '')"
            " OR COALESCE(d.downloaded_at, '') != COALESCE(b.downloaded_at, ''))"
        )
        params: list[Any] = []
        if radar_code is not None:
            sql += " AND v.radar_code = ?"
            params.append(radar_code)
        now = self._now()
        with self._write() as conn:
            ids = [str(r[0]) for r in conn.execute(sql, params).fetchall()]
            for volume_id in ids:
                conn.execute(
                    "UPDATE volume_processing SET status = 'pending', attempts = 0,"
                    " next_attempt_at = ?, updated_at = ? WHERE volume_id = ?",
                    (now, now, volume_id),
                )
        return ids

    def radar_codes(self) -> list[str]:
        """Every radar the database has volumes or files of, sorted."""
        with self._use() as conn:
            rows = conn.execute(
                "SELECT radar_code FROM volume_processing UNION "
                "SELECT radar_code FROM downloads ORDER BY 1"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def download_summary(self, radar_code: str) -> tuple[int, str | None]:
        """Number of downloaded files of a radar and when the newest was recorded (ISO)."""
        with self._use() as conn:
            files, last = conn.execute(
                "SELECT COUNT(*), MAX(downloaded_at) FROM downloads"
                " WHERE radar_code = ? AND status = 'downloaded'",
                (radar_code,),
            ).fetchone()
        return int(files), None if last is None else str(last)

    def get_failed_downloads(
        self, radar_code: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Downloads currently failed (retried later or given up), newest failure first."""
        rows = self._select(
            "downloads",
            "status = 'failed'",
            radar_code=radar_code,
            order="updated_at DESC",
            limit=limit,
        )
        return [_download_dict(r) for r in rows]

    def count_volumes_by_status(self, radar_code: str | None = None) -> dict[str, int]:
        """Number of volumes per status (every status present, zero included)."""
        sql = "SELECT status, COUNT(*) FROM volume_processing"
        params: tuple[str, ...] = ()
        if radar_code is not None:
            sql += " WHERE radar_code = ?"
            params = (radar_code,)
        counts = dict.fromkeys(VOLUME_STATUSES, 0)
        with self._use() as conn:
            for status, number in conn.execute(sql + " GROUP BY status", params):
                counts[str(status)] = int(number)
        return counts


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """True for SQLITE_BUSY/SQLITE_LOCKED answers (another connection holds the file)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)
