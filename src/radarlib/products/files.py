"""Product files appear whole or not at all: temporary file, fsync, rename (as the NetCDF).

>>> with atomic_output(Path("out/colmax.tif")) as tmp:      # doctest: +SKIP
...     write_something(tmp)        # out/colmax.tif exists only after a clean exit

A killed writer leaves at most a ``.<name>.<pid>.<random>.tmp`` file, which
:func:`remove_orphans` deletes once its process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from radarlib.cfradial import temporary_path
from radarlib.durability import fsync_path

__all__ = ["atomic_output", "remove_orphans"]

_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]+\.tmp")


@contextlib.contextmanager
def atomic_output(target: Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if fsync:
        fsync_path(target.parent, directory=True)


def remove_orphans(folder: Path, alive: Callable[[int], bool]) -> list[Path]:
    """Delete the temporary files under ``folder`` whose writer (``alive(pid)`` false) is gone."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.rglob(".*.tmp"):
        match = _TEMP.fullmatch(path.name)
        if match is None or alive(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
