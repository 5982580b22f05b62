"""In-process "volume ready" notifications between daemons sharing one state database.

The download daemon calls :func:`announce_ready` after recording the last field of a
volume; a processing daemon in the same process waiting in :func:`wait_for_ready` wakes at
once instead of at its next poll. Across processes nothing is shared: polling remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from pathlib import Path

__all__ = ["announce_ready", "wait_for_ready"]

# db key -> events of the waiters currently blocked on it (each bound to its own loop)
_waiters: defaultdict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)


def _key(db_path: str | os.PathLike[str]) -> str:
    return str(Path(db_path).resolve())


def announce_ready(db_path: str | os.PathLike[str]) -> None:
    """Wake every :func:`wait_for_ready` waiter on ``db_path``; safe from any thread."""
    for loop, event in list(_waiters.get(_key(db_path), ())):
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(event.set)


async def wait_for_ready(db_path: str | os.PathLike[str], timeout: float) -> bool:
    """Sleep up to ``timeout`` seconds; ``True`` if woken by :func:`announce_ready`."""
    key = _key(db_path)
    entry = (asyncio.get_running_loop(), asyncio.Event())
    _waiters[key].add(entry)
    try:
        await asyncio.wait_for(entry[1].wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        _waiters[key].discard(entry)
        if not _waiters[key]:
            _waiters.pop(key, None)
