"""One owner per download folder and state database: an OS lock that dies with its process.

The lock is ``flock`` on a small file beside what it guards; the kernel releases it when the
process exits, however it exits (``kill -9`` included), so there is never a stale lock to clean
up. The file holds the owner's pid, for the message the second process gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from radarlib.errors import OwnershipError

__all__ = ["exclusive"]


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block;
    :class:`OwnershipError` naming the owner's pid if another live process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise OwnershipError(
                f"{what} already belongs to another running radarlib process (pid {owner}, "
                f"lock {path}); stop it first, or give this one its own folder and database"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
