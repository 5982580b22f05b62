"""The FTP client layer on aioftp against real servers on 127.0.0.1: listings, typed errors.

pyftpdlib for the real protocol; a scripted control connection for replies pyftpdlib never
sends (garbage, huge lines, odd multi-line forms, a server that hangs).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ftpserver import FTPServerThread
from radarlib.errors import (
    FTPAuthError,
    RemoteFileError,
    RemotePathError,
    SessionLimitError,
    TransportError,
)
from radarlib.io.ftp.client import MAX_LINE, FTPClient, parse_count

NAME = "RMA1_0315_01_DBZH_20250101T000500Z.BUFR"
REMOTE = f"/L2/RMA1/2025/01/01/00/0500/{NAME}"


def _client(server: FTPServerThread, **kw: object) -> FTPClient:
    options: dict[str, object] = {
        "username": "radar",
        "password": "secret",
        "connect_timeout": 2.0,
        "command_timeout": 5.0,
        "data_timeout": 5.0,
    }
    options.update(kw)
    return FTPClient("127.0.0.1", server.port, **options)  # type: ignore[arg-type]


@pytest.fixture
def payload(ftp_server: FTPServerThread) -> bytes:
    data = os.urandom(3_000_000)
    ftp_server.publish(NAME, data)
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _read(ftp: FTPClient, path: str, offset: int = 0) -> bytes:
    async with ftp.retrieve(path, offset=offset) as blocks:
        return b"".join([block async for block in blocks])


@pytest.mark.parametrize("mlsd", [True, False])
def test_listing_size_and_missing_folders(tmp_path: Path, mlsd: bool) -> None:
    with FTPServerThread(tmp_path / "root", mlsd=mlsd) as server:
        server.publish(NAME, b"x" * 1234)

        async def go() -> None:
            async with _client(server) as ftp:
                hours = await ftp.list_dir("/L2/RMA1/2025/01/01/00")
                assert [(e.name, e.is_dir) for e in hours or []] == [("0500", True)]
                files = await ftp.list_dir("/L2/RMA1/2025/01/01/00/0500")
                assert [(e.name, e.is_dir, e.size) for e in files or []] == [(NAME, False, 1234)]
                assert await ftp.list_dir("/L2/RMA1/1999") is None
                assert await ftp.size(REMOTE) == 1234
                assert await ftp.size(REMOTE + ".missing") is None
                await ftp.check_dir("/L2")
                with pytest.raises(RemotePathError, match="/nowhere"):
                    await ftp.check_dir("/nowhere")
                assert ftp.connected  # refused commands keep the session

        asyncio.run(go())


def test_numbers_are_ascii_digits_only() -> None:
    assert parse_count("1234") == 1234
    for bad in ("²", "1²", "١٢", "12 ", "-1", "1e3", "", "9" * 16, None, 12):
        assert parse_count(bad) is None, bad


def test_odd_sizes_in_listings_and_size_replies_are_not_fatal(
    ftp_server: FTPServerThread,
) -> None:
    """``size=²`` in MLSD or LIST, or ``213 ²``: unknown sizes, a typed error, never ValueError."""
    ftp_server.publish(NAME, b"x" * 10)
    folder = "/L2/RMA1/2025/01/01/00/0500"
    odd = "RMA1_0315_01_ZDR_20250101T000500Z.BUFR"
    ftp_server.raw_listing[folder] = lambda mlsd: [
        f"type=file;size=²;modify=20250101000000; {odd}\r\n"
        if mlsd
        else f"-rw-r--r--   1 owner    group          ² Jan 01 00:00 {odd}\r\n"
    ]

    async def go() -> None:
        async with _client(ftp_server) as ftp:
            entries = {e.name: e.size for e in await ftp.list_dir(folder) or []}
            assert entries[NAME] == 10
            assert entries.get(odd, "skipped") in (None, "skipped")  # unknown size, or skipped
            ftp_server.size_reply = "²"
            with pytest.raises(RemoteFileError, match="unreadable reply"):
                await ftp.size(REMOTE)
            assert ftp.connected
            ftp_server.size_reply = None
            assert await ftp.size(REMOTE) == 10

    asyncio.run(go())
    with FTPServerThread(ftp_server.root, mlsd=False) as plain:
        plain.raw_listing = ftp_server.raw_listing

        async def listing() -> None:
            async with _client(plain) as ftp:
                entries = {e.name for e in await ftp.list_dir(folder) or []}
                assert NAME in entries

        asyncio.run(listing())


def test_junk_and_over_long_listing_lines_are_skipped_and_counted(
    ftp_server: FTPServerThread,
) -> None:
    ftp_server.publish(NAME, b"x" * 10)
    folder = "/L2/RMA1/2025/01/01/00/0500"
    ftp_server.raw_listing[folder] = [
        b"\xff\xfe garbage without facts\r\n",
        b"type=file;size=5; " + b"A" * 300_000 + b"\r\n",  # a 300 kB name
        b"type=file;size=7; after.BUFR\r\n",
    ]

    async def go() -> None:
        async with _client(ftp_server) as ftp:
            names = [e.name for e in await ftp.list_dir(folder) or []]
            assert {NAME, "after.BUFR"} <= set(names)  # the lines after the junk are read
            assert ftp.skipped_lines >= 1  # the 300 kB line
            assert all(len(n) <= MAX_LINE for n in names)

    asyncio.run(go())


def test_retrieve_whole_and_from_an_offset(ftp_server: FTPServerThread, payload: bytes) -> None:
    async def go() -> None:
        async with _client(ftp_server) as ftp:
            assert _sha(await _read(ftp, REMOTE)) == _sha(payload)
            assert await _read(ftp, REMOTE, offset=1_000_000) == payload[1_000_000:]
            with pytest.raises(RemoteFileError, match="550"):
                await _read(ftp, REMOTE + ".missing")
            assert ftp.connected  # a refused RETR keeps the session
            assert await _read(ftp, REMOTE, offset=5) == payload[5:]

    asyncio.run(go())


def test_unreachable_data_port_fails_without_waiting_for_timeouts(
    ftp_server: FTPServerThread, payload: bytes
) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    ftp_server.fake_passive_port = probe.getsockname()[1]
    probe.close()  # nothing listens there: the data connection is refused

    async def go() -> None:
        ftp = _client(ftp_server, command_timeout=30.0, data_timeout=30.0)
        await ftp.connect()
        with pytest.raises(TransportError) as caught:
            await asyncio.wait_for(_read(ftp, REMOTE), 10)
        assert "timed out" not in str(caught.value) and "RETR" in str(caught.value)
        ftp.abort()

    asyncio.run(go())
    ftp_server.fake_passive_port = 0


def test_wrong_password_is_an_auth_error(ftp_server: FTPServerThread) -> None:
    async def go() -> None:
        with pytest.raises(FTPAuthError, match="login refused"):
            await _client(ftp_server, password="wrong").connect()

    asyncio.run(go())
    deadline = time.monotonic() + 5  # the server counts the failure after its own short delay
    while ftp_server.failed_logins < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ftp_server.failed_logins == 1


def test_a_421_at_the_connection_limit_is_a_session_limit(
    scripted: Callable[[dict[str, bytes | None]], _ScriptedServer],
) -> None:
    server = scripted({}, greeting=b"421 Too many connections (4) from this IP\r\n")

    async def go() -> None:
        with pytest.raises(SessionLimitError, match="421"):
            await FTPClient("127.0.0.1", server.port, command_timeout=5.0).connect()

    asyncio.run(go())


def test_refused_connection_is_a_transport_error(ftp_server: FTPServerThread) -> None:
    ftp_server.stop()

    async def go() -> None:
        with pytest.raises(TransportError, match=r"connect to 127\.0\.0\.1"):
            await _client(ftp_server).connect()

    asyncio.run(go())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                accepted.append(sock.accept()[0])
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    sock.close()
    for conn in accepted:
        conn.close()


def test_silent_server_times_out(silent_server: int) -> None:
    async def go() -> None:
        ftp = FTPClient("127.0.0.1", silent_server, connect_timeout=0.3, command_timeout=0.3)
        with pytest.raises(TransportError, match="timed out"):
            await ftp.connect()

    asyncio.run(go())


def test_stalled_transfer_is_cut(ftp_server: FTPServerThread, payload: bytes) -> None:
    ftp_server.throttle(1)  # one byte per second: the data connection makes no progress

    async def go() -> None:
        async with _client(ftp_server, data_timeout=0.4) as ftp:
            with pytest.raises(TransportError, match="timed out"):
                await asyncio.wait_for(_read(ftp, REMOTE), 10)
            assert not ftp.connected  # a broken session is dropped, the caller reconnects

    asyncio.run(go())


class _ScriptedServer:
    """A control connection that logs in and then answers each command from a script.

    ``script`` maps a command verb to the raw reply bytes (``None``: never answer); it lets
    the client's reply parser meet replies pyftpdlib never sends (odd multi-line forms,
    garbage, huge lines) and a server that hangs.
    """

    def __init__(self, script: dict[str, bytes | None], greeting: bytes = b"220 hi\r\n") -> None:
        self.script = script
        self.greeting = greeting
        self.received: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.sendall(self.greeting)
            if not self.greeting.startswith(b"220"):
                return
            for raw in lines:
                verb = raw.decode().split(" ", 1)[0].strip().upper()
                self.received.append(verb)
                reply = {
                    "USER": b"331 password\r\n",
                    "PASS": b"230 in\r\n",
                    "QUIT": b"221 bye\r\n",
                }.get(verb)
                if reply is None:
                    reply = self.script.get(verb, b"502 no\r\n")
                if reply is None:  # hangs: reads on, answers nothing
                    continue
                conn.sendall(reply)
                if not reply.endswith(b"\n"):  # a reply cut short: the server hangs up
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[dict[str, bytes | None]], _ScriptedServer]]:
    servers: list[_ScriptedServer] = []

    def start(script: dict[str, bytes | None], greeting: bytes = b"220 hi\r\n") -> _ScriptedServer:
        servers.append(_ScriptedServer(script, greeting))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_multi_line_replies_per_rfc_959(
    scripted: Callable[[dict[str, bytes | None]], _ScriptedServer],
) -> None:
    # interior lines may start with digits, even the reply's own code plus a dash
    server = scripted({"SIZE": b"213-counting\r\n 213 not the end\r\n213 4567\r\n"})

    async def go() -> None:
        async with FTPClient("127.0.0.1", server.port, command_timeout=5.0) as ftp:
            assert await ftp.size("/x") == 4567

    asyncio.run(go())


@pytest.mark.parametrize(
    "reply",
    [
        b"hello there\r\n",
        b"2\r\n",
        b"213 " + b"9" * 70_000 + b"\r\n",
    ],
)
def test_malformed_replies_are_transport_errors(
    scripted: Callable[[dict[str, bytes | None]], _ScriptedServer], reply: bytes
) -> None:
    server = scripted({"SIZE": reply})

    async def go() -> None:
        ftp = FTPClient("127.0.0.1", server.port, command_timeout=2.0)
        await ftp.connect()
        with pytest.raises(TransportError) as caught:
            await ftp.size("/x")
        assert "SIZE /x" in str(caught.value)
        assert len(str(caught.value)) < 500  # a 70 kB reply is not echoed whole
        server.close()

    asyncio.run(go())


def test_cancelling_a_command_that_hangs_cuts_the_session_at_once(
    scripted: Callable[[dict[str, bytes | None]], _ScriptedServer],
) -> None:
    server = scripted({"SIZE": None})

    async def go() -> None:
        ftp = FTPClient("127.0.0.1", server.port, command_timeout=60.0)
        await ftp.connect()
        task = asyncio.create_task(ftp.size("/x"))
        while "SIZE" not in server.received:
            await asyncio.sleep(0.01)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=20)  # far below the command timeout
        assert done and task.cancelled()
        assert not ftp.connected
        with pytest.raises(TransportError, match="not connected"):
            await ftp.size("/x")

    asyncio.run(go())
