"""Listing a radar's remote tree: which folders a poll lists, and what it finds there.

:class:`RemoteLister` is the download daemon's eyes. Each poll lists the hour folders from the
resume point to now, newest first, and their ``MMSS`` folders, as streams; every wanted file
is recorded in the state database and the files due now go to the workers (``offer``). A poll
also takes rescan requests (:func:`request_rescan`), lists again the folders of short files,
and a slice of the deep rescan. Each bad name a server sends is logged once per run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from radarlib.errors import RemoteFileError
from radarlib.filename import BufrFileName, format_iso, parse_iso
from radarlib.io.ftp.client import FTPClient
from radarlib.pipeline import scan
from radarlib.state.remote_files import ListedFile, RemoteFile
from radarlib.volume_types import expected_fields

if TYPE_CHECKING:
    from radarlib.pipeline.download import DateBasedDaemonConfig
    from radarlib.state.sqlite import SQLiteStateTracker

__all__ = ["BadNames", "RemoteLister", "daemon_key", "request_rescan"]

logger = logging.getLogger("radarlib.pipeline.download")

_MAX_NAME = 255
_MAX_WARNED = 1000  # distinct bad names warned about per run; counted after that


def _shown(text: str) -> str:
    """A server-sent name for a log line: quoted, and cut if it is long."""
    return repr(text) if len(text) <= 80 else f"{text[:80]!r}… ({len(text)} characters)"


@dataclass
class BadNames:
    """One WARNING per distinct problem per run; past :data:`_MAX_WARNED`, only a count."""

    keys: set[str] = field(default_factory=set)
    count: int = 0

    def warn(self, key: str, message: str, *args: object) -> None:
        self.count += 1
        if key in self.keys or len(self.keys) >= _MAX_WARNED:
            return
        self.keys.add(key)
        logger.warning(message, *args)
        if len(self.keys) == _MAX_WARNED:
            logger.warning("more bad names follow; they are only counted (get_stats)")


@dataclass
class RemoteLister:
    """Lists one radar's remote tree for one run of a download daemon (see the module docstring).

    ``key`` names the daemon's checkpoints (radar, server and base path); ``offer`` takes the
    files due now; ``clock`` is the daemon's clock; ``start`` and ``end`` bound the run, and
    ``relist`` lists that whole period once, ignoring (and keeping) the scan position.
    """

    config: DateBasedDaemonConfig
    db: SQLiteStateTracker
    key: str
    offer: Callable[[list[RemoteFile]], None]
    clock: Callable[[], datetime]
    start: datetime | None = None
    end: datetime | None = None
    relist: bool = False
    warnings: BadNames = field(default_factory=BadNames)
    resume: datetime | None = None  # the first hour the next poll lists
    coverage: scan.Coverage | None = None
    polls: int = 0
    rescanned_hours: int = 0
    last_poll_time: datetime | None = None

    async def load_resume_point(self) -> None:
        """Where the first poll starts: from the stored coverage, the start date, or the DB."""
        if self.relist:
            self.resume = scan.floor_hour(self.start or self.clock())
            return

        def read() -> tuple[scan.Coverage | None, datetime | None]:
            coverage = scan.Coverage.parse(self.db.get_checkpoint(f"ftp-scan:{self.key}"))
            if self.start is not None or coverage is not None:
                return coverage, None
            return coverage, self.db.latest_observation(self.config.radar_code)

        self.coverage, latest = await asyncio.to_thread(read)
        self.resume = scan.resume_point(
            coverage=self.coverage,
            start=self.start,
            latest_observation=latest,
            now=self.clock(),
            lookback=self.config.lookback,
        )

    async def poll(self, client: FTPClient, now: datetime) -> bool:
        """List what matters now; True when the whole ``[start, end]`` has been listed."""
        c, db, start, end = self.config, self.db, self.start, self.end
        self.polls += 1
        self.last_poll_time = now
        resume = self.resume if self.resume is not None else scan.floor_hour(now)
        recent = scan.hours_to_list(resume=resume, now=now, end=end)
        for hour in reversed(recent):  # newest first: fresh files have the shortest wait
            await self.scan_hour(client, hour, start, end)
        if self.relist:
            return True  # the whole period, once
        closed = [h for h in recent if scan.is_closed(h, now, c.lookback) and self._inside(h)]
        coverage = scan.advance_coverage(self.coverage, resume, closed)
        if coverage is not None and coverage != self.coverage:
            await asyncio.to_thread(db.set_checkpoint, f"ftp-scan:{self.key}", coverage.format())
            self.coverage, self.resume = coverage, coverage.through
        for since, until in await asyncio.to_thread(self._take_requests):
            logger.info("rescanning %s from %s to %s (requested)", c.radar_code, since, until)
            await self._scan_hours(client, list(scan.iter_hours(since, until)), since, until)
        window = start if end is not None else now - timedelta(days=c.rescan_days)
        short = db.short_remote_folders  # the folders of short files: are they whole now?
        for path in await asyncio.to_thread(short, c.radar_code, start=window, end=end):
            await self.scan_folder(client, path, start, end)
        if end is None:
            await self._deep_rescan(client, now)
        return end is not None and now >= end  # this poll listed every hour up to the end

    def _inside(self, hour: datetime) -> bool:
        """The whole hour lies in ``[start, end]`` (only such hours may be skipped later)."""
        last = hour + scan.HOUR - timedelta(seconds=1)
        return all(scan.in_range(t, self.start, self.end) for t in (hour, last))

    async def _scan_hours(
        self, client: FTPClient, hours: list[datetime], start: datetime | None, end: datetime | None
    ) -> None:
        for hour in reversed(hours):
            await self.scan_hour(client, hour, start, end)
            self.rescanned_hours += 1

    async def _deep_rescan(self, client: FTPClient, now: datetime) -> None:
        """List this poll's slice of the older hours (``rescan_days`` back)."""
        c, db, key = self.config, self.db, f"ftp-rescan:{self.key}"
        cursor = scan.RescanCursor.parse(await asyncio.to_thread(db.get_checkpoint, key))
        newest = self.resume - scan.HOUR if self.resume is not None else scan.floor_hour(now)
        days, interval = c.rescan_days, c.rescan_interval
        hours, cursor = cursor.advance(
            now=now, newest=newest, days=days, interval=interval, poll=c.poll_interval
        )
        if hours:
            await self._scan_hours(client, hours, c.start_date, None)
        await asyncio.to_thread(db.set_checkpoint, key, cursor.format())

    def _take_requests(self) -> list[tuple[datetime, datetime]]:
        """The rescans asked for with :func:`request_rescan`, taken out of the database."""
        taken = self.db.take_checkpoints(f"ftp-rescan-request:{self.key}:")
        return [pair for _, value in taken if (pair := _parse_request(value)) is not None]

    async def scan_hour(
        self, client: FTPClient, hour: datetime, start: datetime | None, end: datetime | None
    ) -> None:
        """List one hour folder and its ``MMSS`` folders, newest first; offer what is due."""
        folder = scan.hour_dir(self.config.remote_base_path, self.config.radar_code, hour)
        subfolders = []
        for entry in await client.list_dir(folder) or []:
            name = entry.name
            if entry.is_dir and len(name) == 4 and name.isascii() and name.isdigit():
                subfolders.append(name)
            elif entry.is_dir:
                message = "ignoring folder %s in %s: not an MMSS folder"
                self.warnings.warn(f"{folder}/{name[:100]}", message, _shown(name), folder)
        for sub in sorted(subfolders, reverse=True):
            await self.scan_folder(client, f"{folder}/{sub}", start, end)

    async def scan_folder(
        self, client: FTPClient, path: str, start: datetime | None, end: datetime | None
    ) -> None:
        """List one ``MMSS`` folder, streaming: record what it shows, offer what is due."""
        batch: list[ListedFile] = []
        try:
            async for entry in client.iter_dir(path):
                name = None if entry.is_dir else self.accept(entry.name, path)
                if name is not None and scan.in_range(name.time, start, end):
                    batch.append(ListedFile(name, f"{path}/{entry.name}", entry.size))
                if len(batch) >= 500:
                    await self._observe(batch)
                    batch = []
        except RemoteFileError:
            return  # the folder went away meanwhile
        await self._observe(batch)

    async def _observe(self, batch: list[ListedFile]) -> None:
        if batch:
            self.offer(await asyncio.to_thread(self.db.observe_remote_files, batch))

    def accept(self, raw: str, folder: str) -> BufrFileName | None:
        """The parsed name of a wanted file, or None (bad names: one warning each per run)."""
        c, where = self.config, f"{folder}/{raw[:100]}"
        odd = len(raw) > _MAX_NAME or raw != raw.strip() or not raw.isprintable()
        if odd or ".." in raw or "/" in raw or "\\" in raw:  # no path may leave the folder
            self.warnings.warn(where, "ignoring hostile file name %s in %s", _shown(raw), folder)
            return None
        parsed = BufrFileName.try_parse(raw)
        if parsed is None or parsed.name != raw:
            self.warnings.warn(
                where,
                "ignoring %s in %s: not a <RADAR>_<STRATEGY>_<VOLNR>_<FIELD>_"
                "<YYYYMMDDTHHMMSSZ>.BUFR file name",
                _shown(raw),
                folder,
            )
            return None
        if parsed.radar != c.radar_code:
            logger.debug("skipping %s: radar %s is not %s", raw, parsed.radar, c.radar_code)
            return None
        fields = expected_fields(c.volume_types, parsed.strategy, parsed.volume_number)
        if fields is None or parsed.field not in fields:
            kind = f"{parsed.strategy}/{parsed.volume_number}"
            self.warnings.warn(
                f"volume type {kind}/{parsed.field}",
                "%s files of %s volume %s are on the server but not in volume_types "
                "(they are not downloaded), e.g. %s",
                parsed.field,
                parsed.radar,
                kind,
                raw,
            )
            return None
        return parsed


def daemon_key(config: DateBasedDaemonConfig) -> str:
    """What names a download daemon's checkpoints: radar, server and base path."""
    return f"{config.radar_code}@{config.host}:{config.port}{config.remote_base_path}"


def _parse_request(text: str) -> tuple[datetime, datetime] | None:
    """A stored ``since/until`` request; None if unreadable."""
    since, _, until = text.partition("/")
    try:
        return parse_iso(since), parse_iso(until)
    except ValueError:
        return None


def request_rescan(
    tracker: SQLiteStateTracker, config: DateBasedDaemonConfig, since: datetime, until: datetime
) -> None:
    """Ask the running download daemon of ``config`` to list ``[since, until]`` again; the
    request waits in the state database, and the daemon takes it at its next poll."""
    period = f"{format_iso(since)}/{format_iso(until)}"
    tracker.set_checkpoint(f"ftp-rescan-request:{daemon_key(config)}:{period}", period)
