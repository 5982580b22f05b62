"""The process pool that runs volume conversions away from the event loop, surviving dead workers.

Decoding, Py-ART and NetCDF writing are CPU-bound and may crash; they run in worker
processes started with the ``spawn`` method (no inherited locks, threads or sockets).

>>> pool = ConversionPool(max_workers=2)                                # doctest: +SKIP
>>> outcome = await pool.convert(ConversionJob("RMA1_0315_02_…", files, out_dir))  # doctest: +SKIP

A worker that dies (segfault, ``os._exit``, OOM kill) breaks the executor: the job that
was running reports :class:`WorkerDiedError` and the next job gets a fresh pool. Every
other exception raised by the converter comes back as a failed :class:`ConversionOutcome`
carrying the error's type, text and traceback, so nothing needs to be unpickled that a
worker could not pickle.

:class:`ConversionExecutor` is what the processing daemon needs from a pool; this module's
:class:`ConversionPool` is the local implementation, :mod:`radarlib.pipeline.dask_pool` the
Dask.distributed one (both run :func:`run_job`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "DEFAULT_CONVERTER",
    "ConversionExecutor",
    "ConversionJob",
    "ConversionOutcome",
    "ConversionPool",
    "ExecutorUnavailableError",
    "WorkerDiedError",
    "run_job",
]

log = logging.getLogger(__name__)

#: Import path (``module:function``) of the converter every job runs by default.
DEFAULT_CONVERTER = "radarlib.convert:convert_volume"


class WorkerDiedError(RuntimeError):
    """A worker process died while running a job (the pool was broken and is recreated)."""


class ExecutorUnavailableError(RuntimeError):
    """No worker can take jobs now (e.g. the Dask scheduler is unreachable): not the job's fault."""


@dataclass(frozen=True)
class ConversionJob:
    """One volume to convert: plain, picklable values only (it crosses a process boundary)."""

    volume_id: str
    files: tuple[str, ...]
    output_dir: str
    expected_fields: tuple[str, ...] | None = None
    compression_level: int = 4
    root_resources: str | None = None
    converter: str = DEFAULT_CONVERTER
    #: formats written per volume (radarlib.export.FORMATS); the volume is done when all are
    output_formats: tuple[str, ...] = ("cfradial",)
    #: decoder caps on declared decoded data, MiB per file and per volume
    max_decoded_mb_per_file: float = 256
    max_decoded_mb_per_volume: float = 1024


@dataclass(frozen=True)
class ConversionOutcome:
    """What a worker reports back: the written NetCDF or the error that stopped it."""

    volume_id: str
    ok: bool
    netcdf_path: str | None = None
    fields: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    error_type: str | None = None
    error: str | None = None
    error_traceback: str | None = None
    worker_pid: int = field(default_factory=os.getpid)

    @property
    def error_message(self) -> str:
        """``<ErrorType>: <text>`` as recorded in the state database."""
        return f"{self.error_type}: {self.error}"


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"converter {path!r} is not of the form 'module:function'")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"converter {path!r} is not callable")
    return target


def _convert_options(job: ConversionJob) -> Any:
    """Build ``radarlib.convert.ConvertOptions`` in the worker (keeps Py-ART out of the daemon)."""
    from radarlib.convert import ConvertOptions

    root = None if job.root_resources is None else Path(job.root_resources)
    return ConvertOptions(
        compression_level=job.compression_level,
        root_resources=root,
        formats=job.output_formats,
        max_decoded_bytes_per_file=int(job.max_decoded_mb_per_file * 2**20),
        max_decoded_bytes_per_volume=int(job.max_decoded_mb_per_volume * 2**20),
    )


def run_job(job: ConversionJob) -> ConversionOutcome:
    """Run one conversion in a worker; every exception becomes a failed outcome."""
    os.environ.setdefault("PYART_QUIET", "1")  # workers not started by _init_worker (Dask)
    started = time.perf_counter()
    try:
        for name in job.files:
            if not Path(name).is_file():
                raise FileNotFoundError(f"{name}: local BUFR file is missing")
        convert = _resolve(job.converter)
        # A substitute converter (tests) gets options=None; it must accept the same keywords.
        options = _convert_options(job) if job.converter == DEFAULT_CONVERTER else None
        result = convert(
            list(job.files), job.output_dir, options=options, expected_fields=job.expected_fields
        )
    except Exception as exc:  # report, never crash the worker: the daemon decides what to do
        return ConversionOutcome(
            volume_id=job.volume_id,
            ok=False,
            seconds=time.perf_counter() - started,
            error_type=type(exc).__name__,
            error=str(exc) or repr(exc),
            error_traceback=traceback.format_exc(),
        )
    return ConversionOutcome(
        volume_id=job.volume_id,
        ok=True,
        netcdf_path=str(result.path),
        fields=tuple(result.fields),
        missing_fields=tuple(result.missing_fields),
        warnings=tuple(getattr(result, "warnings", ())),
        seconds=time.perf_counter() - started,
    )


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (no orphaned conversions)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _init_worker(converter: str) -> None:
    """Worker start-up: quiet Py-ART, ignore Ctrl-C (the daemon decides), import the converter."""
    os.environ.setdefault("PYART_QUIET", "1")
    # No bare stderr output from workers: what a conversion has to say comes back in its
    # outcome (warnings, error, traceback) and the daemon logs it with the volume id.
    logging.getLogger("radarlib").addHandler(logging.NullHandler())
    logging.getLogger("radarlib").propagate = False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    with contextlib.suppress(Exception):  # a broken import is reported per job by run_job
        _resolve(converter)


def _ping() -> int:
    return os.getpid()


class ConversionExecutor(Protocol):
    """What the processing daemon needs from a pool of conversion workers.

    ``convert`` raises :class:`WorkerDiedError` when the worker running the job was lost (the
    daemon records a failed attempt) and :class:`ExecutorUnavailableError` when no worker could
    be reached (the daemon returns the volume to pending without counting an attempt).
    """

    #: workers lost so far (reported as ``worker_restarts``)
    restarts: int
    #: True when workers may run on other hosts (their process ids mean nothing here)
    remote: bool

    async def warm_up(self) -> None:
        """Get workers ready before the first job (best effort, errors are ignored)."""

    async def convert(self, job: ConversionJob) -> ConversionOutcome:
        """Run ``job`` on a worker and return its outcome."""
        ...

    async def close(self, *, abandon: bool) -> None:
        """Release the workers; ``abandon``: jobs still running must not finish (shutdown)."""


class ConversionPool:
    """``max_workers`` single-process ``spawn`` executors: a dying worker only costs its own job.

    One executor per slot (rather than one executor of ``max_workers`` processes) because a
    process pool breaks as a whole when one of its workers dies, failing every job in it:
    here only the job that killed its worker fails, and that slot gets a fresh process.
    """

    def __init__(self, max_workers: int, *, converter: str = DEFAULT_CONVERTER) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.converter = converter
        self.restarts = 0
        self.remote = False
        self._executors: list[ProcessPoolExecutor | None] = [None] * max_workers
        self._free: list[int] = list(range(max_workers))
        self._slots: asyncio.Semaphore | None = None

    def _executor(self, slot: int) -> ProcessPoolExecutor:
        executor = self._executors[slot]
        if executor is None:
            executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.converter,),
            )
            self._executors[slot] = executor
        return executor

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_workers)
        async with self._slots:
            slot = self._free.pop()
            try:
                executor = self._executor(slot)
                try:
                    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
                except BrokenProcessPool:
                    self._discard(slot, executor)
                    raise
            finally:
                self._free.append(slot)

    async def warm_up(self) -> None:
        """Start every worker now (imports take seconds) so the first volume is not delayed."""
        await asyncio.gather(
            *(self._run(_ping) for _ in range(self.max_workers)), return_exceptions=True
        )

    async def convert(self, job: ConversionJob) -> ConversionOutcome:
        """Run ``job`` in a worker; :class:`WorkerDiedError` if its worker process died."""
        try:
            outcome: ConversionOutcome = await self._run(run_job, job)
        except BrokenProcessPool as exc:
            first = Path(job.files[0]).name if job.files else "-"
            raise WorkerDiedError(
                f"{job.volume_id}: the worker process died while converting the volume "
                f"({len(job.files)} files, first {first})"
            ) from exc
        return outcome

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        pids = []
        for executor in self._executors:
            processes = getattr(executor, "_processes", None) or {}
            pids += [p.pid for p in processes.values() if p.pid is not None and p.is_alive()]
        return pids

    def _discard(self, slot: int, executor: ProcessPoolExecutor) -> None:
        if self._executors[slot] is executor:
            self._executors[slot] = None
            self.restarts += 1
            log.warning("conversion worker %d died; it will be replaced", slot)
        executor.shutdown(wait=False, cancel_futures=True)

    def kill(self) -> None:
        """Terminate the workers now (conversions in flight are abandoned) and drop them."""
        executors = [e for e in self._executors if e is not None]
        self._executors = [None] * self.max_workers
        # ProcessPoolExecutor has no public terminate before Python 3.14: kill its processes.
        processes = [p for e in executors for p in (getattr(e, "_processes", None) or {}).values()]
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(timeout=5)

    def shutdown(self) -> None:
        """Stop the workers after their current jobs (blocking; call from a thread)."""
        executors = [e for e in self._executors if e is not None]
        self._executors = [None] * self.max_workers
        for executor in executors:
            executor.shutdown(wait=True, cancel_futures=True)

    async def close(self, *, abandon: bool) -> None:
        """:meth:`kill` the workers (``abandon``) or :meth:`shutdown` them in a thread."""
        if abandon:
            self.kill()
        else:
            await asyncio.to_thread(self.shutdown)
