"""Conversions on a Dask.distributed cluster: the same jobs as the local pool, other machines.

>>> pool = DaskConversionPool("tcp://scheduler:8786", max_in_flight=8)     # doctest: +SKIP
>>> outcome = await pool.convert(job)                                     # doctest: +SKIP

A second implementation of :class:`~radarlib.pipeline.workers.ConversionExecutor`: each job is
``client.submit(run_job, job)`` on an asynchronous :class:`distributed.Client` living on the
daemon's event loop, so nothing blocks the loop. The state database stays the only source of
truth: the cluster never learns about claims or retries, it only runs :func:`run_job`.

A worker lost while running a job (``KilledWorker`` once the scheduler gives up on the task,
a closed connection, a future the scheduler cancelled) becomes
:class:`~radarlib.pipeline.workers.WorkerDiedError`, exactly like a dead local worker; a
scheduler that cannot be reached becomes
:class:`~radarlib.pipeline.workers.ExecutorUnavailableError`. Workers need radarlib installed and
must see the BUFR and NetCDF folders under the same paths as the daemon (shared filesystem).
``distributed`` is imported only when this pool is created.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import uuid
from pathlib import Path
from typing import Any

from radarlib.errors import ConfigError
from radarlib.pipeline.workers import (
    ConversionJob,
    ConversionOutcome,
    ExecutorUnavailableError,
    WorkerDiedError,
    run_job,
)

__all__ = ["DaskConversionPool", "import_distributed"]

log = logging.getLogger(__name__)


def import_distributed() -> Any:
    """The ``distributed`` module, or :class:`ConfigError` (key ``executor``) if not installed."""
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            "executor",
            f"'dask' needs the distributed package ({exc}); install it with "
            f"pip install 'radarlib[distributed]'",
        ) from None
    return distributed


def _being_cancelled() -> bool:
    """Whether the running task was cancelled (not merely handed a CancelledError)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python >= 3.11
    return cancelling is None or bool(cancelling())


class DaskConversionPool:
    """Runs :func:`run_job` on a Dask cluster, at most ``max_in_flight`` jobs at a time."""

    def __init__(self, address: str, max_in_flight: int, *, connect_timeout: float = 10.0) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._distributed = import_distributed()
        self.address = address
        self.max_in_flight = max_in_flight
        self.connect_timeout = connect_timeout
        self.restarts = 0
        self.remote = True
        self._client: Any = None
        self._connecting: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None
        self._futures: set[Any] = set()

    async def _connected(self) -> Any:
        """The client, connecting on first use; :class:`ExecutorUnavailableError` if we cannot."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._client is None:
                try:
                    self._client = await self._distributed.Client(
                        self.address,
                        asynchronous=True,
                        timeout=self.connect_timeout,
                        set_as_default=False,
                        name="radarlib-processing",
                    )
                except (OSError, asyncio.TimeoutError) as exc:
                    raise ExecutorUnavailableError(
                        f"cannot reach the Dask scheduler at {self.address}: {exc}"
                    ) from exc
                log.info("connected to the Dask scheduler at %s", self.address)
            return self._client

    async def warm_up(self) -> None:
        """Connect to the scheduler now, so the first volume does not wait for it."""
        with contextlib.suppress(ExecutorUnavailableError):
            await self._connected()

    async def convert(self, job: ConversionJob) -> ConversionOutcome:
        """Run ``job`` on a cluster worker; :class:`WorkerDiedError` if that worker was lost."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        async with self._slots:
            client = await self._connected()
            key = f"radarlib-convert-{job.volume_id}-{uuid.uuid4().hex[:8]}"
            future = client.submit(run_job, job, key=key, pure=False)
            self._futures.add(future)
            try:
                outcome: ConversionOutcome = await future
                return outcome
            except asyncio.CancelledError:
                await self._cancel(future)
                if _being_cancelled():
                    raise  # the daemon cancelled us (shutdown)
                raise self._lost(job, "the future was cancelled") from None
            except self._distributed.KilledWorker as exc:
                raise self._lost(job, str(exc)) from exc
            except (concurrent.futures.CancelledError, OSError, asyncio.TimeoutError) as exc:
                # a future the scheduler cancelled, a closed comm (CommClosedError is an OSError)
                await self._cancel(future)
                raise self._lost(job, f"{type(exc).__name__}: {exc}") from exc
            finally:
                self._futures.discard(future)

    def _lost(self, job: ConversionJob, detail: str) -> WorkerDiedError:
        self.restarts += 1
        first = Path(job.files[0]).name if job.files else "-"
        log.warning("Dask worker lost while converting %s: %s", job.volume_id, detail)
        return WorkerDiedError(
            f"{job.volume_id}: the Dask worker was lost while converting the volume "
            f"({len(job.files)} files, first {first}): {detail}"
        )

    async def _cancel(self, future: Any) -> None:
        """Ask the scheduler to forget ``future`` (best effort: the cluster may be gone)."""
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.wait_for(future.cancel(force=True), 5))

    async def close(self, *, abandon: bool) -> None:
        """Cancel the jobs still on the cluster (``abandon``) and disconnect."""
        client, self._client = self._client, None
        futures, self._futures = list(self._futures), set()
        if client is None:
            return
        if futures and abandon:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.cancel(futures, force=True), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 10)
