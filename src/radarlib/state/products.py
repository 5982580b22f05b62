"""The product stage's rows in the state database: one per volume x product, with a small queue.

>>> store = ProductStore(tracker)                                     # doctest: +SKIP
>>> store.enqueue("RMA1", ["colmax.tif", "colmax.png"])   # rows for completed volumes
>>> batch = store.claim("host:123:ab", "RMA1", max_volumes=2)

Statuses: ``pending`` (waiting, ``next_attempt_at`` says when), ``processing`` (claimed by
``claimed_by``), ``done`` (``path`` written), ``failed`` (``max_attempts`` used up; reset by
``radarlib products``). Claims, retries and recovery follow the volume queue's rules
(:class:`~radarlib.state.sqlite.SQLiteStateTracker`): one ``UPDATE ... RETURNING`` under
``BEGIN IMMEDIATE``, so two processes never claim the same row, and a product is never
made twice. Rows of a volume deleted by retention go with it (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from radarlib.errors import StateError
from radarlib.state.records import iso_utc
from radarlib.state.sqlite import SQLiteStateTracker

__all__ = ["ClaimedVolume", "ProductStore"]


@dataclass
class ClaimedVolume:
    """The claimed product rows of one volume and where its NetCDF is."""

    volume_id: str
    netcdf_path: str
    rows: dict[str, int] = field(default_factory=dict)  # product -> row id
    attempts: dict[str, int] = field(default_factory=dict)


class ProductStore:
    """Product rows on top of an open :class:`SQLiteStateTracker` (same connection and lock)."""

    def __init__(self, tracker: SQLiteStateTracker) -> None:
        self.tracker = tracker

    def _now(self, now: datetime | None = None) -> str:
        return iso_utc(now) if now is not None else self.tracker._now()

    def enqueue(
        self,
        radar: str,
        products: Sequence[str] | Mapping[str, str],
        *,
        since: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Add ``pending`` rows for every completed volume of ``radar`` lacking them; count added.

        ``products`` maps each product to the field it needs (a volume whose expected, else
        downloaded, fields lack it gets no row), or lists products needing nothing.
        ``since``: only volumes processed at or after that time (ISO); ``start``/``end``:
        observation time range ``[start, end)``.
        """
        now = self._now()
        sql = (
            "INSERT INTO products(volume_id, radar_code, product, status, next_attempt_at,"
            " created_at, updated_at)"
            " SELECT v.volume_id, v.radar_code, :product, 'pending', :now, :now, :now"
            " FROM volume_processing v WHERE v.status = 'completed' AND v.radar_code = :radar"
        )
        params: dict[str, Any] = {"now": now, "radar": radar}
        if since is not None:
            sql += " AND v.processed_at >= :since"
            params["since"] = since
        if start is not None:
            sql += " AND v.observation_datetime >= :start"
            params["start"] = iso_utc(start)
        if end is not None:
            sql += " AND v.observation_datetime < :end"
            params["end"] = iso_utc(end)
        needs = dict(products) if isinstance(products, Mapping) else dict.fromkeys(products, "")
        sql += (
            " AND (:field = '' OR ',' || COALESCE(v.expected_fields, v.downloaded_fields) || ','"
            " LIKE '%,' || :field || ',%')"
            " ON CONFLICT (volume_id, product) DO NOTHING"
        )
        added = 0
        with self.tracker._write() as conn:
            for product, needed in needs.items():
                values = {**params, "product": product, "field": needed}
                added += conn.execute(sql, values).rowcount
        return added

    def reset(
        self,
        radar: str,
        products: Sequence[str] | Mapping[str, str],
        *,
        start: datetime,
        end: datetime,
    ) -> int:
        """Make the products of ``radar``'s completed volumes in ``[start, end)`` pending again."""
        self.enqueue(radar, products, start=start, end=end)
        now = self._now()
        names = list(products)
        marks = ",".join("?" for _ in names)
        with self.tracker._write() as conn:
            cur = conn.execute(
                "UPDATE products SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " error_message = NULL, claimed_by = NULL, claimed_at = NULL, updated_at = ?"
                f" WHERE radar_code = ? AND product IN ({marks}) AND status != 'processing'"
                " AND volume_id IN (SELECT volume_id FROM volume_processing"
                " WHERE radar_code = ? AND observation_datetime >= ? AND observation_datetime < ?)",
                (now, now, radar, *names, radar, iso_utc(start), iso_utc(end)),
            )
            return int(cur.rowcount)

    def claim(
        self, worker_id: str, radar: str, *, max_volumes: int = 1, now: datetime | None = None
    ) -> list[ClaimedVolume]:
        """Atomically take the due products of up to ``max_volumes`` volumes, oldest first."""
        if not worker_id:
            raise StateError("ProductStore.claim: worker_id must be a non-empty string")
        moment = self._now(now)
        due = "status = 'pending' AND radar_code = :radar AND next_attempt_at <= :now"
        sql = (
            "UPDATE products SET status = 'processing', claimed_by = :worker, claimed_at = :now,"
            " attempts = attempts + 1, updated_at = :now"
            f" WHERE {due} AND volume_id IN (SELECT p.volume_id FROM products p"
            " JOIN volume_processing v ON v.volume_id = p.volume_id"
            f" WHERE p.{due.replace(' AND ', ' AND p.')}"
            " GROUP BY p.volume_id ORDER BY MIN(v.observation_datetime), p.volume_id"
            " LIMIT :limit)"
            " RETURNING id, volume_id, product, attempts"
        )
        params = {"worker": worker_id, "now": moment, "radar": radar, "limit": int(max_volumes)}
        with self.tracker._write() as conn:
            rows = conn.execute(sql, params).fetchall()
            ids = sorted({r["volume_id"] for r in rows})
            paths = {
                v: conn.execute(
                    "SELECT netcdf_path FROM volume_processing WHERE volume_id = ?", (v,)
                ).fetchone()[0]
                for v in ids
            }
        claimed: dict[str, ClaimedVolume] = {}
        for r in rows:
            entry = claimed.setdefault(
                r["volume_id"], ClaimedVolume(r["volume_id"], str(paths[r["volume_id"]] or ""))
            )
            entry.rows[r["product"]] = int(r["id"])
            entry.attempts[r["product"]] = int(r["attempts"])
        return [claimed[v] for v in ids]

    def finish(self, row_id: int, worker_id: str, path: str | os.PathLike[str]) -> None:
        """Record a claimed product as written (``done``)."""
        now = self._now()
        with self.tracker._write() as conn:
            cur = conn.execute(
                "UPDATE products SET status = 'done', path = ?, done_at = ?, error_message = NULL,"
                " claimed_by = NULL, claimed_at = NULL, updated_at = ?"
                " WHERE id = ? AND status = 'processing' AND claimed_by = ?",
                (os.fspath(path), now, now, row_id, worker_id),
            )
            if cur.rowcount != 1:
                raise StateError(f"product row {row_id}: not claimed by {worker_id!r}")

    def fail(self, row_id: int, worker_id: str, error: str, *, retry_at: datetime | None) -> None:
        """Record a claimed product's failure: retry at ``retry_at`` (pending) or ``failed``."""
        now = self._now()
        status, due = ("failed", now) if retry_at is None else ("pending", iso_utc(retry_at))
        with self.tracker._write() as conn:
            cur = conn.execute(
                "UPDATE products SET status = ?, error_message = ?, next_attempt_at = ?,"
                " claimed_by = NULL, claimed_at = NULL, updated_at = ?"
                " WHERE id = ? AND status = 'processing' AND claimed_by = ?",
                (status, error, due, now, row_id, worker_id),
            )
            if cur.rowcount != 1:
                raise StateError(f"product row {row_id}: not claimed by {worker_id!r}")

    def release(
        self,
        worker_id: str,
        *,
        row_ids: Sequence[int] | None = None,
        retry_at: datetime | None = None,
    ) -> int:
        """Give back claims of ``worker_id``: pending, attempt not counted; count them.

        Every claim (shutdown), or only ``row_ids`` (no worker could take them); due now, or
        at ``retry_at``.
        """
        now = self._now()
        due = now if retry_at is None else iso_utc(retry_at)
        sql = (
            "UPDATE products SET status = 'pending', attempts = MAX(attempts - 1, 0),"
            " claimed_by = NULL, claimed_at = NULL, next_attempt_at = ?, updated_at = ?"
            " WHERE status = 'processing' AND claimed_by = ?"
        )
        args: tuple[Any, ...] = (due, now, worker_id)
        if row_ids is not None:
            sql += f" AND id IN ({','.join('?' for _ in row_ids)})"
            args += tuple(int(i) for i in row_ids)
        with self.tracker._write() as conn:
            return int(conn.execute(sql, args).rowcount)

    def claimants(self, radar: str) -> list[str]:
        """The distinct ``claimed_by`` of ``radar``'s products in ``processing``."""
        with self.tracker._use() as conn:
            rows = conn.execute(
                "SELECT DISTINCT claimed_by FROM products WHERE status = 'processing'"
                " AND radar_code = ?",
                (radar,),
            ).fetchall()
        return [str(r[0]) for r in rows if r[0]]

    def recover(self, *, worker_id: str | None = None, older_than: timedelta | None = None) -> int:
        """Claims of a dead worker (or older than ``older_than``) back to pending; count them."""
        now_dt = self.tracker._clock()
        now = iso_utc(now_dt)
        sql = (
            "UPDATE products SET status = 'pending', next_attempt_at = :now, claimed_by = NULL,"
            " error_message = 'claim by ' || COALESCE(claimed_by, '?') || ' recovered at ' || :now,"
            " claimed_at = NULL, updated_at = :now WHERE status = 'processing'"
        )
        params: dict[str, Any] = {"now": now}
        if worker_id is not None:
            sql += " AND claimed_by = :worker"
            params["worker"] = worker_id
        if older_than is not None:
            sql += " AND claimed_at <= :cutoff"
            params["cutoff"] = iso_utc(now_dt - older_than)
        with self.tracker._write() as conn:
            return int(conn.execute(sql, params).rowcount)

    def counts(
        self,
        radar: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, int]:
        """Product rows per status (of one radar, or all; of volumes in ``[start, end)``)."""
        sql = "SELECT status, COUNT(*) FROM products WHERE 1"
        args: tuple[Any, ...] = ()
        if radar is not None:
            sql += " AND radar_code = ?"
            args += (radar,)
        if start is not None and end is not None:
            sql += (
                " AND volume_id IN (SELECT volume_id FROM volume_processing"
                " WHERE observation_datetime >= ? AND observation_datetime < ?)"
            )
            args += (iso_utc(start), iso_utc(end))
        with self.tracker._use() as conn:
            rows = conn.execute(sql + " GROUP BY status", args).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def rows(self, volume_id: str | None = None) -> list[dict[str, Any]]:
        """Every product row (of one volume), as dicts."""
        sql = "SELECT * FROM products"
        args: tuple[Any, ...] = ()
        if volume_id is not None:
            sql += " WHERE volume_id = ?"
            args = (volume_id,)
        with self.tracker._use() as conn:
            return [dict(r) for r in conn.execute(sql + " ORDER BY volume_id, product", args)]
