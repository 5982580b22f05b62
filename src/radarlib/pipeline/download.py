"""The date-based FTP download daemon: every radar file, verified, recorded once, always stoppable.

>>> config = DateBasedDaemonConfig(host="ftp.example.com", username="user", password="pass",
...     remote_base_path="/L2", radar_code="RMA1", local_download_dir=Path("./downloads"),
...     state_db=Path("./state.db"), start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
...     end_date=datetime(2025, 1, 2, tzinfo=timezone.utc))          # doctest: +SKIP
>>> await DateBasedFTPDaemon(config).run()                          # doctest: +SKIP

Each poll lists the hour folders ``<base>/<RADAR>/<YYYY>/<MM>/<DD>/<HH>/<MMSS>/`` from the
resume point (kept in the state database, see :mod:`radarlib.pipeline.scan`) to the present or
the end date, so late files in recent hours are found and history is not re-listed. Wanted
files (name pattern, radar, ``volume_types``) go to ``max_concurrent_downloads`` workers, one
FTP connection each. A file is received into ``.<name>.part`` next to its final name while
its sha256 is computed, its size is checked against the server's, then it is fsynced,
renamed and recorded (a burst of files in one transaction, in a worker thread);
volumes that became complete are announced to an in-process processing daemon.

A file in an hour that is still open (newer than the look-back window) is taken only when
two listings a poll apart agree on its size, and the server's SIZE after the transfer must
match too: a file still being uploaded is left for the next poll. Failures back off
exponentially with jitter; after ``max_attempts`` a file is recorded ``failed`` and retried
at the ``failed_retry_interval`` pace. Wrong credentials or a missing base path end
:meth:`DateBasedFTPDaemon.run` with :class:`FTPAuthError` / :class:`RemotePathError`.
:meth:`~DateBasedFTPDaemon.stop` (any thread, signal handlers) or cancelling the task ends
``run()`` within seconds, without temporary files or half-recorded rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from radarlib.checks import check_aware, check_bool, check_integer, check_number
from radarlib.durability import sync_files, sync_folder
from radarlib.errors import (
    ConfigError,
    FileNameError,
    FTPAuthError,
    RemotePathError,
    TransportError,
)
from radarlib.filename import BufrFileName, parse_iso
from radarlib.io.ftp.client import Fetched, FTPClient, Transfer
from radarlib.pipeline.scan import (
    HOUR,
    Coverage,
    advance_coverage,
    day_dir,
    floor_hour,
    hour_dir,
    hours_to_list,
    in_range,
    is_closed,
    resume_point,
)
from radarlib.state.events import announce_ready
from radarlib.state.sqlite import DownloadedFile
from radarlib.volume_types import DEFAULT_VOLUME_TYPES, expected_fields, validate_volume_types

if TYPE_CHECKING:
    from radarlib.state.sqlite import SQLiteStateTracker

__all__ = ["PASSWORD_ENV", "DateBasedDaemonConfig", "DateBasedFTPDaemon"]

logger = logging.getLogger(__name__)

#: environment variable read when ``password`` is None
PASSWORD_ENV = "RADARLIB_FTP_PASSWORD"

_IDLE_RECONNECT_SECONDS = 30.0  # a connection idle longer than this is replaced before use
_MAX_WARNED_NAMES = 10_000
# received files gather this long (less when the burst is full or no other file is in
# flight), then are finished together: fewer journal commits, which stall transfers' writes
_FINISH_GATHER_SECONDS = 0.1


@dataclass
class DateBasedDaemonConfig:
    """Settings of one download daemon: the original design's fields plus timeouts and retries.

    ``password=None`` reads :data:`PASSWORD_ENV` when connecting (never stored, logged or
    shown in ``repr``). ``end_date=None`` runs continuously; the end date is inclusive.
    ``local_layout="date"`` stores files under ``<dir>/<RADAR>/<YYYY>/<MM>/<DD>/``.

    ``use_tls=True`` is explicit FTPS (AUTH TLS, then PBSZ 0 / PROT P: control and data
    channels encrypted). The server certificate and host name are always verified, against
    the system trust store or, when given, the PEM bundle ``tls_ca_file`` (e.g. a private CA
    or a self-signed server certificate). There is deliberately no switch to turn
    verification off: an unverified TLS connection would only look secure.
    """

    host: str
    _: KW_ONLY
    port: int = 21
    username: str = "anonymous"
    password: str | None = field(default=None, repr=False)
    remote_base_path: str = "/L2"
    radar_code: str = "RMA1"
    local_download_dir: Path
    state_db: Path
    start_date: datetime | None = None
    end_date: datetime | None = None
    volume_types: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {
            s: {n: list(f) for n, f in v.items()} for s, v in DEFAULT_VOLUME_TYPES.items()
        }
    )
    poll_interval: float = 60.0
    max_concurrent_downloads: int = 5
    verify_checksums: bool = True
    resume_partial: bool = True
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    data_timeout: float = 60.0
    max_attempts: int = 5
    retry_backoff: float = 2.0
    failed_retry_interval: float = 900.0
    lookback_hours: float = 2.0
    use_tls: bool = False
    local_layout: Literal["flat", "date"] = "flat"
    tls_ca_file: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError("host", "must be a non-empty host name or address")
        check_integer("port", self.port, 1, 65535)
        if not isinstance(self.username, str) or not self.username:
            raise ConfigError("username", "must be a non-empty string")
        if self.password is not None and not isinstance(self.password, str):
            raise ConfigError("password", "must be a string or None (then $" + PASSWORD_ENV + ")")
        base = self.remote_base_path
        if not isinstance(base, str) or not base.startswith("/") or ".." in base.split("/"):
            raise ConfigError("remote_base_path", f"must be an absolute server path, got {base!r}")
        if any(c in base for c in "\r\n\x00"):
            raise ConfigError("remote_base_path", "must not contain control characters")
        self.remote_base_path = base.rstrip("/") or "/"
        try:
            BufrFileName(
                str(self.radar_code),
                "0315",
                "01",
                "DBZH",
                datetime(2000, 1, 1, tzinfo=timezone.utc),
            )
        except (FileNameError, TypeError):
            raise ConfigError(
                "radar_code", f"{self.radar_code!r} is not a radar code like 'RMA1'"
            ) from None
        for key in ("local_download_dir", "state_db"):
            value = getattr(self, key)
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise ConfigError(key, f"must be a path, got {value!r}")
            setattr(self, key, Path(value))
        check_aware("start_date", self.start_date)
        check_aware("end_date", self.end_date)
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ConfigError("end_date", "is before start_date")
        self.volume_types = validate_volume_types(self.volume_types)
        check_number("poll_interval", self.poll_interval)
        check_integer("max_concurrent_downloads", self.max_concurrent_downloads, 1, 64)
        for key in ("connect_timeout", "command_timeout", "data_timeout", "failed_retry_interval"):
            check_number(key, getattr(self, key))
        check_number("retry_backoff", self.retry_backoff, strict=False)
        check_number("lookback_hours", self.lookback_hours, strict=False)
        check_integer("max_attempts", self.max_attempts, 1)
        for key in ("verify_checksums", "resume_partial", "use_tls"):
            check_bool(key, getattr(self, key))
        ca_file = self.tls_ca_file
        if ca_file is not None:
            if not isinstance(ca_file, (str, os.PathLike)) or not str(ca_file):
                raise ConfigError("tls_ca_file", f"must be a path or None, got {ca_file!r}")
            self.tls_ca_file = Path(ca_file)
        if self.local_layout not in ("flat", "date"):
            raise ConfigError(
                "local_layout", f"must be 'flat' or 'date', got {self.local_layout!r}"
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


@dataclass(frozen=True)
class _Job:
    """One remote file to fetch; ``size`` is the listed size (None: ask the server).

    ``key`` is the file name as text (``str(name)``, kept so it is formatted only once).
    """

    key: str
    name: BufrFileName
    remote_path: str
    size: int | None
    hour: datetime
    closed: bool = False  # listed after its hour closed: the size will not change any more


@dataclass(frozen=True)
class _Received:
    """A file whose bytes are received and their count verified, on their way into ``temp``.

    The finisher settles it (the last blocks written, the sha256 known), makes it durable
    and records it.
    """

    job: _Job
    temp: Path
    final: Path
    fetched: Fetched


@dataclass
class _Stats:
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    failures: int = 0
    retries: int = 0
    reconnects: int = 0
    resumed_transfers: int = 0
    deferred_growing: int = 0
    ignored_names: int = 0
    polls: int = 0
    last_poll_time: datetime | None = None
    started_at: datetime | None = None


#: one wanted file of a listing: (file name, parsed name, remote path, listed size or None)
_Listed = tuple[str, BufrFileName, str, int | None]


class _Deferred(Exception):
    """The file changed on the server during the transfer: leave it for the next poll."""


def _discard(fetched: Fetched, temp: Path) -> None:
    """Drop a received file that will not be kept, once its transfer's thread has written it."""
    with contextlib.suppress(OSError):
        fetched.settle()
    temp.unlink(missing_ok=True)


def _backoff(base: float, attempt: int, cap: float) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)`` capped, times 0.5-1.5."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.5)  # jitter, not security


class DateBasedFTPDaemon:
    """Downloads a radar's BUFR files from the dated FTP tree into a folder and the state DB.

    ``tracker`` shares an already open :class:`SQLiteStateTracker` (it is then not closed
    here); otherwise ``config.state_db`` is opened by :meth:`run`. ``clock`` returns the
    current UTC time (a seam for tests).
    """

    def __init__(
        self,
        config: DateBasedDaemonConfig,
        *,
        tracker: SQLiteStateTracker | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self._tracker = tracker
        self._owns_tracker = tracker is None
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._checkpoint_key = (
            f"ftp-scan:{config.radar_code}@{config.host}:{config.port}{config.remote_base_path}"
        )
        self._stats = _Stats()
        self._running = False
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._active: dict[str, _Job] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._done: dict[str, datetime] = {}
        self._sizes: dict[str, int | None] = {}
        self._not_before: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._failed: set[str] = set()
        self._hour_pending: dict[datetime, set[str]] = {}
        self._closed_listed: set[datetime] = set()
        self._temps: set[Path] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._finish_batch = max(24, 6 * self.config.max_concurrent_downloads)
        self._finishing: asyncio.Queue[_Received] = asyncio.Queue(2 * self._finish_batch)
        self._finish_now = asyncio.Event()
        self._finisher_task: asyncio.Task[None] | None = None
        self._folders: dict[str, Path] = {}
        self._warned: set[str] = set()
        self._coverage: Coverage | None = None
        self._resume: datetime | None = None
        self._root = self.config.local_download_dir

    # -- public API ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        c = self.config
        return (
            f"DateBasedFTPDaemon({c.radar_code} from {c.username}@{c.host}:{c.port}"
            f"{c.remote_base_path}, running={self._running})"
        )

    def stop(self) -> None:
        """Ask :meth:`run` to finish; safe from any thread or a signal handler, idempotent."""
        self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)

    def get_stats(self) -> dict[str, Any]:
        """Counters and position: files, bytes, failures, retries, last poll, resume point."""
        s, c = self._stats, self.config
        return {
            "running": self._running,
            "files_downloaded": s.files_downloaded,
            "bytes_downloaded": s.bytes_downloaded,
            "failures": s.failures,
            "retries": s.retries,
            "reconnects": s.reconnects,
            "resumed_transfers": s.resumed_transfers,
            "deferred_growing": s.deferred_growing,
            "ignored_names": s.ignored_names,
            "polls": s.polls,
            "last_poll_time": s.last_poll_time,
            "resume_point": self._resume,
            "current_scan_date": self._resume.isoformat() if self._resume else None,
            "in_flight": len(self._active),
            "started_at": s.started_at,
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
        """Scan and download until the end date is done, :meth:`stop`, or cancellation.

        Raises :class:`FTPAuthError` or :class:`RemotePathError` (configuration problems, not
        retried). Connection problems are retried with backoff for as long as it runs.
        """
        if self._running:
            raise RuntimeError("this daemon is already running")
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stop_requested:
            self._stop_requested = False
            return
        self._reset_run_state()
        self._running = True
        self._stats.started_at = self._clock()
        main: asyncio.Task[None] | None = None
        stopper = asyncio.create_task(self._stop_event.wait())
        try:
            self._root = await asyncio.to_thread(self._prepare_root)
            self._ssl_context = await asyncio.to_thread(self.config.ssl_context)
            if self._tracker is None:
                from radarlib.state.sqlite import SQLiteStateTracker

                self._tracker = await asyncio.to_thread(SQLiteStateTracker, self.config.state_db)
            self._folders[""] = self._root
            self._finisher_task = asyncio.create_task(self._finisher(), name="ftp-finisher")
            main = asyncio.create_task(self._main(), name=f"ftp-daemon:{self.config.radar_code}")
            await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if main is not None and not main.done():
                main.cancel()
            if main is not None:
                await asyncio.wait({main})
            await self._cleanup()
            self._running = False
            self._stop_requested = False
        if main is None or main.cancelled() or self._stop_event.is_set():
            logger.info("download daemon for %s stopped", self.config.radar_code)
            return
        error = main.exception()
        if error is not None:
            if isinstance(error, (FTPAuthError, RemotePathError)):
                logger.error("download daemon for %s: %s", self.config.radar_code, error)
            raise error

    # -- setup and teardown ---------------------------------------------------------------------
    def _prepare_root(self) -> Path:
        self.config.local_download_dir.mkdir(parents=True, exist_ok=True)
        return self.config.local_download_dir.resolve()

    async def _cleanup(self) -> None:
        await self._drain_finisher()  # received files are recorded, not thrown away
        while self._background:  # finalizers run to completion: no half-done renames
            background = list(self._background)
            for task in background:
                if task.get_name().startswith("requeue:"):
                    task.cancel()
            await asyncio.wait(background)
        leftovers = [p for p in self._temps if p.exists()]
        for path in leftovers:
            with contextlib.suppress(OSError):
                path.unlink()
        self._temps.clear()
        if self._tracker is not None:
            try:  # remember what this run completed, so the next one starts after it
                await self._persist_coverage()
            except Exception as exc:  # the files are recorded; only the scan position is lost
                logger.warning("could not save the scan position: %s", exc)
        if self._owns_tracker and self._tracker is not None:
            tracker, self._tracker = self._tracker, None
            await asyncio.to_thread(tracker.close)

    def _new_client(self) -> FTPClient:
        c = self.config
        return FTPClient(
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

    async def _connect(self, role: str) -> FTPClient:
        """Connect and log in, retrying with backoff; credentials refused -> FTPAuthError."""
        attempt = 0
        while True:
            client = self._new_client()
            try:
                await client.connect()
            except FTPAuthError:
                raise
            except TransportError as exc:
                attempt += 1
                self._stats.reconnects += 1
                delay = _backoff(
                    max(self.config.retry_backoff, 0.1), attempt, self.config.failed_retry_interval
                )
                level = logging.WARNING if attempt in (1, 5) or attempt % 20 == 0 else logging.DEBUG
                logger.log(
                    level, "%s: %s; retrying in %.1f s (attempt %d)", role, exc, delay, attempt
                )
                await asyncio.sleep(delay)
                continue
            if attempt:
                logger.info(
                    "%s: connected to %s:%d again", role, self.config.host, self.config.port
                )
            return client

    # -- main loop ------------------------------------------------------------------------------
    async def _main(self) -> None:
        c = self.config
        scanner_client = await self._connect("scanner")
        tasks: set[asyncio.Task[None]] = set()
        try:
            await scanner_client.check_dir(c.remote_base_path)
            await self._load_resume_point()
            logger.info(
                "downloading %s from %s:%d%s into %s (%s to %s, resume at %s)",
                c.radar_code,
                c.host,
                c.port,
                c.remote_base_path,
                self._root,
                c.start_date or "resume point",
                c.end_date or "continuous",
                self._resume,
            )
            tasks = {
                asyncio.create_task(self._worker(i), name=f"ftp-worker-{i}")
                for i in range(c.max_concurrent_downloads)
            }
            scanner = asyncio.create_task(self._scan_loop(scanner_client), name="ftp-scanner")
            tasks.add(scanner)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            scanner_client.abort()

    async def _load_resume_point(self) -> None:
        tracker, c = self._require_tracker(), self.config

        def read() -> tuple[Coverage | None, datetime | None]:
            coverage = Coverage.parse(tracker.get_checkpoint(self._checkpoint_key))
            latest = None
            if c.start_date is None and coverage is None:
                latest = tracker.latest_observation(c.radar_code)
            return coverage, latest

        self._coverage, latest = await asyncio.to_thread(read)
        self._resume = resume_point(
            coverage=self._coverage,
            start=c.start_date,
            latest_observation=latest,
            now=self._clock(),
            lookback=c.lookback,
        )

    def _require_tracker(self) -> SQLiteStateTracker:
        if self._tracker is None:
            raise RuntimeError("state tracker is not open")
        return self._tracker

    async def _scan_loop(self, client: FTPClient) -> None:
        c = self.config
        while True:
            started = self._clock()
            try:
                if not client.connected:
                    client = await self._connect("scanner")
                complete = await self._poll(client, started)
            except (FTPAuthError, RemotePathError):
                raise
            except TransportError as exc:
                logger.warning("listing failed: %s; reconnecting", exc)
                client.abort()
                complete = False
            await self._persist_coverage()
            if c.end_date is not None and complete and started >= c.end_date:
                await self._idle.wait()
                await self._persist_coverage()
                if self._settled():
                    logger.info(
                        "end date %s reached: %d files downloaded, %d recorded as failed",
                        c.end_date.isoformat(),
                        self._stats.files_downloaded,
                        self._stats.failures,
                    )
                    return
            await asyncio.sleep(c.poll_interval)

    def _settled(self) -> bool:
        return not self._active and not any(self._hour_pending.values())

    async def _poll(self, client: FTPClient, now: datetime) -> bool:
        """List the hours that matter and queue what is missing; True once all were listed.

        Each day folder is listed once per poll, so hours without a folder (gaps, or a long
        backfill) cost nothing.
        """
        c = self.config
        self._stats.polls += 1
        self._stats.last_poll_time = now
        resume = self._resume if self._resume is not None else floor_hour(now)
        day_hours: dict[str, set[str] | None] = {}
        for hour in hours_to_list(resume=resume, now=now, end=c.end_date):
            folder = day_dir(c.remote_base_path, c.radar_code, hour)
            if folder not in day_hours:
                entries = await client.list_dir(folder)
                day_hours[folder] = (
                    None if entries is None else {e.name for e in entries if e.is_dir}
                )
            present = day_hours[folder]
            closed = is_closed(hour, now, c.lookback)
            if present is not None and f"{hour:%H}" in present:
                await self._consider(await self._list_hour(client, hour), hour, closed)
            if closed and self._whole_hour_in_range(hour):
                self._closed_listed.add(hour)
        await self._queue_due_retries(now)
        return True

    def _whole_hour_in_range(self, hour: datetime) -> bool:
        c = self.config
        return (c.start_date is None or hour >= c.start_date) and (
            c.end_date is None or hour + HOUR - timedelta(seconds=1) <= c.end_date
        )

    async def _persist_coverage(self) -> None:
        if self._resume is None:
            return
        finished = {h for h in self._closed_listed if not self._hour_pending.get(h)}
        coverage = advance_coverage(self._coverage, self._resume, finished)
        if coverage == self._coverage or coverage is None:
            return
        tracker = self._require_tracker()
        await asyncio.to_thread(tracker.set_checkpoint, self._checkpoint_key, coverage.format())
        self._coverage, self._resume = coverage, coverage.through
        for hour in [h for h in self._closed_listed if h < coverage.through]:
            self._closed_listed.discard(hour)
            self._hour_pending.pop(hour, None)
        horizon = coverage.through - HOUR
        for name in [n for n, h in self._done.items() if h < horizon]:
            del self._done[name]
        for name in [n for n in self._sizes if n not in self._active]:
            parsed = BufrFileName.try_parse(name)
            if parsed is None or floor_hour(parsed.time) < horizon:
                self._sizes.pop(name, None)

    # -- listing --------------------------------------------------------------------------------
    def _warn_once(self, key: str, message: str, *args: object) -> None:
        self._stats.ignored_names += 1
        if key not in self._warned:
            if len(self._warned) < _MAX_WARNED_NAMES:
                self._warned.add(key)
            logger.warning(message, *args)

    async def _list_hour(self, client: FTPClient, hour: datetime) -> list[_Listed]:
        c = self.config
        folder = hour_dir(c.remote_base_path, c.radar_code, hour)
        entries = await client.list_dir(folder)
        if not entries:
            return []
        found: list[_Listed] = []
        for entry in entries:
            if not entry.is_dir:
                continue
            if not (len(entry.name) == 4 and entry.name.isdigit()):
                self._warn_once(
                    f"{folder}/{entry.name!r}",
                    "ignoring folder %r in %s: not a MMSS folder",
                    entry.name,
                    folder,
                )
                continue
            sub = f"{folder}/{entry.name}"
            for item in await client.list_dir(sub) or []:
                if item.is_dir:
                    continue
                name = self._accept(item.name, sub)
                if name is not None and in_range(name.time, c.start_date, c.end_date):
                    found.append((item.name, name, f"{sub}/{item.name}", item.size))
        return found

    def _accept(self, raw: str, folder: str) -> BufrFileName | None:
        """The parsed name of a wanted file, or None (hostile or unwanted names are logged)."""
        c = self.config
        if any(ch in raw for ch in ("/", "\\", "\x00")) or ".." in raw or raw != raw.strip():
            self._warn_once(f"{folder}/{raw!r}", "ignoring hostile file name %r in %s", raw, folder)
            return None
        parsed = BufrFileName.try_parse(raw)
        if parsed is None or parsed.name != raw:
            self._warn_once(
                f"{folder}/{raw!r}",
                "ignoring %r in %s: not a <RADAR>_<STRATEGY>_<VOLNR>_<FIELD>_"
                "<YYYYMMDDTHHMMSSZ>.BUFR file name",
                raw,
                folder,
            )
            return None
        if parsed.radar != c.radar_code:
            logger.debug("skipping %s: radar %s is not %s", raw, parsed.radar, c.radar_code)
            return None
        fields = expected_fields(c.volume_types, parsed.strategy, parsed.volume_number)
        if fields is None or parsed.field not in fields:
            logger.debug("skipping %s: not in volume_types", raw)
            return None
        return parsed

    async def _consider(self, found: list[_Listed], hour: datetime, closed: bool) -> None:
        """Queue listed files that are not recorded, in progress, backing off or growing."""
        now_mono = time.monotonic()
        done, active, not_before = self._done, self._active, self._not_before
        fresh = [
            item
            for item in found
            if item[0] not in done
            and item[0] not in active
            and not_before.get(item[0], 0.0) <= now_mono
        ]
        pending = self._hour_pending.setdefault(hour, set())
        pending.update(k for k, *_ in found if k not in done and k not in self._failed)
        if not fresh:
            return
        rows = await asyncio.to_thread(self._lookup, [k for k, *_ in fresh])
        now = self._clock()
        for key, name, remote_path, size in fresh:
            row = rows.get(key)
            if row is not None and row.get("status") == "downloaded":
                self._done[key] = hour
                pending.discard(key)
                continue
            if row is not None and row.get("status") == "failed" and row.get("next_attempt_at"):
                due = parse_iso(str(row["next_attempt_at"]))
                if due > now:
                    self._not_before[key] = now_mono + (due - now).total_seconds()
                    self._failed.add(key)
                    pending.discard(key)  # handled: recorded failed, retried from the DB later
                    continue
            if not closed:
                previous = self._sizes.get(key, -1)
                self._sizes[key] = size
                if size is not None and previous != size:
                    continue  # first sighting or still changing: decide at the next poll
            self._enqueue(_Job(key, name, remote_path, size, hour, closed and size is not None))

    def _lookup(self, names: list[str]) -> dict[str, dict[str, Any]]:
        tracker = self._require_tracker()
        rows: dict[str, dict[str, Any]] = {}
        for name in names:
            row = tracker.get_download(name)
            if row is not None:
                rows[name] = row
        return rows

    async def _queue_due_retries(self, now: datetime) -> None:
        tracker, c = self._require_tracker(), self.config
        rows = await asyncio.to_thread(tracker.downloads_due_for_retry, c.radar_code, now)
        now_mono = time.monotonic()
        for row in rows:
            raw, remote_path = str(row.get("filename", "")), str(row.get("remote_path", ""))
            parsed = BufrFileName.try_parse(raw)
            if parsed is None or parsed.name != raw or not remote_path.endswith("/" + raw):
                logger.warning("ignoring retry row with unusable name or path: %r", raw)
                continue
            if raw in self._active or self._not_before.get(raw, 0.0) > now_mono:
                continue
            if not in_range(parsed.time, c.start_date, c.end_date):
                continue
            self._enqueue(_Job(raw, parsed, remote_path, None, floor_hour(parsed.time)))

    def _enqueue(self, job: _Job) -> None:
        self._active[job.key] = job
        self._hour_pending.setdefault(job.hour, set()).add(job.key)
        self._idle.clear()
        self._queue.put_nowait(job)

    def _release(self, job: _Job) -> None:
        self._active.pop(job.key, None)
        if not self._active:
            self._idle.set()

    def _handled(self, job: _Job) -> None:
        """The file is recorded (downloaded or failed): it no longer holds its hour open."""
        pending = self._hour_pending.get(job.hour)
        if pending is not None:
            pending.discard(job.key)
        self._release(job)

    # -- downloading ----------------------------------------------------------------------------
    async def _worker(self, index: int) -> None:
        client: FTPClient | None = None
        last_used = 0.0
        try:
            while True:
                job = await self._queue.get()
                try:
                    if client is not None and (
                        not client.connected
                        or time.monotonic() - last_used > _IDLE_RECONNECT_SECONDS
                    ):
                        client.abort()
                        client = None
                    if client is None:
                        client = await self._connect(f"download worker {index}")
                    await self._download(client, job)
                except _Deferred as why:
                    logger.info("%s: %s; leaving it for the next poll", job.key, why)
                    self._stats.deferred_growing += 1
                    self._release(job)
                except FTPAuthError:
                    raise
                except (TransportError, OSError) as exc:
                    await self._failed_attempt(job, exc)
                finally:
                    last_used = time.monotonic()
                    self._queue.task_done()
        finally:
            if client is not None:
                client.abort()

    def _local_folder(self, name: BufrFileName) -> Path:
        """The (created, resolved) folder of a file; refuses one outside the download folder."""
        key = f"{name.radar}/{name.time:%Y/%m/%d}" if self.config.local_layout == "date" else ""
        folder = self._root
        if key:
            t = name.time
            folder = folder / name.radar / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}"
        for _ in range(2):  # checked before mkdir (nothing made outside) and after it
            resolved = folder.resolve()
            if not resolved.is_relative_to(self._root):
                raise TransportError(f"{name}: local folder {resolved} is outside {self._root}")
            folder.mkdir(parents=True, exist_ok=True)
        self._folders[key] = resolved
        return resolved

    async def _local_path(self, job: _Job) -> Path:
        """The final local path: a plain file name (as the parser guarantees) in its folder."""
        if job.key in ("", ".", "..") or any(c in job.key for c in "/\\\x00"):
            raise TransportError(f"{job.key!r}: not a plain file name")
        name = job.name
        key = f"{name.radar}/{name.time:%Y/%m/%d}" if self.config.local_layout == "date" else ""
        folder = self._folders.get(key)
        if folder is None:  # first file of a folder: mkdir and resolve, off the event loop
            folder = await asyncio.to_thread(self._local_folder, name)
        return folder / job.key

    async def _download(self, client: FTPClient, job: _Job) -> None:
        c = self.config
        final = await self._local_path(job)
        temp = final.with_name(f".{job.key}.part")
        expected = job.size
        if expected is None:
            expected = await client.size(job.remote_path)
            if expected is None:
                raise TransportError(f"{job.remote_path}: no longer on the server")
        self._temps.add(temp)
        try:
            fetched = await client.fetch(
                job.remote_path, temp, resume=c.resume_partial, checksum=c.verify_checksums
            )
        except asyncio.CancelledError:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
            self._temps.discard(temp)
            raise
        except TransportError:
            if not c.resume_partial:
                await asyncio.to_thread(temp.unlink, missing_ok=True)
                self._temps.discard(temp)
            raise
        if fetched.resumed_from:
            self._stats.resumed_transfers += 1
        # an open hour may still be uploading: ask again (SIZE after == SIZE/listing before);
        # in a closed hour the listed size is final and the received size must equal it
        after = await client.size(job.remote_path) if not job.closed else expected
        if fetched.size != expected or after != fetched.size:
            await asyncio.to_thread(_discard, fetched, temp)
            self._temps.discard(temp)
            if after is not None and after != expected:
                self._sizes[job.key] = after
                raise _Deferred(f"size changed on the server ({expected} -> {after} bytes)")
            raise TransportError(
                f"{job.remote_path}: received {fetched.size} bytes, server says {after}"
            )
        # The bytes are in and counted: the slot is free for the next transfer while the
        # finisher settles this file, makes it durable and records it (bounded queue:
        # back-pressure).
        await self._finishing.put(_Received(job, temp, final, fetched))
        if not self._gathering(1):  # a gathering finisher holds one file: the burst is due
            self._finish_now.set()

    # -- finishing: make durable, rename, record ------------------------------------------------
    async def _finisher(self) -> None:
        """Make received files durable and record them, a burst at a time in one thread hop.

        A file is recorded only after it is durable (its fsync, or the ``syncfs`` of its burst:
        :func:`~radarlib.durability.sync_files`), its rename and the fsync of its folder,
        the burst in one :meth:`SQLiteStateTracker.mark_downloaded_many` transaction, so a
        crash at any point leaves either no row or a row for a complete, durable file. The
        finisher lets files gather for up to ``_FINISH_GATHER_SECONDS`` first (not when no
        other file is in flight, nor beyond a full burst): one folder fsync and one commit
        then serve several files, so fewer journal commits stall the transfers' own writes.
        """
        # a thread of its own: a slow disk delays this daemon's recording, never the
        # default executor that the other daemons of the process need
        finishing = ThreadPoolExecutor(1, thread_name_prefix="ftp-finish")
        try:
            await self._finish_bursts(finishing)
        finally:
            finishing.shutdown(wait=False)

    async def _finish_bursts(self, finishing: ThreadPoolExecutor) -> None:
        queue, more, loop = self._finishing, self._finish_now, asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            try:
                deadline = loop.time() + _FINISH_GATHER_SECONDS
                while self._gathering(len(batch)) and (wait := deadline - loop.time()) > 0:
                    more.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(more.wait(), wait)
                while not queue.empty():
                    batch.append(queue.get_nowait())
                try:
                    outcomes = await asyncio.shield(
                        loop.run_in_executor(finishing, self._finish_sync, batch)
                    )
                except Exception as exc:  # unexpected: every file of the burst is retried
                    logger.error("finishing %d received files failed: %s", len(batch), exc)
                    outcomes = [exc] * len(batch)
                for item, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        self._temps.discard(item.temp)
                        await self._failed_attempt(item.job, outcome)
                    else:
                        self._finished(item, outcome)
                if any(o and not isinstance(o, BaseException) for o in outcomes):
                    announce_ready(self.config.state_db)  # once per burst
            finally:
                for _ in batch:
                    queue.task_done()

    def _gathering(self, taken: int) -> bool:
        """True while a burst should wait for more: not full, and more files are coming."""
        waiting = self._finishing.qsize() + taken
        return waiting < self._finish_batch and len(self._active) > waiting

    def _finish_sync(self, batch: list[_Received]) -> list[list[str] | BaseException]:
        """Settle the files, make them durable, rename them, sync the folders, record the rows.

        Runs in the finisher thread. Settling waits for each file's receiving thread (its
        last blocks written, its sha256 known); a file whose writing failed is a failed
        attempt.

        :func:`~radarlib.durability.sync_files` makes the burst durable with one journal
        commit where it can (``syncfs``), else fsyncs its files side by side.
        """
        outcomes: list[list[str] | BaseException] = []
        renamed: list[tuple[_Received, Transfer]] = []
        settled: list[Transfer | OSError] = []
        for item in batch:  # written and hashed (by now, or a moment from now)
            try:
                settled.append(item.fetched.settle())
            except OSError as exc:
                settled.append(exc)
        pairs = list(zip(batch, settled, strict=True))
        synced = iter(sync_files([item.temp for item, t in pairs if isinstance(t, Transfer)]))
        for item, transfer in pairs:
            try:
                if not isinstance(transfer, Transfer):
                    raise transfer
                error = next(synced)
                if error is not None:
                    raise error
                os.replace(item.temp, item.final)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    item.temp.unlink(missing_ok=True)
                outcomes.append(exc)
            else:
                renamed.append((item, transfer))
                outcomes.append([])
        for folder in {item.final.parent for item, _ in renamed}:
            sync_folder(folder)
        tracker, types = self._require_tracker(), self.config.volume_types
        records: list[DownloadedFile] = []
        for item, transfer in renamed:
            name = item.job.name
            fields = expected_fields(types, name.strategy, name.volume_number)
            records.append(
                DownloadedFile(
                    item.job.key,
                    item.job.remote_path,
                    str(item.final),
                    transfer.size,
                    transfer.sha256,
                    list(fields) if fields else None,
                )
            )
        try:  # one transaction for the burst
            ready = iter(tracker.mark_downloaded_many(records))
        except Exception as exc:  # failed attempts; the files are downloaded again later
            return [o if isinstance(o, BaseException) else exc for o in outcomes]
        return [o if isinstance(o, BaseException) else next(ready) for o in outcomes]

    def _finished(self, item: _Received, ready: list[str]) -> None:
        """Bookkeeping after a file was recorded (the finisher announces ready volumes)."""
        job, key = item.job, item.job.key
        self._temps.discard(item.temp)
        self._stats.files_downloaded += 1
        self._stats.bytes_downloaded += item.fetched.size
        self._attempts.pop(key, None)
        self._not_before.pop(key, None)
        self._failed.discard(key)
        self._done[key] = job.hour
        self._handled(job)
        logger.debug("downloaded %s (%d bytes)", key, item.fetched.size)
        if ready:
            logger.info("volume(s) ready: %s", ", ".join(ready))

    async def _drain_finisher(self) -> None:
        """Let every received file be recorded (or dropped) before the finisher stops."""
        task, self._finisher_task = self._finisher_task, None
        if task is None:
            return
        if not task.done():
            waiter = asyncio.ensure_future(self._finishing.join())
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            task.cancel()
        await asyncio.wait({task})

    async def _failed_attempt(self, job: _Job, exc: BaseException) -> None:
        """Count a failed attempt: back off and retry, or record it failed after max_attempts."""
        c, key = self.config, job.key
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        if attempts < c.max_attempts:
            delay = _backoff(c.retry_backoff, attempts, c.failed_retry_interval)
            self._stats.retries += 1
            logger.info("%s: attempt %d failed (%s); retrying in %.1f s", key, attempts, exc, delay)
            task = asyncio.create_task(self._requeue_later(job, delay), name=f"requeue:{key}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        next_at = self._clock() + timedelta(seconds=c.failed_retry_interval)
        try:
            await asyncio.to_thread(
                self._require_tracker().mark_download_failed,
                key,
                job.remote_path,
                f"{type(exc).__name__}: {exc}",
                next_attempt_at=next_at,
            )
        except Exception as record_error:  # keep the daemon alive
            logger.error("%s: could not record the failure: %s", key, record_error)
        self._stats.failures += 1
        self._failed.add(key)
        self._not_before[key] = time.monotonic() + c.failed_retry_interval
        logger.warning(
            "%s: giving up for now after %d attempts (%s); next try at %s",
            key,
            attempts,
            exc,
            next_at.isoformat(),
        )
        self._handled(job)

    async def _requeue_later(self, job: _Job, delay: float) -> None:
        await asyncio.sleep(delay)
        if job.key in self._active:
            self._queue.put_nowait(job)
