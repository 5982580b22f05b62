"""Retention: delete old archive files per radar and kind, keeping their record in the database.

>>> report = run_cleanup(load_config("radarlib.toml"), dry_run=True)    # doctest: +SKIP
>>> report.summary()                                                     # doctest: +SKIP
{'RMA1/bufr': {'files': 1200, 'bytes': 3.1e9}, ...}

Rules (``[retention]``, see :mod:`radarlib.ops_config`): per radar and per kind (``bufr``,
``netcdf``, ``products``), ``keep_days`` deletes what was observed longer ago, ``max_gb`` deletes
the oldest until the kind fits its budget. Safety: a BUFR file goes only once its volume's
NetCDF was written (``completed``), or by age when its volume ended ``failed``/``expired``;
BUFR files of volumes still waiting or retrying are never touched, whatever the budget.

Crash safety: files are deleted first and recorded after, in batches (one transaction per
batch). A cleanup killed in between leaves files gone whose rows are not yet marked; the next
run selects them again, finds them absent and marks them, so the database ends consistent.
Rows are never removed: ``downloads.deleted_at`` / ``volume_processing.netcdf_deleted_at``
say when the file went (a deleted BUFR file is never downloaded again). Products have no rows
(they are files under ``retention.products_dir``, judged by modification time). In a dated archive,
empty folders under a kind's base folder are removed (not those of the last 48 hours, which
the daemons may be writing into). One cleanup at a time per
state database (an advisory ``flock`` on ``<state_db>.cleanup.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radarlib.archive import base_folder, fill_static, is_dated, recent_folders
from radarlib.errors import RadarlibError
from radarlib.filename import format_iso
from radarlib.ops_config import KINDS, KeepRule
from radarlib.state.ops_rows import (
    TERMINAL_UNCONVERTED,
    StoredFile,
    bufr_files,
    kept_totals,
    mark_bufr_deleted,
    mark_netcdf_deleted,
    netcdf_files,
)

if TYPE_CHECKING:
    from radarlib.config import Config
    from radarlib.state.sqlite import SQLiteStateTracker

__all__ = ["BATCH", "CleanupBusyError", "CleanupReport", "KindReport", "run_cleanup"]

log = logging.getLogger("radarlib.retention")

#: files deleted between two database commits
BATCH = 50
_GB = 1024**3


class CleanupBusyError(RadarlibError):
    """Another cleanup holds the lock of this state database."""


@dataclass
class KindReport:
    """What cleanup did (or would do) to one kind of file of one radar."""

    radar: str
    kind: str
    rule: KeepRule
    files_kept: int = 0
    #: None when not measured (NetCDF sizes are read from disk only under a ``max_gb`` rule)
    bytes_kept: int | None = 0
    files_deleted: int = 0
    bytes_deleted: int = 0
    #: BUFR files old enough or over budget, kept because their volume is not converted yet
    held_unconverted: int = 0
    deleted: list[str] = field(default_factory=list)

    @property
    def budget_bytes(self) -> int | None:
        """``max_gb`` in bytes (None: no budget)."""
        return None if self.rule.max_gb is None else int(self.rule.max_gb * _GB)

    @property
    def budget_percent(self) -> float | None:
        """Disk use after cleanup as a percentage of the budget (None: no budget)."""
        budget = self.budget_bytes
        return None if not budget or self.bytes_kept is None else 100.0 * self.bytes_kept / budget


@dataclass
class CleanupReport:
    """One cleanup pass over the radars of a config."""

    dry_run: bool
    started_at: str
    kinds: list[KindReport] = field(default_factory=list)
    folders_removed: int = 0
    interrupted: bool = False

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{"RMA1/bufr": {...}}``, JSON-ready."""
        return {
            f"{k.radar}/{k.kind}": {
                "files_deleted": k.files_deleted,
                "bytes_deleted": k.bytes_deleted,
                "files_kept": k.files_kept,
                "bytes_kept": k.bytes_kept,
                "held_unconverted": k.held_unconverted,
                "keep_days": k.rule.keep_days,
                "max_gb": k.rule.max_gb,
                "budget_percent": None if k.budget_percent is None else round(k.budget_percent, 1),
            }
            for k in self.kinds
        }


@contextlib.contextmanager
def _exclusive(db_path: Path) -> Iterator[None]:
    lock_path = db_path.with_name(db_path.name + ".cleanup.lock")
    if not lock_path.parent.is_dir():  # no database folder: nothing to clean there
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CleanupBusyError(f"{db_path}: another cleanup is running") from None
        yield
    finally:
        os.close(fd)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _select(
    files: Sequence[StoredFile],
    sizes: Sequence[int],
    rule: KeepRule,
    now: datetime,
    report: KindReport,
    *,
    bufr: bool,
) -> list[int]:
    """Indexes of ``files`` (oldest first) to delete under ``rule``; fills the kept figures."""
    chosen: set[int] = set()
    held: set[int] = set()
    if rule.keep_days is not None:
        cutoff = format_iso(now - timedelta(days=rule.keep_days))
        for i, item in enumerate(files):
            if item.observation >= cutoff:
                break
            if not bufr or item.converted or item.volume_status in TERMINAL_UNCONVERTED:
                chosen.add(i)
            else:
                held.add(i)
    budget = report.budget_bytes
    if budget is not None:
        total = sum(size for i, size in enumerate(sizes) if i not in chosen)
        for i, item in enumerate(files):
            if total <= budget:
                break
            if i in chosen:
                continue
            if bufr and not item.converted:
                held.add(i)
                continue
            chosen.add(i)
            total -= sizes[i]
    report.held_unconverted = len(held - chosen) if bufr else 0
    return sorted(chosen)


class _Deleter:
    """Unlinks files at a bounded pace; remembers the base folders to sweep afterwards."""

    def __init__(self, rate: float, stop: threading.Event | None) -> None:
        self.pause = 1.0 / rate if rate > 0 else 0.0
        self.stop = stop
        #: base folder -> folders it must keep (those of the last two days: in use)
        self.bases: dict[Path, set[Path]] = {}

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def unlink(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # gone already: a killed earlier run
            Path(path).unlink()
        if self.pause:
            time.sleep(self.pause)

    def watch(self, folder: Path, now: datetime) -> None:
        """Sweep ``folder``'s base for empty sub-folders at the end (dated archives only)."""
        if not is_dated(folder):
            return
        keep = self.bases.setdefault(base_folder(folder), set())
        for recent in recent_folders(folder, now, hours=48):
            keep.update([recent, *recent.parents])

    def remove_empty_folders(self) -> int:
        """Remove the empty folders under each base (never the base, never a recent one).

        A walk of the whole base, not only of the folders this run emptied, so that folders
        emptied by a cleanup killed before this step are removed too.
        """
        removed = 0
        for base, keep in self.bases.items():
            for folder, _dirs, names in os.walk(base, topdown=False):
                path = Path(folder)
                if names or path == base or path in keep:
                    continue
                with contextlib.suppress(OSError):  # not empty: a sub-folder was kept
                    path.rmdir()
                    removed += 1
        self.bases.clear()
        return removed


def _delete_rows(
    tracker: SQLiteStateTracker,
    files: Sequence[StoredFile],
    sizes: Sequence[int],
    chosen: Sequence[int],
    report: KindReport,
    deleter: _Deleter,
    *,
    dry_run: bool,
) -> None:
    mark = mark_bufr_deleted if report.kind == "bufr" else mark_netcdf_deleted
    for start in range(0, len(chosen), BATCH):
        if deleter.stopped():
            break
        batch = chosen[start : start + BATCH]
        if not dry_run:
            for i in batch:
                deleter.unlink(files[i].path)
            mark(tracker, [files[i].key for i in batch], format_iso(datetime.now(timezone.utc)))
        for i in batch:
            report.files_deleted += 1
            report.bytes_deleted += sizes[i]
            report.deleted.append(files[i].path)


def _product_files(base: Path) -> tuple[list[StoredFile], list[int]]:
    entries: list[tuple[float, str, int]] = []
    if base.is_dir():
        for folder, _dirs, names in os.walk(base):
            for name in names:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    entries.append((st.st_mtime, path, st.st_size))
    entries.sort()
    files = [
        StoredFile(p, p, s, format_iso(datetime.fromtimestamp(m, timezone.utc)), "completed", True)
        for m, p, s in entries
    ]
    return files, [s for _, _, s in entries]


def _clean_radar(
    config: Config,
    tracker: SQLiteStateTracker | None,
    radar: str,
    now: datetime,
    report: CleanupReport,
    deleter: _Deleter,
) -> None:
    settings = config.operations.retention
    for kind in KINDS:
        rule: KeepRule = settings.rule(radar, kind)
        if not rule.active:
            continue
        kind_report = KindReport(radar, kind, rule)
        report.kinds.append(kind_report)
        if kind == "products":
            template = fill_static(settings.products_dir, root=config.paths.root, radar=radar)
            folder = Path(template).expanduser().resolve()
            files, sizes = _product_files(base_folder(folder))
        else:
            # with an age rule only, the files observed before its cutoff are all it needs
            before = None
            if rule.max_gb is None and rule.keep_days is not None:
                before = format_iso(now - timedelta(days=rule.keep_days))
            if tracker is None:
                files = []
            elif kind == "bufr":
                files = bufr_files(tracker, radar, before=before)
            else:
                files = netcdf_files(tracker, radar, before=before)
            folder = config.bufr_dir(radar) if kind == "bufr" else config.netcdf_dir(radar)
            sizes = [f.size if f.size is not None else _size(f.path) for f in files]
        deleter.watch(folder, now)
        chosen = _select(files, sizes, rule, now, kind_report, bufr=kind == "bufr")
        if kind == "products":
            for i in chosen:
                if deleter.stopped():
                    break
                if not report.dry_run:
                    deleter.unlink(files[i].path)
                kind_report.files_deleted += 1
                kind_report.bytes_deleted += sizes[i]
                kind_report.deleted.append(files[i].path)
        elif tracker is not None:
            _delete_rows(
                tracker, files, sizes, chosen, kind_report, deleter, dry_run=report.dry_run
            )
        kind_report.files_kept = len(files) - kind_report.files_deleted
        kind_report.bytes_kept = sum(sizes) - kind_report.bytes_deleted
        if kind != "products" and tracker is not None and rule.max_gb is None:
            files_kept, bytes_kept = kept_totals(tracker, radar, kind)
            pending = kind_report.files_deleted if report.dry_run else 0
            kind_report.files_kept = files_kept - pending
            kind_report.bytes_kept = (
                None if bytes_kept is None else bytes_kept - (kind_report.bytes_deleted
                                                              if report.dry_run else 0)
            )  # fmt: skip
        if kind_report.files_deleted or kind_report.held_unconverted:
            log.info(
                "retention %s %s: %s %d files (%.1f MB), kept %d%s",
                radar,
                kind,
                "would delete" if report.dry_run else "deleted",
                kind_report.files_deleted,
                kind_report.bytes_deleted / 1e6,
                kind_report.files_kept,
                f", {kind_report.held_unconverted} held until converted"
                if kind_report.held_unconverted
                else "",
                extra={"radar": radar},
            )


def run_cleanup(
    config: Config,
    *,
    dry_run: bool = False,
    radars: Sequence[str] | None = None,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> CleanupReport:
    """Apply ``config``'s retention rules to its radars (blocking: run it off the event loop).

    ``dry_run`` deletes and records nothing and reports what would go. ``stop`` ends the pass
    between batches (what was deleted so far is recorded).

    Raises:
        CleanupBusyError: another cleanup is running on one of the state databases.
        StateError: a state database cannot be used.
    """
    from radarlib.state.sqlite import SQLiteStateTracker

    moment = now or datetime.now(timezone.utc)
    report = CleanupReport(dry_run=dry_run, started_at=format_iso(moment))
    codes = list(radars) if radars else [r.code for r in config.radars]
    by_db: dict[Path, list[str]] = {}
    for code in codes:
        config.radar(code)
        by_db.setdefault(config.state_db(code), []).append(code)
    deleter = _Deleter(config.operations.retention.max_deletes_per_second, stop)
    for db, members in by_db.items():
        with _exclusive(db), contextlib.ExitStack() as stack:
            # no database yet: nothing recorded to delete (products only); never create one
            tracker = stack.enter_context(SQLiteStateTracker(db)) if db.is_file() else None
            for code in members:
                if deleter.stopped():
                    break
                _clean_radar(config, tracker, code, moment, report, deleter)
        if not dry_run:
            report.folders_removed += deleter.remove_empty_folders()
    report.interrupted = deleter.stopped()
    return report
