"""A thin async FTP client on aioftp: timeouts everywhere, resumable hashed downloads, typed errors.

>>> async with FTPClient("127.0.0.1", 2121, username="u", password="p") as ftp:  # doctest: +SKIP
...     entries = await ftp.list_dir("/L2/RMA1/2025/01/01/00")
...     done = await ftp.download("/L2/RMA1/.../x.BUFR", Path("x.BUFR.part"))

Every failure leaves as a :mod:`radarlib.errors` type: :class:`FTPAuthError` (credentials
refused), :class:`RemotePathError` (a folder that must exist does not), otherwise
:class:`TransportError` (timeouts, refused connections, resets, unexpected replies), which
callers may retry. Connects, commands and data transfers all have timeouts; a data transfer
that makes no progress for ``data_timeout`` seconds is cut and reported as stalled.

File transfers bypass the event loop: the data socket is handed to a data thread that
receives and writes each block while a second one hashes it (all of which release the GIL),
so the loop only runs the control conversation and awaits one future per file. Listings
take the same path (EPSV, command, data thread, reply: no per-transfer TYPE). With TLS
the data channel is wrapped (and verified) with the control connection's context and session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import queue
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aioftp

from radarlib.errors import FTPAuthError, RemotePathError, TransportError

__all__ = ["FTPClient", "RemoteEntry", "ReplyError", "Transfer"]

logger = logging.getLogger(__name__)

_READ_BLOCK = 1 << 17  # a transfer is received, hashed and written in blocks of this size
_LIST_BLOCK = 1 << 16  # listings are received in blocks of this size
_BUFFERS = 8  # blocks in flight between the receiving/writing and the hashing thread
_HASH_BLOCK = 1 << 20
_MAX_DATA_THREADS = 128  # two per concurrent transfer (max_concurrent_downloads <= 64)

# Transfers hold a thread for their whole duration: a pool of their own, so they never
# queue behind (or block) the default executor used for SQLite and file system calls.
_T = TypeVar("_T")

_DATA_POOL = ThreadPoolExecutor(_MAX_DATA_THREADS, thread_name_prefix="ftp-data")


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


def _reply_code(exc: aioftp.StatusCodeError) -> str:
    return str(exc.received_codes[-1]) if exc.received_codes else "???"


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
        code = _reply_code(exc)
        info = " ".join(str(i).strip() for i in exc.info) if exc.info else ""
        if login and code == "530":
            raise FTPAuthError(f"{what}: login refused by the server ({code} {info})") from None
        raise ReplyError(f"{what}: server replied {code} {info}".rstrip(), code) from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise TransportError(f"{what}: timed out") from exc
    except (OSError, EOFError, ssl.SSLError, aioftp.AIOFTPException, ConnectionError) as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc


class _Aborted(Exception):
    """The transfer was cut from the event loop (cancellation): not a server failure."""


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


def _write_all(fd: int, block: memoryview) -> None:
    """Write all of ``block`` to the raw descriptor ``fd`` (a short write is continued)."""
    while block:
        block = block[os.write(fd, block) :]


def _hash_blocks(digest: Any, full: queue.SimpleQueue[Any], free: queue.SimpleQueue[Any]) -> None:
    """Hash the blocks handed over by :func:`_receive_file`, in order, until None."""
    while True:
        item = full.get()
        if item is None:
            return
        buffer, count = item
        digest.update(memoryview(buffer)[:count])
        free.put(buffer)


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
    view = memoryview(bytearray(_LIST_BLOCK))
    chunks: list[bytes] = []
    while count := _recv_into(sock, view, flags, aborted):
        chunks.append(bytes(view[:count]))
    if aborted.is_set():
        raise _Aborted
    return b"".join(chunks)


def _receive_file(
    sock: socket.socket,
    path: Path,
    append: bool,
    digest: Any,
    timeout: float,
    aborted: threading.Event,
) -> int:
    """Copy a data connection into ``path`` (in a data thread); returns the bytes received.

    This thread receives blocks of up to ``_READ_BLOCK`` bytes and writes each to a raw
    descriptor at once (no Python file buffering, no copies: memoryviews of reused buffers),
    while the kernel keeps receiving into the socket buffer. With a ``digest``, a second
    data thread hashes each written block meanwhile (``_BUFFERS`` blocks in flight), so the
    sha256 overlaps the transfer instead of lengthening it; every call involved releases
    the GIL. Every byte received before a failure is written, so a broken transfer leaves
    its bytes in the file for a later resume. A socket silent for ``timeout`` seconds
    raises :class:`_Stalled`; a socket shut down by :class:`FTPClient` (cancellation)
    raises :class:`_Aborted`.
    """
    received = 0
    full: queue.SimpleQueue[Any] = queue.SimpleQueue()
    free: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for _ in range(_BUFFERS if digest is not None else 1):
        free.put(bytearray(_READ_BLOCK))
    flags = _arm(sock, timeout)
    mode = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, mode | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0), 0o666)
    hasher = _DATA_POOL.submit(_hash_blocks, digest, full, free) if digest is not None else None
    try:
        eof = False
        while not eof:
            buffer = free.get()
            view, filled = memoryview(buffer), 0
            try:
                while filled < _READ_BLOCK:
                    count = _recv_into(sock, view[filled:], flags, aborted)
                    if not count:
                        eof = True
                        break
                    filled += count
            finally:  # bytes received so far are written, even on failure (resume)
                if filled:
                    _write_all(fd, view[:filled])
                    received += filled
                if hasher is None:
                    free.put(buffer)
                elif filled:
                    full.put((buffer, filled))
                else:
                    free.put(buffer)
    finally:
        os.close(fd)
        if hasher is not None:
            full.put(None)
            hasher.result()
    if aborted.is_set():
        raise _Aborted
    return received


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


class FTPClient:
    """One FTP control connection with the operations the download daemon needs.

    Not safe for concurrent use: FTP runs one transfer per control connection, so use one
    client per concurrent download. ``password`` is never logged.
    """

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
        )
        try:
            with _translated(f"connect to {where}"):
                await client.connect(self.host, self.port)
                if self.use_tls:
                    context = self._ssl_context or ssl.create_default_context()
                    await client.upgrade_to_tls(context)
            with _translated(f"login to {where} as {self.username!r}", login=True):
                await client.login(self.username, self._password)
            with _translated(f"setup of {where}"):
                await client.command("TYPE I", "200")
                self._mlsd = await self._has_mlsd(client)
        except BaseException:
            client.close()
            raise
        self._client = client
        logger.debug("connected to %s as %s (MLSD %s)", where, self.username, self._mlsd)

    @staticmethod
    async def _has_mlsd(client: aioftp.Client) -> bool:
        try:
            _, lines = await client.command("FEAT", "2xx")
        except aioftp.StatusCodeError:
            return False
        return any(line.strip().upper().startswith("MLST") for line in lines)

    async def close(self) -> None:
        """Say QUIT (briefly, best effort) and close the connection."""
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.command("QUIT", "2xx"), min(self.command_timeout, 2.0))
        client.close()

    def abort(self) -> None:
        """Drop the connection at once (no reply awaited); safe in any state."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def check_dir(self, path: str) -> None:
        """:class:`RemotePathError` unless ``path`` is an existing folder on the server."""
        try:
            with _translated(f"CWD {path}"):
                await self._ftp.command(f"CWD {path}", "2xx")
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
                _, info = await self._ftp.command(f"SIZE {path}", "213")
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

    async def list_dir(self, path: str) -> list[RemoteEntry] | None:
        """Entries of folder ``path`` (MLSD if offered, else LIST); ``None`` if it is missing.

        Like a download: EPSV, the command, the data received in a data thread (with the
        stall timeout), the final reply; no per-listing TYPE command.
        """
        command = f"{'MLSD' if self._mlsd else 'LIST'} {path}"
        try:
            with _translated(command):
                ftp = self._ftp
                sock = await self._data_socket()
                try:
                    try:
                        await ftp.command(command, "1xx")
                    except aioftp.StatusCodeError as exc:
                        if _reply_code(exc) in {"450", "501", "550"}:
                            return None
                        raise
                    data = await self._in_data_thread(
                        sock, command, _receive_bytes, sock, self.data_timeout
                    )
                finally:
                    sock.close()
                await ftp.command(None, "2xx", "1xx")
        except ReplyError:
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

    async def _data_socket(self) -> socket.socket:
        """EPSV (else PASV), then connect a data socket to the control connection's peer.

        Like aioftp, the address in a PASV reply is ignored (NAT-safe); with TLS the socket
        is wrapped in a worker thread with the control connection's verified context.
        """
        ftp = self._ftp
        writer = ftp.stream.writer
        peer = writer.get_extra_info("peername")
        host = peer[0] if peer else self.host
        if self._epsv:
            try:
                _, info = await ftp.command("EPSV", "229")
                port = aioftp.Client.parse_epsv_response(info[-1])[1]
            except aioftp.StatusCodeError as exc:
                if not _reply_code(exc).startswith("50"):
                    raise
                self._epsv = False
        if not self._epsv:
            _, info = await ftp.command("PASV", "227")
            port = aioftp.Client.parse_pasv_response(info[-1])[1]
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), self.connect_timeout)
            sslobj = writer.get_extra_info("ssl_object")
            if sslobj is not None:
                return await loop.run_in_executor(_DATA_POOL, self._wrap_tls, sock, sslobj)
        except BaseException:
            sock.close()
            raise
        return sock

    def _wrap_tls(self, sock: socket.socket, control: ssl.SSLObject) -> ssl.SSLSocket:
        """TLS on a data socket: the control context (certificate checks) and its session."""
        sock.settimeout(self.connect_timeout)
        return control.context.wrap_socket(sock, server_hostname=self.host, session=control.session)

    async def _in_data_thread(
        self, sock: socket.socket, what: str, function: Callable[..., _T], *args: Any
    ) -> _T:
        """Run ``function(*args, aborted)`` in a data thread; cancellation cuts ``sock`` first."""
        loop = asyncio.get_running_loop()
        aborted = threading.Event()
        future = loop.run_in_executor(_DATA_POOL, functools.partial(function, *args, aborted))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            aborted.set()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(BaseException):  # the thread ends at once: wait for it,
                await asyncio.wait({future})  # so no write follows the caller's cleanup
            if future.done() and not future.cancelled():
                future.exception()  # _Aborted (expected): retrieved, not logged as lost
            raise
        except _Stalled:
            raise TransportError(
                f"{what}: no data for {self.data_timeout:g} s (stalled transfer)"
            ) from None

    async def download(
        self,
        remote_path: str,
        destination: Path,
        *,
        resume: bool = True,
        checksum: bool = True,
    ) -> Transfer:
        """Download ``remote_path`` into ``destination``, continuing an existing partial file.

        With ``resume`` and a non-empty ``destination``, the transfer restarts at its size with
        REST (the existing bytes are re-hashed first); if the server refuses REST it starts
        over. The sha256 of the whole file is computed while receiving. The file is closed but
        not fsynced on return. On failure the partial file stays for a later resume.
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
        try:
            with _translated(what):
                ftp = self._ftp
                sock = await self._data_socket()
                try:
                    try:
                        if offset:
                            await ftp.command(f"REST {offset}", "350")
                        await ftp.command(what, "1xx")
                    except aioftp.StatusCodeError as exc:
                        if not (offset and _reply_code(exc).startswith("50")):
                            raise
                        logger.info(
                            "%s: server refused REST; downloading from the start", remote_path
                        )
                        self.supports_rest = False
                        offset, digest = 0, (hashlib.sha256() if checksum else None)
                        sock.close()
                        sock = await self._data_socket()
                        await ftp.command(what, "1xx")
                    received = await self._in_data_thread(
                        sock,
                        what,
                        _receive_file,
                        sock,
                        destination,
                        offset > 0,
                        digest,
                        self.data_timeout,
                    )
                finally:
                    sock.close()
                await ftp.command(None, "2xx", "1xx")
        except ReplyError:
            raise
        except BaseException:
            self.abort()
            raise
        return Transfer(
            size=offset + received,
            sha256=digest.hexdigest() if digest is not None else None,
            resumed_from=offset,
        )
