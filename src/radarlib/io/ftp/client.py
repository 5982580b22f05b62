"""A thin layer on aioftp: timeouts, streamed listings, typed errors, hostile input bounded.

>>> async with FTPClient("127.0.0.1", 2121, username="u", password="p") as ftp:  # doctest: +SKIP
...     async for entry in ftp.iter_dir("/L2/RMA1/2025/01/01/00"):
...         print(entry.name, entry.size)
...     async with ftp.retrieve("/L2/RMA1/.../x.BUFR", offset=0) as blocks:
...         async for block in blocks: ...

Every FTP command goes through aioftp's public API (``Client.connect``, ``upgrade_to_tls``,
``login``, ``command``, ``get_passive_connection``; data connections reuse the control
connection's TLS session). What this module adds:

- failures leave as :mod:`radarlib.errors` types: :class:`FTPAuthError` (credentials
  refused), :class:`SessionLimitError` (421, or a 530 that says "too many"),
  :class:`RemotePathError` (a folder that must exist does not), :class:`RemoteFileError`
  (the server refused one file; the session is fine), else :class:`TransportError`;
- listings are streamed (memory stays bounded for huge folders); a line that does not parse,
  or is longer than :data:`MAX_LINE` bytes, is skipped and counted, never fatal;
- numbers from the server (sizes) are read as ASCII digits only;
- data connections have their own stall timeout (``data_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aioftp

from radarlib.errors import (
    FTPAuthError,
    RemoteFileError,
    RemotePathError,
    SessionLimitError,
    TransportError,
)

__all__ = ["MAX_LINE", "FTPClient", "RemoteEntry", "parse_count"]

logger = logging.getLogger(__name__)

#: longest listing line read (a file name is at most 255 bytes; facts add little)
MAX_LINE = 4096
_READ = 65536
_LIMIT_WORDS = ("too many", "maximum", "limit", "already connected", "sessions", "try again")


def parse_count(text: object, *, max_digits: int = 15) -> int | None:
    """A non-negative integer written in ASCII digits only (``"²"`` and ``"1e3"`` are not)."""
    if not isinstance(text, str) or not 0 < len(text) <= max_digits:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)


@dataclass(frozen=True)
class RemoteEntry:
    """One listing entry, the name exactly as the server sent it (decoded, errors replaced)."""

    name: str
    is_dir: bool
    size: int | None
    modify: str | None = None


def _code(exc: aioftp.StatusCodeError) -> str:
    received = exc.received_codes[-1] if exc.received_codes else None
    return str(received) if received is not None else "???"


def _reply(exc: aioftp.StatusCodeError) -> str:
    return " ".join(str(line).strip() for line in exc.info)[:200]


def _transport(what: str, exc: BaseException) -> TransportError:
    """The :mod:`radarlib.errors` type for an aioftp/socket failure during ``what``."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, aioftp.StatusCodeError):
        code, text = _code(exc), _reply(exc)
        if code == "421":
            return SessionLimitError(f"{what}: the server refused the session ({code} {text})")
        return TransportError(f"{what}: unexpected reply {code} {text}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TransportError(f"{what}: timed out")
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")


_FAILURES = (
    aioftp.AIOFTPException,
    OSError,
    EOFError,
    ssl.SSLError,
    ValueError,  # a reply line over the stream's limit, an unparsable passive reply
    asyncio.TimeoutError,
    asyncio.IncompleteReadError,
)


class FTPClient:
    """One FTP control connection (one operation at a time) with typed errors and timeouts.

    ``password`` is never logged. ``data_timeout`` bounds the wait for each block of a data
    connection (a stalled transfer is cut), ``command_timeout`` each reply.
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
        self.host, self.port, self.username = host, port, username
        self._password = password
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.use_tls = use_tls
        self._ssl_context = ssl_context
        self._client: aioftp.Client | None = None
        self._mlsd = True
        self.skipped_lines = 0  # listing lines that did not parse or were too long

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"FTPClient({self.username}@{self.host}:{self.port}, {state})"

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`close`/:meth:`abort`."""
        return self._client is not None

    async def __aenter__(self) -> FTPClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, upgrade to explicit TLS if asked, log in (typed errors, nothing left open)."""
        where = f"{self.host}:{self.port}"
        client = aioftp.Client(
            socket_timeout=self.command_timeout,
            connection_timeout=self.connect_timeout,
            path_timeout=self.command_timeout,
        )
        try:
            try:
                await client.connect(self.host, self.port)
                if self.use_tls:
                    await client.upgrade_to_tls(self._ssl_context or ssl.create_default_context())
            except _FAILURES as exc:
                raise _transport(f"connect to {where}", exc) from exc
            try:
                await client.login(self.username, self._password)
            except aioftp.StatusCodeError as exc:
                code, text = _code(exc), _reply(exc)
                if code == "421" or any(w in text.lower() for w in _LIMIT_WORDS):
                    raise SessionLimitError(
                        f"login to {where}: session refused at the server's limit ({code} {text})"
                    ) from None
                if code.startswith("530"):
                    raise FTPAuthError(
                        f"{where}: login refused for user {self.username!r} ({code} {text})"
                    ) from None
                raise _transport(f"login to {where}", exc) from exc
            except _FAILURES as exc:
                raise _transport(f"login to {where}", exc) from exc
        except BaseException:
            client.close()
            raise
        self._client = client
        logger.debug("connected to %s as %s", where, self.username)

    async def close(self) -> None:
        """Say QUIT (briefly, best effort) and close the connection."""
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), 2.0)
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once (no reply awaited); safe in any state."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _require(self) -> aioftp.Client:
        if self._client is None:
            raise TransportError(f"{self.host}:{self.port}: not connected")
        return self._client

    async def _command(self, line: str, expected: str) -> tuple[str, list[str]]:
        """One command; a 4xx/5xx answer is :class:`RemoteFileError` (the session is kept)."""
        client = self._require()
        try:
            received, info = await client.command(line, expected)
        except aioftp.StatusCodeError as exc:
            code = _code(exc)
            if code[:1] in "45" and code != "421":
                raise RemoteFileError(f"{line}: {code} {_reply(exc)}", code=code) from None
            self.abort()
            raise _transport(line, exc) from exc
        except _FAILURES as exc:
            self.abort()
            raise _transport(line, exc) from exc
        except BaseException:  # cancelled mid-reply: the control connection is out of step
            self.abort()
            raise
        return str(received), [str(i) for i in info]

    async def check_dir(self, path: str) -> None:
        """:class:`RemotePathError` unless ``path`` is an existing folder on the server."""
        try:
            await self._command(f"CWD {path}", "2xx")
        except RemoteFileError:
            raise RemotePathError(f"{path}: no such folder on {self.host}:{self.port}") from None

    async def size(self, path: str) -> int | None:
        """The server's size of ``path`` (SIZE), or ``None`` if the file does not exist."""
        try:
            _, info = await self._command(f"SIZE {path}", "213")
        except RemoteFileError as exc:
            if exc.code.startswith("55"):
                return None
            raise
        text = info[-1].strip() if info else ""
        value = parse_count(text)
        if value is None:
            raise RemoteFileError(f"SIZE {path}: unreadable reply {text[:40]!r}")
        return value

    @contextlib.asynccontextmanager
    async def _data(self, line: str, *, offset: int = 0) -> AsyncIterator[AsyncIterator[bytes]]:
        """The blocks of a data connection for ``line`` (REST ``offset`` first).

        Built from aioftp's public pieces (``get_passive_connection``, ``command``,
        ``DataConnectionThrottleStreamIO``, ``finish``) rather than ``get_stream``, so that a
        refused command closes its data socket and each block read waits at most
        ``data_timeout``. The transfer's 2xx is read on a clean exit; leaving early (an
        exception in the caller) drops the session, which is then unusable.
        """
        client = self._require()
        try:
            reader, writer = await client.get_passive_connection("I")
        except _FAILURES as exc:
            self.abort()
            raise _transport(f"{line}: data connection", exc) from exc
        stream = aioftp.DataConnectionThrottleStreamIO(
            client, reader, writer, throttles={}, timeout=self.data_timeout
        )
        try:
            if offset:
                await self._command(f"REST {offset}", "350")
            await self._command(line, "1xx")
        except BaseException:
            stream.close()
            raise
        try:
            yield self._blocks(stream, line)
        except BaseException:
            stream.close()
            self.abort()
            raise
        try:
            await stream.finish()
        except aioftp.StatusCodeError as exc:
            code = _code(exc)
            raise RemoteFileError(f"{line}: {code} {_reply(exc)}", code=code) from None
        except _FAILURES as exc:
            self.abort()
            raise _transport(line, exc) from exc

    @staticmethod
    async def _blocks(stream: Any, line: str) -> AsyncIterator[bytes]:
        while True:
            try:
                block: bytes = await stream.read(_READ)
            except _FAILURES as exc:
                raise _transport(f"{line}: data", exc) from exc
            if not block:
                return
            yield block

    async def iter_dir(self, path: str) -> AsyncIterator[RemoteEntry]:
        """Stream the entries of folder ``path`` (MLSD if the server has it, else LIST).

        Raises :class:`RemoteFileError` when the folder does not exist (a 4xx/5xx reply).
        Lines that do not parse, or are longer than :data:`MAX_LINE`, are skipped and counted
        in :attr:`skipped_lines`. Nothing else may use this client until the iteration ends.
        """
        if self._mlsd:
            try:
                async for entry in self._iter_listing(f"MLSD {path}", mlsd=True):
                    yield entry
                return
            except RemoteFileError as exc:
                if exc.code not in ("500", "502"):  # only these say "no MLSD here"
                    raise
                self._mlsd = False
        async for entry in self._iter_listing(f"LIST {path}", mlsd=False):
            yield entry

    async def list_dir(self, path: str) -> list[RemoteEntry] | None:
        """All entries of ``path`` as a list, or ``None`` if the folder does not exist."""
        try:
            return [entry async for entry in self.iter_dir(path)]
        except RemoteFileError:
            return None

    async def _iter_listing(self, line: str, *, mlsd: bool) -> AsyncIterator[RemoteEntry]:
        async with self._data(line) as blocks:
            pending, too_long = b"", False
            async for chunk in blocks:
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    if too_long:  # the end of an over-long line
                        too_long = False
                        self.skipped_lines += 1
                        continue
                    entry = self._parse(raw, mlsd)
                    if entry is not None:
                        yield entry
                if len(pending) > MAX_LINE:
                    pending, too_long = b"", True
            if pending and not too_long:
                entry = self._parse(pending, mlsd)
                if entry is not None:
                    yield entry

    def _parse(self, raw: bytes, mlsd: bool) -> RemoteEntry | None:
        line = raw.rstrip(b"\r")
        if not line.strip():
            return None
        if len(line) > MAX_LINE:
            self.skipped_lines += 1
            return None
        try:
            entry = _parse_mlsd(line) if mlsd else _parse_list(line)
        except (ValueError, KeyError, IndexError):
            entry = None
        if entry is None:
            self.skipped_lines += 1
        elif entry.name in (".", ".."):
            return None
        return entry

    @contextlib.asynccontextmanager
    async def retrieve(self, path: str, *, offset: int = 0) -> AsyncIterator[AsyncIterator[bytes]]:
        """The blocks of ``path`` from byte ``offset`` (REST); the transfer is confirmed on exit.

        A missing file or a refused REST is :class:`RemoteFileError`; a stall longer than
        ``data_timeout`` or a broken connection is :class:`TransportError` (session dropped).
        """
        async with self._data(f"RETR {path}", offset=offset) as blocks:
            yield blocks


_LISTER = aioftp.Client()  # used only for its LIST line parsers (no connection)


def _parse_mlsd(line: bytes) -> RemoteEntry | None:
    path, facts = _LISTER.parse_mlsx_line(line.decode("utf-8", "replace"))
    kind = str(facts.get("type", "")).lower()
    if kind in ("cdir", "pdir") or not str(path):
        return None
    size = facts.get("size")
    return RemoteEntry(str(path), kind == "dir", parse_count(size), facts.get("modify"))


def _parse_list(line: bytes) -> RemoteEntry | None:
    path, info = _LISTER.parse_list_line(line)
    kind = str(info.get("type", ""))
    return RemoteEntry(str(path), kind == "dir", parse_count(info.get("size")))
