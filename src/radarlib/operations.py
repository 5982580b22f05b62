"""The housekeeping that runs beside the daemons in ``radarlib run``: retention, notifications,
and an optional Prometheus ``/metrics`` listener.

:func:`watcher` returns the coroutine :func:`radarlib.pipeline.supervisor.run_pipeline` runs
beside the daemons. Every blocking step (SQLite reads, deleting files, HTTP/SMTP delivery)
runs in a thread, never on the event loop; an error in housekeeping is logged and never stops
a daemon. When the daemons are done (stop or error) the watcher is cancelled: it then reports
any daemon stopped by an error and delivers what is queued (bounded by a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from radarlib.errors import RadarlibError

if TYPE_CHECKING:
    from radarlib.config import Config
    from radarlib.monitor import Monitor
    from radarlib.notify import Notifier
    from radarlib.pipeline.supervisor import Pipeline
    from radarlib.retention import CleanupReport

__all__ = ["Housekeeping", "watcher"]

log = logging.getLogger("radarlib.operations")


def _daemon_errors(pipeline: Pipeline) -> list[tuple[str, str]]:
    return [(d.name, str(d.error)) for d in pipeline.daemons if d.error is not None]


class Housekeeping:
    """Retention at its pace, the monitor at its pace, metrics served; see the module doc."""

    def __init__(self, config: Config, pipeline: Pipeline) -> None:
        from radarlib.monitor import Monitor
        from radarlib.notify import Notifier

        self.config = config
        self.pipeline = pipeline
        ops = config.operations
        self.notifier: Notifier | None = (
            Notifier(ops.notifications) if ops.notifications.active else None
        )
        targets: dict[Any, list[str]] = {}
        for code in pipeline.radars:
            targets.setdefault(config.state_db(code), []).append(code)
        self.monitor: Monitor = Monitor(ops.notifications, list(targets.items()))
        self.last_cleanup: CleanupReport | None = None
        self._stop = threading.Event()
        self._metrics: Any = None

    def _start_metrics(self) -> None:
        listen = self.config.operations.metrics.listen
        if listen is None:
            return
        from radarlib.metrics import serve_metrics

        self._metrics = serve_metrics(self.config, *listen)
        log.info("metrics served on http://%s:%d/metrics", *listen)

    def _cleanup(self) -> None:
        from radarlib.retention import run_cleanup

        self.last_cleanup = run_cleanup(self.config, radars=self.pipeline.radars, stop=self._stop)

    def _check(self) -> None:
        events = self.monitor.check(
            cleanup=self.last_cleanup, daemon_errors=_daemon_errors(self.pipeline)
        )
        if self.notifier is not None:
            for event in events:
                self.notifier.notify(event)

    async def _guarded(self, name: str, step: Callable[[], None]) -> None:
        try:
            await asyncio.to_thread(step)
        except asyncio.CancelledError:
            raise
        except RadarlibError as exc:
            log.error("%s failed: %s", name, exc)
        except Exception:
            log.exception("%s failed", name)

    async def run(self) -> None:
        """Loop until cancelled (by run_pipeline when the daemons are done)."""
        retention = self.config.operations.retention
        every_cleanup = retention.interval_minutes * 60 if retention.active else 0.0
        every_check = self.config.operations.notifications.check_interval_seconds
        next_cleanup = time.monotonic() + min(60.0, every_cleanup)  # first pass soon after start
        next_check = time.monotonic() + every_check
        await self._guarded("metrics listener", self._start_metrics)
        try:
            while True:
                now = time.monotonic()
                if every_cleanup and now >= next_cleanup:
                    await self._guarded("retention", self._cleanup)
                    next_cleanup = time.monotonic() + every_cleanup
                if self.notifier is not None and now >= next_check:
                    await self._guarded("notification check", self._check)
                    next_check = time.monotonic() + every_check
                await asyncio.sleep(min(1.0, every_check))
        except asyncio.CancelledError:
            self._stop.set()
            await self._final()
            raise

    async def _final(self) -> None:
        """After the daemons: announce those stopped by an error, deliver, close (bounded)."""
        try:
            if self.notifier is not None:
                await asyncio.wait_for(asyncio.to_thread(self._check), 10)
                await asyncio.wait_for(asyncio.to_thread(self.notifier.close, 20.0), 25)
        except Exception:
            log.exception("final notifications failed")
        finally:
            if self._metrics is not None:
                with contextlib.suppress(Exception):
                    self._metrics.stop()


def watcher(config: Config) -> Callable[[Pipeline], Coroutine[Any, Any, None]]:
    """The ``watcher`` for :func:`~radarlib.pipeline.supervisor.run_pipeline`.

    Raises:
        ConfigError: a notification secret named in the config is missing from the environment.
    """
    from radarlib.notify import Notifier

    if config.operations.notifications.active:
        Notifier(config.operations.notifications)  # secrets checked before anything starts

    async def watch(pipeline: Pipeline) -> None:
        await Housekeeping(config, pipeline).run()

    return watch
