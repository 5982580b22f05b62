"""The process pool that runs volume conversions away from the event loop, surviving dead workers.

Decoding, Py-ART and NetCDF writing are CPU-bound and may crash; they run in worker
processes started as ``python -m radarlib.pipeline.worker`` (fresh interpreters that talk over
pipes and never import the caller's ``__main__``; see :mod:`radarlib.pipeline.worker`).

>>> pool = ConversionPool(max_workers=2)                                # doctest: +SKIP
>>> outcome = await pool.convert(ConversionJob("RMA1_0315_02_…", files, out_dir))  # doctest: +SKIP

A worker that dies (segfault, ``os._exit``, OOM kill) only costs the job it was running,
which reports :class:`WorkerDiedError`; the next job of that slot gets a fresh process. Every
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
import errno
import importlib
import logging
import os
import pickle
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from radarlib.pipeline.worker import PARENT_ENV

__all__ = [
    "DEFAULT_CONVERTER",
    "ConversionExecutor",
    "ConversionJob",
    "ConversionOutcome",
    "ConversionPool",
    "ExecutorUnavailableError",
    "WorkerDiedError",
    "run_call",
    "run_job",
]

log = logging.getLogger(__name__)

#: Import path (``module:function``) of the converter every job runs by default.
DEFAULT_CONVERTER = "radarlib.convert:convert_volume"


class WorkerDiedError(RuntimeError):
    """A worker process died while running a job (its slot gets a fresh process).

    ``signal_number`` is the signal that ended it, when known: a kill from outside
    (:data:`EXTERNAL_KILLS`: the OOM killer, an operator, a stop) is not the volume's fault,
    a crash (SIGSEGV, SIGABRT, an exit status) may be.
    """

    def __init__(self, message: str, *, signal_number: int | None = None) -> None:
        super().__init__(message)
        self.signal_number = signal_number

    @property
    def killed_from_outside(self) -> bool:
        """True when a signal sent by someone else ended the worker (transient for the volume)."""
        return self.signal_number in EXTERNAL_KILLS


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
    #: a field file that cannot be decoded: "fail" the volume or "drop" the field
    on_bad_field: str = "fail"
    #: formats written per volume (radarlib.export.FORMATS); the volume is done when all are
    output_formats: tuple[str, ...] = ("cfradial",)
    #: decoder caps on declared decoded data, MiB per file and per volume
    max_decoded_mb_per_file: float = 256
    max_decoded_mb_per_volume: float = 1024
    #: quality control (``radarlib.qc.QCConfig`` fields), None = none
    qc: dict[str, Any] | None = None


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
    #: ``(field, file name, error)`` of field files left out of the written volume
    bad_fields: tuple[tuple[str, str, str], ...] = ()
    #: the failure came from the surroundings (e.g. a full disk), not from the volume's data
    transient: bool = False

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
    qc = None
    if job.qc is not None:
        from radarlib.qc import qc_config_from_mapping

        qc = qc_config_from_mapping(job.qc)
    return ConvertOptions(
        compression_level=job.compression_level,
        root_resources=root,
        on_bad_field=job.on_bad_field,  # type: ignore[arg-type]  # checked by the daemon config
        formats=job.output_formats,
        max_decoded_bytes_per_file=int(job.max_decoded_mb_per_file * 2**20),
        max_decoded_bytes_per_volume=int(job.max_decoded_mb_per_volume * 2**20),
        qc=qc,
    )


#: errno values that say the output's file system, not the volume, is at fault
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_HDF_ERROR = "HDF error"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes / contexts (no cycles)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _free_bytes(folder: str) -> int | None:
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def environment_fault(job: ConversionJob, exc: BaseException) -> str | None:
    """The true cause when a conversion failed because of its surroundings, else ``None``.

    A full disk shows up as ``ENOSPC`` but also, from netCDF4/HDF5, as ``[Errno 13]
    Permission denied`` (no room to create the file) or ``RuntimeError: NetCDF: HDF error``
    (no room for a chunk): when the output folder has less free space than the volume needs
    (twice its BUFR files plus 1 MiB) such an error is reported as ``No space left on device``
    with the free space and the writer's own words.
    """
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS:
            return (
                f"[Errno {error.errno}] {os.strerror(error.errno)}: cannot write the NetCDF of "
                f"{job.volume_id} in {job.output_dir} ({_free_text(job.output_dir)})"
            )
    suspicious = any(isinstance(error, OSError) or _HDF_ERROR in str(error) for error in chain)
    free = _free_bytes(job.output_dir)
    if not suspicious or free is None:
        return None
    need = 2 * sum(Path(f).stat().st_size for f in job.files if Path(f).is_file()) + 2**20
    if free >= need:
        return None
    return (
        f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}: cannot write the NetCDF of "
        f"{job.volume_id} in {job.output_dir} ({free} bytes free, about {need} needed; the "
        f"writer reported {type(exc).__name__}: {exc})"
    )


def _free_text(folder: str) -> str:
    free = _free_bytes(folder)
    return "free space unknown" if free is None else f"{free} bytes free"


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
        cause = environment_fault(job, exc)
        return ConversionOutcome(
            volume_id=job.volume_id,
            ok=False,
            seconds=time.perf_counter() - started,
            error_type="OSError" if cause else type(exc).__name__,
            error=cause or str(exc) or repr(exc),
            error_traceback=traceback.format_exc(),
            transient=cause is not None,
        )
    return ConversionOutcome(
        volume_id=job.volume_id,
        ok=True,
        netcdf_path=str(result.path),
        fields=tuple(result.fields),
        missing_fields=tuple(result.missing_fields),
        warnings=tuple(getattr(result, "warnings", ())),
        seconds=time.perf_counter() - started,
        bad_fields=tuple(getattr(result, "bad_fields", ())),
    )


def run_call(target: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """Run ``target(*args)`` in a worker: ``("returned", value)`` or ``("raised", exception)``.

    An exception that would not survive the trip back (unpicklable) is replaced by a
    :class:`RuntimeError` carrying its type, text and traceback.
    """
    try:
        return ("returned", _resolve(target)(*args))
    except Exception as exc:  # report, never crash the worker
        try:
            pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:
            text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            return ("raised", RuntimeError(f"{target} failed in a worker: {text}"))
        return ("raised", exc)


def preload_converter(converter: str) -> None:
    """Import the converter at worker start-up (a broken import is reported per job)."""
    os.environ.setdefault("PYART_QUIET", "1")
    with contextlib.suppress(Exception):
        _resolve(converter)


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


class _Worker:
    """One worker process of the pool and the pipes to it (one request at a time)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def call(self, message: Any) -> Any:
        """Send one request and wait for its reply; :class:`EOFError` if the worker died."""
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:  # pragma: no cover - always piped
            raise EOFError("worker without pipes")
        try:
            body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.write(len(body).to_bytes(8, "big") + body)
            await stdin.drain()
            size = int.from_bytes(await stdout.readexactly(8), "big")
            reply = pickle.loads(await stdout.readexactly(size))  # our own worker
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            raise EOFError(f"worker {self.pid} closed its pipes") from exc
        return reply

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def end(self, *, timeout: float = 10.0) -> None:
        """Close stdin (the worker exits at end of file) and reap it; kill if it lingers."""
        if self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self.process.wait()
        # release the pipes now, on this loop (not when garbage-collected after it closed)
        transport = getattr(self.process, "_transport", None)
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()


class _WorkerGone(EOFError):
    """A worker ended while we waited for its reply: how it ended, and by which signal."""

    def __init__(self, cause: str, signal_number: int | None) -> None:
        super().__init__(cause)
        self.signal_number = signal_number


def death_cause(returncode: int | None) -> str:
    """How a worker ended, in words: ``killed by SIGKILL`` or ``exited with status 3``."""
    if returncode is None:
        return "closed its pipes"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


#: signals that kill a worker from outside (OOM killer, an operator, a stop): not the volume's fault
EXTERNAL_KILLS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def _site_dirs() -> set[str]:
    import site

    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return {str(Path(d).resolve()) for d in dirs}


def _worker_env() -> dict[str, str]:
    """The worker's environment: radarlib importable, Py-ART quiet, our pid to watch."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    # A source checkout or a path set by the caller: the worker must import this same radarlib.
    # An installed one is found anyway (and a site-packages folder must not go before stdlib).
    if package_root not in _site_dirs():
        paths = [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYART_QUIET"] = "1"
    env[PARENT_ENV] = str(os.getpid())
    return env


class ConversionPool:
    """``max_workers`` worker processes (``python -m radarlib.pipeline.worker``), one job each.

    Each slot owns one process, so a dying worker only costs its own job: that job raises
    :class:`WorkerDiedError` and the slot gets a fresh process for the next one. Workers are
    fresh interpreters that never import the caller's ``__main__`` (see
    :mod:`radarlib.pipeline.worker`), and they exit when this process dies.
    """

    def __init__(self, max_workers: int, *, converter: str = DEFAULT_CONVERTER) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.converter = converter
        self.restarts = 0
        self.remote = False
        self._workers: list[_Worker | None] = [None] * max_workers
        self._free: list[int] = list(range(max_workers))
        self._slots: asyncio.Semaphore | None = None
        self._dying: list[_Worker] = []

    async def _start(self) -> _Worker:
        """Start one worker and wait for it to be ready; ExecutorUnavailableError if it cannot."""
        args = [sys.executable]
        if sys.version_info >= (3, 11):
            args.append("-P")  # never put the current folder on the worker's sys.path
        args += ["-m", "radarlib.pipeline.worker"]
        try:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=_worker_env(),
                close_fds=True,
            )
        except OSError as exc:
            raise ExecutorUnavailableError(f"cannot start a conversion worker: {exc}") from exc
        worker = _Worker(process)
        init = {"sys_path": [p for p in sys.path if p], "converter": self.converter}
        try:
            await worker.call(init)
        except asyncio.CancelledError:  # stopped while the worker was starting: not kept
            worker.kill()
            self._dying.append(worker)  # reaped by close()
            raise
        except EOFError:
            await worker.end(timeout=1)
            raise ExecutorUnavailableError(
                f"a conversion worker ({' '.join(args)}) {death_cause(process.returncode)} "
                f"while starting; see its messages on stderr"
            ) from None
        return worker

    async def _run(self, message: Any) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_workers)
        async with self._slots:
            slot = self._free.pop()
            worker: _Worker | None = None
            try:
                worker = self._workers[slot]
                if worker is None or not worker.alive:
                    worker = self._workers[slot] = await self._start()
                return await worker.call(message)
            except EOFError:
                if worker is None:
                    raise
                code = await worker.process.wait()
                await worker.end(timeout=1)
                self._discard(slot, worker)
                raise _WorkerGone(death_cause(code), -code if code < 0 else None) from None
            except asyncio.CancelledError:
                # abandoned (shutdown): its reply would come later, so this worker is done
                if worker is not None:
                    worker.kill()
                    self._dying.append(worker)  # reaped by close()
                    if self._workers[slot] is worker:
                        self._workers[slot] = None
                raise
            finally:
                self._free.append(slot)

    async def warm_up(self) -> None:
        """Start every worker now (imports take seconds) so the first volume is not delayed."""
        await asyncio.gather(
            *(self._run(("ping",)) for _ in range(self.max_workers)), return_exceptions=True
        )

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the module-level function ``fn(*args)`` in a worker and return its result.

        The worker imports ``fn`` by name (``module:qualified name``); ``args`` and the result
        cross the pipes pickled. An exception raised by ``fn`` is raised here (as a
        :class:`RuntimeError` naming its type when it cannot be pickled);
        :class:`WorkerDiedError` if the worker process died while running it,
        :class:`ExecutorUnavailableError` if no worker could be started.
        """
        target = f"{fn.__module__}:{fn.__qualname__}"
        try:
            kind, value = await self._run(("call", target, args))
        except EOFError as exc:
            raise WorkerDiedError(
                f"the worker process died while running {target}: {exc}",
                signal_number=getattr(exc, "signal_number", None),
            ) from None
        if kind == "raised":
            raise value
        if kind != "returned":
            raise RuntimeError(f"worker answered {kind!r}: {value}")
        return value

    async def convert(self, job: ConversionJob) -> ConversionOutcome:
        """Run ``job`` in a worker; :class:`WorkerDiedError` if its worker process died."""
        try:
            kind, outcome = await self._run(("job", job))
        except EOFError as exc:
            first = Path(job.files[0]).name if job.files else "-"
            raise WorkerDiedError(
                f"{job.volume_id}: the worker process died while converting the volume "
                f"({len(job.files)} files, first {first}): {exc}",
                signal_number=getattr(exc, "signal_number", None),
            ) from None
        if kind != "outcome":
            raise RuntimeError(f"worker answered {kind!r}: {outcome}")
        return outcome

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.pid for w in self._workers if w is not None and w.alive]

    def _discard(self, slot: int, worker: _Worker) -> None:
        if self._workers[slot] is worker:
            self._workers[slot] = None
            self.restarts += 1
            log.warning(
                "conversion worker %d (pid %d) %s; it will be replaced",
                slot,
                worker.pid,
                death_cause(worker.process.returncode),
            )

    def kill(self) -> None:
        """Kill the workers now (conversions in flight are abandoned) and drop them."""
        workers = [w for w in self._workers if w is not None]
        self._workers = [None] * self.max_workers
        for worker in workers:
            worker.kill()

    async def close(self, *, abandon: bool) -> None:
        """Kill the workers (``abandon``) or let them exit after their current job; reap them."""
        workers = [w for w in self._workers if w is not None] + self._dying
        if abandon:
            self.kill()
        self._workers = [None] * self.max_workers
        self._dying = []
        await asyncio.gather(*(w.end() for w in workers), return_exceptions=True)
