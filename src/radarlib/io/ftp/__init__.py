"""FTP ingest and the daemons of the pipeline, under the names of the original design.

>>> from radarlib.io.ftp import DateBasedFTPDaemon, DateBasedDaemonConfig  # doctest: +SKIP
>>> from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig    # doctest: +SKIP
>>> from radarlib.io.ftp import SQLiteStateTracker                          # doctest: +SKIP

Names are resolved on first use so that importing the state tracker does not import the
FTP client or Py-ART.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DateBasedDaemonConfig",
    "DateBasedFTPDaemon",
    "ProcessingDaemon",
    "ProcessingDaemonConfig",
    "SQLiteStateTracker",
]

_HOMES = {
    "DateBasedDaemonConfig": "radarlib.pipeline.download",
    "DateBasedFTPDaemon": "radarlib.pipeline.download",
    "ProcessingDaemon": "radarlib.pipeline.processing",
    "ProcessingDaemonConfig": "radarlib.pipeline.processing",
    "SQLiteStateTracker": "radarlib.state.sqlite",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
