"""A thin async FTP client on aioftp: timeouts everywhere, resumable hashed downloads, typed errors.

>>> async with FTPClient("127.0.0.1", 2121, username="u", password="p") as ftp:  # doctest: +SKIP
...     entries = await ftp.list_dir("/L2/RMA1/2025/01/01/00")
...     done = await ftp.download("/L2/RMA1/.../x.BUFR", Path("x.BUFR.part"))

Every failure leaves as a :mod:`radarlib.errors` type: :class:`FTPAuthError` (credentials
refused), :class:`RemotePathError` (a folder that must exist does not), otherwise
:class:`TransportError` (timeouts, refused connections, resets, unexpected replies), which
callers may retry. Connects, commands and data transfers all have timeouts; a data transfer
that makes no progress for ``data_timeout`` seconds is cut and reported as stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aioftp

from radarlib.errors import FTPAuthError, RemotePathError, TransportError

__all__ = ["FTPClient", "RemoteEntry", "ReplyError", "Transfer"]

logger = logging.getLogger(__name__)

_READ_BLOCK = 1 << 20  # largest chunk taken from the socket buffer at once
_WRITE_BATCH = 1 << 21  # bytes gathered in memory before one write in a worker thread
_FLUSH_SECONDS = 0.25  # ... or this long since the last write (slow transfers)
_HASH_BLOCK = 1 << 20


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


class _StallWatch:
    """Cuts a data connection that makes no progress for ``timeout`` seconds (no per-read cost)."""

    def __init__(self, writer: asyncio.StreamWriter, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = writer
        self._timeout = timeout
        self.last = self._loop.time()
        self.stalled = False
        self._handle = self._loop.call_later(timeout / 2, self._check)

    def _check(self) -> None:
        if self._loop.time() - self.last >= self._timeout:
            self.stalled = True
            self._writer.transport.abort()
        else:
            self._handle = self._loop.call_later(self._timeout / 4, self._check)

    def progress(self) -> None:
        self.last = self._loop.time()

    def cancel(self) -> None:
        self._handle.cancel()


class _FileSink:
    """Appends received blocks to a file, batching the blocking writes into worker threads.

    A batch is written when it reaches ``_WRITE_BATCH`` bytes or when ``_FLUSH_SECONDS`` have
    passed since the last write, so a slow transfer keeps its progress on disk for a resume.
    """

    def __init__(self, path: Path, append: bool) -> None:
        self._path = path
        self._mode = "ab" if append else "wb"
        self._file: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._loop = asyncio.get_running_loop()
        self._last_write = self._loop.time()

    def _write_sync(self, chunks: list[bytes], final: bool) -> None:
        if self._file is None:
            self._file = open(self._path, self._mode)  # noqa: SIM115 - closed in final/close()
        if chunks:
            self._file.writelines(chunks)  # no join: the blocks go to the file as they are
            if not final:
                self._file.flush()
        if final:
            self.close()

    async def add(self, block: bytes) -> None:
        self._pending.append(block)
        self._pending_size += len(block)
        if (
            self._pending_size >= _WRITE_BATCH
            or self._loop.time() - self._last_write >= _FLUSH_SECONDS
        ):
            await self.flush(final=False)

    async def flush(self, *, final: bool) -> None:
        chunks, self._pending = self._pending, []
        self._pending_size = 0
        self._last_write = self._loop.time()
        await asyncio.to_thread(self._write_sync, chunks, final)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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

    async def _open_data(
        self, command: str, offset: int = 0
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a passive data connection, send REST/command, return the raw streams."""
        ftp = self._ftp
        reader, writer = await ftp.get_passive_connection("I")
        try:
            if offset:
                await ftp.command(f"REST {offset}", "350")
            await ftp.command(command, "1xx")
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _receive(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        what: str,
        sink: Any,
    ) -> int:
        """Copy the data connection into ``sink`` (an async callable), with a stall watchdog."""
        watch = _StallWatch(writer, self.data_timeout)
        received = 0
        try:
            while True:
                block = await reader.read(_READ_BLOCK)
                if not block:
                    break
                watch.progress()
                received += len(block)
                await sink(block)
        finally:
            watch.cancel()
            writer.close()
        if watch.stalled:
            raise TransportError(f"{what}: no data for {self.data_timeout:g} s (stalled transfer)")
        await self._ftp.command(None, "2xx", "1xx")
        return received

    async def list_dir(self, path: str) -> list[RemoteEntry] | None:
        """Entries of folder ``path`` (MLSD if offered, else LIST); ``None`` if it is missing."""
        command = f"{'MLSD' if self._mlsd else 'LIST'} {path}"
        lines: list[bytes] = []

        async def collect(block: bytes) -> None:
            lines.append(block)

        try:
            with _translated(command):
                try:
                    reader, writer = await self._open_data(command)
                except aioftp.StatusCodeError as exc:
                    if _reply_code(exc) in {"450", "501", "550"}:
                        return None
                    raise
                await self._receive(reader, writer, command, collect)
        except ReplyError:
            raise
        except BaseException:
            self.abort()
            raise
        return self._parse_listing(b"".join(lines))

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
                try:
                    reader, writer = await self._open_data(what, offset)
                except aioftp.StatusCodeError as exc:
                    if offset and _reply_code(exc).startswith("50"):
                        logger.info(
                            "%s: server refused REST; downloading from the start", remote_path
                        )
                        self.supports_rest = False
                        offset, digest = 0, (hashlib.sha256() if checksum else None)
                        reader, writer = await self._open_data(what)
                    else:
                        raise
                sink = _FileSink(destination, append=offset > 0)

                async def consume(block: bytes) -> None:
                    if digest is not None:
                        digest.update(block)
                    await sink.add(block)

                try:
                    received = await self._receive(reader, writer, what, consume)
                except Exception:
                    await sink.flush(final=True)  # keep the bytes received so far for a resume
                    raise
                else:
                    await sink.flush(final=True)
                finally:
                    sink.close()
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
