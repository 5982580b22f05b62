"""Inflate a zlib stream to exactly its declared size, never more (libdeflate, else stdlib zlib).

The output size of every compressed sweep is known in advance (nrays x ngates x 8), so
inflating is bounded by it: a stream that would produce more stops at size + 1 bytes
(stdlib) or fails for lack of room (libdeflate), so a zlib bomb never allocates more than
the file's declared sizes justify. libdeflate (the optional ``deflate`` package, extra
``radarlib[fast]``) decodes about twice as fast as zlib when the exact size is known.

>>> import zlib
>>> bytes(inflate_exact(zlib.compress(b"abc" * 4), 12))
b'abcabcabcabc'
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["BACKEND", "InflateError", "inflate_exact"]

_deflate: Any
try:  # optional speed-up: pip install radarlib[fast]
    import deflate as _deflate
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _deflate = None

#: ``"libdeflate"`` or ``"zlib"``: the library :func:`inflate_exact` uses by default.
BACKEND: str = "libdeflate" if _deflate is not None else "zlib"

#: Deflate cannot expand data by more than ~1032:1; sizes beyond this are impossible.
_MAX_RATIO = 1032
_SLACK = 1024
#: Output piece size of the stdlib path for large outputs.
_PIECE = 4 << 20


class InflateError(ValueError):
    """A zlib stream is corrupt, or does not inflate to exactly the expected size."""


def _stdlib(data: bytes | bytearray | memoryview, size: int) -> bytes | bytearray:
    inflater = zlib.decompressobj()
    try:
        if size < _PIECE:  # one call; at most size + 1 bytes come out
            out: bytes | bytearray = inflater.decompress(data, size + 1)
            filled = len(out)
        else:  # large: fill a buffer piece by piece (zlib would otherwise hold it twice)
            out = bytearray(size)
            filled = 0
            tail: bytes | bytearray | memoryview = data
            while not inflater.eof:
                want = min(_PIECE, size - filled + 1)
                piece = inflater.decompress(tail, want)
                tail = inflater.unconsumed_tail
                if filled + len(piece) > size:
                    filled += len(piece)
                    break
                out[filled : filled + len(piece)] = piece
                filled += len(piece)
                if len(piece) < want and not tail:
                    break  # input used up
    except zlib.error as exc:
        raise InflateError(f"corrupt zlib stream ({exc})") from None
    if filled > size:
        raise InflateError(f"zlib stream inflates to more than the expected {size} bytes")
    if not inflater.eof:
        raise InflateError(
            f"zlib stream ends early: {filled} of the expected {size} bytes, no end of stream"
        )
    if inflater.unused_data:
        raise InflateError(f"{len(inflater.unused_data)} bytes after the end of the zlib stream")
    if filled != size:
        raise InflateError(f"zlib stream inflates to {filled} bytes, expected {size}")
    return out


def inflate_exact(
    data: bytes | bytearray | memoryview, size: int, *, backend: str | None = None
) -> bytes | bytearray:
    """Inflate the zlib stream ``data`` to exactly ``size`` bytes or raise :class:`InflateError`.

    Checks: the stream is valid, reaches its end, has no trailing bytes, and its output is
    exactly ``size`` bytes; at most ``size + 1`` bytes are ever produced. ``backend``
    (``"libdeflate"`` or ``"zlib"``) overrides :data:`BACKEND`, for benchmarks and tests.
    """
    if size < 0:
        raise InflateError(f"negative expected size {size}")
    if size > _MAX_RATIO * len(data) + _SLACK:
        raise InflateError(
            f"{len(data)} compressed bytes cannot inflate to the declared {size} bytes"
        )
    use = backend or BACKEND
    if use == "zlib" or _deflate is None or size == 0:
        return _stdlib(data, size)
    if use != "libdeflate":
        raise ValueError(f"unknown inflate backend {use!r}")
    # The zlib frame is a 2-byte header, raw deflate data and the Adler-32 of the output.
    # libdeflate inflates the raw data; the one Adler-32 pass below then checks both the
    # output and that the trailer is the input's last 4 bytes (no bytes after the stream).
    # (zlib_decompress would compute the same checksum itself, and ours would be a second.)
    view = memoryview(data).cast("B")
    header_ok = (
        len(view) >= 6
        and view[0] & 0x0F == 8
        and view[0] >> 4 <= 7
        and not view[1] & 0x20
        and (view[0] << 8 | view[1]) % 31 == 0
    )
    if not header_ok:
        _stdlib(data, size)  # raises with zlib's reason
        raise InflateError("corrupt zlib stream header")
    try:
        out = _deflate.deflate_decompress(view[2:-4], size)
    except _deflate.DeflateError:
        # libdeflate does not say why; let zlib (bounded the same way) give the reason.
        _stdlib(data, size)
        raise InflateError("corrupt zlib stream (libdeflate)") from None
    if len(out) != size:
        raise InflateError(f"zlib stream inflates to {len(out)} bytes, expected {size}")
    # (Trailing bytes that themselves end with the same Adler-32, e.g. a second copy of the
    # stream, pass this check; the output is still exact and verified.)
    if _deflate.adler32(out) != int.from_bytes(view[-4:], "big"):
        _stdlib(data, size)
        raise InflateError("bytes after the end of the zlib stream, or a wrong Adler-32")
    return out
