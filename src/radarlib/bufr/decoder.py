"""Generic section-4 decoding: walk an expanded descriptor tree and read its values from the bits.

The result mirrors the tree (:meth:`radarlib.bufr.tables.Tables.expand`): one value per
node, where an :class:`~radarlib.bufr.tables.Element` gives an ``int``/``float`` (numbers,
exact ``(raw + ref) / 10**scale``), a ``str`` (CCITT IA5, NULs stripped) or ``None``
(missing); a :class:`~radarlib.bufr.tables.Sequence` gives the list of its body's values;
a :class:`~radarlib.bufr.tables.Replication` gives a list with one such list per pass, except
a replication of one raw-octet element (a byte run such as 0 30 198), which gives the
octets at once as a ``memoryview``.

Every count is checked against the bits left before looping, so a corrupt factor cannot make
the decoder spin or allocate beyond what section 4 can hold; and ``max_values`` bounds the
values visited in all (a 2 MB section 4 of zero-count nested replications is millions of
empty passes, each fitting the bits left).
"""

from __future__ import annotations

from typing import Any

from radarlib.bufr.bits import BitReader, BitsExhausted
from radarlib.bufr.tables import Element, Node, Replication, Sequence, fxy_str
from radarlib.errors import BufrDecodeError

__all__ = ["decode_values"]


def decode_values(
    nodes: tuple[Node, ...],
    reader: BitReader,
    source: str | None = None,
    *,
    max_values: int | None = None,
) -> list[Any]:
    """Decode one subset: the values of ``nodes`` read from ``reader`` (see module docstring).

    Raises :class:`BufrDecodeError` naming ``source`` and the descriptor when the bits run
    out, a replication factor is missing, a count needs more bits than are left, or more
    than ``max_values`` values (elements plus replication passes) would be visited.
    """
    return _Walker(reader, source, max_values).walk(nodes)


class _Walker:
    __slots__ = ("left", "limit", "reader", "source")

    def __init__(self, reader: BitReader, source: str | None, limit: int | None) -> None:
        self.reader = reader
        self.source = source
        self.limit = limit
        self.left = -1 if limit is None else limit

    def fail(self, reason: str) -> BufrDecodeError:
        return BufrDecodeError(reason, self.source)

    def walk(self, nodes: tuple[Node, ...]) -> list[Any]:
        if self.limit is not None:
            self.left -= len(nodes) or 1
            if self.left < 0:
                raise self.fail(
                    f"more than {self.limit} values in section 4 (at bit {self.reader.pos}): "
                    "not a radar file's structure (nested replications?)"
                )
        out: list[Any] = []
        for node in nodes:
            if isinstance(node, Element):
                out.append(self.element(node))
            elif isinstance(node, Sequence):
                out.append(self.walk(node.body))
            else:
                out.append(self.replication(node))
        return out

    def element(self, element: Element) -> Any:
        reader = self.reader
        try:
            if element.is_string:
                raw = bytes(reader.read_bytes(element.width // 8))
                if element.has_missing and raw and raw.count(0xFF) == len(raw):
                    return None
                return raw.decode("latin-1").strip("\x00")
            return element.convert(reader.read(element.width))
        except BitsExhausted as exc:
            raise self.fail(
                f"section 4 ends while reading {fxy_str(element.fxy)} ({element.name}): {exc}"
            ) from None

    def replication(self, node: Replication) -> Any:
        reader = self.reader
        factor = node.factor
        if factor is not None:
            try:
                raw = reader.read(factor.width)
            except BitsExhausted as exc:
                raise self.fail(
                    f"section 4 ends while reading replication factor {fxy_str(factor.fxy)} "
                    f"of {fxy_str(node.fxy)}: {exc}"
                ) from None
            if factor.has_missing and raw == factor.missing_raw:
                raise self.fail(
                    f"replication factor {fxy_str(factor.fxy)} of {fxy_str(node.fxy)} "
                    "is missing (all bits set)"
                )
            count = raw
        else:
            count = node.count
        need = count * node.body_min_bits
        if need > reader.remaining:
            raise self.fail(
                f"replication {fxy_str(node.fxy)} x {count} needs at least {need} bits at "
                f"bit {reader.pos} but section 4 has only {reader.remaining} left"
            )
        if node.byte_run:
            return reader.read_bytes(count)  # bounds checked just above
        body = node.body
        if self.limit is not None and count > self.left:
            raise self.fail(
                f"replication {fxy_str(node.fxy)} x {count} at bit {reader.pos}: more than "
                f"{self.limit} values in section 4, not a radar file's structure"
            )
        return [self.walk(body) for _ in range(count)]
