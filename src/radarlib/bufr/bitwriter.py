"""An MSB-first bit writer for BUFR section 4: small fields through an int, byte runs as arrays.

Header fields (a few hundred per message) go through a Python int accumulator. Byte runs
(the 0 30 198 chunks of a zlib stream, up to 65 534 bytes each) are written whole: when the
stream is not byte-aligned they are shifted by the current bit phase with numpy, the reverse
of the realignment trick the decoder uses (format doc §3), never looped over in Python.

>>> w = BitWriter()
>>> w.write_uint(1, 2); w.write_bytes(b"\\xff\\x00")
>>> w.pad_to_octet()
6
>>> w.getvalue().hex()
'7fc000'
"""

from __future__ import annotations

import numpy as np

__all__ = ["BitWriter"]


class BitWriter:
    """Append unsigned big-endian bit fields and byte runs; :meth:`getvalue` returns the octets."""

    __slots__ = ("_acc", "_nacc", "_out")

    def __init__(self) -> None:
        self._out = bytearray()
        #: pending bits not yet forming a whole octet (always fewer than 8 between calls)
        self._acc = 0
        self._nacc = 0

    @property
    def bit_length(self) -> int:
        """Number of bits written so far."""
        return len(self._out) * 8 + self._nacc

    @property
    def phase(self) -> int:
        """Bit position inside the current octet (0 = byte-aligned)."""
        return self._nacc

    def write_uint(self, value: int, width: int) -> None:
        """Append ``value`` as an unsigned ``width``-bit field, most significant bit first.

        The caller checks the range; a value that does not fit is a programming error here.
        """
        if width <= 0 or value < 0 or value >> width:
            raise ValueError(f"{value} does not fit in {width} bits")
        acc = (self._acc << width) | value
        nacc = self._nacc + width
        whole, rest = divmod(nacc, 8)
        if whole:
            self._out += (acc >> rest).to_bytes(whole, "big")
            acc &= (1 << rest) - 1
        self._acc = acc
        self._nacc = rest

    def write_bytes(self, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Append whole octets at the current bit phase (one vectorised shift when unaligned)."""
        arr = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        if arr.dtype != np.uint8:
            arr = arr.view(np.uint8)
        arr = arr.reshape(-1)
        if arr.size == 0:
            return
        p = self._nacc
        if p == 0:
            self._out += arr.tobytes()
            return
        # Output octet i = (previous octet's low p bits) << (8 - p) | current octet >> p.
        shifted = np.empty(arr.size, dtype=np.uint8)
        shifted[0] = ((self._acc << (8 - p)) | (int(arr[0]) >> p)) & 0xFF
        np.bitwise_or(np.left_shift(arr[:-1], 8 - p), np.right_shift(arr[1:], p), out=shifted[1:])
        self._out += shifted.tobytes()
        self._acc = int(arr[-1]) & ((1 << p) - 1)

    def pad_to_octet(self) -> int:
        """Fill the current octet with zero bits; returns how many bits were added."""
        if self._nacc == 0:
            return 0
        added = 8 - self._nacc
        self.write_uint(0, added)
        return added

    def getvalue(self) -> bytes:
        """The octets written so far; the stream must be byte-aligned (see :meth:`pad_to_octet`)."""
        if self._nacc:
            raise ValueError(f"bit stream ends mid-octet ({self._nacc} pending bits)")
        return bytes(self._out)
