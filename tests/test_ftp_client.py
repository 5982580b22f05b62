"""The FTP client layer against a real pyftpdlib server on 127.0.0.1: listings, resume, errors."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ftpserver import FTPServerThread
from radarlib.errors import FTPAuthError, RemotePathError, TransportError
from radarlib.io.ftp.client import FTPClient, ReplyError

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
                assert await ftp.size("/L2/nothing.BUFR") is None
                await ftp.check_dir("/L2")
                with pytest.raises(RemotePathError, match="/L9"):
                    await ftp.check_dir("/L9")

        asyncio.run(go())
        assert server.listed == [
            "/L2/RMA1/2025/01/01/00",
            "/L2/RMA1/2025/01/01/00/0500",
            "/L2/RMA1/1999",
        ]


def test_refused_listings_leave_no_unretrieved_errors(
    ftp_server: FTPServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A 550 cuts a data thread that may still be connecting; its outcome is not "lost"."""

    async def go() -> None:
        async with _client(ftp_server) as ftp:
            for _ in range(30):
                assert await ftp.list_dir("/L2/RMA1/1999") is None
            await asyncio.sleep(0.3)  # the cut data threads finish meanwhile

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(go())
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_fetch_frees_the_connection_before_the_file_is_settled(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    """fetch() returns once the server confirmed; the next commands may go out meanwhile."""
    data = {name: os.urandom(1_500_000 + i) for i, name in enumerate(("a", "b", "c"))}
    for name, content in data.items():
        ftp_server.publish(NAME.replace("DBZH", name.upper() + "X"), content)

    async def go() -> None:
        async with _client(ftp_server) as ftp:
            fetched = []
            for name in data:
                remote = REMOTE.replace("DBZH", name.upper() + "X")
                fetched.append(await ftp.fetch(remote, tmp_path / name))
                assert await ftp.size(remote) == len(data[name])  # the connection is free
            for name, item in zip(data, fetched, strict=True):
                done = await asyncio.to_thread(item.settle, 10)
                assert (done.size, done.sha256) == (len(data[name]), _sha(data[name]))
                assert (tmp_path / name).read_bytes() == data[name]

    asyncio.run(go())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_local_write_error_is_a_transport_error_naming_it(
    ftp_server: FTPServerThread, payload: bytes
) -> None:
    async def go() -> None:
        async with _client(ftp_server) as ftp:
            with pytest.raises(TransportError, match="No space left on device"):
                await ftp.download(REMOTE, Path("/dev/full"), resume=False)

    asyncio.run(go())


def test_download_hashes_and_resumes_with_rest(
    ftp_server: FTPServerThread, payload: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "x.part"

    async def go() -> None:
        async with _client(ftp_server) as ftp:
            whole = await ftp.download(REMOTE, dest)
            assert (whole.size, whole.sha256, whole.resumed_from) == (
                len(payload),
                _sha(payload),
                0,
            )
            with open(dest, "r+b") as handle:
                handle.truncate(1_000_000)
            resumed = await ftp.download(REMOTE, dest)
            assert resumed.resumed_from == 1_000_000
            assert resumed.sha256 == _sha(payload) and dest.read_bytes() == payload
            fresh = await ftp.download(REMOTE, dest, resume=False)
            assert fresh.resumed_from == 0 and dest.read_bytes() == payload

    asyncio.run(go())


def test_server_without_rest_restarts_from_zero(tmp_path: Path) -> None:
    data = os.urandom(500_000)
    with FTPServerThread(tmp_path / "root", rest=False) as server:
        server.publish(NAME, data)
        dest = tmp_path / "x.part"
        dest.write_bytes(data[:1000])

        async def go() -> None:
            async with _client(server) as ftp:
                result = await ftp.download(REMOTE, dest)
                assert result.resumed_from == 0 and result.sha256 == _sha(data)
                assert not ftp.supports_rest
                dest.write_bytes(data[:5000])  # a second partial file on the same session
                again = await ftp.download(REMOTE, dest)
                assert again.resumed_from == 0 and again.sha256 == _sha(data)

        asyncio.run(go())
        assert dest.read_bytes() == data


def test_missing_file_is_a_reply_error_and_leaves_no_file(
    ftp_server: FTPServerThread, payload: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "gone.part"

    async def go() -> None:
        async with _client(ftp_server) as ftp:
            with pytest.raises(ReplyError, match=r"RETR /L2/gone\.BUFR: server replied 550"):
                await ftp.download("/L2/gone.BUFR", dest)
            assert not dest.exists()  # the data thread never opened the file
            assert ftp.connected  # a refused command keeps the session
            result = await ftp.download(REMOTE, dest)
            assert result.sha256 == _sha(payload)

    asyncio.run(go())


def test_unreachable_data_port_fails_without_waiting_for_timeouts(
    ftp_server: FTPServerThread, payload: bytes, tmp_path: Path
) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    ftp_server.fake_passive_port = probe.getsockname()[1]
    probe.close()  # nothing listens there: the data connection is refused
    dest = tmp_path / "x.part"

    async def go() -> None:
        ftp = _client(ftp_server, command_timeout=30.0, data_timeout=30.0)
        await ftp.connect()
        with pytest.raises(TransportError) as caught:
            await ftp.download(REMOTE, dest)
        assert "timed out" not in str(caught.value) and "RETR" in str(caught.value)
        assert not dest.exists()
        ftp.abort()

    asyncio.run(go())
    ftp_server.fake_passive_port = 0


def test_wrong_password_is_an_auth_error(ftp_server: FTPServerThread) -> None:
    async def go() -> None:
        with pytest.raises(FTPAuthError, match="login refused"):
            await _client(ftp_server, password="wrong").connect()

    asyncio.run(go())
    assert ftp_server.failed_logins == 1


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


def test_stalled_transfer_is_cut_and_partial_kept(
    ftp_server: FTPServerThread, payload: bytes, tmp_path: Path
) -> None:
    ftp_server.throttle(1)  # one byte per second: the data connection makes no progress
    dest = tmp_path / "x.part"

    async def go() -> None:
        async with _client(ftp_server, data_timeout=0.4) as ftp:
            with pytest.raises(TransportError, match="stalled"):
                await ftp.download(REMOTE, dest)
            assert not ftp.connected  # a broken session is dropped, the caller reconnects

    asyncio.run(go())
    assert dest.exists() and dest.stat().st_size < len(payload)


def test_server_stopped_mid_transfer_then_resumed(
    ftp_server: FTPServerThread, payload: bytes, tmp_path: Path
) -> None:
    ftp_server.throttle(1_000_000)
    dest = tmp_path / "x.part"

    async def go() -> None:
        ftp = _client(ftp_server)
        await ftp.connect()
        task = asyncio.create_task(ftp.download(REMOTE, dest))
        while not dest.exists() or dest.stat().st_size == 0:
            await asyncio.sleep(0.05)
            if task.done():
                break
        await asyncio.to_thread(ftp_server.stop)
        with pytest.raises(TransportError):
            await task
        kept = dest.stat().st_size
        assert 0 < kept < len(payload)
        ftp_server.throttle(0)
        await asyncio.to_thread(ftp_server.start)
        async with _client(ftp_server) as again:
            result = await again.download(REMOTE, dest)
        assert result.resumed_from == kept and result.sha256 == _sha(payload)

    asyncio.run(go())
    assert dest.read_bytes() == payload


class _ScriptedServer:
    """A control connection that logs in and then answers each command from a script.

    ``script`` maps a command verb to the raw reply bytes (``None``: never answer); it lets
    the client's reply parser meet replies pyftpdlib never sends (odd multi-line forms,
    garbage, huge lines) and a server that hangs.
    """

    def __init__(self, script: dict[str, bytes | None]) -> None:
        self.script = script
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
            conn.sendall(b"220 scripted\r\n")
            for raw in lines:
                verb = raw.decode().split(" ", 1)[0].strip().upper()
                self.received.append(verb)
                reply = {"USER": b"331 password\r\n", "PASS": b"230 in\r\n"}.get(verb)
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

    def start(script: dict[str, bytes | None]) -> _ScriptedServer:
        servers.append(_ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_multi_line_replies_per_rfc_959(
    scripted: Callable[[dict[str, bytes | None]], _ScriptedServer],
) -> None:
    server = scripted(
        {
            "TYPE": b"200 binary\r\n",
            # interior lines may start with digits, even the reply's own code plus a dash
            "FEAT": b"211-Features:\r\n 211 not the end\r\n211-still not\r\n MLST size*;\r\n"
            b"211 End\r\n",
            "SIZE": b"213-counting\r\n123 a numeric line\r\n213 4567\r\n",
        }
    )

    async def go() -> None:
        async with FTPClient("127.0.0.1", server.port, command_timeout=5.0) as ftp:
            assert ftp._mlsd  # MLST was found inside the multi-line FEAT reply
            assert await ftp.size("/x") == 4567

    asyncio.run(go())
    assert server.received[:4] == ["USER", "PASS", "TYPE", "FEAT"]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"hello there\r\n", "unreadable reply 'hello there'"),
        (b"2\r\n", "unreadable reply '2'"),
        (b"213 " + b"9" * 70_000 + b"\r\n", "reply line too long"),
        (b"213 12", "closed the control connection"),  # cut mid-line
    ],
)
def test_malformed_replies_are_transport_errors(
    scripted: Callable[[dict[str, bytes | None]], _ScriptedServer], reply: bytes, message: str
) -> None:
    server = scripted({"TYPE": b"200 binary\r\n", "FEAT": b"211 none\r\n", "SIZE": reply})

    async def go() -> None:
        ftp = FTPClient("127.0.0.1", server.port, command_timeout=5.0)
        await ftp.connect()
        with pytest.raises(TransportError, match=re.escape(message)):
            await ftp.size("/x")
        assert not ftp.connected  # a garbled session is dropped, not reused
        server.close()

    asyncio.run(go())


def test_cancelling_a_command_that_hangs_cuts_the_session_at_once(
    scripted: Callable[[dict[str, bytes | None]], _ScriptedServer],
) -> None:
    """The reply is awaited in a thread: cancelling the task ends it, not the 60 s timeout."""
    server = scripted({"TYPE": b"200 binary\r\n", "FEAT": b"211 none\r\n", "SIZE": None})

    async def go() -> None:
        ftp = FTPClient("127.0.0.1", server.port, command_timeout=60.0)
        await ftp.connect()
        task = asyncio.create_task(ftp.size("/x"))
        while "SIZE" not in server.received:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)  # a bound far below the command timeout
        assert not ftp.connected
        with pytest.raises(TransportError, match="not connected"):
            await ftp.size("/x")

    asyncio.run(go())
    server.thread.join(5)  # the server sees the connection closed: nothing holds it
    assert not server.thread.is_alive()
