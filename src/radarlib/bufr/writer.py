"""Encode a :class:`~radarlib.bufr.model.BufrFile` as an RMA-style BUFR edition-4 message.

The section-4 bits are written by walking the same table-driven descriptor expansion the
decoder uses (:meth:`radarlib.bufr.tables.Tables.expand` of ``3 21 204, 3 01 031,
3 21 203``), so widths, scales and references come from one place. Each sweep x quantity
payload (``'<f8'``, row-major) is zlib-compressed and split into chunks of 65 534 bytes,
written as whole byte runs.

>>> from radarlib.bufr import read_bufr, write_bufr          # doctest: +SKIP
>>> f = read_bufr("RMA11_0315_02_VRAD_20251020T152429Z.BUFR")  # doctest: +SKIP
>>> read_bufr(write_bufr(f)).same_as(f)                        # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import zlib
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from radarlib.bufr.bitwriter import BitWriter
from radarlib.bufr.model import BufrFile, Station, Sweep
from radarlib.bufr.tables import Element, Node, Replication, Sequence, Tables, fxy_str
from radarlib.errors import BufrEncodeError

__all__ = ["CHUNK_SIZE", "TEMPLATE", "write_bufr", "write_bufr_file"]

#: The unexpanded descriptor list of every RMA/OPERA polar-volume file.
TEMPLATE: tuple[int, ...] = (321204, 301031, 321203)
#: Bytes per 0 30 198 run (the last run of a stream holds the remainder).
CHUNK_SIZE = 65534
_MAX_MESSAGE = (1 << 24) - 1  # section 0 holds the total length in 3 octets
#: Payload bytes from which sweeps are deflated in threads, and the most threads used.
_PARALLEL_BYTES = 4 << 20
_MAX_THREADS = 4
#: Physical bounds narrower than the bit width allows (latitude, longitude, elevation).
_BOUNDS: dict[int, tuple[float, float]] = {
    5001: (-90.0, 90.0),
    6001: (-180.0, 180.0),
    2135: (-90.0, 90.0),
}

Value = int | float | str | bytes | None


@dataclass(frozen=True)
class _Item:
    """One value for the template walk: the descriptor it must land on and a readable label."""

    fxy: int
    label: str
    value: Value


# --------------------------------------------------------------------------- values


def _utc(moment: datetime, label: str) -> datetime:
    if moment.tzinfo is None:
        raise BufrEncodeError(f"{label}: naive datetime {moment!r}; use timezone-aware UTC")
    utc = moment.astimezone(timezone.utc)
    if utc.microsecond:
        raise BufrEncodeError(f"{label}: {moment.isoformat()} has sub-second precision")
    return utc


def _date_time(moment: datetime, label: str, seconds: bool = True) -> list[_Item]:
    t = _utc(moment, label)
    items = [
        _Item(4001, f"{label} year", t.year),
        _Item(4002, f"{label} month", t.month),
        _Item(4003, f"{label} day", t.day),
        _Item(4004, f"{label} hour", t.hour),
        _Item(4005, f"{label} minute", t.minute),
    ]
    if seconds:
        items.append(_Item(4006, f"{label} second", t.second))
    elif t.second:
        raise BufrEncodeError(f"{label}: {moment.isoformat()} has seconds; 3 01 031 has none")
    return items


def _station_items(station: Station, fallback: datetime) -> list[_Item]:
    items = [_Item(31001, "number of station identifiers", len(station.ids))]
    for i, sid in enumerate(station.ids):
        items.append(_Item(1192, f"station identifier {i} type", sid.kind))
        items.append(_Item(1193, f"station identifier {i}", sid.value))
    items += [
        _Item(1001, "WMO block number", station.wmo_block),
        _Item(1002, "WMO station number", station.wmo_station),
        _Item(2001, "type of station", station.station_type),
    ]
    when = station.time if station.time is not None else fallback.replace(second=0)
    items += _date_time(when, "station time", seconds=False)
    items += [
        _Item(5001, "station latitude", station.latitude),
        _Item(6001, "station longitude", station.longitude),
        _Item(7001, "station height", station.height),
    ]
    return items


def _compress(sweep: Sweep, index: int, q: int, level: int) -> list[bytes]:
    quantity = sweep.quantities[q]
    label = f"sweep {index} quantity {q}"
    if quantity.compression != 0:
        raise BufrEncodeError(
            f"{label}: compression method {quantity.compression} is not supported (0 = zlib)"
        )
    data = np.asarray(quantity.data)
    if data.shape != (sweep.nrays, sweep.ngates):
        raise BufrEncodeError(
            f"{label}: data shape {data.shape} is not (nrays, ngates) = "
            f"({sweep.nrays}, {sweep.ngates})"
        )
    if data.dtype.kind not in "fiu":
        raise BufrEncodeError(f"{label}: data dtype {data.dtype} is not numeric")
    payload = np.ascontiguousarray(data, dtype="<f8")
    stream = zlib.compress(payload.view(np.uint8).reshape(-1).data, level)
    return [stream[i : i + CHUNK_SIZE] for i in range(0, len(stream), CHUNK_SIZE)]


def _sweep_items(sweep: Sweep, index: int, streams: list[list[bytes]]) -> list[_Item]:
    label = f"sweep {index}"
    items = _date_time(sweep.start_time, f"{label} start")
    items += _date_time(sweep.end_time, f"{label} end")
    items += [
        _Item(30196, f"{label} object type", sweep.object_type),
        _Item(2135, f"{label} elevation", sweep.elevation),
        _Item(30194, f"{label} ngates", sweep.ngates),
        _Item(21201, f"{label} range-bin size", sweep.range_bin_size),
        _Item(21203, f"{label} range offset", sweep.range_offset),
        _Item(30195, f"{label} nrays", sweep.nrays),
        _Item(2134, f"{label} a1gate", sweep.a1gate),
        _Item(31001, f"{label} number of quantities", len(sweep.quantities)),
    ]
    for q, (quantity, chunks) in enumerate(zip(sweep.quantities, streams, strict=True)):
        where = f"{label} quantity {q}"
        items += [
            _Item(30196, f"{where} code", quantity.code),
            _Item(30197, f"{where} compression", quantity.compression),
            _Item(31002, f"{where} number of chunks", len(chunks)),
        ]
        items += [_Item(30198, f"{where} chunk {k}", c) for k, c in enumerate(chunks)]
    return items


def _compress_all(bufr: BufrFile, level: int) -> Generator[list[list[bytes]], None, None]:
    """Per sweep, the chunk lists of its quantities; in threads when there is much to deflate.

    ``zlib.compress`` releases the GIL, so sweeps compress in parallel on several cores.
    Results (and errors) come back in sweep order.
    """
    jobs = [(s, i, q) for i, s in enumerate(bufr.sweeps) for q in range(len(s.quantities))]
    total = sum(s.nrays * s.ngates * 8 for s, _, _ in jobs)
    workers = min(_MAX_THREADS, os.cpu_count() or 1, len(jobs))
    if workers < 2 or total < _PARALLEL_BYTES:
        for i, sweep in enumerate(bufr.sweeps):
            yield [_compress(sweep, i, q, level) for q in range(len(sweep.quantities))]
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bufr-deflate")
    try:
        sweeps, indices, qs = zip(*jobs, strict=True)
        results = pool.map(_compress, sweeps, indices, qs, itertools.repeat(level))
        for sweep in bufr.sweeps:
            yield [next(results) for _ in sweep.quantities]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _items(bufr: BufrFile, level: int) -> Generator[_Item, None, None]:
    """The values of the template, in the order of its expansion."""
    yield from _station_items(bufr.station, bufr.section1.time)
    yield _Item(31001, "number of sweeps", len(bufr.sweeps))
    streams = _compress_all(bufr, level)  # starts only once the header values were accepted
    try:
        for i, sweep in enumerate(bufr.sweeps):
            yield from _sweep_items(sweep, i, next(streams))
    finally:
        streams.close()


# --------------------------------------------------------------------------- template walk


def _raw(element: Element, item: _Item) -> int:
    """The raw unsigned field of a numeric value, or :class:`BufrEncodeError` naming the item."""
    what = f"{fxy_str(element.fxy)} {element.name} ({element.width} bits)"
    value = item.value
    top = element.missing_raw - 1 if element.has_missing else element.missing_raw
    if value is None:
        if not element.has_missing:
            raise BufrEncodeError(f"{item.label}: {what} has no missing value")
        return element.missing_raw
    if isinstance(value, (str, bytes, bool)):
        raise BufrEncodeError(f"{item.label}: {value!r} is not a number for {what}")
    number = float(value)
    if not np.isfinite(number):
        raise BufrEncodeError(f"{item.label}: {value!r} is not finite for {what}")
    bounds = _BOUNDS.get(element.fxy)
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise BufrEncodeError(
            f"{item.label}: {value!r} is outside {bounds[0]} .. {bounds[1]} ({what})"
        )
    if element.scale >= 0:
        if isinstance(value, (int, np.integer)) and element.scale == 0:
            scaled = int(value)
        else:
            scaled = round(number * 10**element.scale)
    else:
        scaled = round(number / 10 ** (-element.scale))
    raw = scaled - element.reference
    if not 0 <= raw <= top:
        lo = element.convert(0)
        hi = element.convert(top)
        raise BufrEncodeError(f"{item.label}: {value!r} does not fit {what}: allowed {lo} .. {hi}")
    if element.convert(raw) != number:
        raise BufrEncodeError(
            f"{item.label}: {value!r} is not representable by {what} with scale {element.scale}"
        )
    return raw


def _string(element: Element, item: _Item) -> bytes:
    size = element.width // 8
    value = item.value
    if not isinstance(value, str):
        raise BufrEncodeError(f"{item.label}: {value!r} is not a string ({fxy_str(element.fxy)})")
    try:
        text = value.encode("ascii")
    except UnicodeEncodeError:
        raise BufrEncodeError(f"{item.label}: {value!r} is not CCITT IA5 (ASCII)") from None
    if len(text) > size:
        raise BufrEncodeError(
            f"{item.label}: {value!r} is longer than the {size} characters of "
            f"{fxy_str(element.fxy)} {element.name}"
        )
    return text.ljust(size, b"\0")


class _Walk:
    """Writes the items into the bits of an expanded template, checking they match it."""

    def __init__(self, items: Iterator[_Item], writer: BitWriter) -> None:
        self._items = items
        self._next: _Item | None = None
        self._writer = writer

    def _peek(self, where: Node) -> _Item:
        if self._next is None:
            try:
                self._next = next(self._items)
            except StopIteration:
                raise BufrEncodeError(
                    f"template mismatch: no value left for {fxy_str(where.fxy)}"
                ) from None
        return self._next

    def _take(self, element: Element) -> _Item:
        item = self._peek(element)
        self._next = None
        if item.fxy != element.fxy:
            raise BufrEncodeError(
                f"template mismatch: {item.label} is {fxy_str(item.fxy)} but the template "
                f"expects {fxy_str(element.fxy)} {element.name}"
            )
        return item

    def element(self, element: Element) -> None:
        item = self._take(element)
        if element.is_string:
            self._writer.write_bytes(_string(element, item))
        else:
            self._writer.write_uint(_raw(element, item), element.width)

    def nodes(self, nodes: tuple[Node, ...]) -> None:
        for node in nodes:
            if isinstance(node, Element):
                self.element(node)
            elif isinstance(node, Sequence):
                self.nodes(node.body)
            else:
                self.replication(node)

    def replication(self, node: Replication) -> None:
        if node.factor is None:
            for _ in range(node.count):
                self.nodes(node.body)
            return
        item = self._peek(node)
        body = node.body[0]
        if node.byte_run and isinstance(body, Element) and item.fxy == body.fxy:
            run = item.value
            if not isinstance(run, (bytes, bytearray)):
                raise BufrEncodeError(f"{item.label}: byte run expected, got {type(run)}")
            self._next = None
            self._writer.write_uint(_raw(node.factor, _Item(item.fxy, item.label, len(run))),
                                    node.factor.width)  # fmt: skip
            self._writer.write_bytes(run)
            return
        count = self._take(node.factor)
        self._writer.write_uint(_raw(node.factor, count), node.factor.width)
        if not isinstance(count.value, int):  # pragma: no cover - _raw accepted a number
            raise BufrEncodeError(f"{count.label}: replication count must be an int")
        for _ in range(count.value):
            self.nodes(node.body)

    def finish(self) -> None:
        leftover: str | None = None
        if self._next is not None:
            leftover = self._next.label
        else:
            leftover = next((i.label for i in self._items), None)
        if leftover is not None:
            raise BufrEncodeError(f"template mismatch: {leftover} has no place in the template")


# --------------------------------------------------------------------------- sections


def _u(value: int, octets: int, label: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 256**octets:
        raise BufrEncodeError(f"section 1 {label}: {value!r} does not fit {octets} octet(s)")
    return value.to_bytes(octets, "big")


def _section1(bufr: BufrFile) -> bytes:
    s = bufr.section1
    if s.has_section2:
        raise BufrEncodeError("section 1 has_section2: the writer has no section 2 to write")
    body = b"".join(
        [
            _u(s.master_table, 1, "master_table"),
            _u(s.centre, 2, "centre"),
            _u(s.subcentre, 2, "subcentre"),
            _u(s.update_sequence, 1, "update_sequence"),
            b"\x00",  # flags: no section 2
            _u(s.data_category, 1, "data_category"),
            _u(s.intl_subcategory, 1, "intl_subcategory"),
            _u(s.local_subcategory, 1, "local_subcategory"),
            _u(s.master_version, 1, "master_version"),
            _u(s.local_version, 1, "local_version"),
            _u(s.year, 2, "year"),
            _u(s.month, 1, "month"),
            _u(s.day, 1, "day"),
            _u(s.hour, 1, "hour"),
            _u(s.minute, 1, "minute"),
            _u(s.second, 1, "second"),
        ]
    )
    return (len(body) + 3).to_bytes(3, "big") + body


def _section3() -> bytes:
    descriptors = b"".join(
        (((fxy // 100000) << 14) | ((fxy // 1000 % 100) << 8) | (fxy % 1000)).to_bytes(2, "big")
        for fxy in TEMPLATE
    )
    body = b"\x00" + (1).to_bytes(2, "big") + b"\x80" + descriptors  # 1 subset, observed
    body += b"\x00" * ((len(body) + 3) % 2)  # filler octet: even section length
    return (len(body) + 3).to_bytes(3, "big") + body


def write_bufr(bufr: BufrFile, *, level: int = 6) -> bytes:
    """Encode ``bufr`` as one BUFR edition-4 message (sections 0, 1, 3, 4, 5) and return its bytes.

    Every sweep x quantity payload is zlib-compressed at ``level`` (0-9, -1 = zlib's default).
    Raises :class:`BufrEncodeError` naming the item when a value does not fit the template
    (e.g. ngates > 4094, more than 254 sweeps, a latitude outside -90..90, a time with
    sub-second precision, a station id longer than its 3/16 characters, a payload whose
    shape is not (nrays, ngates)). ``read_bufr(write_bufr(f)).same_as(f)`` holds for any
    file ``f`` the reader produced.
    """
    if not isinstance(level, int) or not -1 <= level <= 9:
        raise BufrEncodeError(f"zlib level {level!r} is not -1..9")
    section1 = _section1(bufr)
    writer = BitWriter()
    items = _items(bufr, level)
    try:
        walk = _Walk(items, writer)
        walk.nodes(Tables.load().expand(TEMPLATE))
        walk.finish()
    finally:
        items.close()  # stops pending compressions when a value did not fit
    writer.pad_to_octet()
    data = writer.getvalue()
    pad = b"\x00" * ((len(data) + 4) % 2)  # section 4 has an even number of octets
    length4 = len(data) + 4 + len(pad)
    if length4 >= 1 << 24:
        raise BufrEncodeError(f"section 4 of {length4} bytes exceeds its 3-octet length field")
    section4 = length4.to_bytes(3, "big") + b"\x00"
    section3 = _section3()
    total = 8 + len(section1) + len(section3) + len(section4) + len(data) + len(pad) + 4
    if total > _MAX_MESSAGE:
        raise BufrEncodeError(f"message of {total} bytes exceeds the BUFR limit of {_MAX_MESSAGE}")
    section0 = b"BUFR" + total.to_bytes(3, "big") + b"\x04"
    return b"".join([section0, section1, section3, section4, data, pad, b"7777"])


def write_bufr_file(bufr: BufrFile, path: str | os.PathLike[str], *, level: int = 6) -> Path:
    """Write :func:`write_bufr` of ``bufr`` to ``path`` atomically; returns the path.

    The bytes go to a temporary file in the same directory, are fsynced, and replace
    ``path`` in one rename, so readers never see a partial file.
    """
    target = Path(path)
    message = write_bufr(bufr, level=level)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(message)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where directories fsync
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target
