"""The stateful core: the SQLite state store shared by the download and processing daemons."""

from radarlib.state.records import DownloadStatus, VolumeStatus
from radarlib.state.schema import CURRENT_VERSION as SCHEMA_VERSION
from radarlib.state.sqlite import SQLiteStateTracker

__all__ = ["SCHEMA_VERSION", "DownloadStatus", "SQLiteStateTracker", "VolumeStatus"]
