"""Is a file one whole BUFR message? Section 0's declared length and the closing ``7777``.

A radar file is complete when its size equals the total length declared in section 0 and its
last four bytes are ``7777``. A shorter file whose first bytes are a BUFR indicator is still
being written (or was cut); anything else is not a BUFR message at all. The download side
uses this instead of "the size did not change for a while": it needs 12 bytes of the file.

>>> check_envelope(b"BUFR\\x00\\x00\\x10\\x04", b"7777", 16)
Envelope(state='complete', declared=16, size=16, reason='')
>>> check_envelope(b"BUFR\\x00\\x00\\x10\\x04", b"\\x00\\x00\\x00\\x00", 12).state
'short'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["HEAD_BYTES", "Envelope", "check_envelope", "read_envelope"]

#: bytes of a file's start that :func:`check_envelope` needs
HEAD_BYTES = 8
_MIN_MESSAGE = 8 + 4  # section 0 plus section 5, the least a message can hold

State = Literal["complete", "short", "not-bufr"]


@dataclass(frozen=True)
class Envelope:
    """What a file's first and last bytes say: ``complete``, ``short`` or ``not-bufr``."""

    state: State
    declared: int | None
    size: int
    reason: str = ""


def check_envelope(head: bytes, tail: bytes, size: int) -> Envelope:
    """Judge a file of ``size`` bytes from its first 8 bytes (``head``) and last 4 (``tail``)."""
    if size < HEAD_BYTES:
        if b"BUFR"[: len(head)] == head[:4]:
            return Envelope("short", None, size, f"only {size} bytes")
        return Envelope("not-bufr", None, size, "does not start with 'BUFR'")
    if head[:4] != b"BUFR":
        return Envelope("not-bufr", None, size, f"starts with {head[:4]!r}, not 'BUFR'")
    declared = int.from_bytes(head[4:7], "big")
    if declared < _MIN_MESSAGE:
        return Envelope("not-bufr", declared, size, f"declares an impossible length {declared}")
    if size < declared:
        return Envelope("short", declared, size, f"{size} of the {declared} declared bytes")
    if size > declared:
        return Envelope("not-bufr", declared, size, f"{size} bytes, but declares {declared}")
    if tail != b"7777":
        return Envelope("not-bufr", declared, size, f"ends with {tail!r}, not '7777'")
    return Envelope("complete", declared, size)


def read_envelope(path: Path) -> Envelope:
    """:func:`check_envelope` of a file on disk (reads 12 bytes)."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        size = handle.seek(0, 2)
        tail = b""
        if size >= 4:
            handle.seek(size - 4)
            tail = handle.read(4)
    return check_envelope(head, tail, size)
