"""The processing daemon: turns every complete volume in the state database into one NetCDF.

>>> config = ProcessingDaemonConfig(  # doctest: +SKIP
...     local_bufr_dir=Path("bufr"), local_netcdf_dir=Path("nc"), state_db=Path("state.db"),
...     volume_types=DEFAULT_VOLUME_TYPES, radar_name="RMA1")
>>> await ProcessingDaemon(config).run()  # doctest: +SKIP

Each cycle: pick up the files recorded since the last cycle (``sync_volumes``, incremental,
never "newer than the last volume"), apply the incomplete-volume policy, claim ready volumes
atomically and convert them in worker processes (:mod:`radarlib.pipeline.workers`), then
record ``completed`` or a retry / ``failed``. It sleeps until the download daemon announces
a ready volume (same process), a conversion frees a slot, ``stop()``, or ``poll_interval``.
The daemon only schedules and records; :func:`radarlib.convert.convert_volume` converts.
Workers are fresh ``python -m radarlib.pipeline.worker`` processes that never import the
caller's script, so a script may end with a bare ``asyncio.run(...)``. With
``executor="dask"`` the conversions run on a Dask.distributed cluster instead
(:mod:`radarlib.pipeline.dask_pool`); claims, retries and recovery stay the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import re
import shlex
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from radarlib.archive import base_folder, dated_folder, is_dated, recent_folders
from radarlib.checks import check_bool, check_integer, check_number
from radarlib.errors import ConfigError, RadarlibError, StateError, UnknownVolumeError
from radarlib.filename import format_iso, parse_iso
from radarlib.pipeline.lifecycle import ClaimingDaemon, pid_alive
from radarlib.pipeline.workers import (
    DEFAULT_CONVERTER,
    ConversionExecutor,
    ConversionJob,
    ConversionOutcome,
    ConversionPool,
    ExecutorUnavailableError,
    WorkerDiedError,
)
from radarlib.state.events import announce_ready
from radarlib.state.ops_rows import record_conversion_seconds
from radarlib.volume_types import VolumeTypes, validate_volume_types, volume_type_warnings

if TYPE_CHECKING:
    from radarlib.state.sqlite import SQLiteStateTracker

__all__ = ["ProcessingDaemon", "ProcessingDaemonConfig", "default_worker_id"]

log = logging.getLogger(__name__)

_RADAR = re.compile(r"[A-Z]{2,5}[0-9]{1,3}")
#: the converter's atomic-write temporaries: ``.<name>.<pid>.<random>.tmp`` for every output
#: format (a file, or a Zarr store folder), and ``….old``, a Zarr store being replaced
_TEMP_NC = re.compile(r"\.(?P<name>.+\.(?:nc|h5|zarr))\.(?P<pid>[0-9]+)\.[0-9a-f]+\.(?:tmp|old)")
#: how often claims of dead processes on this host (and stale claims) are looked for
_RECOVERY_PERIOD_SECONDS = 60.0
#: a Dask scheduler address, e.g. ``tcp://10.0.0.5:8786``
_SCHEDULER = re.compile(r"(tcp|tls|ucx|ws|wss|inproc)://\S+")


def default_worker_id() -> str:
    """``host:pid:random``: unique per daemon object, and tells which process holds a claim."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _positive(key: str, value: object, *, allow_zero: bool = False) -> None:
    check_number(key, value, minimum=0.0, strict=not allow_zero)


@dataclass(kw_only=True)
class ProcessingDaemonConfig:
    """Settings of one processing daemon (the original design's fields plus retry and output).

    ``radar_name`` (the design's name) and ``radar_code`` are the same setting; give either.
    """

    local_bufr_dir: Path
    local_netcdf_dir: Path
    state_db: Path
    volume_types: VolumeTypes
    radar_name: str | None = None
    radar_code: str | None = None
    poll_interval: float = 30
    max_concurrent_processing: int = 2
    root_resources: Path | None = None
    allow_incomplete: bool = False
    incomplete_timeout_hours: float = 24
    #: conversion attempts before a volume stays ``failed`` (until reset by hand)
    max_attempts: int = 3
    #: delay before the first retry; doubles with each further attempt
    retry_backoff_seconds: float = 60
    retry_backoff_max_seconds: float = 3600
    #: NetCDF-4 zlib level of the output (0-9)
    compression_level: int = 4
    #: on stop(), how long running conversions may finish before they are returned to pending
    shutdown_grace_seconds: float = 30
    #: a claim older than this (any host) is considered abandoned and recovered
    stale_claim_seconds: float = 3600
    worker_id: str = field(default_factory=default_worker_id)
    #: where conversions run: local worker processes, or a Dask.distributed cluster
    executor: Literal["processes", "dask"] = "processes"
    #: the Dask scheduler address (``tcp://host:8786``); required with ``executor="dask"``
    dask_scheduler: str | None = None
    #: a field file that cannot be decoded: "drop" writes the volume with its good fields
    #: (the bad one is recorded, and the volume rewritten when a new copy arrives); "fail"
    #: fails the whole volume
    on_bad_field: Literal["drop", "fail"] = "drop"
    #: formats written per volume (radarlib.export.FORMATS); done when all are written
    output_formats: tuple[str, ...] = ("cfradial",)
    #: decoder caps on the declared decoded data (MiB) of one BUFR file / one volume
    max_decoded_mb_per_file: float = 256
    max_decoded_mb_per_volume: float = 1024
    #: quality control before writing (``radarlib.qc.QCConfig`` fields, set from ``[qc]``);
    #: None = no QC
    qc: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for key in ("local_bufr_dir", "local_netcdf_dir", "state_db"):
            value = getattr(self, key)
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise ConfigError(key, f"must be a path, got {value!r}")
            setattr(self, key, Path(value))
        if self.root_resources is not None:
            if not isinstance(self.root_resources, (str, os.PathLike)):
                raise ConfigError("root_resources", f"must be a path, got {self.root_resources!r}")
            self.root_resources = Path(self.root_resources)
        self.volume_types = validate_volume_types(self.volume_types)
        self._resolve_radar()
        _positive("poll_interval", self.poll_interval)
        check_integer("max_concurrent_processing", self.max_concurrent_processing, 1, 64)
        check_bool("allow_incomplete", self.allow_incomplete)
        _positive("incomplete_timeout_hours", self.incomplete_timeout_hours, allow_zero=True)
        check_integer("max_attempts", self.max_attempts, 1)
        _positive("retry_backoff_seconds", self.retry_backoff_seconds, allow_zero=True)
        _positive("retry_backoff_max_seconds", self.retry_backoff_max_seconds, allow_zero=True)
        check_integer("compression_level", self.compression_level, 0, 9)
        _positive("shutdown_grace_seconds", self.shutdown_grace_seconds, allow_zero=True)
        _positive("stale_claim_seconds", self.stale_claim_seconds)
        if not isinstance(self.worker_id, str) or not self.worker_id.strip():
            raise ConfigError("worker_id", f"must be a non-empty string, got {self.worker_id!r}")
        if self.on_bad_field not in ("drop", "fail"):
            raise ConfigError(
                "on_bad_field", f"must be 'drop' or 'fail', got {self.on_bad_field!r}"
            )
        self._check_executor()
        from radarlib.export import parse_formats

        self.output_formats = parse_formats(self.output_formats)
        _positive("max_decoded_mb_per_file", self.max_decoded_mb_per_file)
        _positive("max_decoded_mb_per_volume", self.max_decoded_mb_per_volume)

    def _check_executor(self) -> None:
        if self.executor not in ("processes", "dask"):
            raise ConfigError("executor", f"must be 'processes' or 'dask', got {self.executor!r}")
        address = self.dask_scheduler
        if address is not None and (
            not isinstance(address, str) or _SCHEDULER.fullmatch(address) is None
        ):
            raise ConfigError(
                "dask_scheduler", f"{address!r} is not a scheduler address such as tcp://host:8786"
            )
        if self.executor == "processes" and address is not None:
            raise ConfigError("dask_scheduler", "is only used with executor = 'dask'")
        if self.executor == "dask":
            if address is None:
                raise ConfigError(
                    "dask_scheduler", "is required with executor = 'dask', e.g. tcp://host:8786"
                )
            if importlib.util.find_spec("distributed") is None:
                raise ConfigError(
                    "executor",
                    "'dask' needs the distributed package: pip install 'radarlib[distributed]'",
                )

    def _resolve_radar(self) -> None:
        given = {k: getattr(self, k) for k in ("radar_name", "radar_code") if getattr(self, k)}
        if not given:
            raise ConfigError("radar_code", "is required (or radar_name), e.g. 'RMA1'")
        for key, value in given.items():
            if not isinstance(value, str) or _RADAR.fullmatch(value) is None:
                raise ConfigError(key, f"{value!r} is not a radar code such as 'RMA1' or 'AR5'")
        if len(set(given.values())) > 1:
            raise ConfigError(
                "radar_code",
                f"radar_name={self.radar_name!r} and radar_code={self.radar_code!r} disagree",
            )
        code = next(iter(given.values()))
        self.radar_name = self.radar_code = code

    @property
    def radar(self) -> str:
        """The radar this daemon processes (``radar_code`` == ``radar_name``)."""
        return str(self.radar_code)

    def retry_delay(self, attempts: int) -> timedelta:
        """Backoff before the next attempt after ``attempts`` failed ones (exponential, capped)."""
        seconds = self.retry_backoff_seconds * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.retry_backoff_max_seconds))


def _fields(text: object) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(f for f in str(text).split(",") if f)


class ProcessingDaemon(ClaimingDaemon):
    """Converts the complete volumes of one radar, in worker processes, exactly once each.

    ``converter`` (``"module:function"`` with :func:`radarlib.convert.convert_volume`'s
    signature) and ``clock`` are seams for tests; production uses the defaults.
    """

    def __init__(
        self,
        config: ProcessingDaemonConfig,
        *,
        converter: str = DEFAULT_CONVERTER,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self._converter = converter
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._consumer = f"processing:{config.radar}"
        self._tracker: SQLiteStateTracker | None = None
        self._recording: set[str] = set()
        self._last_recovery = 0.0
        self._worker_restarts = 0
        self._counters: dict[str, int] = {
            "volumes_processed": 0,
            "volumes_failed": 0,
            "conversion_errors": 0,
            "retries_scheduled": 0,
            "volumes_expired": 0,
            "volumes_allowed_incomplete": 0,
            "volumes_released": 0,
            "claims_recovered": 0,
            "transient_failures": 0,
            "fields_dropped": 0,
            "volumes_repaired": 0,
        }
        self._unrecorded: dict[str, tuple[Mapping[str, Any], ConversionOutcome]] = {}
        self._warned_fields: set[str] = set()
        self._db_stats: dict[str, Any] = {}
        self._last_poll: str | None = None

    # ------------------------------------------------------------------ public API

    @property
    def worker_id(self) -> str:
        """The id this daemon claims volumes under."""
        return self.config.worker_id

    def _log_started(self) -> None:
        where = (
            f"on the Dask cluster {self.config.dask_scheduler}"
            if self.config.executor == "dask"
            else "workers"
        )
        log.info(
            "processing daemon %s started for radar %s (%d %s, poll %.3gs)",
            self.worker_id,
            self.config.radar,
            self.config.max_concurrent_processing,
            where,
            self.config.poll_interval,
            extra={"radar": self.config.radar},
        )

    def _log_stopped(self) -> None:
        log.info(
            "processing daemon %s stopped: %d processed, %d failed",
            self.worker_id,
            self._counters["volumes_processed"],
            self._counters["volumes_failed"],
            extra={"radar": self.config.radar},
        )

    def get_stats(self) -> dict[str, Any]:
        """Counters of this daemon plus queue figures from the database (refreshed each cycle)."""
        if not self._db_stats and not self._running:
            with contextlib.suppress(Exception):
                self._db_stats = self._query_db_stats(None)
        stats: dict[str, Any] = {
            "running": self._running,
            **self._counters,
            "incomplete_volumes_detected": self._db_stats.get("incomplete_volumes_detected", 0),
            "pending_volumes": self._db_stats.get("pending_volumes", 0),
            "complete_unprocessed": self._db_stats.get("complete_unprocessed", 0),
            "volumes_by_status": dict(self._db_stats.get("volumes_by_status", {})),
            "in_flight": len(self._in_flight),
            "worker_restarts": self._worker_restarts + (self._pool.restarts if self._pool else 0),
            "radar_code": self.config.radar,
            "worker_id": self.worker_id,
            "last_poll": self._last_poll,
        }
        return stats

    # ------------------------------------------------------------------ lifecycle

    def _make_pool(self) -> ConversionExecutor:
        """Local worker processes, or the Dask cluster of ``config.dask_scheduler``."""
        if self.config.executor == "dask" and self.config.dask_scheduler is not None:
            from radarlib.pipeline.dask_pool import DaskConversionPool

            return DaskConversionPool(
                self.config.dask_scheduler, self.config.max_concurrent_processing
            )
        return ConversionPool(self.config.max_concurrent_processing, converter=self._converter)

    def _open(self) -> None:
        from radarlib.state.sqlite import SQLiteStateTracker

        base_folder(self.config.local_netcdf_dir).mkdir(parents=True, exist_ok=True)
        self.config.state_db.parent.mkdir(parents=True, exist_ok=True)
        self._tracker = SQLiteStateTracker(self.config.state_db)
        self._report_config_problems()
        self._recover(at_start=True)
        self._remove_orphan_temp_files()

    def _report_config_problems(self) -> None:
        """Warn about volume_types fields no radar produces, and record them for ``status``."""
        tracker, radar = self._db(), self.config.radar
        tracker.clear_problems(radar, "config")
        for message in volume_type_warnings(self.config.volume_types):
            log.warning("configuration: %s", message, extra={"radar": radar})
            tracker.record_problem(radar, "config", message.split(":", 1)[0], message)

    def _remove_orphan_temp_files(self) -> None:
        """Delete temporary outputs whose writer process is dead (a killed conversion).

        With a Dask cluster the writer may be on another host, where its pid means nothing
        here: a temporary file is then an orphan only once older than ``stale_claim_seconds``.
        """
        remote = self.config.executor == "dask"
        # a dated archive: the folders a conversion of the last days wrote into (older ones
        # are swept by retention), plus the base folder; every format's temporaries
        folders = {base_folder(self.config.local_netcdf_dir), *recent_folders(
            self.config.local_netcdf_dir, self._clock(), hours=72
        )}  # fmt: skip
        for path in [path for folder in folders for path in folder.glob(".*.*")]:
            match = _TEMP_NC.fullmatch(path.name)
            if match is None:
                continue
            if remote:
                with contextlib.suppress(FileNotFoundError):
                    age = time.time() - path.stat().st_mtime
                    if age < self.config.stale_claim_seconds:
                        continue
            elif pid_alive(int(match["pid"])):
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)  # a Zarr store being written or replaced
                else:
                    path.unlink()
                log.warning(
                    "removed %s, left by a conversion of %s that was killed",
                    path.name,
                    match["name"],
                    extra={"radar": self.config.radar},
                )

    def _close(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            with contextlib.suppress(Exception):
                self._db_stats = self._query_db_stats(tracker)
            tracker.close()

    def _db(self) -> SQLiteStateTracker:
        if self._tracker is None:
            raise RuntimeError("the state database is not open (call run())")
        return self._tracker

    def _recover(self, *, at_start: bool = False) -> None:
        """Return to pending the claims of this id, of dead processes on this host, stale ones."""
        tracker = self._db()
        recovered: list[str] = []
        self._last_recovery = time.monotonic()
        if at_start:
            recovered += tracker.recover_stale_claims(worker_id=self.worker_id)
        host = socket.gethostname()
        for row in tracker.get_volumes_by_status("processing", radar_code=self.config.radar):
            owner = str(row.get("claimed_by") or "")
            parts = owner.split(":")
            if len(parts) >= 2 and parts[0] == host and parts[1].isdigit():
                pid = int(parts[1])
                if pid != os.getpid() and not pid_alive(pid):
                    recovered += tracker.recover_stale_claims(worker_id=owner)
        recovered += tracker.recover_stale_claims(
            older_than=timedelta(seconds=self.config.stale_claim_seconds)
        )
        for volume_id in dict.fromkeys(recovered):
            log.warning(
                "volume %s: recovered an abandoned claim; back to pending",
                volume_id,
                extra={"volume_id": volume_id, "radar": self.config.radar},
            )
        self._counters["claims_recovered"] += len(set(recovered))

    # ------------------------------------------------------------------ one cycle

    async def _cycle(self) -> None:
        self._begin_cycle()
        now = self._clock()
        self._last_poll = format_iso(now)
        try:
            if self._unrecorded:
                await asyncio.to_thread(self._record_pending_outcomes)
            await asyncio.to_thread(self._sync_and_apply_policy, now)
            slots = self.config.max_concurrent_processing - len(self._in_flight)
            stopping = self._stop_event is not None and self._stop_event.is_set()
            if slots > 0 and not stopping:
                claimed = await asyncio.to_thread(
                    self._db().claim_volumes,
                    self.worker_id,
                    slots,
                    radar_code=self.config.radar,
                    now=now,
                )
                for row in claimed:
                    volume_id = str(row["volume_id"])
                    self._in_flight[volume_id] = asyncio.create_task(
                        self._convert_one(row), name=f"convert {volume_id}"
                    )
            self._db_stats = await asyncio.to_thread(self._query_db_stats, None)
        except Exception as exc:  # e.g. a locked or full database: transient, try next poll
            log.error(
                "processing cycle for radar %s failed; retrying next poll: %s",
                self.config.radar,
                exc if isinstance(exc, RadarlibError) else repr(exc),
                extra={"radar": self.config.radar},
            )
            log.debug("traceback of the failed cycle", exc_info=True)

    def _sync_and_apply_policy(self, now: datetime) -> None:
        """Blocking part of a cycle: register new files' volumes, time out incomplete ones."""
        tracker = self._db()
        radar = self.config.radar
        log.debug("scanning newly recorded files for radar %s", radar, extra={"radar": radar})
        ready = tracker.sync_volumes(self.config.volume_types, consumer=self._consumer)
        for volume_id in ready:
            if volume_id.startswith(radar + "_"):
                log.info(
                    "volume %s complete: ready to process",
                    volume_id,
                    extra={"volume_id": volume_id, "radar": radar},
                )
        for volume_id in tracker.requeue_repaired_volumes(radar):
            self._counters["volumes_repaired"] += 1
            log.info(
                "volume %s: a new copy of a field left out was downloaded; rewriting the volume",
                volume_id,
                extra={"volume_id": volume_id, "radar": radar},
            )
        cutoff = now - timedelta(hours=self.config.incomplete_timeout_hours)
        for row in tracker.get_incomplete_volumes(older_than=cutoff, radar_code=radar):
            if row.get("status") != "pending" or row.get("process_incomplete"):
                continue
            volume_id = str(row["volume_id"])
            missing = row.get("missing_fields") or "?"
            extra = {"volume_id": volume_id, "radar": radar}
            if self.config.allow_incomplete:
                tracker.allow_incomplete(volume_id)
                self._counters["volumes_allowed_incomplete"] += 1
                log.warning(
                    "volume %s still incomplete after %g h (missing %s): processing it with the "
                    "fields it has",
                    volume_id,
                    self.config.incomplete_timeout_hours,
                    missing,
                    extra=extra,
                )
            else:
                tracker.expire_incomplete(volume_id)
                self._counters["volumes_expired"] += 1
                log.warning(
                    "volume %s still incomplete after %g h (missing %s): expired (kept in the "
                    "database; allow_incomplete is off)",
                    volume_id,
                    self.config.incomplete_timeout_hours,
                    missing,
                    extra=extra,
                )
        period = min(_RECOVERY_PERIOD_SECONDS, 10 * self.config.poll_interval)
        if time.monotonic() - self._last_recovery >= period:
            self._recover()
            self._remove_orphan_temp_files()

    def _query_db_stats(self, tracker: SQLiteStateTracker | None) -> dict[str, Any]:
        """Queue figures of this radar from the database."""
        own = tracker is None and self._tracker is None
        if tracker is None:
            if self._tracker is not None:
                tracker = self._tracker
            else:
                from radarlib.state.sqlite import SQLiteStateTracker

                tracker = SQLiteStateTracker(self.config.state_db)
        try:
            radar = self.config.radar
            by_status = tracker.count_volumes_by_status(radar_code=radar)
            incomplete = tracker.get_incomplete_volumes(radar_code=radar)
            waiting = sum(1 for r in incomplete if r.get("status") == "pending")
            return {
                "volumes_by_status": by_status,
                "pending_volumes": int(by_status.get("pending", 0)),
                "complete_unprocessed": len(tracker.get_complete_unprocessed_volumes(radar)),
                "incomplete_volumes_detected": waiting + int(by_status.get("expired", 0)),
            }
        finally:
            if own:
                tracker.close()

    def _wake_signal(self) -> tuple[str | Path, float]:
        return self.config.state_db, self.config.poll_interval

    # ------------------------------------------------------------------ one volume

    def _job(self, row: Mapping[str, Any]) -> ConversionJob:
        volume_id = str(row["volume_id"])
        files: list[str] = []
        for entry in self._db().get_volume_files(volume_id):
            if entry.get("status", "downloaded") != "downloaded" or not entry.get("local_path"):
                continue
            path = Path(str(entry["local_path"]))
            if not path.is_absolute():
                path = self.config.local_bufr_dir / path
            files.append(str(path))
        if not files:
            raise FileNotFoundError(f"{volume_id}: no downloaded BUFR files are recorded")
        self._warn_unknown_fields(files)
        expected = _fields(row.get("expected_fields")) or None
        return ConversionJob(
            volume_id=volume_id,
            files=tuple(sorted(files)),
            output_dir=str(self._netcdf_folder(row)),
            expected_fields=expected,
            compression_level=self.config.compression_level,
            root_resources=None
            if self.config.root_resources is None
            else str(self.config.root_resources),
            converter=self._converter,
            on_bad_field=self.config.on_bad_field,
            output_formats=self.config.output_formats,
            max_decoded_mb_per_file=self.config.max_decoded_mb_per_file,
            max_decoded_mb_per_volume=self.config.max_decoded_mb_per_volume,
            qc=None if self.config.qc is None else dict(self.config.qc),
        )

    def _netcdf_folder(self, row: Mapping[str, Any]) -> Path:
        """The output folder of a volume: ``local_netcdf_dir`` with its time placeholders filled."""
        folder = self.config.local_netcdf_dir
        if not is_dated(folder):
            return folder
        dated = dated_folder(folder, parse_iso(str(row["observation_datetime"])))
        dated.mkdir(parents=True, exist_ok=True)
        return dated

    def _warn_unknown_fields(self, files: list[str]) -> None:
        """Warn once per field name that is not in the ODIM vocabulary (and record it)."""
        from radarlib.filename import BufrFileName
        from radarlib.vocabulary import FIELD_VOCABULARY

        for name in files:
            parsed = BufrFileName.try_parse(Path(name).name)
            if parsed is None or parsed.field in FIELD_VOCABULARY:
                continue
            if parsed.field in self._warned_fields:
                continue
            self._warned_fields.add(parsed.field)
            message = (
                f"file {parsed.name} has field {parsed.field!r}, which is not a field radarlib "
                f"knows ({', '.join(sorted(FIELD_VOCABULARY))}): it is written with units "
                f"'unknown'; check volume_types and the radar's output"
            )
            log.warning("%s", message, extra={"radar": self.config.radar})
            with contextlib.suppress(Exception):
                self._db().record_problem(self.config.radar, "unknown_field", parsed.field, message)

    async def _convert_one(self, row: Mapping[str, Any]) -> None:
        volume_id = str(row["volume_id"])
        attempt = int(row.get("attempts") or 1)
        extra = {"volume_id": volume_id, "radar": self.config.radar}
        pool = self._pool
        try:
            try:
                job = await asyncio.to_thread(self._job, row)
                log.info(
                    "volume %s: converting %d files (attempt %d of %d)",
                    volume_id,
                    len(job.files),
                    attempt,
                    self.config.max_attempts,
                    extra=extra,
                )
                if pool is None:
                    raise RuntimeError("the conversion pool is not running")
                outcome = await pool.convert(job)
            except asyncio.CancelledError:
                raise
            except ExecutorUnavailableError as exc:
                self._recording.add(volume_id)
                await asyncio.shield(asyncio.to_thread(self._release, volume_id, str(exc)))
                return
            except WorkerDiedError as exc:
                outcome = ConversionOutcome(
                    volume_id,
                    ok=False,
                    error_type="WorkerDiedError",
                    error=str(exc),
                    transient=exc.killed_from_outside,  # OOM killer, an operator: not the data
                )
            except Exception as exc:
                outcome = ConversionOutcome(
                    volume_id,
                    ok=False,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    error_traceback=_format_traceback(exc),
                )
            self._recording.add(volume_id)
            try:
                await asyncio.shield(asyncio.to_thread(self._record, row, outcome))
            except UnknownVolumeError:
                log.error("volume %s: no longer in the database; outcome dropped", volume_id)
            except StateError as exc:  # e.g. the database's disk is full: try again later
                self._unrecorded[volume_id] = (row, outcome)
                log.error(
                    "volume %s: could not record the outcome of its conversion (%s); will try "
                    "again each poll",
                    volume_id,
                    exc,
                    extra=extra,
                )
        finally:
            self._recording.discard(volume_id)
            self._in_flight.pop(volume_id, None)
            self._task_ended()

    def _release(self, volume_id: str, reason: str) -> None:
        """Return a volume to pending without counting an attempt (no worker could take it)."""
        extra = {"volume_id": volume_id, "radar": self.config.radar}
        try:
            self._db().release_volume(volume_id, self.worker_id)
        except Exception:
            log.exception("volume %s: could not return it to pending", volume_id, extra=extra)
            return
        self._counters["volumes_released"] += 1
        log.error("volume %s: returned to pending: %s", volume_id, reason, extra=extra)

    def _record(self, row: Mapping[str, Any], outcome: ConversionOutcome) -> None:
        """Write the outcome of one conversion to the database (blocking)."""
        tracker = self._db()
        volume_id = outcome.volume_id
        extra = {"volume_id": volume_id, "radar": self.config.radar}
        if outcome.ok and outcome.netcdf_path:
            tracker.finish_volume(
                volume_id,
                self.worker_id,
                outcome.netcdf_path,
                missing_fields=outcome.missing_fields,
                bad_fields=outcome.bad_fields,
            )
            with contextlib.suppress(Exception):  # for the metrics only; never fails a volume
                record_conversion_seconds(tracker, volume_id, outcome.seconds)
            self._counters["volumes_processed"] += 1
            announce_ready(f"{self.config.state_db}#completed")  # wakes the product daemon
            note = f", missing {','.join(outcome.missing_fields)}" if outcome.missing_fields else ""
            log.info(
                "volume %s processed in %.2fs -> %s%s",
                volume_id,
                outcome.seconds,
                outcome.netcdf_path,
                note,
                extra=extra,
            )
            for field_name, _, error in outcome.bad_fields:
                self._counters["fields_dropped"] += 1
                log.warning(
                    "volume %s: field %s left out (on_bad_field = 'drop'); the volume is "
                    "rewritten when a new copy of the file is downloaded: %s",
                    volume_id,
                    field_name,
                    error,
                    extra=extra,
                )
            for warning in outcome.warnings:
                log.warning("volume %s: %s", volume_id, warning, extra=extra)
            return
        message = outcome.error_message
        if volume_id not in message:
            message = f"{volume_id}: {message}"
        if outcome.error_traceback:
            log.debug(
                "volume %s: traceback of the failure:\n%s",
                volume_id,
                outcome.error_traceback,
                extra=extra,
            )
        if outcome.transient:
            retry_at = self._clock() + self.config.retry_delay(1)
            tracker.defer_volume(volume_id, self.worker_id, message, retry_at=retry_at)
            self._counters["transient_failures"] += 1
            log.error(
                "volume %s: not converted, not the volume's fault (attempt not counted); retry "
                "at %s: %s",
                volume_id,
                format_iso(retry_at),
                message,
                extra=extra,
            )
            return
        attempts = min(int(row.get("attempts") or 1), self.config.max_attempts)
        self._counters["conversion_errors"] += 1
        if attempts < self.config.max_attempts:
            retry_at = self._clock() + self.config.retry_delay(attempts)
            tracker.fail_volume(volume_id, self.worker_id, message, retry_at=retry_at)
            self._counters["retries_scheduled"] += 1
            log.error(
                "volume %s: conversion failed (attempt %d of %d), retry at %s: %s",
                volume_id,
                attempts,
                self.config.max_attempts,
                format_iso(retry_at),
                message,
                extra=extra,
            )
        else:
            tracker.fail_volume(volume_id, self.worker_id, message, retry_at=None)
            self._counters["volumes_failed"] += 1
            log.error(
                "volume %s: conversion failed after %d attempts, marked failed; once the cause "
                "is fixed, retry it with: radarlib reprocess --status failed --volume %s "
                "--db %s: %s",
                volume_id,
                attempts,
                volume_id,
                shlex.quote(str(self.config.state_db)),
                message,
                extra=extra,
            )

    def _record_pending_outcomes(self) -> None:
        """Record outcomes that could not be written before (e.g. the database's disk was full)."""
        for volume_id, (row, outcome) in list(self._unrecorded.items()):
            try:
                self._record(row, outcome)
            except UnknownVolumeError:
                del self._unrecorded[volume_id]
            except StateError as exc:
                if "not claimed" in str(exc):  # recovered meanwhile: it is pending again
                    del self._unrecorded[volume_id]
                    continue
                raise
            else:
                del self._unrecorded[volume_id]
                log.info(
                    "volume %s: outcome recorded after the database recovered",
                    volume_id,
                    extra={"volume_id": volume_id, "radar": self.config.radar},
                )

    # ------------------------------------------------------------------ shutdown

    async def _drain(self) -> None:
        """Let running conversions finish within the grace period, else return them to pending."""
        pool, self._pool = self._pool, None
        self._worker_restarts += pool.restarts if pool is not None else 0
        tasks = dict(self._in_flight)
        if tasks:
            log.info(
                "stopping: waiting up to %gs for %d running conversions",
                self.config.shutdown_grace_seconds,
                len(tasks),
                extra={"radar": self.config.radar},
            )
            await asyncio.wait(tasks.values(), timeout=self.config.shutdown_grace_seconds)
        abandoned = {v: t for v, t in tasks.items() if not t.done() and v not in self._recording}
        for task in abandoned.values():
            task.cancel()
        if abandoned:
            await asyncio.gather(*abandoned.values(), return_exceptions=True)
        if pool is not None:
            await pool.close(abandon=bool(abandoned))
            if abandoned:
                await asyncio.to_thread(self._remove_orphan_temp_files)
        # conversions that were already recording when the grace ended: let them finish
        rest = [t for t in tasks.values() if not t.done()]
        if rest:
            await asyncio.gather(*rest, return_exceptions=True)
        if self._unrecorded:  # last chance; else recovered at the next start (not counted)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._record_pending_outcomes)
        for volume_id in abandoned:
            try:
                await asyncio.to_thread(self._db().release_volume, volume_id, self.worker_id)
                self._counters["volumes_released"] += 1
                log.warning(
                    "volume %s: conversion interrupted by shutdown; returned to pending",
                    volume_id,
                    extra={"volume_id": volume_id, "radar": self.config.radar},
                )
            except Exception:
                log.exception(
                    "volume %s: could not return it to pending; it will be recovered at the next "
                    "start",
                    volume_id,
                    extra={"volume_id": volume_id, "radar": self.config.radar},
                )


def _format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
