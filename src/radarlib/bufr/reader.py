"""Read an RMA/OPERA radar BUFR file into a :class:`~radarlib.bufr.model.BufrFile`.

>>> from radarlib.bufr import read_bufr
>>> f = read_bufr("RMA11_0315_01_DBZH_20251020T152828Z.BUFR")  # doctest: +SKIP
>>> f.sweeps[0].data.shape                                     # doctest: +SKIP
(360, 653)

The message is framed by :mod:`radarlib.bufr.sections`, its section-3 descriptors are
expanded with the tables (:mod:`radarlib.bufr.tables`) and section 4 is decoded generically
(:mod:`radarlib.bufr.decoder`). This module then reads the ODIM polar-volume meaning of the
values by descriptor, not by position: station ids (0 01 192/0 01 193), the fixed-station
block (3 01 031), and one pass of the sweep replication (the one holding 0 30 194/0 30 195)
per sweep, each with its quantities and the 0 30 198 byte runs of their zlib streams, which
are inflated to exactly ``nrays x ngates x 8`` bytes (:mod:`radarlib.bufr.inflate`).

Two steps: :func:`scan_bufr` reads everything but the payloads into a
:class:`~radarlib.bufr.layout.BufrLayout` (cheap: no inflation); :func:`read_bufr` scans,
then inflates every sweep (in threads, see :meth:`BufrLayout.decode`).

Hostile input is bounded before anything large is allocated: a template without the radar
sweep replication is refused right after section 3 is expanded (before section 4 is
walked), the walk visits at most :data:`MAX_DECODED_VALUES` values, and the declared decoded
size of the file (sum of ``nrays x ngates x 8``) must not exceed ``max_decoded_bytes``
(:data:`~radarlib.bufr.layout.DEFAULT_MAX_FILE_BYTES`) before any stream is inflated.

Every bad input raises :class:`~radarlib.errors.BufrDecodeError` naming the file and the
reason. Decoding keeps no shared mutable state: calls from several threads are safe.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from radarlib.bufr.bits import BitReader
from radarlib.bufr.decoder import decode_values
from radarlib.bufr.layout import (
    DEFAULT_MAX_FILE_BYTES,
    BufrLayout,
    PendingQuantity,
    SweepHead,
)
from radarlib.bufr.model import BufrFile, Section1, Station, StationId
from radarlib.bufr.sections import Message, parse_message
from radarlib.bufr.tables import (
    KNOWN_LOCAL_TABLES,
    Element,
    Node,
    Replication,
    Sequence,
    TableError,
    Tables,
    fxy_str,
)
from radarlib.errors import BufrDecodeError
from radarlib.filename import BufrFileName

__all__ = ["MAX_DECODED_VALUES", "MAX_PADDING_BITS", "read_bufr", "scan_bufr"]

log = logging.getLogger(__name__)

#: Section 4 may end with at most this many unused bits (padding to an even octet count).
MAX_PADDING_BITS = 15
#: Most values (elements and replication passes) one file's section 4 may hold. A real RMA
#: file has about 500 (15 sweeps x a few quantities x a few chunks); nested replications
#: of a hostile template could otherwise build millions of Python lists from a small file.
MAX_DECODED_VALUES = 200_000

Source = str | os.PathLike[str] | bytes | bytearray | memoryview

# Descriptors the radar layer reads (ODIM polar volume, OPERA/centre-41 local tables).
_STATION_ID_KIND, _STATION_ID = 1192, 1193
_WMO_BLOCK, _WMO_STATION, _STATION_TYPE = 1001, 1002, 2001
_YEAR, _MONTH, _DAY, _HOUR, _MINUTE, _SECOND = 4001, 4002, 4003, 4004, 4005, 4006
_LATITUDES, _LONGITUDES, _HEIGHTS = (5001, 5002), (6001, 6002), (7001, 7030)
_PRODUCT, _ELEVATION, _AZIMUTH = 30196, 2135, 2134
_NGATES, _NRAYS, _BIN_SIZE, _BIN_OFFSET = 30194, 30195, 21201, 21203
_COMPRESSION, _ARRAY_BYTE = 30197, 30198


def read_bufr(
    source: Source,
    *,
    name: str | None = None,
    root_resources: str | os.PathLike[str] | None = None,
    max_decoded_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    threads: int | None = None,
) -> BufrFile:
    """Decode one radar BUFR file (a path or its bytes) into a :class:`BufrFile`.

    ``name`` labels bytes input (and overrides the path's name) for error messages and
    for :attr:`BufrFile.filename`, which is set when the name is a radar file name.
    ``root_resources`` is a directory of extra ``table_b*.csv``/``table_d*.csv`` files
    (see :mod:`radarlib.bufr.tables`). ``max_decoded_bytes`` caps the declared decoded
    size (None: no cap); ``threads`` is the inflate pool size (default: the usable cores,
    at most 4; 1 = serial). Raises :class:`BufrDecodeError` for any bad input.
    """
    layout = scan_bufr(
        source, name=name, root_resources=root_resources, max_decoded_bytes=max_decoded_bytes
    )
    return layout.decode(threads)


def scan_bufr(
    source: Source,
    *,
    name: str | None = None,
    root_resources: str | os.PathLike[str] | None = None,
    max_decoded_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
) -> BufrLayout:
    """Read a radar BUFR file up to its compressed payloads (see :mod:`radarlib.bufr.layout`).

    Same arguments and errors as :func:`read_bufr`, without inflating any sweep; the
    declared decoded size is checked against ``max_decoded_bytes`` here.
    """
    buf, label, filename = _load(source, name)
    try:
        tables = Tables.load(root_resources)
    except TableError as exc:
        raise BufrDecodeError(f"BUFR tables: {exc}", label) from None
    message = parse_message(memoryview(buf), label)
    layout = _decode_message(message, tables, label, filename, buf)
    layout.check_size(max_decoded_bytes)
    return layout


def _load(source: Source, name: str | None) -> tuple[bytes | memoryview, str, BufrFileName | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        data: bytes | memoryview = memoryview(source).cast("B")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BufrDecodeError(f"cannot read the file: {exc.strerror or exc}", label) from exc
    else:
        raise TypeError(f"read_bufr() takes a path or bytes, not {type(source).__name__}")
    filename = BufrFileName.try_parse(Path(label).name) if label != "<bytes>" else None
    return data, label, filename


def _decode_message(
    message: Message, tables: Tables, label: str, filename: BufrFileName | None, buffer: Any
) -> BufrLayout:
    s1 = message.section1
    _check_time(s1, label)
    if message.subsets != 1:
        raise BufrDecodeError(f"{message.subsets} subsets; a radar file holds exactly 1", label)
    if message.compressed:
        raise BufrDecodeError("BUFR-compressed data (section 3 flag 0x40) is not supported", label)
    if not message.descriptors:
        raise BufrDecodeError("section 3 lists no descriptors", label)
    try:
        nodes = tables.expand(message.descriptors)
    except TableError as exc:
        known = KNOWN_LOCAL_TABLES.get(s1.centre)
        note = (
            f"originating centre {s1.centre}, master table version {s1.master_version}, "
            f"local table version {s1.local_version}"
        )
        if known is None or s1.local_version not in known:
            note += "; these local tables are not packaged, pass root_resources to add them"
        raise BufrDecodeError(f"{exc} ({note})", label) from None
    if s1.local_version not in KNOWN_LOCAL_TABLES.get(s1.centre, ()):
        log.debug(
            "%s: centre %d local table version %d is not packaged; its descriptors are known",
            label,
            s1.centre,
            s1.local_version,
        )
    _check_template(message.descriptors, nodes, label)
    reader = BitReader(message.data)
    values = decode_values(nodes, reader, label, max_values=MAX_DECODED_VALUES)
    if reader.remaining > MAX_PADDING_BITS:
        raise BufrDecodeError(
            f"{reader.remaining} bits left in section 4 after the last descriptor "
            f"(at most {MAX_PADDING_BITS} padding bits allowed)",
            label,
        )
    return _RadarLayer(label).build(nodes, values, s1, message.edition, filename, buffer)


def _check_template(descriptors: tuple[int, ...], nodes: tuple[Node, ...], label: str) -> None:
    """Refuse, before section 4 is walked, a template that cannot be a radar polar volume.

    The radar template (3 21 204, 3 01 031, 3 21 203 in every RMA/OPERA file) holds a
    delayed sweep replication with 0 30 194/0 30 195 and the 0 30 198 byte runs of the
    compressed payloads; anything else would be walked for nothing, or worse (nested
    replications of a hostile template build millions of values from a small file).
    """
    has_sweeps = any(
        isinstance(node, Replication)
        and node.delayed
        and (_contains(node.body, _NGATES) or _contains(node.body, _NRAYS))
        for node in _replications(nodes)
    )
    has_payload = _contains(nodes, _ARRAY_BYTE)
    if has_sweeps and has_payload:
        return
    odd = next((d for d in descriptors if d // 100000 != 3), descriptors[0])
    listed = ", ".join(fxy_str(d) for d in descriptors[:8])
    if len(descriptors) > 8:
        listed += ", ..."
    if has_sweeps:
        missing = "the compressed payload byte runs (0 30 198)"
    else:
        missing = "the sweep replication (no 0 30 194 / 0 30 195 descriptors)"
    raise BufrDecodeError(
        f"not the radar polar-volume template: section 3 lists {listed} and descriptor "
        f"{fxy_str(odd)} leads to no {missing}; refused before decoding section 4",
        label,
    )


def _replications(nodes: tuple[Node, ...]) -> Iterator[Replication]:
    for node in nodes:
        if isinstance(node, Replication):
            yield node
        if not isinstance(node, Element):
            yield from _replications(node.body)


def _check_time(s1: Section1, label: str) -> None:
    try:
        _ = s1.time
    except ValueError as exc:
        raise BufrDecodeError(f"section 1 time is invalid: {exc}", label) from None


def _flat(nodes: tuple[Node, ...], values: list[Any]) -> Iterator[tuple[Node, Any]]:
    """Elements (and delayed replications, unopened) in data order, through sequences and
    fixed replications."""
    for node, value in zip(nodes, values, strict=True):
        if isinstance(node, Element):
            yield node, value
        elif isinstance(node, Sequence):
            yield from _flat(node.body, value)
        elif node.delayed or node.byte_run:
            yield node, value
        else:
            for one in value:
                yield from _flat(node.body, one)


def _contains(nodes: tuple[Node, ...], fxy: int) -> bool:
    for node in nodes:
        if isinstance(node, Element):
            if node.fxy == fxy:
                return True
        elif _contains(node.body, fxy):
            return True
    return False


def _byte_runs(nodes: tuple[Node, ...], values: list[Any]) -> Iterator[memoryview]:
    """Every byte run below ``nodes``, in data order."""
    for node, value in zip(nodes, values, strict=True):
        if isinstance(node, Sequence):
            yield from _byte_runs(node.body, value)
        elif isinstance(node, Replication):
            if node.byte_run:
                yield value
            else:
                for one in value:
                    yield from _byte_runs(node.body, one)


def _collect(
    items: Iterator[tuple[Node, Any]],
) -> tuple[dict[int, list[Any]], list[tuple[Replication, Any]]]:
    fields: dict[int, list[Any]] = {}
    replications: list[tuple[Replication, Any]] = []
    for node, value in items:
        if isinstance(node, Element):
            fields.setdefault(node.fxy, []).append(value)
        elif isinstance(node, Replication):
            replications.append((node, value))
    return fields, replications


class _RadarLayer:
    """Reads the ODIM polar-volume meaning out of the generic decoded values."""

    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, reason: str) -> BufrDecodeError:
        return BufrDecodeError(reason, self.label)

    def build(
        self,
        nodes: tuple[Node, ...],
        values: list[Any],
        s1: Section1,
        edition: int,
        filename: BufrFileName | None,
        buffer: Any = None,
    ) -> BufrLayout:
        fields, replications = _collect(_flat(nodes, values))
        ids: list[StationId] = []
        sweeps: list[SweepHead] = []
        found_sweeps = False
        for node, value in replications:
            if _contains(node.body, _NGATES) or _contains(node.body, _NRAYS):
                found_sweeps = True
                for one in value:
                    sweeps.append(self.sweep(node.body, one, len(sweeps)))
            elif _contains(node.body, _STATION_ID):
                for one in value:
                    got, _ = _collect(_flat(node.body, one))
                    kind = (got.get(_STATION_ID_KIND) or [None])[0]
                    ident = (got.get(_STATION_ID) or [None])[0]
                    ids.append(StationId(kind or "", ident or ""))
        if not found_sweeps:
            raise self.fail(
                "the template has no sweep replication (no 0 30 194 / 0 30 195 descriptors)"
            )
        station = Station(
            latitude=float(self.required(fields, _LATITUDES, "station latitude")),
            longitude=float(self.required(fields, _LONGITUDES, "station longitude")),
            height=float(self.required(fields, _HEIGHTS, "station height")),
            ids=tuple(ids),
            wmo_block=_first(fields, _WMO_BLOCK),
            wmo_station=_first(fields, _WMO_STATION),
            station_type=_first(fields, _STATION_TYPE),
            time=self.station_time(fields),
        )
        return BufrLayout(
            section1=s1,
            station=station,
            sweeps=tuple(sweeps),
            edition=edition,
            source=self.label,
            filename=filename,
            buffer=buffer,
        )

    def required(self, fields: dict[int, list[Any]], fxys: tuple[int, ...], what: str) -> Any:
        for fxy in fxys:
            got = fields.get(fxy)
            if got:
                if got[0] is None:
                    raise self.fail(f"{what} ({fxy_str(fxy)}) is missing")
                return got[0]
        raise self.fail(f"{what} ({' / '.join(fxy_str(f) for f in fxys)}) is not in the template")

    def station_time(self, fields: dict[int, list[Any]]) -> datetime | None:
        parts = [_first(fields, fxy) for fxy in (_YEAR, _MONTH, _DAY, _HOUR, _MINUTE)]
        if any(p is None for p in parts):
            return None
        return self.moment([*parts, 0], "station time")

    def moment(self, parts: list[Any], what: str) -> datetime:
        if any(p is None for p in parts):
            raise self.fail(f"{what} has missing values: {parts}")
        try:
            y, mo, d, h, mi, s = (int(p) for p in parts)
            return datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
        except ValueError as exc:
            raise self.fail(f"{what} {parts} is not a valid date and time: {exc}") from None

    def sweep(self, body: tuple[Node, ...], value: list[Any], index: int) -> SweepHead:
        fields, replications = _collect(_flat(body, value))
        where = f"sweep {index}"

        def get(fxy: int, what: str, occurrence: int = 0) -> Any:
            got = fields.get(fxy, [])
            if len(got) <= occurrence or got[occurrence] is None:
                raise self.fail(f"{where}: {what} ({fxy_str(fxy)}) is missing")
            return got[occurrence]

        times = []
        for k, what in ((0, "start time"), (1, "end time")):
            parts = [get(f, what, k) for f in (_YEAR, _MONTH, _DAY, _HOUR, _MINUTE)]
            seconds = fields.get(_SECOND, [])
            parts.append(seconds[k] if len(seconds) > k else 0)
            times.append(self.moment(parts, f"{where} {what}"))
        start, end = times
        if end < start:
            log.warning("%s: %s ends (%s) before it starts (%s)", self.label, where, end, start)
        nrays = int(get(_NRAYS, "number of azimuths"))
        ngates = int(get(_NGATES, "number of bins"))
        quantities: list[PendingQuantity] = []
        for node, passes in replications:
            if not (_contains(node.body, _ARRAY_BYTE) or _contains(node.body, _COMPRESSION)):
                continue
            for one in passes:
                quantities.append(
                    self.quantity(
                        node.body, one, f"{where} quantity {len(quantities)}", nrays, ngates
                    )
                )
        if not quantities:
            raise self.fail(f"{where}: no quantity (0 31 001 Q = 0 or no compressed array)")
        return SweepHead(
            start_time=start,
            end_time=end,
            elevation=float(get(_ELEVATION, "elevation")),
            nrays=nrays,
            ngates=ngates,
            range_bin_size=float(get(_BIN_SIZE, "range-bin size")),
            range_offset=float(get(_BIN_OFFSET, "range-bin offset")),
            a1gate=int(get(_AZIMUTH, "a1gate (antenna beam azimuth)")),
            quantities=tuple(quantities),
            object_type=int(get(_PRODUCT, "object type")),
        )

    def quantity(
        self, body: tuple[Node, ...], value: list[Any], where: str, nrays: int, ngates: int
    ) -> PendingQuantity:
        fields, _ = _collect(_flat(body, value))
        code = (fields.get(_PRODUCT) or [None])[0]
        if code is None:
            raise self.fail(f"{where}: quantity code (0 30 196) is missing")
        compression = (fields.get(_COMPRESSION) or [None])[0]
        if compression != 0:
            raise self.fail(
                f"{where}: compression method {compression} is not supported (0 = zlib)"
            )
        if nrays < 0 or ngates < 0:
            raise self.fail(f"{where}: negative shape {nrays} x {ngates}")
        return PendingQuantity(
            code=int(code),
            runs=tuple(_byte_runs(body, value)),
            nrays=nrays,
            ngates=ngates,
            where=where,
            compression=0,
        )


def _first(fields: dict[int, list[Any]], fxy: int) -> Any:
    got = fields.get(fxy)
    return got[0] if got else None
