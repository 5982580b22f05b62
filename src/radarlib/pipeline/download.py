"""The date-based FTP download daemon: every radar file, whole and verified, recorded once.

>>> config = DateBasedDaemonConfig(host="ftp.example.com", username="user", password="pass",
...     remote_base_path="/L2", radar_code="RMA1", local_download_dir=Path("./downloads"),
...     state_db=Path("./state.db"), start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
...     end_date=datetime(2025, 1, 2, tzinfo=timezone.utc))          # doctest: +SKIP
>>> await DateBasedFTPDaemon(config).run()                          # doctest: +SKIP

The state database is the daemon's only memory. A scanner lists the dated folders and records
every wanted file it sees (:mod:`~radarlib.pipeline.listing`); a feeder hands the files due to
``max_concurrent_downloads`` workers, one FTP connection each, which record a file only when
it is one whole BUFR message (:mod:`~radarlib.pipeline.fetch`). A file's own failure is retried
with backoff; network faults, refused sessions, a full disk or database are retried for as long
as the daemon runs and cost no attempt. See docs/downloads.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import ssl
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from radarlib.archive import base_folder, dated_folder, is_dated
from radarlib.checks import check_aware, check_bool, check_integer, check_number
from radarlib.errors import (
    ConfigError,
    FileNameError,
    FTPAuthError,
    RemoteFileError,
    SessionLimitError,
    StateError,
    TransportError,
)
from radarlib.filename import BufrFileName
from radarlib.io.ftp.client import FTPClient
from radarlib.pipeline.fetch import Fetched, Interrupted, Received, receive_file
from radarlib.pipeline.lifecycle import Stoppable
from radarlib.pipeline.listing import RemoteLister, daemon_key, request_rescan
from radarlib.pipeline.ownership import exclusive
from radarlib.state.events import announce_ready
from radarlib.state.remote_files import RemoteFile
from radarlib.state.sqlite import DownloadedFile
from radarlib.volume_types import DEFAULT_VOLUME_TYPES, expected_fields, validate_volume_types

if TYPE_CHECKING:
    from radarlib.state.sqlite import SQLiteStateTracker

__all__ = [
    "DEFAULT_MAX_FILE_SIZE",
    "PASSWORD_ENV",
    "DateBasedDaemonConfig",
    "DateBasedFTPDaemon",
    "request_rescan",
]

logger = logging.getLogger(__name__)

#: environment variable read when ``password`` is None
PASSWORD_ENV = "RADARLIB_FTP_PASSWORD"
#: default ``max_file_size``: 16 times the largest real volume file (~2 MB)
DEFAULT_MAX_FILE_SIZE = 32 * 1024 * 1024

_RECONNECT_CAP = 30.0  # longest pause between two connection attempts
_IDLE_RECONNECT = 30.0  # a connection idle longer than this is replaced before use
_QUEUE = 256  # files handed to the workers at once; the rest wait in the database
_SESSION_PROBE = 600.0  # after the server refused sessions, try one more this often
_SOME_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _checked(default: Any, check: Callable[..., object], **bounds: Any) -> Any:
    """A config field that ``check(name, value, **bounds)`` (:mod:`radarlib.checks`) validates."""
    return field(default=default, metadata={"check": partial(check, **bounds)})


@dataclass
class DateBasedDaemonConfig:
    """Settings of one download daemon: the original design's fields plus timeouts and retries.

    ``password=None`` reads :data:`PASSWORD_ENV` when connecting (never stored, logged or shown
    in ``repr``). ``end_date=None`` runs continuously; the end date is inclusive.
    ``local_layout="date"`` stores files under ``<dir>/<RADAR>/<YYYY>/<MM>/<DD>/``. ``use_tls``
    is explicit FTPS, always verified, against the system trust store or the PEM bundle
    ``tls_ca_file`` (deliberately no switch to turn that off: unverified TLS only looks secure).
    ``max_file_size`` refuses larger files (real ones are under 2 MB). Every hour of the last
    ``rescan_days`` days is listed again once per ``rescan_interval`` seconds (0 days: off).
    """

    host: str
    _: KW_ONLY
    port: int = _checked(21, check_integer, low=1, high=65535)
    username: str = "anonymous"
    password: str | None = field(default=None, repr=False)
    remote_base_path: str = "/L2"
    radar_code: str = "RMA1"
    local_download_dir: Path
    state_db: Path
    start_date: datetime | None = field(default=None, metadata={"check": check_aware})
    end_date: datetime | None = field(default=None, metadata={"check": check_aware})
    volume_types: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: validate_volume_types(DEFAULT_VOLUME_TYPES)
    )
    poll_interval: float = _checked(60.0, check_number)
    max_concurrent_downloads: int = _checked(5, check_integer, low=1, high=64)
    verify_checksums: bool = _checked(True, check_bool)
    resume_partial: bool = _checked(True, check_bool)
    connect_timeout: float = _checked(10.0, check_number)
    command_timeout: float = _checked(30.0, check_number)
    data_timeout: float = _checked(60.0, check_number)
    max_attempts: int = _checked(5, check_integer, low=1)
    retry_backoff: float = _checked(2.0, check_number, strict=False)
    failed_retry_interval: float = _checked(900.0, check_number)
    lookback_hours: float = _checked(2.0, check_number, strict=False)
    use_tls: bool = _checked(False, check_bool)
    local_layout: Literal["flat", "date"] = "flat"
    tls_ca_file: Path | None = None
    max_file_size: int = _checked(DEFAULT_MAX_FILE_SIZE, check_integer, low=1024)
    rescan_days: float = _checked(7.0, check_number, strict=False)
    rescan_interval: float = _checked(3600.0, check_number)

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError("host", "must be a non-empty host name or address")
        if not isinstance(self.username, str) or not self.username:
            raise ConfigError("username", "must be a non-empty string")
        if self.password is not None and not isinstance(self.password, str):
            raise ConfigError("password", f"must be a string or None (then ${PASSWORD_ENV})")
        base = self.remote_base_path
        if not isinstance(base, str) or not base.startswith("/") or ".." in base.split("/"):
            raise ConfigError("remote_base_path", f"must be an absolute server path, got {base!r}")
        if any(c in base for c in "\r\n\x00"):
            raise ConfigError("remote_base_path", "must not contain control characters")
        self.remote_base_path = base.rstrip("/") or "/"
        try:  # a radar code is what makes a valid file name
            BufrFileName(str(self.radar_code), "0315", "01", "DBZH", _SOME_TIME)
        except (FileNameError, TypeError):
            problem = f"{self.radar_code!r} is not a radar code like 'RMA1'"
            raise ConfigError("radar_code", problem) from None
        for key in ("local_download_dir", "state_db", "tls_ca_file"):
            value, optional = getattr(self, key), key == "tls_ca_file"
            if value is None and optional:
                continue
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise ConfigError(
                    key, f"must be {'a path or None' if optional else 'a path'}, got {value!r}"
                )
            setattr(self, key, Path(value))
        for f in dataclasses.fields(self):  # the checks written with each field
            if "check" in f.metadata:
                f.metadata["check"](f.name, getattr(self, f.name))
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ConfigError("end_date", "is before start_date")
        self.volume_types = validate_volume_types(self.volume_types)
        if self.local_layout not in ("flat", "date"):
            raise ConfigError(
                "local_layout", f"must be 'flat' or 'date', got {self.local_layout!r}"
            )
        where = str(self.local_download_dir)
        try:
            dated = is_dated(self.local_download_dir)
        except ValueError as exc:
            raise ConfigError("local_download_dir", f"bad template {where!r}: {exc}") from None
        if dated and self.local_layout == "date":
            raise ConfigError(
                "local_layout",
                f"'date' and the dated local_download_dir {where!r} both split the folder by time:"
                " keep one",
            )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The verifying TLS context for ``use_tls`` (None without TLS); ConfigError if unusable."""
        if not self.use_tls:
            return None
        cafile = self.tls_ca_file
        try:
            return ssl.create_default_context(cafile=str(cafile) if cafile else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("tls_ca_file", f"cannot load {cafile}: {exc}") from None

    @property
    def lookback(self) -> timedelta:
        """The look-back window as a timedelta."""
        return timedelta(hours=self.lookback_hours)

    def resolved_password(self) -> str:
        """The password to send: the field, else ``$RADARLIB_FTP_PASSWORD``, else anonymous."""
        if self.password is not None:
            return self.password
        env = os.environ.get(PASSWORD_ENV)
        if env is not None:
            return env
        return "anonymous@" if self.username == "anonymous" else ""


@dataclass
class _Stats:
    """The daemon's counters over all its runs (:meth:`DateBasedFTPDaemon.get_stats`)."""

    files_downloaded: int = 0
    bytes_downloaded: int = 0
    failures: int = 0
    retries: int = 0
    reconnects: int = 0
    resumed_transfers: int = 0
    short_files: int = 0
    rejected_files: int = 0


class _UnsafePath(Exception):
    """A file's local folder resolves outside the download folder (a symlink): not taken."""


@dataclass(frozen=True)
class _Job:
    """A file handed to a worker: what the database knows of it, and its name parsed once."""

    remote: RemoteFile
    name: BufrFileName


def _backoff(base: float, attempt: int, cap: float) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)`` capped, times 0.5-1.5."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.5)  # jitter, not security


class DateBasedFTPDaemon(Stoppable):
    """Downloads a radar's BUFR files from the dated FTP tree into a folder and the state DB.

    ``tracker`` shares an already open :class:`SQLiteStateTracker` (then not closed here);
    otherwise :meth:`run` opens ``config.state_db``. ``clock`` returns the current UTC time:
    the one clock of the daemon (a seam for tests).
    """

    def __init__(
        self,
        config: DateBasedDaemonConfig,
        *,
        tracker: SQLiteStateTracker | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.config = c = config
        self._tracker, self._owns_tracker = tracker, tracker is None
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._key = daemon_key(c)
        self._stats = _Stats()
        self._started_at: datetime | None = None
        self._skipped_lines = 0  # listing lines the server sent that did not parse
        self._running = False
        self._ssl_context: ssl.SSLContext | None = None
        self._lister: RemoteLister | None = None  # made when a run has its database
        # the download root (a dated template's base folder) and, under it, the dated rest
        self._root = base_folder(c.local_download_dir)
        self._dated: Path | None = None
        self._new_run(None, None, relist=False)

    def _new_run(self, start: datetime | None, end: datetime | None, *, relist: bool) -> None:
        """The per-run, in-process state: what is queued or in flight, and the session budget."""
        most = self.config.max_concurrent_downloads
        self._start, self._end, self._relist = start, end, relist  # this run's period
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(_QUEUE)
        self._inflight: set[str] = set()
        self._tried: set[str] = set()  # files handed to a worker in this run
        self._wake = asyncio.Event()  # the feeder looks at the database again
        self._sessions, self._limit = 0, most  # worker connections open; the server's limit
        self._budget = asyncio.Condition()
        self._limited_at: float | None = None
        self._logged_in = False
        self._reconnected = asyncio.Event()
        # received files being made durable and recorded while their connection goes on
        self._finishing: set[asyncio.Task[None]] = set()
        self._finish_slots = asyncio.Semaphore(2 * most)
        self._disk = ThreadPoolExecutor(2 * most, "ftp-finish")

    # -- public API ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        c = self.config
        where = f"{c.username}@{c.host}:{c.port}{c.remote_base_path}"
        return f"DateBasedFTPDaemon({c.radar_code} from {where}, running={self._running})"

    def get_stats(self) -> dict[str, Any]:
        """Counters and position: files, bytes, failures, retries, last poll, resume point."""
        c, lister = self.config, self._lister
        resume = lister.resume if lister else None
        return {
            "running": self._running,
            **dataclasses.asdict(self._stats),
            "ignored_names": lister.warnings.count if lister else 0,
            "skipped_listing_lines": self._skipped_lines,
            "polls": lister.polls if lister else 0,
            "rescanned_hours": lister.rescanned_hours if lister else 0,
            "last_poll_time": lister.last_poll_time if lister else None,
            "resume_point": resume,
            "current_scan_date": resume.isoformat() if resume else None,
            "in_flight": len(self._inflight),
            "connections_allowed": self._limit,
            "started_at": self._started_at,
            "config": {
                "host": c.host,
                "port": c.port,
                "radar_code": c.radar_code,
                "remote_base_path": c.remote_base_path,
                "start_date": c.start_date.isoformat() if c.start_date else None,
                "end_date": c.end_date.isoformat() if c.end_date else None,
                "local_dir": str(c.local_download_dir),
            },
        }

    async def run(self) -> None:
        """Scan and download until the end date is settled, :meth:`stop`, or cancellation.

        Raises :class:`FTPAuthError`, :class:`RemotePathError` or :class:`OwnershipError`
        (nothing to retry: the configuration or another process is in the way).
        """
        await self._run(self.config.start_date, self.config.end_date, relist=False)

    async def rescan(self, since: datetime, until: datetime) -> dict[str, Any]:
        """List ``[since, until]`` again, fetch whatever is missing, return the stats.

        For ``radarlib rescan`` when no daemon runs for this radar (a running one takes
        requests through :func:`request_rescan` instead). Ignores and keeps the scan position.
        """
        check_aware("since", since)
        check_aware("until", until)
        if until < since:
            raise ConfigError("until", "is before since")
        await self._run(since, until, relist=True)
        return self.get_stats()

    # -- one run --------------------------------------------------------------------------------
    async def _run(self, start: datetime | None, end: datetime | None, *, relist: bool) -> None:
        if self._running:
            raise RuntimeError("this daemon is already running")
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        if self._stop_requested:
            self._stop_requested = False
            return
        self._new_run(start, end, relist=relist)
        self._running, self._started_at = True, self._clock()
        main: asyncio.Task[None] | None = None
        try:
            async with self._owned():
                main = asyncio.create_task(self._main(), name=self._key)
                stopper = asyncio.create_task(self._stop_event.wait())
                try:
                    await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
                finally:  # stopped, finished, or cancelled: main ends before the tracker closes
                    stopper.cancel()
                    main.cancel()
                    await asyncio.wait({main})
        finally:
            self._running = self._stop_requested = False
        if main.cancelled() or self._stop_event.is_set():
            logger.info("download daemon for %s stopped", self.config.radar_code)
        elif (error := main.exception()) is not None:
            logger.error("download daemon for %s: %s", self.config.radar_code, error)
            raise error

    @contextlib.asynccontextmanager
    async def _owned(self) -> AsyncIterator[None]:
        """This radar's download folder and database locked, the tracker open, for the run."""
        c = self.config
        self._ssl_context = c.ssl_context()
        self._root = await asyncio.to_thread(self._prepare_root)
        folder_lock = self._root / f".radarlib-download-{c.radar_code}.lock"
        db_lock = Path(f"{c.state_db}.download-{c.radar_code}.lock")
        with (
            exclusive(folder_lock, f"the download folder of {c.radar_code} ({self._root})"),
            exclusive(db_lock, f"the state database of {c.radar_code} ({db_lock.parent})"),
        ):
            if self._tracker is None:
                from radarlib.state.sqlite import SQLiteStateTracker

                self._tracker = await asyncio.to_thread(SQLiteStateTracker, c.state_db)
            try:
                yield
            finally:
                if self._owns_tracker and self._tracker is not None:
                    tracker, self._tracker = self._tracker, None
                    await asyncio.to_thread(tracker.close)

    def _prepare_root(self) -> Path:
        """Create the download root (a dated template's base folder) and return it resolved."""
        template = self.config.local_download_dir
        base = base_folder(template)
        base.mkdir(parents=True, exist_ok=True)
        if is_dated(template):  # the placeholder parts, kept as written (braces escaped)
            self._dated = Path(*template.parts[len(base.parts) :])
        return base.resolve()

    def _db(self) -> SQLiteStateTracker:
        if self._tracker is None:
            raise RuntimeError("state tracker is not open")
        return self._tracker

    async def _main(self) -> None:
        c, start, end = self.config, self._start, self._end
        client = await self._connect("scanner")
        tasks: list[asyncio.Task[None]] = []
        try:
            await client.check_dir(c.remote_base_path)
            radar_dir = f"{c.remote_base_path}/{c.radar_code}"
            if await client.list_dir(radar_dir) is None:
                message = "%s has no folder %s on %s: is the radar code right? (waiting for it)"
                logger.warning(message, c.radar_code, radar_dir, c.host)
            self._lister = lister = RemoteLister(
                c, self._db(), self._key, self._offer, self._clock, start, end, self._relist
            )
            await lister.load_resume_point()
            message = "downloading %s from %s into %s (%s to %s, from hour %s)"
            since, until = start or "the resume point", end or "continuous"
            where = f"{c.host}:{c.port}{c.remote_base_path}"
            logger.info(message, c.radar_code, where, self._root, since, until, lister.resume)
            tasks = [
                asyncio.create_task(self._worker(i), name=f"{self._key}/worker-{i}")
                for i in range(c.max_concurrent_downloads)
            ]
            tasks.append(asyncio.create_task(self._feeder(), name=f"{self._key}/feed"))
            tasks.append(asyncio.create_task(self._scan_loop(lister, client)))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a scanner that returned: the end date is settled
        finally:
            # every task ends before the tracker closes; 3.11's wait_for (inside aioftp) can
            # swallow a cancel that races with a reply, so the cancel is repeated until it does
            while pending := [task for task in tasks if not task.done()]:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=0.5)
            if self._finishing:  # received files are finished and recorded, not dropped
                await asyncio.wait(self._finishing)
            self._disk.shutdown(wait=False)
            client.abort()

    # -- connections ----------------------------------------------------------------------------
    async def _connect(self, role: str) -> FTPClient:
        """Connect and log in, retrying with backoff (cut short when another connection is back).

        Credentials refused before any login succeeded: :class:`FTPAuthError`. A session
        refused at the server's limit: :class:`SessionLimitError` for a worker.
        """
        c, attempt = self.config, 0
        while True:
            client = FTPClient(
                c.host,
                c.port,
                username=c.username,
                password=c.resolved_password(),
                connect_timeout=c.connect_timeout,
                command_timeout=c.command_timeout,
                data_timeout=c.data_timeout,
                use_tls=c.use_tls,
                ssl_context=self._ssl_context,
            )
            try:
                await client.connect()
            except FTPAuthError as exc:
                if not self._logged_in:
                    raise
                problem: TransportError = SessionLimitError(str(exc))  # worked before: a limit
            except TransportError as exc:
                problem = exc
            else:
                self._logged_in = True
                if attempt:
                    logger.info("%s: connected to %s again", role, c.host)
                    self._reconnected.set()  # wake the others: the server is back
                    self._reconnected = asyncio.Event()
                return client
            if isinstance(problem, SessionLimitError) and role != "scanner":
                raise problem
            attempt += 1
            self._stats.reconnects += 1
            cap = min(_RECONNECT_CAP, max(2 * c.poll_interval, 1.0))
            delay = _backoff(max(c.retry_backoff, 0.1), attempt, cap)
            level = logging.WARNING if attempt in (1, 5) or attempt % 20 == 0 else logging.DEBUG
            message = "%s: %s; retrying in %.1f s (attempt %d)"
            logger.log(level, message, role, problem, delay, attempt)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._reconnected.wait(), delay)

    @contextlib.asynccontextmanager
    async def _session_slot(self) -> AsyncIterator[None]:
        """Hold one of the worker connections the server currently allows; after the server
        refused sessions, one more is allowed every ``_SESSION_PROBE`` seconds."""
        most, loop = self.config.max_concurrent_downloads, asyncio.get_running_loop()
        async with self._budget:
            while True:
                if self._limited_at is not None and loop.time() - self._limited_at > _SESSION_PROBE:
                    self._limit = min(self._limit + 1, most)
                    self._limited_at = None if self._limit == most else loop.time()
                if self._sessions < self._limit:
                    break
                with contextlib.suppress(asyncio.TimeoutError):  # the limit is probed upward
                    await asyncio.wait_for(self._budget.wait(), 5.0)
            self._sessions += 1
        try:
            yield
        finally:
            async with self._budget:
                self._sessions -= 1
                self._budget.notify_all()

    def _session_refused(self, exc: SessionLimitError) -> None:
        limit = max(1, self._sessions - 1)
        if limit < self._limit:
            message = "%s; downloading with %d connection(s) for now (tried %d)"
            logger.warning(message, exc, limit, self._limit)
            self._limit = limit
        self._limited_at = asyncio.get_running_loop().time()

    # -- workers --------------------------------------------------------------------------------
    async def _worker(self, index: int) -> None:
        """Take files from the queue and fetch them over one connection of this worker's own
        (given back when the server refuses sessions, until a slot is free again)."""
        role, loop = f"download worker {index}", asyncio.get_running_loop()
        while True:
            async with self._session_slot():
                client: FTPClient | None = None
                idle_since = 0.0
                try:
                    while True:
                        job = await self._queue.get()
                        handed_on = False
                        try:
                            if client is not None and loop.time() - idle_since > _IDLE_RECONNECT:
                                client.abort()
                            if client is None or not client.connected:
                                client = await self._connect(role)
                            handed_on = await self._fetch(client, job)
                        except SessionLimitError as exc:  # from _connect: too many sessions
                            self._session_refused(exc)
                            await self._failed(job.remote, exc, counted=False, delay=0.0)
                            break  # wait for a session slot again
                        finally:
                            idle_since = loop.time()
                            if not handed_on:
                                self._done_with(job.remote)
                finally:
                    if client is not None:
                        client.abort()

    def _done_with(self, remote: RemoteFile) -> None:
        self._inflight.discard(remote.name)
        self._queue.task_done()
        if self._queue.empty():
            self._wake.set()

    async def _fetch(self, client: FTPClient, job: _Job) -> bool:
        """Fetch one file; True when its bytes are in and a finisher took it over (the
        connection is free for the next file meanwhile). Only cancellation raises."""
        c, remote = self.config, job.remote
        try:
            final = await asyncio.to_thread(self._final_path, job.name)
            received = await receive_file(
                client, remote, final, max_size=c.max_file_size, resume=c.resume_partial
            )
            if isinstance(received, Fetched):  # rejected on its size
                await self._record(job, received, final)
                return False
            await self._finish_slots.acquire()
            task = asyncio.create_task(self._finish(job, received))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)
            return True
        except Interrupted as exc:  # the bytes so far are kept for a resume
            with contextlib.suppress(StateError):
                keep = self._db().record_remote_partial
                await asyncio.to_thread(keep, remote.name, exc.part_size, exc.part_sha256)
            await self._failed(remote, exc, counted=False, delay=0.0)
        except (RemoteFileError, _UnsafePath) as exc:  # this file's own problem: an attempt
            await self._failed(remote, exc, counted=True)
        except TransportError as exc:  # the connection: not the file's fault; others take it
            client.abort()
            await self._failed(remote, exc, counted=False, delay=0.0)
        except (OSError, StateError) as exc:  # our disk or database (full, read-only): later
            await self._failed(remote, exc, counted=False)
        return False

    async def _finish(self, job: _Job, received: Received) -> None:
        """Make a received file durable and whole (a worker thread), then record it."""
        try:
            loop = asyncio.get_running_loop()  # the disk's own threads: fsyncs queue there
            outcome = await asyncio.shield(loop.run_in_executor(self._disk, received.finish))
            await self._record(job, outcome, received.final)
        except (OSError, StateError) as exc:  # our disk or database: later, no attempt spent
            await self._failed(job.remote, exc, counted=False)
        finally:
            self._finish_slots.release()
            self._done_with(job.remote)

    def _final_path(self, name: BufrFileName) -> Path:
        """The file's final local path, its folder created; never outside the download folder
        (with a dated ``local_download_dir``: the template filled with the file's UTC time)."""
        folder, t = self._root, name.time
        if self._dated is not None:
            folder = folder / dated_folder(self._dated, t)
        elif self.config.local_layout == "date":
            folder = folder / name.radar / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}"
        for _ in range(2):  # checked before mkdir (nothing made outside) and after it
            resolved = folder.resolve()
            if not resolved.is_relative_to(self._root):
                raise _UnsafePath(f"{name}: local folder {resolved} is outside {self._root}")
            folder.mkdir(parents=True, exist_ok=True)
        return resolved / name.name

    async def _record(self, job: _Job, outcome: Fetched, final: Path) -> None:
        """Write a fetch's outcome to the state database (a whole file: its rows at once)."""
        c, db, remote, stats = self.config, self._db(), job.remote, self._stats
        key = remote.name
        if outcome.kind == "complete":
            fields = expected_fields(c.volume_types, job.name.strategy, job.name.volume_number)
            sha256 = outcome.sha256 if c.verify_checksums else None
            expected = list(fields) if fields else None
            record = DownloadedFile(
                key, remote.remote_path, str(final), outcome.size, sha256, expected
            )
            ready = await asyncio.to_thread(db.record_remote_downloaded, record)
            stats.files_downloaded += 1
            stats.bytes_downloaded += outcome.size
            stats.resumed_transfers += bool(outcome.resumed_from)
            logger.debug("downloaded %s (%d bytes)", key, outcome.size)
            if ready:
                logger.info("volume ready: %s", ", ".join(ready))
                announce_ready(c.state_db)
        elif outcome.kind == "short":
            stats.short_files += 1
            await asyncio.to_thread(db.record_remote_short, key, outcome.size, outcome.reason)
            logger.info("%s: %s; fetched again when its size changes", key, outcome.reason)
        else:
            stats.rejected_files += 1
            await asyncio.to_thread(db.record_remote_rejected, key, outcome.reason)
            logger.warning("%s: rejected: %s", key, outcome.reason)

    async def _failed(
        self, remote: RemoteFile, exc: BaseException, *, counted: bool, delay: float | None = None
    ) -> None:
        """Record a failed try; the file is due again after ``delay`` (default: its backoff).
        Only ``counted`` tries (the file's own fault) spend one of its ``max_attempts``."""
        c, key, most = self.config, remote.name, self.config.max_attempts
        attempts, pace = remote.attempts + counted, c.failed_retry_interval
        if delay is None:
            delay = _backoff(c.retry_backoff, attempts or 1, pace) if attempts < most else pace
        retry_at = self._clock() + timedelta(seconds=delay)
        message = f"{type(exc).__name__}: {exc}"
        try:
            record = self._db().record_remote_failure
            attempts = await asyncio.to_thread(
                record, key, message, retry_at=retry_at, counted=counted, report_after=most
            )
        except StateError as error:  # the database cannot take it now: the file stays due
            logger.warning("%s: could not record a failed try (%s)", key, error)
        if counted and attempts == most:
            self._stats.failures += 1
            text = "%s: %d attempts failed (%s); trying again every %.0f s"
            logger.warning(text, key, attempts, message, pace)
        elif counted and attempts < most:
            self._stats.retries += 1
            logger.info(
                "%s: attempt %d failed (%s); again in %.1f s", key, attempts, message, delay
            )
        else:
            self._stats.retries += not counted
            logger.debug("%s: not fetched (%s); again in %.1f s", key, message, delay)
        if delay == 0.0:
            self._wake.set()

    # -- handing files to the workers -----------------------------------------------------------
    def _offer(self, files: list[RemoteFile]) -> None:
        """Queue files not yet queued, while the queue has room (the rest stay due in the DB).
        A run with an end date tries a given-up file (``max_attempts`` reached) only once."""
        for remote in files:
            if remote.name in self._inflight or self._queue.full():
                continue
            given_up = remote.attempts >= self.config.max_attempts
            if self._end is not None and given_up and remote.name in self._tried:
                continue
            self._tried.add(remote.name)
            if (name := BufrFileName.try_parse(remote.name)) is not None:
                self._inflight.add(remote.name)
                self._queue.put_nowait(_Job(remote, name))

    async def _feeder(self) -> None:
        """Hand due files from the database to the workers: at start, after each poll, when the
        queue empties, and every second (retries whose time has come)."""
        while True:
            if (room := _QUEUE - self._queue.qsize()) > 0:
                try:
                    self._offer(await self._due(room, exclude=list(self._inflight)))
                except StateError as exc:
                    logger.warning("cannot read the files to fetch: %s", exc)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    async def _due(self, limit: int, exclude: list[str]) -> list[RemoteFile]:
        """The run's files due now, at most ``limit``, none of ``exclude``."""
        due, radar = self._db().due_remote_files, self.config.radar_code
        start, end = self._start, self._end
        return await asyncio.to_thread(
            due, radar, start=start, end=end, limit=limit, exclude=exclude
        )

    # -- listing --------------------------------------------------------------------------------
    async def _scan_loop(self, lister: RemoteLister, client: FTPClient) -> None:
        """Poll every ``poll_interval`` seconds (from one poll's start to the next); return
        once the end date's files are all settled."""
        c, loop = self.config, asyncio.get_running_loop()
        try:
            while True:
                began, now = loop.time(), self._clock()
                try:
                    if not client.connected:
                        client = await self._connect("scanner")
                    listed_all = await lister.poll(client, now)
                except (TransportError, StateError, OSError) as exc:
                    logger.warning(
                        "listing %s failed: %s; again at the next poll", c.radar_code, exc
                    )
                    client.abort()
                    listed_all = False
                finally:
                    self._skipped_lines += client.skipped_lines
                    client.skipped_lines = 0
                self._wake.set()
                if listed_all:  # all listed: wait for the queue to empty (or a poll), not a poll
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._queue.join(), c.poll_interval)
                    if await self._settled():
                        s, end = self._stats, self._end.isoformat() if self._end else "now"
                        logger.info(
                            "%s done through %s: %d files downloaded, %d given up for now, "
                            "%d short, %d rejected",
                            c.radar_code,
                            end,
                            s.files_downloaded,
                            s.failures,
                            s.short_files,
                            s.rejected_files,
                        )
                        return
                await asyncio.sleep(max(0.0, began + c.poll_interval - loop.time()))
        finally:  # the connection it may have opened again is closed with it
            client.abort()

    async def _settled(self) -> bool:
        """Nothing in the run's period still to fetch: no pending file, none failing fewer
        than ``max_attempts`` times, and the given-up ones tried once in this run."""
        if self._inflight:
            return False
        unsettled, c = self._db().unsettled_remote_files, self.config
        if await asyncio.to_thread(
            unsettled, c.radar_code, start=self._start, end=self._end, max_attempts=c.max_attempts
        ):
            return False
        due = await self._due(1000, exclude=[])
        return all(r.name in self._tried for r in due)  # given up: tried once in this run
