"""Atomic output: a file or a directory store appears under its final name only when complete.

Same rule as :func:`radarlib.cfradial.write_cfradial`: write to a hidden temporary next to
the target, fsync, rename over the target, fsync the folder. A crash leaves at most a
``.<name>.<pid>.<random>.tmp`` entry, never a partial ``<name>``::

    with atomic_file(Path("out/x.h5")) as tmp:
        write(tmp)

A directory (a Zarr store) cannot replace a non-empty directory in one rename: the old
store is first renamed aside (``.<name>.<pid>.<random>.old``), the new one renamed in, the
old one deleted. Between those two renames (microseconds) the name is absent, never partial.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from radarlib.cfradial import temporary_path
from radarlib.durability import fsync_path

__all__ = ["atomic_dir", "atomic_file"]


@contextmanager
def atomic_file(final: Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``final`` (fsynced), else it is removed."""
    tmp = temporary_path(final)
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_path(final.parent, directory=True)


def _fsync_tree(root: Path) -> None:
    """Make every file of a store durable (fsync each), then its folders, deepest first."""
    folders: list[Path] = []
    for top, _dirs, names in os.walk(root):
        folders.append(Path(top))
        for name in names:
            fsync_path(Path(top) / name)
    for one in reversed(folders):
        fsync_path(one, directory=True)


@contextmanager
def atomic_dir(final: Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary directory path; on success it replaces the directory ``final``."""
    tmp = temporary_path(final)
    try:
        yield tmp
        if fsync:
            _fsync_tree(tmp)
        old = None
        if final.exists():
            old = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if fsync:
        fsync_path(final.parent, directory=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
