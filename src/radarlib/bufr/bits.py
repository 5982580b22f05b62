"""An MSB-first bit reader for BUFR section 4: bounded field reads and whole byte-run slices.

Small fields (a few hundred per message) are read through Python ints. Byte runs (the
0 30 198 chunks of a zlib stream) are returned as memoryview slices: when the stream is not
byte-aligned there, the rest of the data is shifted once by the bit phase with numpy
(format doc §3) and runs at that phase are sliced from the realigned copy, never looped
over in Python.

>>> r = BitReader(bytes([0b10110000, 0xFF]))
>>> r.read(3), r.read(1), r.pos
(5, 1, 4)
>>> bytes(r.read_bytes(1)).hex(), r.remaining
('0f', 4)
"""

from __future__ import annotations

import numpy as np

__all__ = ["BitReader", "BitsExhausted"]

#: Byte runs shorter than this at a non-zero phase are read through ints, not realigned.
_REALIGN_MIN = 64


class BitsExhausted(EOFError):
    """A read would go past the end of the bit stream."""

    def __init__(self, pos: int, width: int, end: int) -> None:
        self.pos, self.width, self.end = pos, width, end
        super().__init__(f"{width} bits at bit {pos} run past the end of the data ({end} bits)")


class BitReader:
    """Read unsigned big-endian bit fields and byte runs from ``data``, never past its end.

    Not thread-safe (it has a position); create one per decode.
    """

    __slots__ = ("_aligned", "_data", "_end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data).cast("B")
        self._end = len(self._data) * 8
        #: current position in bits from the first bit of ``data``
        self.pos = 0
        #: phase -> (first byte index, realigned copy of data from there on)
        self._aligned: dict[int, tuple[int, memoryview]] = {}

    @property
    def end(self) -> int:
        """Number of bits in the stream."""
        return self._end

    @property
    def remaining(self) -> int:
        """Bits left after the current position."""
        return self._end - self.pos

    def read(self, width: int) -> int:
        """Read an unsigned ``width``-bit field, most significant bit first."""
        pos = self.pos
        stop = pos + width
        if stop > self._end:
            raise BitsExhausted(pos, width, self._end)
        first = pos >> 3
        last = (stop + 7) >> 3
        chunk = int.from_bytes(self._data[first:last], "big")
        self.pos = stop
        return (chunk >> ((last << 3) - stop)) & ((1 << width) - 1)

    def skip(self, nbits: int) -> None:
        """Advance by ``nbits`` bits."""
        if nbits < 0 or self.pos + nbits > self._end:
            raise BitsExhausted(self.pos, nbits, self._end)
        self.pos += nbits

    def read_bytes(self, count: int) -> memoryview:
        """Read ``count`` whole octets starting at the current bit, as a memoryview slice.

        At phase 0 this slices the data itself; otherwise the rest of the data is realigned
        once per phase (a numpy shift) and sliced, so long runs never loop in Python.
        """
        pos = self.pos
        nbits = count * 8
        if count < 0 or pos + nbits > self._end:
            raise BitsExhausted(pos, nbits, self._end)
        phase = pos & 7
        first = pos >> 3
        if phase == 0:
            out = self._data[first : first + count]
        elif count < _REALIGN_MIN:
            value = self.read(nbits) if count else 0
            self.pos = pos
            out = memoryview(value.to_bytes(count, "big"))
        else:
            origin, aligned = self._realigned(phase, first)
            out = aligned[first - origin : first - origin + count]
        self.pos = pos + nbits
        return out

    def _realigned(self, phase: int, first: int) -> tuple[int, memoryview]:
        cached = self._aligned.get(phase)
        if cached is not None and cached[0] <= first:
            return cached
        # Overlapping big-endian 16-bit windows (stride 1 byte): window i = b[i] << 8 | b[i+1],
        # so byte i of the realigned stream is the low octet of window i >> (8 - phase).
        count = len(self._data) - first
        shifted = np.empty(count, dtype=np.uint8)
        if count > 1:
            windows = np.ndarray(
                shape=(count - 1,), dtype=">u2", buffer=self._data, offset=first, strides=(1,)
            )
            np.right_shift(windows, 8 - phase, out=shifted[:-1], casting="unsafe")
        shifted[-1] = (self._data[-1] << phase) & 0xFF
        entry = (first, memoryview(shifted.data).cast("B"))
        self._aligned[phase] = entry
        return entry
