"""Making written files durable before they are recorded: fsync of files and folders.

>>> fsync_path(Path("downloads/.x.part"))    # doctest: +SKIP
>>> sync_folder(Path("downloads"))            # doctest: +SKIP

A file is renamed into place only after its fsync, and the rename is made durable by an
fsync of its folder, so a final name never points at a file a crash could leave empty.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["fsync_path", "sync_folder"]


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
