"""The download side's memory of the server, in the ``remote_files`` table (schema version 3).

Every wanted file a listing shows gets a row: its size, when it was first seen, and what
became of it. ``pending`` and ``failed`` rows carry ``next_attempt_at`` (when to fetch);
``short`` rows (the BUFR was not whole yet), ``rejected`` ones (not BUFR, too large) and
``downloaded`` ones wait for the server's size to change, which a later listing notices,
however late. The daemon keeps nothing of this in memory, so a restart loses and repeats
nothing. :class:`RemoteFilesMixin` is part of :class:`~radarlib.state.sqlite.SQLiteStateTracker`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from radarlib.filename import BufrFileName
from radarlib.state.records import iso_utc

if TYPE_CHECKING:
    from radarlib.state.sqlite import DownloadedFile, _PreparedDownload

__all__ = ["ListedFile", "RemoteFile", "RemoteFilesMixin"]

_CHUNK = 500  # names per IN (...) query
_WAITING = ("short", "rejected")  # fetched again only when the server's size changes
_COLUMNS = "filename, remote_path, listed_size, attempts, part_size, part_sha256"


@dataclass(frozen=True)
class ListedFile:
    """A wanted file as a listing showed it (``size`` None: the listing had no size)."""

    name: BufrFileName
    remote_path: str
    size: int | None


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch, as the state database knows it (with a resumable partial, if any)."""

    name: str
    remote_path: str
    size: int | None
    attempts: int = 0
    part_size: int | None = None
    part_sha256: str | None = None


def _remote(row: sqlite3.Row | tuple[Any, ...]) -> RemoteFile:
    return RemoteFile(str(row[0]), str(row[1]), row[2], int(row[3]), row[4], row[5])


def _window(args: list[Any], start: datetime | None, end: datetime | None) -> str:
    """The SQL condition of an observation time in ``[start, end]``; appends its arguments."""
    sql = ""
    for bound, op in ((start, ">="), (end, "<=")):
        if bound is not None:
            sql += f" AND observation_datetime {op} ?"
            args.append(iso_utc(bound))
    return sql


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for at in range(0, len(items), _CHUNK):
        yield items[at : at + _CHUNK]


class RemoteFilesMixin:
    """``remote_files`` reads and writes of :class:`SQLiteStateTracker`."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _use(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _now(self) -> str: ...
        def _insert_downloads(
            self, conn: sqlite3.Connection, prepared: Sequence[_PreparedDownload]
        ) -> list[list[str]]: ...
        def _insert_failure(
            self,
            conn: sqlite3.Connection,
            filename: str,
            remote_path: str,
            error: str,
            next_attempt_at: datetime | None,
        ) -> int: ...

    def observe_remote_files(self, listed: Sequence[ListedFile]) -> list[RemoteFile]:
        """Record what a listing showed; return the files to fetch now.

        New files become ``pending`` (due at once). A ``short`` or ``rejected`` file whose
        size changed is due again, and so is a ``failed`` one whose time has come. Files
        already downloaded cost one read and no write.
        """
        due: list[RemoteFile] = []
        if not listed:
            return due
        now = self._now()
        with self._write() as conn:
            for chunk in _chunks(listed):
                names = [str(item.name) for item in chunk]
                marks = ",".join("?" * len(names))
                known = {
                    row[0]: row
                    for row in conn.execute(
                        "SELECT filename, status, listed_size, fetched_size, next_attempt_at,"
                        f" {_COLUMNS} FROM remote_files WHERE filename IN ({marks})",
                        names,
                    )
                }
                inserts, updates, revived = [], [], []
                for item, key in zip(chunk, names, strict=True):
                    row = known.get(key)
                    if row is None:
                        observed = iso_utc(item.name.time)
                        row_values = (key, item.name.radar, observed, item.remote_path, item.size)
                        inserts.append((*row_values, now, now, now, now))
                        due.append(RemoteFile(key, item.remote_path, item.size))
                        continue
                    status, listed_size, fetched, next_at = row[1], row[2], row[3], row[4]
                    seen_before = fetched if status == "short" else listed_size
                    if status in _WAITING and item.size is not None and item.size != seen_before:
                        revived.append((item.size, now, now, now, key))
                        due.append(RemoteFile(key, item.remote_path, item.size, *row[8:11]))
                    elif status in ("pending", "failed"):
                        if item.size != listed_size:
                            updates.append((item.size, now, key))
                        if next_at is not None and next_at <= now:
                            due.append(RemoteFile(key, item.remote_path, item.size, *row[8:11]))
                conn.executemany(
                    "INSERT INTO remote_files (filename, radar_code, observation_datetime,"
                    " remote_path, status, listed_size, next_attempt_at, first_seen_at,"
                    " last_seen_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                    inserts,
                )
                conn.executemany(
                    "UPDATE remote_files SET listed_size = ?, last_seen_at = ? WHERE filename = ?",
                    updates,
                )
                conn.executemany(
                    "UPDATE remote_files SET status = 'pending', listed_size = ?,"
                    " next_attempt_at = ?, last_seen_at = ?, updated_at = ? WHERE filename = ?",
                    revived,
                )
        return due

    def due_remote_files(
        self,
        radar_code: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        exclude: Sequence[str] = (),
    ) -> list[RemoteFile]:
        """Pending or failed files of a radar whose time has come, newest observation first."""
        sql = (
            f"SELECT {_COLUMNS} FROM remote_files WHERE radar_code = ?"
            " AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?"
        )
        args: list[Any] = [radar_code, self._now()]
        sql += _window(args, start, end)
        skip = set(exclude)
        with self._use() as conn:
            rows = conn.execute(
                sql + " ORDER BY observation_datetime DESC LIMIT ?", [*args, limit + len(skip)]
            ).fetchall()
        return [_remote(r) for r in rows if r[0] not in skip][:limit]

    def unsettled_remote_files(
        self,
        radar_code: str,
        *,
        start: datetime | None,
        end: datetime | None,
        max_attempts: int,
    ) -> int:
        """Files of ``[start, end]`` still to fetch: pending, or failed fewer than
        ``max_attempts`` times (short, rejected and given-up files are settled)."""
        sql = (
            "SELECT COUNT(*) FROM remote_files WHERE radar_code = ?"
            " AND (status = 'pending' OR (status = 'failed' AND attempts < ?))"
        )
        args: list[Any] = [radar_code, max_attempts]
        sql += _window(args, start, end)
        with self._use() as conn:
            return int(conn.execute(sql, args).fetchone()[0])

    def short_remote_folders(
        self, radar_code: str, *, start: datetime | None, end: datetime | None, limit: int = 20
    ) -> list[str]:
        """Server folders holding files of ``[start, end]`` that were short when fetched
        (listing them again shows whether the upload went on), newest first."""
        sql = "SELECT remote_path FROM remote_files WHERE radar_code = ? AND status = 'short'"
        args: list[Any] = [radar_code]
        sql += _window(args, start, end)
        with self._use() as conn:
            rows = conn.execute(sql + " ORDER BY observation_datetime DESC", args).fetchall()
        folders = dict.fromkeys(str(r[0]).rsplit("/", 1)[0] for r in rows)
        return list(folders)[:limit]

    def record_remote_downloaded(self, file: DownloadedFile) -> list[str]:
        """A whole, durable file: its ``downloads`` row, its volume and its remote row, at once.

        Returns ``[volume_id]`` when the file made its volume complete (as ``mark_downloaded``).
        """
        from radarlib.state.sqlite import _prepare_download

        prepared = _prepare_download(file)
        with self._write() as conn:
            ready = self._insert_downloads(conn, [prepared])[0]
            self._set_status(conn, str(prepared[0]), "downloaded", fetched_size=file.file_size)
        return ready

    def record_remote_short(self, name: str, fetched_size: int, reason: str) -> None:
        """The file was fetched but is not a whole BUFR yet: wait for its size to change."""
        with self._write() as conn:
            self._set_status(conn, name, "short", fetched_size=fetched_size, error=reason)

    def record_remote_rejected(self, name: str, reason: str) -> None:
        """Not a radar file we take (not BUFR, too large): kept as such until its size changes."""
        with self._write() as conn:
            self._set_status(conn, name, "rejected", error=reason)

    def record_remote_failure(
        self,
        name: str,
        error: str,
        *,
        retry_at: datetime,
        counted: bool = True,
        report_after: int | None = None,
    ) -> int:
        """A failed fetch: retried at ``retry_at``; returns the attempts counted so far.

        ``counted=False`` for causes that are not the file's (the connection dropped, the
        local disk is full). When ``report_after`` attempts are reached, the failure is also
        written to ``downloads`` (what ``radarlib status`` shows as a failed download).
        """
        with self._write() as conn:
            row = conn.execute(
                "UPDATE remote_files SET status = 'failed', attempts = attempts + ?,"
                " last_error = ?, next_attempt_at = ?, updated_at = ? WHERE filename = ?"
                " RETURNING attempts, remote_path",
                (int(counted), error, iso_utc(retry_at), self._now(), name),
            ).fetchone()
            if row is None:
                return 0
            attempts = int(row[0])
            if counted and report_after is not None and attempts >= report_after:
                self._insert_failure(conn, name, str(row[1]), error, retry_at)
        return attempts

    def record_remote_partial(self, name: str, part_size: int, part_sha256: str) -> None:
        """The bytes kept in the file's ``.part`` after a cut transfer (for a checked resume)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE remote_files SET part_size = ?, part_sha256 = ?, updated_at = ?"
                " WHERE filename = ?",
                (part_size, part_sha256, self._now(), name),
            )

    def get_remote_file(self, name: str) -> dict[str, Any] | None:
        """The ``remote_files`` row of a file as a dict, or None."""
        with self._use() as conn:
            row = conn.execute("SELECT * FROM remote_files WHERE filename = ?", (name,)).fetchone()
        return None if row is None else dict(row)

    def remote_file_counts(self, radar_code: str) -> dict[str, int]:
        """Number of remote files of a radar per status (every status, zero included)."""
        counts = dict.fromkeys(("pending", "short", "downloaded", "failed", "rejected"), 0)
        with self._use() as conn:
            for status, number in conn.execute(
                "SELECT status, COUNT(*) FROM remote_files WHERE radar_code = ? GROUP BY status",
                (radar_code,),
            ):
                counts[str(status)] = int(number)
        return counts

    def get_rejected_files(self, radar_code: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Rejected and short files of a radar (name, status, reason), newest first."""
        with self._use() as conn:
            rows = conn.execute(
                "SELECT filename, status, last_error, listed_size, updated_at FROM remote_files"
                " WHERE radar_code = ? AND status IN ('rejected', 'short')"
                " ORDER BY updated_at DESC LIMIT ?",
                (radar_code, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    def _set_status(
        self,
        conn: sqlite3.Connection,
        name: str,
        status: str,
        *,
        fetched_size: int | None = None,
        error: str | None = None,
    ) -> None:
        conn.execute(
            "UPDATE remote_files SET status = ?, fetched_size = COALESCE(?, fetched_size),"
            " last_error = ?, next_attempt_at = NULL, part_size = NULL, part_sha256 = NULL,"
            " updated_at = ? WHERE filename = ?",
            (status, fetched_size, error, self._now(), name),
        )
