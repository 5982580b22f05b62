"""What a decoded RMA/OPERA radar BUFR file is: station, sweeps, and per-sweep quantities.

The decoder (:mod:`radarlib.bufr.reader`) produces these records and the encoder
(:mod:`radarlib.bufr.writer`) consumes them; nothing here does I/O. Payloads are kept
exactly as stored (float64, ``(nrays, ngates)``), with the ODIM special values
``undetect`` (-DBL_MAX) and ``nodata`` (+DBL_MAX); :func:`classify` names them.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from radarlib.filename import BufrFileName

__all__ = [
    "NODATA",
    "UNDETECT",
    "BufrFile",
    "GateStatus",
    "Quantity",
    "Section1",
    "Station",
    "StationId",
    "Sweep",
    "SweepGeometry",
    "classify",
    "masked",
]

#: ODIM ``undetect``: the gate was scanned and nothing was detected.
UNDETECT: float = -sys.float_info.max
#: ODIM ``nodata``: the gate (usually a whole ray or sweep) was not scanned.
NODATA: float = sys.float_info.max


class GateStatus(enum.IntEnum):
    """Why a gate holds (or lacks) a value. Stored as ``uint8`` status arrays."""

    VALID = 0
    UNDETECT = 1  #: -DBL_MAX in the BUFR payload
    NODATA = 2  #: +DBL_MAX in the BUFR payload
    NAN = 3  #: NaN: a float32 NaN of the radar processor, an artefact, not a sentinel
    OUTSIDE = 4  #: no gate there: outside the sweep's range extent, or a missing sweep/field


def classify(data: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Per-gate :class:`GateStatus` of a float64 payload, as a ``uint8`` array of the same shape."""
    status = np.zeros(data.shape, dtype=np.uint8)
    status[data == UNDETECT] = GateStatus.UNDETECT
    status[data == NODATA] = GateStatus.NODATA
    status[np.isnan(data)] = GateStatus.NAN
    return status


def masked(
    data: npt.NDArray[np.float64],
) -> tuple[np.ma.MaskedArray, npt.NDArray[np.uint8]]:
    """Float32 masked array of the valid gates plus the :func:`classify` status array.

    Valid values of these radars are exactly representable in float32, so the cast is
    lossless for them; the sentinels are masked before the cast (they would overflow).
    """
    status = classify(data)
    invalid = status != GateStatus.VALID
    values = np.where(invalid, 0.0, data).astype(np.float32)
    return np.ma.MaskedArray(values, mask=invalid), status


@dataclass(frozen=True)
class Section1:
    """BUFR section 1 (identification), edition-4 field names."""

    master_table: int
    centre: int
    subcentre: int
    update_sequence: int
    has_section2: bool
    data_category: int
    intl_subcategory: int
    local_subcategory: int
    master_version: int
    local_version: int
    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int

    @property
    def time(self) -> datetime:
        """The section-1 (typical) time as an aware UTC datetime."""
        return datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            tzinfo=timezone.utc,
        )


@dataclass(frozen=True)
class StationId:
    """One ODIM additional station identifier (0 01 192 type, 0 01 193 value), NULs stripped."""

    kind: str
    value: str


@dataclass(frozen=True)
class Station:
    """The fixed-station block 3 01 031 plus the ODIM station identifiers 3 21 204."""

    latitude: float
    longitude: float
    height: float
    ids: tuple[StationId, ...] = ()
    wmo_block: int | None = None
    wmo_station: int | None = None
    station_type: int | None = None
    #: Volume date and hour/minute of 3 01 031 (no seconds in this template).
    time: datetime | None = None


@dataclass(frozen=True, eq=False)
class Quantity:
    """One quantity of a sweep: its product code and its payload exactly as stored."""

    code: int
    #: float64 ``(nrays, ngates)``; row = azimuth bin, column = gate; ±DBL_MAX sentinels kept.
    data: npt.NDArray[np.float64]
    #: 0 30 197 compression method; 0 = zlib, the only one defined.
    compression: int = 0
    #: Number of 0 30 198 byte runs the zlib stream was split into (0 when not from a file).
    n_chunks: int = field(default=0, compare=False)

    def masked(self) -> tuple[np.ma.MaskedArray, npt.NDArray[np.uint8]]:
        """See :func:`masked`."""
        return masked(self.data)

    def same_as(self, other: Quantity) -> bool:
        """Bit-for-bit equality of code, compression and payload (NaN payload bits included)."""
        return (
            self.code == other.code
            and self.compression == other.compression
            and self.data.shape == other.data.shape
            and self.data.dtype == other.data.dtype
            and self.data.tobytes() == other.data.tobytes()
        )


@dataclass(frozen=True, eq=False)
class SweepGeometry:
    """When, where and how a sweep was scanned: what a sweep holds besides its payloads."""

    start_time: datetime
    end_time: datetime
    elevation: float
    nrays: int
    ngates: int
    range_bin_size: float
    range_offset: float
    #: 0 02 134 read as ODIM ``a1gate``: the row of the first ray acquired.
    a1gate: int

    def geometry(self) -> dict[str, Any]:
        """These fields by name (to build another sweep kind from this one)."""
        return {f.name: getattr(self, f.name) for f in fields(SweepGeometry)}


@dataclass(frozen=True, eq=False)
class Sweep(SweepGeometry):
    """One sweep (elevation) of a polar volume with one or more quantities."""

    quantities: tuple[Quantity, ...]
    #: 0 30 196 object type (90 = full polar volume in OPERA's encoder).
    object_type: int = 90

    @property
    def quantity_code(self) -> int:
        """Product code of the first quantity (the file's field)."""
        return self.quantities[0].code

    @property
    def data(self) -> npt.NDArray[np.float64]:
        """Payload of the first quantity, float64 ``(nrays, ngates)``."""
        return self.quantities[0].data

    def masked(self, index: int = 0) -> tuple[np.ma.MaskedArray, npt.NDArray[np.uint8]]:
        """Float32 masked values and :class:`GateStatus` array of quantity ``index``."""
        return self.quantities[index].masked()

    def same_as(self, other: Sweep) -> bool:
        """Bit-for-bit equality of metadata and every quantity."""
        meta = (
            "start_time",
            "end_time",
            "elevation",
            "nrays",
            "ngates",
            "range_bin_size",
            "range_offset",
            "a1gate",
            "object_type",
        )
        return (
            all(getattr(self, k) == getattr(other, k) for k in meta)
            and len(self.quantities) == len(other.quantities)
            and all(a.same_as(b) for a, b in zip(self.quantities, other.quantities, strict=True))
        )


@dataclass(frozen=True, eq=False)
class BufrFile:
    """A decoded radar BUFR file: one field of one volume of one radar."""

    section1: Section1
    station: Station
    sweeps: tuple[Sweep, ...]
    edition: int = 4
    #: Where the bytes came from (path or a caller-given name); used in error messages.
    source: str | None = None
    #: The parsed file name, when the source has a radar file name.
    filename: BufrFileName | None = None

    @property
    def radar(self) -> str | None:
        """Radar code: from the file name, else from the station ids (``RMA`` + ``11`` = RMA11)."""
        if self.filename is not None:
            return self.filename.radar
        for sid in self.station.ids:
            if sid.kind.upper() == "RMA" and sid.value:
                return f"RMA{sid.value}"
        return None

    @property
    def field(self) -> str | None:
        """Field name (``DBZH`` …) from the file name; ``None`` when the source has no such name."""
        return None if self.filename is None else self.filename.field

    @property
    def start_time(self) -> datetime:
        """Start time of the first sweep."""
        return self.sweeps[0].start_time if self.sweeps else self.section1.time

    def same_as(self, other: BufrFile) -> bool:
        """Bit-for-bit equality of section 1, station and every sweep."""
        return (
            self.section1 == other.section1
            and self.station == other.station
            and len(self.sweeps) == len(other.sweeps)
            and all(a.same_as(b) for a, b in zip(self.sweeps, other.sweeps, strict=True))
        )
