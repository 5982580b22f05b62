"""The product daemon: makes the configured products of every converted volume, exactly once.

>>> config = ProductDaemonConfig(radar_code="RMA1", state_db=db, output_dir=out,
...                              settings=ProductSettings(enabled=True))   # doctest: +SKIP
>>> await ProductDaemon(config).run()                                     # doctest: +SKIP

Each cycle: add ``pending`` product rows for volumes completed since the last cycle
(:class:`~radarlib.state.products.ProductStore`), claim the due products of as many volumes
as there are free workers, and make them in worker processes
(:func:`radarlib.products.stage.run_product_job`, never on the event loop), then record each
product ``done`` or a retry / ``failed`` (exponential backoff, ``max_attempts``). Claims of
dead processes are recovered at start and every minute; temporary files left by killed
workers are deleted. It wakes when the processing daemon of the same process completes a
volume (:func:`radarlib.state.events.wait_for_ready` on ``<db>#completed``), on ``stop()``,
when a worker frees, or after ``settings.poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radarlib.filename import format_iso
from radarlib.pipeline.lifecycle import ClaimingDaemon, pid_alive
from radarlib.pipeline.processing import default_worker_id
from radarlib.pipeline.workers import ConversionPool, ExecutorUnavailableError, WorkerDiedError
from radarlib.products.files import remove_orphans
from radarlib.products.settings import ProductSettings
from radarlib.products.stage import ProductJob, ProductOutcome, ProductResult, run_product_job

if TYPE_CHECKING:
    from radarlib.state.products import ClaimedVolume, ProductStore

__all__ = ["COMPLETED_SUFFIX", "ProductDaemon", "ProductDaemonConfig"]

log = logging.getLogger(__name__)

#: ``announce_ready(f"{state_db}{COMPLETED_SUFFIX}")`` wakes the product daemons of that database
COMPLETED_SUFFIX = "#completed"
_RECOVERY_PERIOD_SECONDS = 60.0
#: volumes completed this long before the last enqueue are looked at again (clock skew, races)
_ENQUEUE_OVERLAP = timedelta(minutes=5)


@dataclass(kw_only=True)
class ProductDaemonConfig:
    """Settings of one radar's product daemon."""

    radar_code: str
    state_db: Path
    output_dir: Path
    settings: ProductSettings = field(default_factory=ProductSettings)
    stale_claim_seconds: float = 3600.0
    shutdown_grace_seconds: float = 30.0
    worker_id: str = field(default_factory=default_worker_id)
    #: fsync product files (tests and benchmarks on throw-away folders may turn it off)
    fsync: bool = True
    #: add rows for newly completed volumes (``radarlib products`` queues its period itself)
    enqueue: bool = True
    #: return once nothing is running and nothing is due (``radarlib products``)
    exit_when_idle: bool = False
    #: remake products whose file exists (``radarlib products``); else an existing file is kept
    force: bool = False


class ProductDaemon(ClaimingDaemon):
    """Makes the products of one radar's completed volumes in worker processes."""

    _pool: ConversionPool | None  # local workers only (products need .call)

    def __init__(self, config: ProductDaemonConfig) -> None:
        super().__init__()
        self.config = config
        self._products = tuple(config.settings.product_names())
        self._store: ProductStore | None = None
        self._since: str | None = None
        self._last_recovery = 0.0
        self._counters = {"products_made": 0, "products_kept": 0, "products_failed": 0,
                          "retries_scheduled": 0, "claims_recovered": 0}  # fmt: skip
        self._counts: dict[str, int] = {}

    @property
    def worker_id(self) -> str:
        """The id this daemon claims products under."""
        return self.config.worker_id

    # ------------------------------------------------------------------ lifecycle

    def _make_pool(self) -> ConversionPool:
        return ConversionPool(
            self.config.settings.max_concurrent, converter="radarlib.products.stage:run_product_job"
        )

    def _log_started(self) -> None:
        log.info(
            "product daemon %s started for radar %s: %s",
            self.worker_id,
            self.config.radar_code,
            ", ".join(self._products),
            extra={"radar": self.config.radar_code},
        )

    def get_stats(self) -> dict[str, Any]:
        """Counters of this daemon and the product rows per status (refreshed each cycle)."""
        return {
            "running": self._running,
            **self._counters,
            "in_flight": len(self._in_flight),
            "products_by_status": dict(self._counts),
            "radar_code": self.config.radar_code,
            "worker_id": self.worker_id,
        }

    def _open(self) -> None:
        from radarlib.state.products import ProductStore
        from radarlib.state.sqlite import SQLiteStateTracker

        self.config.output_dir.mkdir(parents=True, exist_ok=True)
        self._store = ProductStore(SQLiteStateTracker(self.config.state_db))
        self._recover(at_start=True)

    def _close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.tracker.close()

    def _db(self) -> ProductStore:
        if self._store is None:
            raise RuntimeError("the state database is not open (call run())")
        return self._store

    def _recover(self, *, at_start: bool = False) -> None:
        """Claims of this id (at start), of dead processes on this host, stale ones: pending."""
        store = self._db()
        self._last_recovery = time.monotonic()
        count = store.recover(worker_id=self.worker_id) if at_start else 0
        host = socket.gethostname()
        for owner in store.claimants(self.config.radar_code):
            parts = owner.split(":")
            if len(parts) >= 2 and parts[0] == host and parts[1].isdigit():
                pid = int(parts[1])
                if pid != os.getpid() and not pid_alive(pid):
                    count += store.recover(worker_id=owner)
        count += store.recover(older_than=timedelta(seconds=self.config.stale_claim_seconds))
        if count:
            log.warning(
                "recovered %d abandoned product claims; back to pending",
                count,
                extra={"radar": self.config.radar_code},
            )
        self._counters["claims_recovered"] += count
        for path in remove_orphans(self.config.output_dir, pid_alive):
            log.warning("removed %s, left by a killed product worker", path.name)

    # ------------------------------------------------------------------ one cycle

    def _enqueue_and_claim(self, slots: int) -> list[ClaimedVolume]:
        store = self._db()
        started = datetime.now(timezone.utc)
        if self.config.enqueue:
            needs = self.config.settings.required_fields()
            store.enqueue(self.config.radar_code, needs, since=self._since)
            self._since = format_iso(started - _ENQUEUE_OVERLAP)
        if time.monotonic() - self._last_recovery >= _RECOVERY_PERIOD_SECONDS:
            self._recover()
        claimed = (
            store.claim(self.worker_id, self.config.radar_code, max_volumes=slots)
            if slots > 0
            else []
        )
        self._counts = store.counts(self.config.radar_code)
        return claimed

    async def _cycle(self) -> None:
        self._begin_cycle()
        slots = self.config.settings.max_concurrent - len(self._in_flight)
        try:
            claimed = await asyncio.to_thread(self._enqueue_and_claim, slots)
        except Exception:
            log.exception("product cycle of radar %s failed; retrying", self.config.radar_code)
            return
        for volume in claimed:
            self._in_flight[volume.volume_id] = asyncio.create_task(
                self._make(volume), name=f"products {volume.volume_id}"
            )
        if self.config.exit_when_idle and not self._in_flight and self._stop_event is not None:
            self._stop_event.set()

    def _wake_signal(self) -> tuple[str | Path, float]:
        return f"{self.config.state_db}{COMPLETED_SUFFIX}", self.config.settings.poll_interval

    # ------------------------------------------------------------------ one volume

    async def _make(self, volume: ClaimedVolume) -> None:
        job = ProductJob(
            volume_id=volume.volume_id,
            netcdf_path=volume.netcdf_path,
            output_dir=str(self.config.output_dir),
            products=tuple(volume.rows),
            settings=self.config.settings.to_mapping(),
            fsync=self.config.fsync,
            force=self.config.force,
        )
        try:
            try:
                if self._pool is None:
                    raise RuntimeError("the product pool is not running")
                outcome: ProductOutcome = await self._pool.call(run_product_job, job)
            except ExecutorUnavailableError as exc:  # not the volume's fault: no attempt used
                log.error(
                    "volume %s: no product worker could be started (%s); retrying in %.0fs",
                    volume.volume_id,
                    exc,
                    self.config.settings.poll_interval,
                    extra={"volume_id": volume.volume_id, "radar": self.config.radar_code},
                )
                retry_at = datetime.now(timezone.utc) + timedelta(
                    seconds=self.config.settings.poll_interval
                )
                await asyncio.shield(
                    asyncio.to_thread(
                        self._db().release,
                        self.worker_id,
                        row_ids=list(volume.rows.values()),
                        retry_at=retry_at,
                    )
                )
                return
            except WorkerDiedError as exc:
                reason = f"WorkerDiedError: the worker process died while making products: {exc}"
                outcome = ProductOutcome(
                    volume.volume_id,
                    tuple(ProductResult(p, ok=False, error=reason) for p in volume.rows),
                    0.0,
                )
            await asyncio.shield(asyncio.to_thread(self._record, volume, outcome))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("volume %s: could not record its products", volume.volume_id)
        finally:
            self._in_flight.pop(volume.volume_id, None)
            self._task_ended()

    def _record(self, volume: ClaimedVolume, outcome: ProductOutcome) -> None:
        store = self._db()
        settings = self.config.settings
        extra = {"volume_id": volume.volume_id, "radar": self.config.radar_code}
        for result in outcome.results:
            row = volume.rows[result.product]
            if result.ok and result.path:
                store.finish(row, self.worker_id, result.path)
                self._counters["products_made" if result.made else "products_kept"] += 1
                continue
            attempts = volume.attempts.get(result.product, 1)
            error = f"{volume.volume_id} {result.product}: {result.error}"
            if attempts < settings.max_attempts:
                delay = settings.retry_backoff_seconds * 2 ** max(0, attempts - 1)
                retry_at = datetime.now(timezone.utc) + timedelta(seconds=delay)
                store.fail(row, self.worker_id, error, retry_at=retry_at)
                self._counters["retries_scheduled"] += 1
                log.error("product failed (attempt %d), retrying: %s", attempts, error, extra=extra)
            else:
                store.fail(row, self.worker_id, error, retry_at=None)
                self._counters["products_failed"] += 1
                log.error("product failed after %d attempts: %s", attempts, error, extra=extra)
        made = sum(r.ok for r in outcome.results)
        log.info(
            "volume %s: %d of %d products in %.2fs",
            volume.volume_id,
            made,
            len(outcome.results),
            outcome.seconds,
            extra=extra,
        )

    # ------------------------------------------------------------------ shutdown

    async def _drain(self) -> None:
        pool, self._pool = self._pool, None
        tasks = list(self._in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.shutdown_grace_seconds)
        late = [t for t in tasks if not t.done()]
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        if pool is not None:
            await pool.close(abandon=bool(late))
        if self._store is not None:
            with contextlib.suppress(Exception):
                released = await asyncio.to_thread(self._db().release, self.worker_id)
                if released:
                    log.warning("%d products interrupted by shutdown: back to pending", released)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(remove_orphans, self.config.output_dir, pid_alive)
