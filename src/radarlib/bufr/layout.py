"""A radar BUFR file read up to its compressed payloads: all metadata, no sweep inflated yet.

:func:`radarlib.bufr.reader.scan_bufr` returns a :class:`BufrLayout`: section 1, the
station, and per sweep its geometry and the zlib streams of its quantities (memoryviews
into the file's bytes, no copy). Nothing large is allocated until a sweep is asked for:

* :meth:`BufrLayout.sweep` inflates one sweep (the xarray backend decodes sweeps on access);
* :meth:`BufrLayout.decode` inflates every sweep, in a thread pool when there is more than
  one core: libdeflate (the ``deflate`` package) and stdlib zlib release the GIL while
  they inflate, so the streams of a file decode in parallel.

The declared output size (``nrays x ngates x 8`` per quantity) is known here, before any
allocation, so :attr:`BufrLayout.decoded_bytes` is what the decoder's caps are checked
against (:data:`DEFAULT_MAX_FILE_BYTES`, :data:`DEFAULT_MAX_VOLUME_BYTES`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radarlib.bufr.inflate import InflateError, inflate_exact
from radarlib.bufr.model import BufrFile, Quantity, Section1, Station, Sweep, SweepGeometry
from radarlib.errors import BufrDecodeError
from radarlib.filename import BufrFileName

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_VOLUME_BYTES",
    "BufrLayout",
    "Inflater",
    "PendingQuantity",
    "SweepHead",
    "decode_all",
    "decode_threads",
]

#: Default cap on the decoded (inflated) bytes of one file: the real RMA files decode to
#: 1-20 MB (15 sweeps x 360 x 653 gates x 8 bytes = 19.8 MB), so 256 MB is >12x that.
DEFAULT_MAX_FILE_BYTES = 256 << 20
#: Default cap on the decoded bytes of one volume: a real 6-field 0315/01 volume is ~120 MB.
DEFAULT_MAX_VOLUME_BYTES = 1 << 30

#: Streams smaller than this are inflated inline (a thread hand-off costs more).
_THREAD_MIN_BYTES = 64 << 10


def decode_threads() -> int:
    """Threads used to inflate one file's streams: the usable cores, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


@dataclass(frozen=True)
class PendingQuantity:
    """One quantity of a sweep before inflation: its code and the byte runs of its zlib stream."""

    code: int
    runs: tuple[memoryview, ...]
    nrays: int
    ngates: int
    #: ``sweep i quantity k``: where it is, for error messages.
    where: str
    compression: int = 0

    @property
    def nbytes(self) -> int:
        """Declared decoded size: ``nrays x ngates`` float64."""
        return self.nrays * self.ngates * 8

    @property
    def compressed_bytes(self) -> int:
        """Size of the zlib stream."""
        return sum(len(r) for r in self.runs)

    def stream(self) -> bytes | memoryview:
        """The zlib stream (the one run itself when there is one, else the runs joined)."""
        return self.runs[0] if len(self.runs) == 1 else b"".join(self.runs)

    def inflate(self, label: str) -> Quantity:
        """Inflate to exactly :attr:`nbytes` and wrap as a read-only float64 :class:`Quantity`."""
        try:
            raw = inflate_exact(self.stream(), self.nbytes)
        except InflateError as exc:
            raise BufrDecodeError(
                f"{self.where} ({self.nrays} x {self.ngates} gates, {len(self.runs)} chunks): "
                f"{exc}",
                label,
            ) from None
        data = np.frombuffer(raw, dtype="<f8").reshape(self.nrays, self.ngates)
        data.flags.writeable = False
        return Quantity(
            code=self.code, data=data, compression=self.compression, n_chunks=len(self.runs)
        )


@dataclass(frozen=True)
class SweepHead(SweepGeometry):
    """A sweep's metadata (everything :class:`Sweep` holds but the payloads)."""

    quantities: tuple[PendingQuantity, ...]
    object_type: int = 90

    @property
    def nbytes(self) -> int:
        """Declared decoded size of all its quantities."""
        return sum(q.nbytes for q in self.quantities)

    def build(self, quantities: Sequence[Quantity]) -> Sweep:
        """The :class:`Sweep` with the given inflated quantities."""
        return Sweep(**self.geometry(), quantities=tuple(quantities), object_type=self.object_type)


@dataclass(frozen=True, eq=False)
class BufrLayout:
    """A scanned radar BUFR file: metadata now, payloads inflated on request."""

    section1: Section1
    station: Station
    sweeps: tuple[SweepHead, ...]
    edition: int = 4
    source: str | None = None
    filename: BufrFileName | None = None
    #: Keeps the file's bytes alive while the memoryviews of the streams point into them.
    buffer: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The name used in error messages."""
        return self.source or "<bytes>"

    @property
    def decoded_bytes(self) -> int:
        """Declared decoded size of the whole file (all sweeps and quantities), in bytes."""
        return sum(s.nbytes for s in self.sweeps)

    def check_size(self, limit: int | None, *, what: str = "per file") -> None:
        """:class:`BufrDecodeError` when :attr:`decoded_bytes` exceeds ``limit`` (None: no cap)."""
        if limit is not None and self.decoded_bytes > limit:
            shapes = sorted({(s.nrays, s.ngates) for s in self.sweeps})
            raise BufrDecodeError(
                f"declares {self.decoded_bytes / 2**20:.1f} MiB of decoded data "
                f"({len(self.sweeps)} sweeps of {', '.join(f'{r}x{g}' for r, g in shapes[:4])} "
                f"gates), more than the {limit / 2**20:.0f} MiB allowed {what} "
                "(max_decoded_mb_per_file / max_decoded_mb_per_volume); nothing was inflated",
                self.label,
            )

    def sweep(self, index: int) -> Sweep:
        """Inflate sweep ``index`` (serially) and return it."""
        head = self.sweeps[index]
        return head.build([q.inflate(self.label) for q in head.quantities])

    def decode(self, threads: int | None = None) -> BufrFile:
        """Inflate every sweep (``threads``: pool size, default :func:`decode_threads`)."""
        return decode_all([self], threads)[0]

    def assemble(self, inflated: Sequence[Quantity]) -> BufrFile:
        """The :class:`BufrFile` of this layout given all its quantities, inflated, in order."""
        sweeps: list[Sweep] = []
        at = 0
        for head in self.sweeps:
            n = len(head.quantities)
            sweeps.append(head.build(inflated[at : at + n]))
            at += n
        return BufrFile(
            section1=self.section1,
            station=self.station,
            sweeps=tuple(sweeps),
            edition=self.edition,
            source=self.source,
            filename=self.filename,
        )


class Inflater:
    """Inflates the streams of layouts as they are added, in a thread pool, in the background.

    A caller that scans a volume's files one by one adds each layout as soon as it is
    scanned (and its size checked): the pool inflates file 1 while the caller scans file 2
    (the scan holds the GIL, the inflate releases it). :meth:`finish` waits and returns the
    decoded files in order; the first corrupt stream raises its :class:`BufrDecodeError`.
    Use as a context manager so an error cancels what is still queued.
    """

    def __init__(self, threads: int | None = None) -> None:
        workers = decode_threads() if threads is None else max(1, threads)
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self._added: list[tuple[BufrLayout, list[Any]]] = []

    def __enter__(self) -> Inflater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pool, dropping queued work."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, layout: BufrLayout) -> None:
        """Queue every stream of ``layout`` (large ones to the pool, largest first)."""
        quantities = [q for s in layout.sweeps for q in s.quantities]
        slots: list[Any] = [None] * len(quantities)
        order = sorted(range(len(quantities)), key=lambda i: -quantities[i].compressed_bytes)
        label = layout.label
        for i in order:
            q = quantities[i]
            if self._pool is not None and q.compressed_bytes >= _THREAD_MIN_BYTES:
                slots[i] = self._pool.submit(q.inflate, label)
        for i, q in enumerate(quantities):
            if slots[i] is None:
                slots[i] = q.inflate(label)
        self._added.append((layout, slots))

    def finish(self) -> list[BufrFile]:
        """The decoded files, in the order added; the first corrupt stream raises."""
        files = []
        for outcome in self.results():
            if isinstance(outcome, BufrDecodeError):
                raise outcome
            files.append(outcome)
        return files

    def results(self) -> Iterator[BufrFile | BufrDecodeError]:
        """Each added file, in order: decoded, or the error of its first corrupt stream."""
        for layout, slots in self._added:
            try:
                inflated = [s.result() if isinstance(s, Future) else s for s in slots]
                yield layout.assemble(inflated)
            except BufrDecodeError as exc:
                yield exc


def decode_all(layouts: Sequence[BufrLayout], threads: int | None = None) -> list[BufrFile]:
    """Inflate every stream of ``layouts`` (one file or a volume's files) in one thread pool.

    The largest streams go first so the pool does not end on one long inflate; small
    streams, or ``threads=1``, are inflated inline. The first error (a corrupt stream)
    is raised as its :class:`BufrDecodeError` naming its file.
    """
    with Inflater(threads) as inflater:
        for layout in layouts:
            inflater.add(layout)
        return inflater.finish()
