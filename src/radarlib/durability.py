"""Making written files durable before they are recorded: fsync of files and folders.

>>> errors = sync_files([Path(".a.part"), Path(".b.part")])   # doctest: +SKIP
>>> sync_folder(Path("downloads"))                              # doctest: +SKIP

:func:`sync_files` makes a burst of files durable. On Linux 5.8 and later it calls
``syncfs(2)`` once per file system instead of ``fsync(2)`` once per file: one journal
commit for the whole burst instead of one per file, which is what lets a downloader that
records every file durably keep pace with one that does not (``benchmarks/README.md``).
``syncfs`` also writes back every other program's pending data on that file system, so
it is used only while little is pending system-wide besides the burst itself
(``Dirty`` + ``Writeback`` in ``/proc/meminfo`` at most :data:`SYNCFS_MAX_OTHER_PENDING`
bytes more than the burst): its cost stays bounded by our own files. Otherwise, and on
kernels before 5.8 (whose ``syncfs`` does not report write-back errors) or other systems,
each file is fsynced, the burst side by side so the file system can merge the commits.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = [
    "SYNCFS_MAX_OTHER_PENDING",
    "fsync_path",
    "sync_files",
    "sync_folder",
    "syncfs_available",
]

#: bytes of other pending write-back (system-wide) above which a burst is fsynced file by file
SYNCFS_MAX_OTHER_PENDING = 64 << 20

_FSYNC_POOL = ThreadPoolExecutor(8, thread_name_prefix="fsync")
_SYNCFS_ERRORS_SINCE = (5, 8)  # the kernel release from which syncfs reports write-back errors


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """fsync one file, or a folder (after a rename in it; skipped where folders can't be opened)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some platforms cannot open directories; the rename still happened
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so renames in it survive a crash; best effort (errors are ignored)."""
    with contextlib.suppress(OSError):
        fsync_path(folder, directory=True)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` on a Linux kernel that reports write-back errors through it."""
    if sys.platform != "linux":
        return None
    release = re.match(r"(\d+)\.(\d+)", platform.release())
    if release is None or tuple(map(int, release.groups())) < _SYNCFS_ERRORS_SINCE:
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def syncfs_available() -> bool:
    """True when :func:`sync_files` uses one ``syncfs`` per file system."""
    return _syncfs() is not None


def _fsync_one(path: Path) -> OSError | None:
    try:
        fsync_path(path)
    except OSError as exc:
        return exc
    return None


def _syncfs_at(function: Callable[[int], int], path: Path) -> OSError | None:
    """``syncfs`` of the file system holding ``path``; the error instead of raising it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return exc
    try:
        if function(fd) != 0:
            code = ctypes.get_errno()
            return OSError(code, f"syncfs: {os.strerror(code)}", str(path))
    finally:
        os.close(fd)
    return None


def _pending_writeback() -> int | None:
    """Bytes waiting for write-back system-wide (``Dirty`` + ``Writeback``); None if unknown."""
    try:
        with open("/proc/meminfo", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    kib = [int(line.split()[1]) for line in lines if line.startswith((b"Dirty:", b"Writeback:"))]
    return sum(kib) * 1024 if len(kib) == 2 else None


def _fsync_each(paths: Sequence[Path]) -> list[OSError | None]:
    if len(paths) == 1:
        return [_fsync_one(paths[0])]
    return list(_FSYNC_POOL.map(_fsync_one, paths))


def sync_files(paths: Sequence[Path]) -> list[OSError | None]:
    """Make every file of ``paths`` durable; per file, the error that prevented it (or None).

    With ``syncfs``, one call per file system covers its files; a failure there is the
    failure of each of them (the kernel does not say which file's write-back failed).
    """
    function = _syncfs()
    if function is None:
        return _fsync_each(paths)
    errors: list[OSError | None] = [None] * len(paths)
    by_device: dict[int, list[int]] = {}
    ours = 0
    for index, path in enumerate(paths):
        try:
            info = os.stat(path)
        except OSError as exc:
            errors[index] = exc
            continue
        by_device.setdefault(info.st_dev, []).append(index)
        ours += info.st_size
    pending = _pending_writeback()
    if pending is None or pending > ours + SYNCFS_MAX_OTHER_PENDING:
        return _fsync_each(paths)  # others' data would make syncfs slow: only ours
    for indices in by_device.values():
        error = _syncfs_at(function, paths[indices[0]])
        for index in indices:
            errors[index] = error
    return errors
