"""The daemons of the enabled radars of a config, run together on one event loop, failing whole.

:class:`Pipeline` builds one download daemon and one processing daemon per radar (and a
product daemon where ``[products]`` is enabled) from a :class:`~radarlib.config.Config`;
:func:`run_pipeline` runs it with SIGINT/SIGTERM handled.
``radarlib run`` and ``radarlib demo`` both use them.

Each daemon retries what is transient inside itself (an unreachable server, a busy or full
database, a full disk, a lost worker). A daemon whose ``run()`` raises has met something it
cannot get past (wrong credentials, a missing remote path, a bug): the supervisor then stops
every other daemon cleanly and :func:`run_pipeline` returns :data:`EXIT_DAEMON_FAILED`, so the
process ends within seconds instead of running on half-dead (and a service manager can
restart it). Exit codes: :data:`EXIT_OK` 0 (stopped by a signal or every daemon finished),
:data:`EXIT_DAEMON_FAILED` 1, :data:`EXIT_CONFIG` 2 (``radarlib run`` refuses the config
before starting anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from radarlib.config import Config
from radarlib.errors import ConfigError, RadarlibError
from radarlib.logsetup import bind_radar

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DAEMON_FAILED",
    "EXIT_OK",
    "DaemonTask",
    "Pipeline",
    "Role",
    "run_pipeline",
]

#: every daemon stopped cleanly (a signal, or a date-range download that finished)
EXIT_OK = 0
#: a daemon ended with an error; the others were stopped
EXIT_DAEMON_FAILED = 1
#: the configuration was refused before anything started (restarting will not help)
EXIT_CONFIG = 2

log = logging.getLogger("radarlib.run")

Role = Literal["download", "processing", "products"]

#: after a failure, the others get their shutdown grace plus this long before being cancelled
_STOP_MARGIN_SECONDS = 10.0


@dataclass
class DaemonTask:
    """One daemon of one radar and how its ``run()`` ended."""

    radar: str
    role: Role
    daemon: Any
    task: asyncio.Task[None] | None = None
    error: BaseException | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``RMA1/download``."""
        return f"{self.radar}/{self.role}"


class Pipeline:
    """The daemons of the enabled radars of a config, run together on the current event loop."""

    def __init__(
        self,
        config: Config,
        *,
        radars: Sequence[str] | None = None,
        roles: Sequence[Role] = ("download", "processing"),
    ) -> None:
        from radarlib.pipeline.download import DateBasedFTPDaemon
        from radarlib.pipeline.processing import ProcessingDaemon

        self.config = config
        chosen = [r.code for r in config.enabled_radars()]
        if radars:
            for code in radars:
                config.radar(code)  # ConfigError if unknown
            chosen = list(radars)
        if not chosen:
            raise ConfigError("radars", "no enabled radar to run")
        self.daemons: list[DaemonTask] = []
        for code in chosen:
            if "download" in roles:
                downloader = DateBasedFTPDaemon(config.download_config(code))
                self.daemons.append(DaemonTask(code, "download", downloader))
            if "processing" in roles:
                processor = ProcessingDaemon(config.processing_config(code))
                self.daemons.append(DaemonTask(code, "processing", processor))
            if "processing" in roles and config.product_settings(code).enabled:
                from radarlib.pipeline.products import ProductDaemon

                products = ProductDaemon(config.product_config(code))
                self.daemons.append(DaemonTask(code, "products", products))
        self._stopping = False

    @property
    def radars(self) -> list[str]:
        """The radar codes this pipeline runs, in order."""
        return list(dict.fromkeys(d.radar for d in self.daemons))

    async def run(self) -> list[DaemonTask]:
        """Run every daemon until it returns or fails; the list of those that failed."""

        async def supervise(entry: DaemonTask) -> None:
            bind_radar(entry.radar)
            try:
                await entry.daemon.run()
            except asyncio.CancelledError:
                log.warning("%s daemon of %s cancelled", entry.role, entry.radar)
                raise
            except Exception as exc:
                entry.error = exc
                reason = str(exc) if isinstance(exc, RadarlibError) else repr(exc)
                log.error(
                    "%s daemon of %s stopped by an error: %s; stopping the other daemons",
                    entry.role,
                    entry.radar,
                    reason,
                    exc_info=not isinstance(exc, RadarlibError),
                    extra={"radar": entry.radar},
                )
                self.stop()  # never run on half-dead: the process ends, a supervisor restarts it
            else:
                if not self._stopping:
                    log.info(
                        "%s daemon of %s finished",
                        entry.role,
                        entry.radar,
                        extra={"radar": entry.radar},
                    )

        for entry in self.daemons:
            entry.task = asyncio.create_task(supervise(entry), name=entry.name)
        watchdog = asyncio.create_task(self._cancel_if_stuck(), name="stop watchdog")
        log.info(
            "running %s for radar(s) %s",
            " + ".join(sorted({d.role for d in self.daemons})),
            ", ".join(self.radars),
        )
        tasks = [d.task for d in self.daemons if d.task is not None]
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            watchdog.cancel()
        return [d for d in self.daemons if d.error is not None]

    def stop_deadline(self) -> float:
        """Seconds the daemons get to stop after a failure before they are cancelled."""
        graces = [
            float(getattr(d.daemon.config, "shutdown_grace_seconds", 0) or 0)
            for d in self.daemons
            if hasattr(d.daemon, "config")
        ]
        return max(graces, default=0.0) + _STOP_MARGIN_SECONDS

    async def _cancel_if_stuck(self) -> None:
        """After a daemon failed, cancel whatever has not stopped by :meth:`stop_deadline`."""
        while not any(d.error is not None for d in self.daemons):
            await asyncio.sleep(0.2)
        await asyncio.sleep(self.stop_deadline())
        stuck = [d.name for d in self.daemons if d.task is not None and not d.task.done()]
        if stuck:
            log.error("daemon(s) %s did not stop in time; cancelling them", ", ".join(stuck))
            self.cancel()

    def stop(self) -> None:
        """Ask every daemon to stop (safe to call more than once, and from signal handlers)."""
        self._stopping = True
        for entry in self.daemons:
            try:
                entry.daemon.stop()
            except Exception:  # one daemon's stop() must not keep the others running
                log.exception("stop() of the %s daemon of %s failed", entry.role, entry.radar)

    def cancel(self) -> None:
        """Cancel every daemon task (second signal: stop now)."""
        for entry in self.daemons:
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()

    def stats(self) -> dict[str, dict[str, Any]]:
        """``get_stats()`` of every daemon, keyed ``RADAR/role``."""
        result: dict[str, dict[str, Any]] = {}
        for entry in self.daemons:
            with contextlib.suppress(Exception):
                result[entry.name] = dict(entry.daemon.get_stats())
        return result


async def run_pipeline(
    pipeline: Pipeline,
    *,
    handle_signals: bool = True,
    watcher: Callable[[Pipeline], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Run ``pipeline`` with SIGINT/SIGTERM → stop(); :data:`EXIT_OK` or :data:`EXIT_DAEMON_FAILED`.

    ``watcher`` runs beside the daemons (e.g. the demo's progress display) and may call
    ``pipeline.stop()``; it is cancelled when the daemons are done.
    """
    loop = asyncio.get_running_loop()
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            log.info("%s received: stopping every daemon", signal.Signals(signum).name)
            pipeline.stop()
        else:
            log.warning("second signal: cancelling the daemons now")
            pipeline.cancel()

    installed: list[int] = []
    if handle_signals:
        for signum in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append(signum)
    side = asyncio.create_task(watcher(pipeline), name="watcher") if watcher else None
    try:
        failed = await pipeline.run()
    finally:
        if side is not None:
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await side
        for signum in installed:
            loop.remove_signal_handler(signum)
    if failed:
        log.error("stopped; failed daemon(s): %s", ", ".join(d.name for d in failed))
        return EXIT_DAEMON_FAILED
    log.info("stopped cleanly")
    return EXIT_OK
