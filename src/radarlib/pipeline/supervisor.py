"""The daemons of the enabled radars of a config, run together on one event loop.

:class:`Pipeline` builds one download daemon and one processing daemon per radar from a
:class:`~radarlib.config.Config`; :func:`run_pipeline` runs it with SIGINT/SIGTERM handled.
``radarlib run`` and ``radarlib demo`` both use them.
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

__all__ = ["DaemonTask", "Pipeline", "Role", "run_pipeline"]

log = logging.getLogger("radarlib.run")

Role = Literal["download", "processing", "products"]


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
                    "%s daemon of %s stopped by an error: %s",
                    entry.role,
                    entry.radar,
                    reason,
                    exc_info=not isinstance(exc, RadarlibError),
                    extra={"radar": entry.radar},
                )
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
        log.info(
            "running %s for radar(s) %s",
            " + ".join(sorted({d.role for d in self.daemons})),
            ", ".join(self.radars),
        )
        tasks = [d.task for d in self.daemons if d.task is not None]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        return [d for d in self.daemons if d.error is not None]

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
    """Run ``pipeline`` with SIGINT/SIGTERM → stop(); exit code 0 (clean) or 1 (a daemon failed).

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
        return 1
    log.info("stopped cleanly")
    return 0
