"""FTP replies as text: reading a (multi-line) reply, matching its code, passive addresses.

Pure functions and one small record, shared by the control connection on the event loop
(while a session is opened) and the one driven from a thread afterwards
(:mod:`radarlib.io.ftp.conversation`), so both read replies the same way.
"""

from __future__ import annotations

import re

from radarlib.errors import TransportError

__all__ = [
    "MAX_LINE",
    "Reply",
    "ReplyError",
    "code_matches",
    "decode_line",
    "epsv_port",
    "pasv_port",
]

#: longest reply line accepted (bytes); anything longer is not an FTP reply
MAX_LINE = 1 << 16

_EPSV_PORT = re.compile(r"\((.)\1\1(\d{1,5})\1\)")
_PASV_ADDRESS = re.compile(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")


class ReplyError(TransportError):
    """The server answered a command with an unexpected reply; the connection is still usable."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def unexpected(cls, what: str, code: str, text: str) -> ReplyError:
        """``what: server replied CODE text``: the one wording of an unexpected reply."""
        return cls(f"{what}: server replied {code} {text}".rstrip(), code)


def code_matches(code: str, pattern: str) -> bool:
    """``"226"`` matches ``"2xx"``, ``"22x"`` and ``"226"`` (three characters each)."""
    return (  # unrolled: a few checks per reply, on every transfer
        len(code) == len(pattern) == 3
        and pattern[0] in ("x", code[0])
        and pattern[1] in ("x", code[1])
        and pattern[2] in ("x", code[2])
    )


class Reply:
    """One reply, assembled line by line (RFC 959 4.2: ``123-`` ... ``123 ``).

    >>> reply = Reply("211-Features:", "srv")
    >>> reply.add(" MLST size*;"), reply.add("211 End")
    (False, True)
    >>> reply.code, reply.lines
    ('211', ['Features:', ' MLST size*;', 'End'])

    Interior lines may start with anything, even the reply's own code and a dash.
    """

    __slots__ = ("code", "complete", "lines")

    def __init__(self, first: str, where: str) -> None:
        code = first[:3]
        if len(code) != 3 or not code.isdigit() or first[3:4] not in ("", " ", "-"):
            raise TransportError(f"{where}: unreadable reply {first[:80]!r}")
        self.code = code
        self.lines = [first[4:]]
        self.complete = first[3:4] != "-"

    def add(self, text: str) -> bool:
        """Take the next line of a multi-line reply; True once the reply is complete."""
        if text[:3] == self.code and text[3:4] in ("", " "):
            self.lines.append(text[4:])
            self.complete = True
        else:
            self.lines.append(text)
        return self.complete


def decode_line(raw: bytes, encoding: str, where: str) -> str:
    """A reply line as text; :class:`TransportError` if too long, ``ConnectionResetError`` if cut.

    ``raw`` is what a ``readline`` limited to :data:`MAX_LINE` bytes returned.
    """
    if not raw.endswith(b"\n"):
        if len(raw) >= MAX_LINE:
            raise TransportError(f"{where}: reply line too long")
        raise ConnectionResetError("the server closed the control connection")
    return raw.decode(encoding, "replace").rstrip("\r\n")


def epsv_port(text: str) -> int:
    """The port of a ``229 Entering Extended Passive Mode (|||port|)`` reply line."""
    match = _EPSV_PORT.search(text)
    if match is None:
        raise TransportError(f"EPSV: unreadable reply {text[:80]!r}")
    return int(match.group(2))


def pasv_port(text: str) -> int:
    """The port of a ``227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`` reply line.

    Like aioftp, callers ignore the address in it and use the control connection's peer
    (NAT-safe).
    """
    numbers = _PASV_ADDRESS.search(text)
    if numbers is None:
        raise TransportError(f"PASV: unreadable reply {text[:80]!r}")
    return int(numbers.group(5)) * 256 + int(numbers.group(6))
