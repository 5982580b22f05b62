"""Making written files durable before they are recorded: fsync of files and folders.

>>> fsync_path(Path("downloads/.x.part"))    # doctest: +SKIP
>>> sync_folder(Path("downloads"))            # doctest: +SKIP

A file is renamed into place only after its fsync, and the rename is made durable by an
fsync of its folder, so a final name never points at a file a crash could leave empty.
:func:`atomic_file` does all of it for any writer::

    with atomic_file(Path("out/x.nc")) as tmp:
        write(tmp)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_file", "fsync_path", "sync_folder", "temporary_path"]


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


def temporary_path(path: Path) -> Path:
    """A unique hidden temporary name next to ``path`` (same directory, so rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_file(final: Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``final`` (fsynced), else it is removed."""
    tmp = temporary_path(final)
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_path(final.parent, directory=True)
