"""A thin async FTP client on aioftp: timeouts everywhere, resumable hashed downloads, typed errors.

>>> async with FTPClient("127.0.0.1", 2121, username="u", password="p") as ftp:  # doctest: +SKIP
...     entries = await ftp.list_dir("/L2/RMA1/2025/01/01/00")
...     done = await ftp.download("/L2/RMA1/.../x.BUFR", Path("x.BUFR.part"))

Every failure leaves as a :mod:`radarlib.errors` type: :class:`FTPAuthError` (credentials
refused), :class:`RemotePathError` (a folder that must exist does not), otherwise
:class:`TransportError` (timeouts, refused connections, resets, unexpected replies), which
callers may retry. Connects, commands and data transfers all have timeouts; a data transfer
that makes no progress for ``data_timeout`` seconds is cut and reported as stalled.

aioftp opens the session (connection, explicit TLS, login). The commands of a transfer then
go straight over its control stream (one write, one reply read, under one deadline), and
the data connection belongs to a data thread: it connects while the loop sends the command,
then receives, writes and hashes each block (every one of these calls releases the GIL),
so the event loop only runs the control conversation and awaits one future per transfer.
The thread announces the end of the transfer before it writes the last blocks it holds
(:mod:`radarlib.io.ftp.sink`): :meth:`FTPClient.fetch` returns then, so a caller can send
the next file's commands meanwhile; :meth:`FTPClient.download` waits for the file too.
Listings take the same path. With TLS the data channel is wrapped (and verified) with the
control connection's context and session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aioftp

from radarlib.errors import FTPAuthError, RemotePathError, TransportError
from radarlib.io.ftp.sink import FileSink

__all__ = ["FTPClient", "Fetched", "RemoteEntry", "ReplyError", "Transfer"]

logger = logging.getLogger(__name__)

_HASH_BLOCK = 1 << 20
_LISTING_BLOCK = 1 << 18  # listings are received into one buffer this size per data thread
_MAX_DATA_THREADS = 128  # one per transfer in flight, shared by every client in the process
_EPSV_PORT = re.compile(r"\((.)\1\1(\d{1,5})\1\)")
_PASV_ADDRESS = re.compile(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")

# Transfers hold a thread for their whole duration: a pool of their own, so they never
# queue behind (or block) the default executor used for SQLite and file system calls.
_T = TypeVar("_T")

_DATA_POOL = ThreadPoolExecutor(_MAX_DATA_THREADS, thread_name_prefix="ftp-data")
_thread_buffers = threading.local()  # one listing buffer per data thread, reused


@dataclass(frozen=True)
class RemoteEntry:
    """One entry of a server directory listing, with the name exactly as the server sent it."""

    name: str
    is_dir: bool
    size: int | None


@dataclass(frozen=True)
class Transfer:
    """Outcome of :meth:`FTPClient.download`: final local size, sha256 and the resume offset."""

    size: int
    sha256: str | None
    resumed_from: int


@dataclass(frozen=True)
class Fetched:
    """Outcome of :meth:`FTPClient.fetch`: every byte is received, the file is being finished.

    ``size`` (the final local size) and ``resumed_from`` are known at once; the sha256 and
    the complete, closed file come with :meth:`settle` (blocking, for a worker thread) or
    ``await`` :meth:`settled`, a moment later.
    """

    size: int
    resumed_from: int
    sink: FileSink = field(repr=False)

    def settle(self, timeout: float | None = None) -> Transfer:
        """Wait (blocking) until the file is written and closed.

        Raises:
            OSError: writing the file failed (the bytes were received, not kept).
        """
        return self._transfer(self.sink.result(timeout).sha256)

    async def settled(self) -> Transfer:
        """Wait (without blocking the loop) until the file is written and closed."""
        return self._transfer((await asyncio.wrap_future(self.sink.done())).sha256)

    def _transfer(self, sha256: str | None) -> Transfer:
        return Transfer(size=self.size, sha256=sha256, resumed_from=self.resumed_from)


class ReplyError(TransportError):
    """The server answered a command with an unexpected reply; the connection is still usable."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def _translated(what: str, *, login: bool = False) -> Iterator[None]:
    """Turn aioftp/socket failures into :class:`TransportError` naming the operation."""
    try:
        yield
    except TransportError:
        raise
    except aioftp.StatusCodeError as exc:
        code = str(exc.received_codes[-1]) if exc.received_codes else "???"
        info = " ".join(str(i).strip() for i in exc.info) if exc.info else ""
        if login and code == "530":
            raise FTPAuthError(f"{what}: login refused by the server ({code} {info})") from None
        raise ReplyError(f"{what}: server replied {code} {info}".rstrip(), code) from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise TransportError(f"{what}: timed out") from exc
    except (OSError, EOFError, ssl.SSLError, aioftp.AIOFTPException, ConnectionError) as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _code_matches(code: str, pattern: str) -> bool:
    """``"226"`` matches ``"2xx"``, ``"22x"`` and ``"226"`` (three characters each)."""
    return (  # unrolled: a few checks per reply on the event loop, not a generator
        len(code) == len(pattern) == 3
        and pattern[0] in ("x", code[0])
        and pattern[1] in ("x", code[1])
        and pattern[2] in ("x", code[2])
    )


class _Aborted(Exception):
    """The transfer was cut from the event loop (cancellation, failed command)."""


class _Stalled(Exception):
    """No byte arrived for ``data_timeout`` seconds."""


def _arm(sock: socket.socket, timeout: float) -> int:
    """Set the stall timeout on a data socket; returns the ``recv`` flags to use.

    On Linux a plain socket blocks in the kernel with ``SO_RCVTIMEO`` and ``MSG_WAITALL``,
    so one call fills a whole block (a few system calls per MiB, no poll in between) and a
    call that gets no byte for ``timeout`` seconds fails with ``EAGAIN``. TLS sockets (and
    other systems) use Python's socket timeout, which also counts from the last byte.
    """
    if sys.platform == "linux" and not isinstance(sock, ssl.SSLSocket):
        sock.settimeout(None)
        seconds = int(timeout)
        micros = int((timeout - seconds) * 1e6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, micros))
        return socket.MSG_WAITALL
    sock.settimeout(timeout)
    return 0


def _buffer() -> memoryview:
    """This data thread's listing buffer (allocated once per thread, not per listing)."""
    view: memoryview | None = getattr(_thread_buffers, "view", None)
    if view is None:
        view = _thread_buffers.view = memoryview(bytearray(_LISTING_BLOCK))
    return view


def _recv_into(sock: socket.socket, view: memoryview, flags: int, aborted: threading.Event) -> int:
    """One ``recv_into``; silence raises :class:`_Stalled`, a cut socket :class:`_Aborted`."""
    try:
        return sock.recv_into(view, 0, flags)
    except (TimeoutError, BlockingIOError):  # nothing for the armed timeout
        if aborted.is_set():
            raise _Aborted from None
        raise _Stalled from None
    except OSError:
        if aborted.is_set():
            raise _Aborted from None
        raise


def _receive_bytes(sock: socket.socket, timeout: float, aborted: threading.Event) -> bytes:
    """Everything a data connection sends until EOF, in memory (a listing; in a data thread)."""
    flags = _arm(sock, timeout)
    view = _buffer()
    chunks: list[bytes] = []
    while count := _recv_into(sock, view, flags, aborted):
        chunks.append(bytes(view[:count]))
    if aborted.is_set():
        raise _Aborted
    return b"".join(chunks)


def _receive_file(
    sock: socket.socket,
    sink: FileSink,
    timeout: float,
    announce: Callable[[int], None],
    aborted: threading.Event,
) -> int:
    """Receive a data connection into ``sink`` (in a data thread); returns the bytes received.

    Blocks are received straight into the sink's buffers, which writes and hashes each one
    only when its buffer comes round again. At EOF the byte count is announced to the event
    loop first, then the held blocks are written, so the loop's next commands overlap that
    work. Bytes received before a failure are written too, for a later resume. A socket
    silent for ``timeout`` seconds raises :class:`_Stalled`; a socket cut by
    :class:`FTPClient` raises :class:`_Aborted`.
    """
    flags = _arm(sock, timeout)
    sink.open()
    received = 0
    try:
        while True:
            view = sink.block()
            filled = 0
            try:
                while filled < len(view):
                    count = _recv_into(sock, view[filled:], flags, aborted)
                    if not count:
                        break
                    filled += count
            finally:
                sink.put(view, filled)
            received += filled
            if filled < len(view):  # EOF
                break
        if aborted.is_set():
            raise _Aborted
        announce(received)
    finally:
        sink.finish()
    return received


def _announcer(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
) -> Callable[[Any], None]:
    """A callable for a data thread that hands ``future`` its result on the loop."""

    def settle(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    def announce(value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, value)

    return announce


def _pass_on(announced: asyncio.Future[Any], data: asyncio.Future[Any]) -> None:
    """Done callback of a data thread: its outcome settles ``announced`` if nothing did yet."""
    if announced.done():
        return
    if data.cancelled():
        announced.cancel()
    elif (error := data.exception()) is not None:
        announced.set_exception(error)
    else:
        announced.set_result(data.result())


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Done callback: mark a future's exception as seen (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


def _hash_prefix(path: Path, length: int) -> hashlib._Hash | None:
    """sha256 of the first ``length`` bytes of ``path``; ``None`` if the file is shorter."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        remaining = length
        while remaining:
            block = handle.read(min(_HASH_BLOCK, remaining))
            if not block:
                return None
            digest.update(block)
            remaining -= len(block)
    return digest


def _local_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@dataclass(frozen=True)
class _TLSData:
    """What a data thread needs to wrap its socket like the control connection."""

    context: ssl.SSLContext
    session: ssl.SSLSession | None
    hostname: str


@dataclass
class _DataChannel:
    """One data connection, opened and used by a data thread, cut from the event loop.

    The thread connects (and wraps TLS) itself, so the loop can send the transfer command
    meanwhile, then waits for :meth:`accept` (the server's 1xx reply) before it touches
    any file: a refused command leaves nothing behind. :meth:`cut` stops it at any point:
    a thread still connecting gives up without touching any file; a connected one is
    woken by ``shutdown`` and ends at once.
    """

    address: tuple[str, int]
    connect_timeout: float
    reply_timeout: float  # the loop accepts or cuts within this (its command timeout)
    data_timeout: float
    tls: _TLSData | None
    what: str
    aborted: threading.Event = field(default_factory=threading.Event, init=False)
    _accepted: threading.Event = field(default_factory=threading.Event, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _sock: socket.socket | None = field(default=None, init=False)

    def run(self, receive: Callable[..., _T], *args: Any) -> _T:
        """In a data thread: connect, then ``receive(sock, *args, aborted)``; always closes."""
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout)
            sock.connect(self.address)
            if self.tls is not None:
                sock = self.tls.context.wrap_socket(
                    sock, server_hostname=self.tls.hostname, session=self.tls.session
                )
            with self._lock:
                if self.aborted.is_set():
                    raise _Aborted
                self._sock = sock
            # the loop accepts or cuts within its command timeout; waiting longer means
            # the loop is gone: give up rather than hold the thread forever
            if not self._accepted.wait(self.reply_timeout + 1.0) or self.aborted.is_set():
                raise _Aborted
            return receive(sock, *args, self.aborted)
        except _Stalled:
            raise TransportError(
                f"{self.what}: no data for {self.data_timeout:g} s (stalled transfer)"
            ) from None
        finally:
            sock.close()

    def accept(self) -> None:
        """The server accepted the command: the thread may receive into its file."""
        self._accepted.set()

    def cut(self) -> bool:
        """Stop the thread's transfer; True if it holds a connection (then wait for it)."""
        with self._lock:
            self.aborted.set()
            self._accepted.set()
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return sock is not None


class FTPClient:
    """One FTP control connection with the operations the download daemon needs.

    Not safe for concurrent use: FTP runs one transfer per control connection, so use one
    client per concurrent download. ``password`` is never logged.
    """

    encoding = "utf-8"

    def __init__(
        self,
        host: str,
        port: int = 21,
        *,
        username: str = "anonymous",
        password: str = "",
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        data_timeout: float = 60.0,
        use_tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.use_tls = use_tls
        self._ssl_context = ssl_context
        self._client: aioftp.Client | None = None
        self._mlsd = False
        self._epsv = True
        self.supports_rest = True

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"FTPClient({self.username}@{self.host}:{self.port}, {state})"

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`close`/:meth:`abort`."""
        return self._client is not None

    @property
    def _ftp(self) -> aioftp.Client:
        if self._client is None:
            raise TransportError(f"{self.host}:{self.port}: not connected")
        return self._client

    async def __aenter__(self) -> FTPClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, optionally upgrade to explicit TLS, log in, switch to binary mode."""
        where = f"{self.host}:{self.port}"
        client = aioftp.Client(
            socket_timeout=self.command_timeout,
            connection_timeout=self.connect_timeout,
            path_timeout=self.command_timeout,
            encoding=self.encoding,
        )
        try:
            with _translated(f"connect to {where}"):
                await client.connect(self.host, self.port)
                if self.use_tls:
                    context = self._ssl_context or ssl.create_default_context()
                    await client.upgrade_to_tls(context)
            with _translated(f"login to {where} as {self.username!r}", login=True):
                await client.login(self.username, self._password)
            self._client = client
            with _translated(f"setup of {where}"):
                await self._command("TYPE I", "200")
                self._mlsd = await self._has_mlsd()
        except BaseException:
            self._client = None
            client.close()
            raise
        logger.debug("connected to %s as %s (MLSD %s)", where, self.username, self._mlsd)

    async def _has_mlsd(self) -> bool:
        try:
            _, lines = await self._command("FEAT", "2xx")
        except ReplyError:
            return False
        return any(line.strip().upper().startswith("MLST") for line in lines)

    async def close(self) -> None:
        """Say QUIT (briefly, best effort) and close the connection."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._command("QUIT", "2xx", timeout=min(self.command_timeout, 2.0))
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once (no reply awaited); safe in any state."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- the control conversation -------------------------------------------------------------
    async def _command(
        self,
        line: str | None,
        expect: str,
        wait: str = "",
        *,
        timeout: float | None = None,
        what: str | None = None,
    ) -> tuple[str, list[str]]:
        """Send ``line`` (None: only read) and read replies until one that is not ``wait``.

        Returns the reply code and its text lines. A code not matching ``expect`` raises
        :class:`ReplyError` naming ``what`` (default: the command line); silence for
        ``timeout`` (default ``command_timeout``) seconds raises :class:`TimeoutError`, a
        closed connection :class:`ConnectionResetError`.
        """
        seconds = self.command_timeout if timeout is None else timeout
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(seconds):
                code, lines = await self._exchange(line, wait)
        else:  # pragma: no cover - Python 3.10
            code, lines = await asyncio.wait_for(self._exchange(line, wait), seconds)
        if not _code_matches(code, expect):
            text = " ".join(part.strip() for part in lines).strip()
            raise ReplyError(f"{what or line}: server replied {code} {text}".rstrip(), code)
        return code, lines

    async def _exchange(self, line: str | None, wait: str) -> tuple[str, list[str]]:
        stream = self._ftp.stream
        if line is not None:
            if "\r" in line or "\n" in line:
                raise TransportError(f"refusing to send a command with a line break: {line!r}")
            logger.debug("%s:%d <- %s", self.host, self.port, line)
            stream.writer.write(line.encode(self.encoding) + b"\r\n")
            await stream.writer.drain()
        while True:
            code, lines = await self._read_reply(stream.reader)
            if not (wait and _code_matches(code, wait)):
                return code, lines

    async def _read_reply(self, reader: asyncio.StreamReader) -> tuple[str, list[str]]:
        """One reply, single- or multi-line (``123-`` ... ``123 ``, RFC 959 4.2)."""
        first = await self._read_line(reader)
        code = first[:3]
        if len(code) != 3 or not code.isdigit() or first[3:4] not in ("", " ", "-"):
            raise TransportError(f"{self.host}:{self.port}: unreadable reply {first[:80]!r}")
        lines = [first[4:]]
        if first[3:4] == "-":
            while True:
                text = await self._read_line(reader)
                if text[:3] == code and text[3:4] in ("", " "):
                    lines.append(text[4:])
                    break
                lines.append(text)
        logger.debug("%s:%d -> %s %s", self.host, self.port, code, lines[-1])
        return code, lines

    async def _read_line(self, reader: asyncio.StreamReader) -> str:
        try:
            raw = await reader.readline()
        except ValueError:  # longer than the stream limit (64 KiB): not an FTP reply
            raise TransportError(f"{self.host}:{self.port}: reply line too long") from None
        if not raw.endswith(b"\n"):
            raise ConnectionResetError("the server closed the control connection")
        return raw.decode(self.encoding, "replace").rstrip("\r\n")

    async def check_dir(self, path: str) -> None:
        """:class:`RemotePathError` unless ``path`` is an existing folder on the server."""
        try:
            with _translated(f"CWD {path}"):
                await self._command(f"CWD {path}", "2xx")
        except ReplyError as exc:
            if exc.code in {"550", "501", "450"}:
                raise RemotePathError(
                    f"{path}: no such folder on {self.host}:{self.port}"
                ) from None
            raise
        except BaseException:
            self.abort()
            raise

    async def size(self, path: str) -> int | None:
        """The server's size of ``path`` (SIZE), or ``None`` if the file does not exist."""
        try:
            with _translated(f"SIZE {path}"):
                _, info = await self._command(f"SIZE {path}", "213")
        except ReplyError as exc:
            if exc.code.startswith("55"):
                return None
            raise
        except BaseException:
            self.abort()
            raise
        text = info[-1].strip() if info else ""
        if not text.isdigit():
            raise TransportError(f"SIZE {path}: unreadable reply {text!r}")
        return int(text)

    # -- listings -------------------------------------------------------------------------------
    async def list_dir(self, path: str) -> list[RemoteEntry] | None:
        """Entries of folder ``path`` (MLSD if offered, else LIST); ``None`` if it is missing.

        Like a download: EPSV, the command sent while a data thread connects and receives
        (with the stall timeout), the final reply; no per-listing TYPE command.
        """
        command = f"{'MLSD' if self._mlsd else 'LIST'} {path}"
        try:
            with _translated(command):
                address = await self._passive_address()
                data = await self._transfer(address, command, _receive_bytes, self.data_timeout)
        except ReplyError as exc:
            if exc.code in {"450", "501", "550"}:
                return None
            raise
        except BaseException:
            self.abort()
            raise
        return self._parse_listing(data)

    def _parse_listing(self, data: bytes) -> list[RemoteEntry]:
        entries: list[RemoteEntry] = []
        for raw in data.split(b"\n"):
            line = raw.rstrip(b"\r")
            if not line.strip():
                continue
            entry = self._parse_mlsd(line) if self._mlsd else self._parse_list(line)
            if entry is not None:
                entries.append(entry)
        return entries

    @staticmethod
    def _parse_mlsd(line: bytes) -> RemoteEntry | None:
        text = line.decode("utf-8", "replace")
        facts_text, sep, name = text.partition(" ")
        if not sep:
            return None
        facts: dict[str, str] = {}
        for fact in facts_text.rstrip(";").split(";"):
            key, _, value = fact.partition("=")
            facts[key.strip().lower()] = value.strip()
        kind = facts.get("type", "").lower()
        if kind in {"cdir", "pdir"}:
            return None
        size = facts.get("size", "")
        return RemoteEntry(name, kind == "dir", int(size) if size.isdigit() else None)

    def _parse_list(self, line: bytes) -> RemoteEntry | None:
        try:
            path, info = self._ftp.parse_list_line(line)
        except ValueError:
            logger.warning("unparseable LIST line from %s: %r", self.host, line[:200])
            return None
        size = str(info.get("size", ""))
        return RemoteEntry(
            str(path), info.get("type") == "dir", int(size) if size.isdigit() else None
        )

    # -- data transfers -------------------------------------------------------------------------
    async def _passive_address(self) -> tuple[str, int]:
        """EPSV (else PASV): the data port, on the control connection's peer address.

        Like aioftp, the address in a PASV reply is ignored (NAT-safe).
        """
        writer = self._ftp.stream.writer
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if peer else self.host
        if self._epsv:
            try:
                _, info = await self._command("EPSV", "229")
                match = _EPSV_PORT.search(info[-1])
                if match is None:
                    raise TransportError(f"EPSV: unreadable reply {info[-1][:80]!r}")
                return host, int(match.group(2))
            except ReplyError as exc:
                if not exc.code.startswith("50"):
                    raise
                self._epsv = False
        _, info = await self._command("PASV", "227")
        numbers = _PASV_ADDRESS.search(info[-1])
        if numbers is None:
            raise TransportError(f"PASV: unreadable reply {info[-1][:80]!r}")
        return host, int(numbers.group(5)) * 256 + int(numbers.group(6))

    def _data_tls(self) -> _TLSData | None:
        control = self._ftp.stream.writer.get_extra_info("ssl_object")
        if control is None:
            return None
        return _TLSData(control.context, control.session, self.host)

    async def _transfer(
        self,
        address: tuple[str, int],
        command: str,
        receive: Callable[..., _T],
        *args: Any,
        early: bool = False,
    ) -> _T:
        """Send ``command`` while a data thread connects to ``address`` and runs ``receive``.

        The data thread runs ``receive(sock, *args, aborted)``, or with ``early``
        ``receive(sock, *args, announce, aborted)``: ``announce(result)`` ends the transfer
        for the loop while the thread goes on with local work (see :func:`_receive_file`).
        A refused command, a failed data connection or cancellation cuts the other side; on
        failure no thread outlives this call while it may still touch a file.
        """
        channel = _DataChannel(
            address,
            connect_timeout=self.connect_timeout,
            reply_timeout=self.command_timeout,
            data_timeout=self.data_timeout,
            tls=self._data_tls(),
            what=command,
        )
        loop = asyncio.get_running_loop()
        announced: asyncio.Future[_T] = loop.create_future()
        extra = (_announcer(loop, announced),) if early else ()
        job = functools.partial(channel.run, receive, *args, *extra)
        data = loop.run_in_executor(_DATA_POOL, job)
        data.add_done_callback(functools.partial(_pass_on, announced))
        reply = asyncio.ensure_future(self._command(command, "1xx"))
        try:
            both: set[asyncio.Future[Any]] = {reply, data}
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            failed = data.exception() if data.done() and not reply.done() else None
            if failed is not None:  # the data connection failed before the server answered
                raise failed
            await reply
            channel.accept()
            # the thread's announcement, or its outcome if it ends first (_pass_on), awaited
            # directly: one loop iteration fewer than asyncio.wait, on every transfer
            result = await announced
            data.add_done_callback(_retrieve)  # the thread may still be writing: see settle()
        except BaseException:
            announced.cancel()
            reply.cancel()
            if channel.cut():  # the thread is connected: it ends at once, wait for it,
                with contextlib.suppress(BaseException):  # so no write follows our cleanup
                    await asyncio.wait({data})
            for future in (data, reply, announced):  # outcomes (often _Aborted) are expected
                future.add_done_callback(_retrieve)
            raise
        await self._command(None, "2xx", "1xx", what=command)
        return result

    async def download(
        self,
        remote_path: str,
        destination: Path,
        *,
        resume: bool = True,
        checksum: bool = True,
    ) -> Transfer:
        """Download ``remote_path`` into ``destination``, continuing an existing partial file.

        :meth:`fetch`, then wait until the file is written: on return it is complete and
        closed (not fsynced) and the sha256, computed while receiving, is known.
        """
        fetched = await self.fetch(remote_path, destination, resume=resume, checksum=checksum)
        try:
            return await fetched.settled()
        except OSError as exc:
            raise TransportError(f"RETR {remote_path}: writing {destination}: {exc}") from exc

    async def fetch(
        self,
        remote_path: str,
        destination: Path,
        *,
        resume: bool = True,
        checksum: bool = True,
    ) -> Fetched:
        """Receive ``remote_path`` into ``destination``; return once the server confirmed it.

        With ``resume`` and a non-empty ``destination``, the transfer restarts at its size with
        REST (the existing bytes are re-hashed first); if the server refuses REST it starts
        over. The last blocks may still be being written (and hashed) on return: the caller
        may send other commands meanwhile and must :meth:`Fetched.settle` before it uses the
        file. On failure nothing is still being written: the partial file stays, whole, for
        a later resume.
        """
        what = f"RETR {remote_path}"
        offset = _local_size(destination) if resume and self.supports_rest else 0
        digest = hashlib.sha256() if checksum else None
        if offset and checksum:
            prefix = await asyncio.to_thread(_hash_prefix, destination, offset)
            if prefix is None:
                offset = 0
            else:
                digest = prefix
        sink: FileSink | None = None
        try:
            with _translated(what):
                address = await self._passive_address()
                if offset:  # after EPSV: REST must come right before RETR
                    try:
                        await self._command(f"REST {offset}", "350")
                    except ReplyError as exc:
                        if not exc.code.startswith("50"):
                            raise
                        logger.info(
                            "%s: server refused REST; downloading from the start", remote_path
                        )
                        self.supports_rest = False
                        offset, digest = 0, (hashlib.sha256() if checksum else None)
                sink = FileSink(destination, append=offset > 0, digest=digest)
                received = await self._transfer(
                    address, what, _receive_file, sink, self.data_timeout, early=True
                )
        except BaseException as exc:
            if sink is not None:  # the bytes received so far are written before we return
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.wrap_future(sink.done()))
            if not isinstance(exc, ReplyError):
                self.abort()
            raise
        return Fetched(size=offset + received, resumed_from=offset, sink=sink)
