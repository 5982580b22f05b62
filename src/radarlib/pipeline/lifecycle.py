"""The life of a daemon that claims work from the state database and runs it in workers.

:class:`ProcessingDaemon` (volumes) and :class:`ProductDaemon` (products) share it: open
the database, start the worker pool, then cycle (claim, start tasks) and sleep until the
database announces new work, a slot frees up, the poll interval passes or :meth:`stop`
is called; on the way out, drain the running tasks and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from radarlib.state.events import wait_for_ready

if TYPE_CHECKING:
    from radarlib.pipeline.workers import ConversionExecutor

__all__ = ["ClaimingDaemon", "Stoppable", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie counts as dead): the owner of a
    claim or of a temporary file."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class Stoppable:
    """A daemon whose ``run`` ends when :meth:`stop` sets its stop event (from any thread)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False  # stop() before run(): the run ends at once

    def stop(self) -> None:
        """Ask ``run`` to finish; safe from any thread or a signal handler, idempotent."""
        self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)


class ClaimingDaemon(Stoppable, ABC):
    """Runs claim cycles until :meth:`stop`; subclasses say what a cycle claims and runs."""

    def __init__(self) -> None:
        super().__init__()
        self._freed: asyncio.Event | None = None  # a running task ended: claim again now
        self._running = False
        self._pool: ConversionExecutor | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Work until :meth:`stop` (or cancellation); returns after a clean shutdown."""
        if self._running:
            raise RuntimeError(f"{type(self).__name__}.run() is already running")
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._freed = asyncio.Event()
        if self._stop_requested:
            self._stop_event.set()
        await asyncio.to_thread(self._open)
        self._pool = self._make_pool()
        self._running = True
        warm = asyncio.create_task(self._pool.warm_up())  # imports take seconds: start now
        self._log_started()
        try:
            while not self._stop_event.is_set():
                await self._cycle()
                await self._sleep()
        finally:
            self._running = False
            self._stop_requested = False  # a later run() starts afresh
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await warm
            await self._drain()
            await asyncio.to_thread(self._close)
            self._log_stopped()

    def _task_ended(self) -> None:
        """A running task ended: its slot is free, the next cycle need not wait."""
        if self._freed is not None:
            self._freed.set()

    async def _sleep(self) -> None:
        """Until new work is announced, a slot frees up, the poll interval passes, or stop."""
        stop, freed = self._stop_event, self._freed
        if stop is None or freed is None or stop.is_set() or freed.is_set():
            return
        ready, interval = self._wake_signal()
        waiters = [
            asyncio.ensure_future(wait_for_ready(ready, interval)),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(freed.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _begin_cycle(self) -> None:
        if self._freed is not None:
            self._freed.clear()

    @abstractmethod
    def _open(self) -> None:
        """Open the database and recover what a previous run left (a worker thread)."""

    @abstractmethod
    def _close(self) -> None:
        """Close the database (a worker thread)."""

    @abstractmethod
    def _make_pool(self) -> ConversionExecutor:
        """The workers the tasks run in."""

    @abstractmethod
    async def _cycle(self) -> None:
        """Claim what there is room for and start a task for each."""

    @abstractmethod
    async def _drain(self) -> None:
        """Let running tasks finish within the grace period, else give their claims back."""

    @abstractmethod
    def _wake_signal(self) -> tuple[str | Path, float]:
        """The ready-signal key :func:`wait_for_ready` waits on, and the poll interval."""

    def _log_started(self) -> None:
        """Log the start (after the pool is up)."""

    def _log_stopped(self) -> None:
        """Log the end (after the database is closed)."""
