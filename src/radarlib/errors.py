"""The exception hierarchy of radarlib: callers catch by type, every message names its subject.

Each error carries the file (or volume, or key) it is about, so a log line or a
``failed`` row in the state database says what went wrong and where.
"""

from __future__ import annotations

__all__ = [
    "BufrDecodeError",
    "BufrEncodeError",
    "ConfigError",
    "FTPAuthError",
    "FileNameError",
    "InvalidStatusError",
    "OwnershipError",
    "ProductError",
    "QCError",
    "RadarlibError",
    "RemoteFileError",
    "RemotePathError",
    "SchemaVersionError",
    "SessionLimitError",
    "StateError",
    "TransportError",
    "UnknownVolumeError",
    "VolumeError",
]


class RadarlibError(Exception):
    """Base class of every error radarlib raises on purpose."""


def _about(source: object | None, reason: str) -> str:
    return f"{source}: {reason}" if source not in (None, "") else reason


class BufrDecodeError(RadarlibError, ValueError):
    """A BUFR message could not be decoded; names the file and the reason."""

    def __init__(self, reason: str, source: object | None = None) -> None:
        self.reason = reason
        self.source = None if source is None else str(source)
        super().__init__(_about(self.source, reason))


class BufrEncodeError(RadarlibError, ValueError):
    """Sweeps could not be encoded into the RMA BUFR template (a value does not fit)."""


class FileNameError(RadarlibError, ValueError):
    """A file name is not ``<RADAR>_<STRATEGY>_<VOLNR>_<FIELD>_<YYYYMMDDTHHMMSSZ>.BUFR``."""


class VolumeError(RadarlibError, ValueError):
    """A volume could not be assembled or converted; names the volume, file and reason."""

    def __init__(self, reason: str, source: object | None = None) -> None:
        self.reason = reason
        self.source = None if source is None else str(source)
        super().__init__(_about(self.source, reason))


class QCError(VolumeError):
    """A volume failed a hard quality-control check (geometry, file name vs content, times).

    ``check`` names the QC step that refused the volume (``geometry``, ``identity``, ``times``).
    """

    def __init__(self, check: str, reason: str, source: object | None = None) -> None:
        self.check = check
        super().__init__(f"QC {check}: {reason}", source=source)


class ProductError(RadarlibError, ValueError):
    """A product (COLMAX, PPI image, GeoTIFF) could not be made; names the volume and reason."""

    def __init__(self, reason: str, source: object | None = None) -> None:
        self.reason = reason
        self.source = None if source is None else str(source)
        super().__init__(_about(self.source, reason))


class StateError(RadarlibError):
    """The state database is unusable (corrupt, not SQLite, locked beyond the timeout)."""


class SchemaVersionError(StateError):
    """The state database was written by a newer radarlib than this one."""


class InvalidStatusError(StateError, ValueError):
    """A status value that is not one of the documented ones."""


class UnknownVolumeError(StateError, KeyError):
    """A volume id that the state database does not hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown volume"


class TransportError(RadarlibError):
    """The FTP server could not be reached or a transfer failed (retryable)."""


class FTPAuthError(TransportError):
    """The FTP server refused the credentials (not retried: fix the configuration)."""


class RemotePathError(TransportError):
    """The configured remote base path does not exist on the server (not retried)."""


class RemoteFileError(TransportError):
    """The server refused or failed one file while the session stays usable (retried later)."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code  # the server's reply code, e.g. "550"


class SessionLimitError(TransportError):
    """The server turned a new session away at its limit (421, or 530 "too many"): retried."""


class OwnershipError(RadarlibError):
    """Another live process already owns this download folder or database for this radar."""


class ConfigError(RadarlibError, ValueError):
    """A configuration value is missing or wrong; names the key and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)
