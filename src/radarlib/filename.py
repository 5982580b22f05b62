"""The single home of the radar file-name pattern and of the volume identity derived from it.

``RMA1_0315_01_DBZH_20251118T123000Z.BUFR`` names radar ``RMA1``, scan strategy ``0315``,
volume number ``01``, field ``DBZH`` and the volume time. Files sharing radar, strategy,
volume number and time form one volume, written as ``RMA1_0315_01_20251118T123000Z.nc``.

>>> name = BufrFileName.parse("RMA1_0315_01_DBZH_20251118T123000Z.BUFR")
>>> name.volume_key.volume_id
'RMA1_0315_01_2025-11-18T12:30:00Z'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath

from radarlib.errors import FileNameError

__all__ = [
    "BufrFileName",
    "VolumeKey",
    "format_iso",
    "parse_iso",
]

_STAMP = "%Y%m%dT%H%M%SZ"
_ISO = "%Y-%m-%dT%H:%M:%SZ"

_NAME = re.compile(
    r"(?P<radar>[A-Z]{2,5}[0-9]{1,3})"
    r"_(?P<strategy>[0-9]{4})"
    r"_(?P<volume>[0-9]{1,2})"
    r"_(?P<field>[A-Z]{2,10})"
    r"_(?P<stamp>[0-9]{8}T[0-9]{6}Z)"
    r"\.BUFR"
)
_VOLUME_ID = re.compile(
    r"(?P<radar>[A-Z]{2,5}[0-9]{1,3})_(?P<strategy>[0-9]{4})_(?P<volume>[0-9]{1,2})"
    r"_(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)"
)


def format_iso(moment: datetime) -> str:
    """Format a datetime as ISO-8601 UTC with a ``Z`` suffix, the one time format we store."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: radarlib times are timezone-aware UTC")
    return moment.astimezone(timezone.utc).strftime(_ISO)


def parse_iso(text: str) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` (or any ISO form with offset) into an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _mismatch(name: str) -> FileNameError:
    return FileNameError(
        f"{name!r} does not match <RADAR>_<STRATEGY>_<VOLNR>_<FIELD>_<YYYYMMDDTHHMMSSZ>.BUFR "
        "(e.g. RMA1_0315_01_DBZH_20251118T123000Z.BUFR)"
    )


def _parse_stamp(stamp: str, name: str) -> datetime:
    """``YYYYMMDDTHHMMSSZ`` (digits checked by the name pattern; ranges by ``datetime``)."""
    try:  # ~10x faster than strptime: the scanner parses every listed name
        return datetime(
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[11:13]),
            int(stamp[13:15]),
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        raise FileNameError(f"{name!r}: invalid timestamp {stamp!r} ({exc})") from None


@dataclass(frozen=True, order=True)
class VolumeKey:
    """Identity of one radar volume: radar, scan strategy, volume number and volume time."""

    radar: str
    strategy: str
    volume_number: str
    time: datetime

    @property
    def volume_id(self) -> str:
        """``RADAR_STRATEGY_VOLNR_<ISO time>``, the id used in the state database."""
        return f"{self.radar}_{self.strategy}_{self.volume_number}_{format_iso(self.time)}"

    @property
    def stamp(self) -> str:
        """The compact ``YYYYMMDDTHHMMSSZ`` form used in file names."""
        return self.time.strftime(_STAMP)

    @property
    def netcdf_name(self) -> str:
        """Output file name, e.g. ``RMA1_0315_01_20251118T123000Z.nc``."""
        return f"{self.radar}_{self.strategy}_{self.volume_number}_{self.stamp}.nc"

    def bufr_name(self, field: str) -> BufrFileName:
        """The file name of one field of this volume."""
        return BufrFileName(self.radar, self.strategy, self.volume_number, field, self.time)

    @classmethod
    def from_volume_id(cls, volume_id: str) -> VolumeKey:
        """Parse a volume id such as ``RMA1_0315_01_2025-11-18T12:30:00Z``."""
        match = _VOLUME_ID.fullmatch(volume_id)
        if match is None:
            raise FileNameError(
                f"{volume_id!r} is not a volume id of the form "
                "RADAR_STRATEGY_VOLNR_YYYY-MM-DDTHH:MM:SSZ"
            )
        return cls(match["radar"], match["strategy"], match["volume"], parse_iso(match["iso"]))


@dataclass(frozen=True, order=True)
class BufrFileName:
    """A parsed ``<RADAR>_<STRATEGY>_<VOLNR>_<FIELD>_<YYYYMMDDTHHMMSSZ>.BUFR`` file name."""

    radar: str
    strategy: str
    volume_number: str
    field: str
    time: datetime
    _text: str = dataclasses.field(init=False, repr=False, compare=False)  # formatted once

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise FileNameError(f"naive time {self.time!r} for {self.radar}: use UTC")
        text = (
            f"{self.radar}_{self.strategy}_{self.volume_number}_{self.field}_"
            f"{self.time.astimezone(timezone.utc).strftime(_STAMP)}.BUFR"
        )
        if _NAME.fullmatch(text) is None:
            raise _mismatch(text)
        object.__setattr__(self, "_text", text)

    @classmethod
    def parse(cls, name: str | PurePath) -> BufrFileName:
        """Parse a file name, ignoring directories; :class:`FileNameError` if it is not one."""
        if isinstance(name, str) and "/" not in name and "\\" not in name:
            text = name  # a bare name, as in a listing
        else:
            text = PurePath(str(name).replace("\\", "/")).name
        match = _NAME.fullmatch(text)
        if match is None:
            raise _mismatch(text)
        return cls(
            match["radar"],
            match["strategy"],
            match["volume"],
            match["field"],
            _parse_stamp(match["stamp"], text),
        )

    @classmethod
    def try_parse(cls, name: str | PurePath) -> BufrFileName | None:
        """Like :meth:`parse` but ``None`` for a name that is not a radar file."""
        try:
            return cls.parse(name)
        except FileNameError:
            return None

    def __str__(self) -> str:
        return self._text

    @property
    def name(self) -> str:
        """The file name as text."""
        return str(self)

    @property
    def volume_key(self) -> VolumeKey:
        """The volume this file belongs to."""
        return VolumeKey(self.radar, self.strategy, self.volume_number, self.time)

    def remote_dir(self, base: str) -> str:
        """The server folder ``<base>/<RADAR>/<YYYY>/<MM>/<DD>/<HH>/<MMSS>`` holding this file."""
        t = self.time.astimezone(timezone.utc)
        return f"{base.rstrip('/')}/{self.radar}/{t:%Y/%m/%d/%H/%M%S}"
