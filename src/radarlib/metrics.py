"""Prometheus metrics of the pipeline, computed from the state database(s) at scrape time.

A custom collector (:class:`StateCollector`) reads the state databases on every scrape, so
the figures are the same whichever process serves them: the dashboard (``/metrics``) or
``radarlib run`` itself (``[metrics] listen``). Uses the official ``prometheus_client``.
Freshness, volumes per status, queue depth and failures are read at every scrape (index
lookups); totals that scan every row of a radar (files and bytes downloaded, the conversion
histogram, archive bytes) are re-read at most every minute (NetCDF sizes every 5 minutes).

Metric families (label ``radar``; ``status``/``kind`` where said):

- ``radarlib_files_downloaded_total``, ``radarlib_bytes_downloaded_total`` (counters)
- ``radarlib_download_failures`` (files whose download currently failed)
- ``radarlib_volumes{status}`` (pending, processing, completed, failed, expired) and
  ``radarlib_volumes_incomplete`` (pending, still missing fields)
- ``radarlib_conversion_duration_seconds`` (histogram of successful conversions)
- ``radarlib_newest_observation_timestamp_seconds`` and
  ``radarlib_newest_observation_age_seconds`` (freshness: what to alert on)
- ``radarlib_queue_depth`` (volumes ready to convert)
- ``radarlib_archive_bytes{kind}`` (bufr, netcdf: files on disk not deleted by retention)
- ``radarlib_state_db_up{path}`` (1 when the database answered)

Example alert rule (Prometheus): radar data older than 15 minutes::

    - alert: RadarDataStale
      expr: radarlib_newest_observation_age_seconds > 900
      for: 5m
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from radarlib.config import Config

__all__ = [
    "BUCKETS",
    "MetricsServer",
    "StateCollector",
    "make_registry",
    "render",
    "serve_metrics",
]

log = logging.getLogger("radarlib.metrics")

#: conversion duration buckets, seconds
BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
#: NetCDF sizes are read from disk; re-read at most this often (seconds)
_SIZE_CACHE_SECONDS = 300.0
#: totals over every row of a radar (downloads, bytes, conversion histogram): at most this often
_TOTALS_CACHE_SECONDS = 60.0

Target = tuple[Path, Sequence[str] | None]


class StateCollector(Collector):
    """Collects the metric families of the module doc from ``targets`` at each scrape."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = [(Path(db), None if r is None else list(r)) for db, r in targets]
        self._sizes: dict[tuple[str, str], tuple[float, int]] = {}
        self._totals: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _netcdf_bytes(self, conn: Any, db: Path, radar: str) -> int:
        key = (str(db), radar)
        cached = self._sizes.get(key)
        if cached is not None and time.monotonic() - cached[0] < _SIZE_CACHE_SECONDS:
            return cached[1]
        total = 0
        for (path,) in conn.execute(
            "SELECT netcdf_path FROM volume_processing WHERE radar_code = ?"
            " AND netcdf_path IS NOT NULL AND netcdf_deleted_at IS NULL",
            (radar,),
        ):
            try:
                total += os.stat(path).st_size
            except OSError:
                continue
        self._sizes[key] = (time.monotonic(), total)
        return total

    @staticmethod
    def _live(tracker: Any, radar: str) -> dict[str, Any]:
        """The figures read at every scrape (index-backed: cheap on a year of data)."""
        from radarlib.state.records import VOLUME_STATUSES

        counts = dict.fromkeys(VOLUME_STATUSES, 0)
        with tracker._use() as conn:
            for status, number in conn.execute(
                "SELECT status, COUNT(*) FROM volume_processing WHERE radar_code = ?"
                " GROUP BY status",
                (radar,),
            ):
                counts[str(status)] = int(number)
            waiting, ready = conn.execute(
                "SELECT SUM(is_complete = 0 AND process_incomplete = 0),"
                " SUM(is_complete = 1 OR process_incomplete = 1) FROM volume_processing"
                " WHERE status = 'pending' AND radar_code = ?",
                (radar,),
            ).fetchone()
            (failed,) = conn.execute(
                "SELECT COUNT(*) FROM downloads WHERE radar_code = ? AND status = 'failed'",
                (radar,),
            ).fetchone()
        return {
            "volumes": counts,
            "waiting": int(waiting or 0),
            "ready": int(ready or 0),
            "failed": int(failed or 0),
            "newest": tracker.latest_observation(radar),
        }

    def _heavy(self, tracker: Any, db: Path, radar: str) -> dict[str, Any]:
        """Totals over every row of the radar (table scans), re-read at most every minute."""
        key = (str(db), radar)
        cached = self._totals.get(key)
        if cached is not None and time.monotonic() - cached[0] < _TOTALS_CACHE_SECONDS:
            return cached[1]
        bucket_sql = ", ".join(f"SUM(conversion_seconds <= {b})" for b in BUCKETS)  # constants
        with tracker._use() as conn:
            count, size, kept = conn.execute(
                "SELECT COUNT(*), SUM(file_size),"
                " SUM(CASE WHEN deleted_at IS NULL THEN file_size END)"
                " FROM downloads WHERE radar_code = ? AND status = 'downloaded'",
                (radar,),
            ).fetchone()
            row = conn.execute(
                f"SELECT {bucket_sql}, COUNT(conversion_seconds), SUM(conversion_seconds)"
                " FROM volume_processing WHERE radar_code = ?",
                (radar,),
            ).fetchone()
            netcdf = self._netcdf_bytes(conn, db, radar)
        total = int(row[len(BUCKETS)] or 0)
        figures = {
            "files": int(count or 0),
            "bytes": int(size or 0),
            "bufr_kept": int(kept or 0),
            "netcdf_kept": netcdf,
            "buckets": [(str(b), int(row[i] or 0)) for i, b in enumerate(BUCKETS)]
            + [("+Inf", total)],
            "seconds": float(row[len(BUCKETS) + 1] or 0.0),
        }
        self._totals[key] = (time.monotonic(), figures)
        return figures

    def collect(self) -> Iterator[Any]:
        from radarlib.state.sqlite import SQLiteStateTracker
        from radarlib.status import require_database

        files = CounterMetricFamily(
            "radarlib_files_downloaded", "BUFR files downloaded", labels=["radar"]
        )
        volume_bytes = CounterMetricFamily(
            "radarlib_bytes_downloaded", "bytes of BUFR files downloaded", labels=["radar"]
        )
        failures = GaugeMetricFamily(
            "radarlib_download_failures", "files whose download failed (retried later)",
            labels=["radar"],
        )  # fmt: skip
        volumes = GaugeMetricFamily(
            "radarlib_volumes", "volumes per processing status", labels=["radar", "status"]
        )
        incomplete = GaugeMetricFamily(
            "radarlib_volumes_incomplete", "pending volumes still missing fields", labels=["radar"]
        )
        duration = HistogramMetricFamily(
            "radarlib_conversion_duration_seconds", "duration of successful conversions",
            labels=["radar"],
        )  # fmt: skip
        newest = GaugeMetricFamily(
            "radarlib_newest_observation_timestamp_seconds",
            "observation time of the newest downloaded file (Unix time)", labels=["radar"],
        )  # fmt: skip
        age = GaugeMetricFamily(
            "radarlib_newest_observation_age_seconds",
            "age of the newest downloaded observation at scrape time", labels=["radar"],
        )  # fmt: skip
        queue = GaugeMetricFamily(
            "radarlib_queue_depth", "volumes ready to convert", labels=["radar"]
        )
        archive = GaugeMetricFamily(
            "radarlib_archive_bytes", "archive files on disk (not deleted by retention)",
            labels=["radar", "kind"],
        )  # fmt: skip
        up = GaugeMetricFamily(
            "radarlib_state_db_up", "1 when the state database answered", labels=["path"]
        )
        now = datetime.now(timezone.utc)
        with self._lock:
            for db, radars in self.targets:
                try:
                    require_database(db)
                    with SQLiteStateTracker(db, timeout=5.0) as tracker:
                        codes = list(radars) if radars else tracker.radar_codes()
                        figures = [
                            (radar, self._live(tracker, radar), self._heavy(tracker, db, radar))
                            for radar in codes
                        ]
                    for radar, live, heavy in figures:
                        failures.add_metric([radar], live["failed"])
                        if live["newest"] is not None:
                            newest.add_metric([radar], live["newest"].timestamp())
                            age.add_metric([radar], (now - live["newest"]).total_seconds())
                        for status, number in live["volumes"].items():
                            volumes.add_metric([radar, status], number)
                        incomplete.add_metric([radar], live["waiting"])
                        queue.add_metric([radar], live["ready"])
                        files.add_metric([radar], heavy["files"])
                        volume_bytes.add_metric([radar], heavy["bytes"])
                        duration.add_metric([radar], heavy["buckets"], sum_value=heavy["seconds"])
                        archive.add_metric([radar, "bufr"], heavy["bufr_kept"])
                        archive.add_metric([radar, "netcdf"], heavy["netcdf_kept"])
                    up.add_metric([str(db)], 1)
                except Exception as exc:  # one bad database must not break the scrape
                    log.warning("metrics: cannot read %s: %s", db, exc)
                    up.add_metric([str(db)], 0)
        yield from (files, volume_bytes, failures, volumes, incomplete, duration)
        yield from (newest, age, queue, archive, up)


def make_registry(targets: Sequence[Target]) -> CollectorRegistry:
    """A registry holding only the state collector of ``targets``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(targets))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)


class MetricsServer:
    """prometheus_client's HTTP server in its thread; :meth:`stop` closes it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def config_targets(config: Config) -> list[Target]:
    """(database, radars) of every radar of ``config``."""
    grouped: dict[Path, list[str]] = {}
    for radar in config.radars:
        grouped.setdefault(config.state_db(radar.code), []).append(radar.code)
    return list(grouped.items())


def serve_metrics(config: Config, host: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` of ``config``'s databases on ``host:port`` (0: a free port)."""
    registry = make_registry(config_targets(config))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)
