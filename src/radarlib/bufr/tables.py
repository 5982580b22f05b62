"""BUFR tables B and D as data, and the expansion of descriptor lists into a replication tree.

The packaged tables (``radarlib/bufr/tables/*.csv``) hold the WMO master table v16 entries
the RMA/OPERA radar template uses plus the local tables of originating centre 41
(Buenos Aires), versions 1 and 2, whose contents are identical. Decoder and encoder share
them through :class:`Tables`:

>>> tables = Tables.load()
>>> tables.element(21203).scale, tables.element(21203).width
(-1, 14)
>>> tables.sequence(301011)
(4001, 4002, 4003)

Descriptors are ints ``F*100000 + X*1000 + Y`` (``3 21 204`` is ``321204``);
:func:`fxy_str` formats them as ``"3 21 204"``.

Table files
-----------
Users add or override entries with a directory given as ``root_resources``. Every file in it
named ``table_b*.csv`` or ``table_d*.csv`` is read after the packaged ones (files in
name order; later entries replace earlier ones with the same descriptor). Both are plain CSV
(``csv`` module dialect, so quote names that contain commas); blank lines and lines starting
with ``#`` are ignored, and a first row starting with ``fxy`` is a header.

``table_b*.csv`` rows: ``fxy,name,unit,scale,reference,width[,has_missing]``

* ``fxy``: six digits ``FXXYYY`` with F = 0, e.g. ``021203``;
* ``unit``: ``CCITT IA5`` marks a character string (width a multiple of 8), anything else
  is numeric (``Numeric``, ``Code table``, ``m``, ``deg`` ...);
* ``scale``, ``reference``: integers; value = ``(raw + reference) / 10**scale``;
* ``width``: bits, 1-64 for numbers, 8-4096 (multiple of 8) for strings;
* ``has_missing``: ``1`` (default) if a raw value of all ones means "missing", ``0`` if it
  is an ordinary value (bytes of a compressed array, 1-bit replication factors).

``table_d*.csv`` rows: ``fxy,descriptors`` with F = 3 and the member descriptors as
six-digit codes separated by spaces, e.g. ``301011,004001 004002 004003``.

Expansion
---------
:meth:`Tables.expand` turns an unexpanded descriptor list (section 3) into a tuple of
:class:`Element`, :class:`Sequence` (a table-D entry, kept as a node so callers can find
its values by descriptor) and :class:`Replication` (``1 XX YYY``: the next XX descriptors
repeated YYY times, or, when YYY = 0, a number of times read from the data through the
class-31 factor descriptor that follows). Operators (F = 2) are not supported and raise
:class:`TableError`, as does any descriptor missing from the tables.
"""

from __future__ import annotations

import csv
import functools
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

__all__ = [
    "KNOWN_LOCAL_TABLES",
    "Element",
    "Node",
    "Replication",
    "Sequence",
    "TableError",
    "Tables",
    "fxy_str",
    "parse_fxy",
]

#: Local table versions the packaged local tables describe, per originating centre.
KNOWN_LOCAL_TABLES: dict[int, tuple[int, ...]] = {41: (1, 2)}

#: Deepest nesting of table-D sequences and replications accepted (guards against cycles).
MAX_DEPTH = 32

_STRING_UNITS = frozenset({"CCITT IA5", "CCITTIA5", "CCITT_IA5"})


class TableError(ValueError):
    """A descriptor is not in the tables, is not supported, or a table file is malformed."""


def fxy_str(fxy: int) -> str:
    """Format a descriptor int as ``"F XX YYY"`` (``321204`` -> ``"3 21 204"``)."""
    return f"{fxy // 100000} {fxy // 1000 % 100:02d} {fxy % 1000:03d}"


def parse_fxy(text: str) -> int:
    """Parse ``"321204"``, ``"3 21 204"`` or ``"3-21-204"`` into a descriptor int."""
    digits = text.strip().replace(" ", "").replace("-", "")
    if len(digits) != 6 or not digits.isdigit() or digits[0] not in "0123":
        raise TableError(f"{text!r} is not a descriptor FXXYYY")
    return int(digits)


@dataclass(frozen=True)
class Element:
    """A table-B element descriptor: how to read one value from the data bits."""

    fxy: int
    name: str
    unit: str
    scale: int
    reference: int
    width: int
    #: Whether a raw value of all ones means "missing" (False for raw bytes).
    has_missing: bool = True

    @property
    def is_string(self) -> bool:
        """True for CCITT IA5 character elements."""
        return self.unit.upper() in _STRING_UNITS

    @property
    def missing_raw(self) -> int:
        """The all-ones raw value."""
        return (1 << self.width) - 1

    @property
    def is_byte(self) -> bool:
        """True for an 8-bit numeric element whose value is its raw octet (scale 0, reference 0)."""
        return self.width == 8 and self.scale == 0 and self.reference == 0 and not self.is_string

    def convert(self, raw: int) -> int | float | None:
        """Value of a numeric raw field: ``(raw + reference) / 10**scale``, ``None`` if missing.

        One correctly rounded division for scale > 0; exact ints for scale <= 0.
        """
        if self.has_missing and raw == (1 << self.width) - 1:
            return None
        value = raw + self.reference
        if self.scale > 0:
            return value / 10**self.scale
        if self.scale < 0:
            return value * 10 ** (-self.scale)
        return value


@dataclass(frozen=True)
class Sequence:
    """An expanded table-D sequence ``3 XX YYY``."""

    fxy: int
    body: tuple[Node, ...]
    #: Fewest data bits one pass over ``body`` can take (for bounds checks).
    min_bits: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Replication:
    """``1 XX YYY``: ``body`` (the next XX descriptors, expanded) repeated.

    Fixed replication: ``count`` = YYY, ``factor`` None. Delayed replication (YYY = 0):
    ``factor`` is the class-31 element whose value, read from the data, is the count.
    """

    fxy: int
    body: tuple[Node, ...]
    count: int = 0
    factor: Element | None = None
    #: Fewest data bits one pass over ``body`` can take (for bounds checks).
    body_min_bits: int = field(default=0, compare=False)

    @property
    def delayed(self) -> bool:
        """True when the count is read from the data."""
        return self.factor is not None

    @property
    def byte_run(self) -> bool:
        """True when the body is one 8-bit raw-octet element: decode as one byte slice."""
        return len(self.body) == 1 and isinstance(self.body[0], Element) and self.body[0].is_byte


Node = Element | Sequence | Replication


def _min_bits(nodes: Iterable[Node]) -> int:
    total = 0
    for node in nodes:
        if isinstance(node, Element):
            total += node.width
        elif isinstance(node, Sequence):
            total += node.min_bits
        elif node.factor is not None:
            total += node.factor.width
        else:
            total += node.count * node.body_min_bits
    return total


def _rows(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    kept = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    for (n, _), row in zip(kept, csv.reader(line for _, line in kept), strict=False):
        if row and row[0].strip().lower() == "fxy":
            continue
        yield n, [cell.strip() for cell in row]


def _parse_b(path: Path, text: str) -> dict[int, Element]:
    out: dict[int, Element] = {}
    for n, row in _rows(path, text):
        where = f"{path.name} line {n}"
        if len(row) not in (6, 7):
            raise TableError(f"{where}: expected fxy,name,unit,scale,reference,width[,has_missing]")
        fxy = parse_fxy(row[0])
        if fxy // 100000 != 0:
            raise TableError(f"{where}: table B descriptor {fxy_str(fxy)} must have F = 0")
        try:
            scale, reference, width = int(row[3]), int(row[4]), int(row[5])
            has_missing = bool(int(row[6])) if len(row) == 7 and row[6] else True
        except ValueError as exc:
            raise TableError(f"{where}: {exc}") from None
        element = Element(fxy, row[1], row[2], scale, reference, width, has_missing)
        if element.is_string:
            if width % 8 or not 8 <= width <= 4096:
                raise TableError(f"{where}: string width {width} is not 8-4096 in octets")
        elif not 1 <= width <= 64:
            raise TableError(f"{where}: width {width} is not 1-64 bits")
        if abs(scale) > 30:
            raise TableError(f"{where}: scale {scale} out of range")
        out[fxy] = element
    return out


def _parse_d(path: Path, text: str) -> dict[int, tuple[int, ...]]:
    out: dict[int, tuple[int, ...]] = {}
    for n, row in _rows(path, text):
        where = f"{path.name} line {n}"
        if len(row) != 2:
            raise TableError(f"{where}: expected fxy,descriptors")
        fxy = parse_fxy(row[0])
        if fxy // 100000 != 3:
            raise TableError(f"{where}: table D descriptor {fxy_str(fxy)} must have F = 3")
        members = tuple(parse_fxy(tok) for tok in row[1].split())
        if not members:
            raise TableError(f"{where}: sequence {fxy_str(fxy)} is empty")
        out[fxy] = members
    return out


class Tables:
    """Table B elements and table D sequences, plus cached expansions of descriptor lists.

    Immutable after construction and safe to share between threads.
    """

    def __init__(
        self,
        elements: dict[int, Element],
        sequences: dict[int, tuple[int, ...]],
        sources: tuple[str, ...] = (),
    ) -> None:
        self._elements = dict(elements)
        self._sequences = dict(sequences)
        #: The table files these entries came from, in load order.
        self.sources = sources
        self._expanded: dict[tuple[int, ...], tuple[Node, ...]] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, root_resources: str | os.PathLike[str] | None = None) -> Tables:
        """The packaged tables, plus the ``table_b*.csv``/``table_d*.csv`` of ``root_resources``.

        Raises :class:`TableError` when ``root_resources`` is not a directory or a file
        in it is malformed. The packaged tables are loaded once per process.
        """
        base = _packaged()
        if root_resources is None:
            return base
        root = Path(root_resources)
        if not root.is_dir():
            raise TableError(f"root_resources {str(root)!r} is not a directory")
        elements = dict(base._elements)
        sequences = dict(base._sequences)
        sources = list(base.sources)
        for path in sorted(root.iterdir()):
            lower = path.name.lower()
            if not lower.endswith(".csv") or not path.is_file():
                continue
            if lower.startswith("table_b"):
                elements.update(_parse_b(path, _read_text(path)))
            elif lower.startswith("table_d"):
                sequences.update(_parse_d(path, _read_text(path)))
            else:
                continue
            sources.append(str(path))
        return cls(elements, sequences, tuple(sources))

    def element(self, fxy: int) -> Element:
        """The table-B entry of ``fxy``; :class:`TableError` naming it when absent."""
        try:
            return self._elements[fxy]
        except KeyError:
            raise TableError(f"descriptor {fxy_str(fxy)} is not in table B") from None

    def sequence(self, fxy: int) -> tuple[int, ...]:
        """The member descriptors of table-D entry ``fxy``; :class:`TableError` when absent."""
        try:
            return self._sequences[fxy]
        except KeyError:
            raise TableError(f"descriptor {fxy_str(fxy)} is not in table D") from None

    def __contains__(self, fxy: object) -> bool:
        return fxy in self._elements or fxy in self._sequences

    def expand(self, descriptors: Iterable[int]) -> tuple[Node, ...]:
        """Expand an unexpanded descriptor list into a tree of nodes (cached per list).

        Sequences are expanded recursively and kept as :class:`Sequence` nodes;
        ``1 XX YYY`` takes the next XX descriptors of its own list (after its factor
        descriptor when YYY = 0). Raises :class:`TableError` naming the descriptor for an
        unknown descriptor, an operator (F = 2), a delayed replication without a class-31
        factor, a replication running past the end of its list, or nesting deeper than
        ``MAX_DEPTH``.
        """
        key = tuple(descriptors)
        cached = self._expanded.get(key)
        if cached is not None:
            return cached
        nodes = self._expand(key, 0)
        with self._lock:
            if len(self._expanded) < 256:
                self._expanded[key] = nodes
        return nodes

    def _expand(self, descs: tuple[int, ...], depth: int) -> tuple[Node, ...]:
        if depth > MAX_DEPTH:
            raise TableError(f"descriptors nest deeper than {MAX_DEPTH} levels (a cycle?)")
        out: list[Node] = []
        i = 0
        while i < len(descs):
            fxy = descs[i]
            f, x, y = fxy // 100000, fxy // 1000 % 100, fxy % 1000
            if f == 0:
                out.append(self.element(fxy))
                i += 1
            elif f == 3:
                body = self._expand(self.sequence(fxy), depth + 1)
                out.append(Sequence(fxy, body, _min_bits(body)))
                i += 1
            elif f == 1:
                if x == 0:
                    raise TableError(f"replication {fxy_str(fxy)} replicates 0 descriptors")
                factor: Element | None = None
                start = i + 1
                if y == 0:
                    if start >= len(descs) or descs[start] // 1000 != 31:
                        raise TableError(
                            f"delayed replication {fxy_str(fxy)} is not followed by a "
                            "class-31 replication factor"
                        )
                    factor = self.element(descs[start])
                    start += 1
                members = descs[start : start + x]
                if len(members) < x:
                    raise TableError(
                        f"replication {fxy_str(fxy)} needs {x} descriptors, "
                        f"only {len(members)} follow"
                    )
                body = self._expand(members, depth + 1)
                out.append(Replication(fxy, body, y, factor, _min_bits(body)))
                i = start + x
            else:
                raise TableError(f"operator descriptor {fxy_str(fxy)} is not supported")
        return tuple(out)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"cannot read table file {str(path)!r}: {exc}") from None


@functools.lru_cache(maxsize=1)
def _packaged() -> Tables:
    folder = resources.files("radarlib.bufr") / "tables"
    elements: dict[int, Element] = {}
    sequences: dict[int, tuple[int, ...]] = {}
    sources: list[str] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        lower = entry.name.lower()
        if not lower.endswith(".csv"):
            continue
        path = Path(str(entry))
        if lower.startswith("table_b"):
            elements.update(_parse_b(path, entry.read_text(encoding="utf-8")))
        elif lower.startswith("table_d"):
            sequences.update(_parse_d(path, entry.read_text(encoding="utf-8")))
        else:
            continue
        sources.append(entry.name)
    return Tables(elements, sequences, tuple(sources))
