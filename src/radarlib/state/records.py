"""The vocabulary of the state store: status values, the stored time format and field lists.

Statuses are plain strings in the database (``'pending'``, ``'downloaded'`` …); the enums
below name them once so code and tests never type them twice, and :func:`volume_status` /
:func:`download_status` turn user input into a checked value or an
:class:`~radarlib.errors.InvalidStatusError`.

>>> volume_status("pending")
'pending'
>>> join_fields(["ZDR", "DBZH", "ZDR"])
'DBZH,ZDR'
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from enum import Enum

from radarlib.errors import InvalidStatusError
from radarlib.filename import format_iso

__all__ = [
    "DOWNLOAD_STATUSES",
    "VOLUME_STATUSES",
    "DownloadStatus",
    "VolumeStatus",
    "download_status",
    "iso_utc",
    "join_fields",
    "split_fields",
    "volume_status",
]


class VolumeStatus(str, Enum):
    """Where a volume is in the processing queue."""

    PENDING = "pending"  # waiting: claimable once complete (or allowed incomplete) and due
    PROCESSING = "processing"  # claimed by a worker (claimed_by, claimed_at)
    COMPLETED = "completed"  # NetCDF written (netcdf_path, processed_at)
    FAILED = "failed"  # gave up (error_message); reset by mark_volume_processing(id, "pending")
    EXPIRED = "expired"  # incomplete past its timeout; kept and listed, revived by a late field

    def __str__(self) -> str:
        return self.value


class DownloadStatus(str, Enum):
    """State of one remote file."""

    DOWNLOADED = "downloaded"  # on disk at local_path, size and checksum recorded
    FAILED = "failed"  # last attempt failed (last_error); retried from next_attempt_at

    def __str__(self) -> str:
        return self.value


VOLUME_STATUSES: tuple[str, ...] = tuple(s.value for s in VolumeStatus)
DOWNLOAD_STATUSES: tuple[str, ...] = tuple(s.value for s in DownloadStatus)

# The original design counted downloaded files with status 'completed'.
_DOWNLOAD_ALIASES = {"completed": DownloadStatus.DOWNLOADED.value}


def volume_status(value: object) -> str:
    """Check a volume status (string or :class:`VolumeStatus`); InvalidStatusError otherwise."""
    text = value.value if isinstance(value, VolumeStatus) else value
    if text not in VOLUME_STATUSES:
        raise InvalidStatusError(
            f"invalid volume status {value!r}: expected one of {', '.join(VOLUME_STATUSES)}"
        )
    return str(text)


def download_status(value: object) -> str:
    """Check a download status (``'completed'`` is the original design's name for downloaded)."""
    text = value.value if isinstance(value, DownloadStatus) else value
    text = _DOWNLOAD_ALIASES.get(text, text) if isinstance(text, str) else text
    if text not in DOWNLOAD_STATUSES:
        raise InvalidStatusError(
            f"invalid download status {value!r}: expected one of {', '.join(DOWNLOAD_STATUSES)}"
        )
    return str(text)


def iso_utc(moment: datetime) -> str:
    """The one stored time format, ``YYYY-MM-DDTHH:MM:SSZ``; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_iso(moment)


def join_fields(fields: Iterable[str]) -> str:
    """Stored form of a field set: sorted, unique, comma-separated (``''`` for none)."""
    return ",".join(sorted({f.strip() for f in fields if f and f.strip()}))


def split_fields(text: str | None) -> frozenset[str]:
    """Inverse of :func:`join_fields`; ``None`` and ``''`` give the empty set."""
    if not text:
        return frozenset()
    return frozenset(f.strip() for f in text.split(",") if f.strip())
