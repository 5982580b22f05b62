"""Reading FTP replies as text: multi-line replies (RFC 959 4.2), cut lines, passive ports."""

from __future__ import annotations

import pytest

from radarlib.errors import TransportError
from radarlib.io.ftp.replies import (
    MAX_LINE,
    Reply,
    code_matches,
    decode_line,
    epsv_port,
    pasv_port,
)


def test_a_multi_line_reply_ends_only_at_its_own_code_and_a_space() -> None:
    reply = Reply("213-counting", "srv")
    interior = ["123 a numeric line", "213-still not the end", " 213 indented", "213"]
    assert [reply.add(line) for line in interior] == [False, False, False, True]
    assert reply.code == "213"
    assert reply.lines == [
        "counting",
        "123 a numeric line",
        "213-still not the end",
        " 213 indented",
        "",
    ]


def test_a_single_line_reply_is_complete_at_once() -> None:
    reply = Reply("229 Entering Extended Passive Mode (|||40001|)", "srv")
    assert reply.complete and reply.code == "229"
    assert epsv_port(reply.lines[-1]) == 40001


@pytest.mark.parametrize("first", ["hello there", "2", "21x ok", "213+ok", ""])
def test_an_unreadable_first_line_names_the_server(first: str) -> None:
    with pytest.raises(TransportError, match=r"^srv:21: unreadable reply"):
        Reply(first, "srv:21")


def test_lines_are_decoded_and_cut_or_huge_lines_are_told_apart() -> None:
    assert decode_line(b"226 done\r\n", "utf-8", "srv") == "226 done"
    assert decode_line(b"226 caf\xc3\xa9 \xff\n", "utf-8", "srv") == "226 caf\u00e9 \ufffd"
    with pytest.raises(ConnectionResetError):
        decode_line(b"226 do", "utf-8", "srv")  # the server hung up mid-line
    with pytest.raises(TransportError, match="reply line too long"):
        decode_line(b"2" * MAX_LINE, "utf-8", "srv")  # readline stopped at its limit


def test_passive_ports() -> None:
    assert epsv_port("Entering Extended Passive Mode (!!!2121!)") == 2121  # any delimiter
    assert pasv_port("Entering Passive Mode (10,0,0,5,156,64).") == 156 * 256 + 64
    with pytest.raises(TransportError, match="EPSV: unreadable reply"):
        epsv_port("Entering Extended Passive Mode (|||x|)")
    with pytest.raises(TransportError, match="PASV: unreadable reply"):
        pasv_port("Entering Passive Mode")


@pytest.mark.parametrize(
    ("code", "pattern", "matches"),
    [
        ("226", "2xx", True),
        ("226", "22x", True),
        ("226", "226", True),
        ("150", "1xx", True),
        ("226", "1xx", False),
        ("226", "225", False),
        ("425", "4x6", False),
        ("22", "2xx", False),
        ("2260", "2xx", False),
    ],
)
def test_reply_codes_match_patterns_digit_by_digit(code: str, pattern: str, matches: bool) -> None:
    assert code_matches(code, pattern) is matches
