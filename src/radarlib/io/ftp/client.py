"""A thin layer on aioftp's public API: timeouts, streamed listings, typed errors, bounded input.

>>> async with FTPClient("127.0.0.1", 2121, username="u", password="p") as ftp:  # doctest: +SKIP
...     async for entry in ftp.iter_dir("/L2/RMA1/2025/01/01/00"):
...         print(entry.name, entry.size)

Failures leave as :mod:`radarlib.errors` types (:class:`FTPAuthError`, :class:`SessionLimitError`,
:class:`RemotePathError`, :class:`RemoteFileError` for one refused file, else
:class:`TransportError`); a listing line that does not parse or is longer than :data:`MAX_LINE`
is skipped and counted; sizes are read as ASCII digits only; data connections reuse the control
connection's TLS session and have their own stall timeout (``data_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass, field
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
# what an aioftp call may raise: OSError includes TLS errors, EOFError incomplete reads,
# ValueError a reply line over the stream's limit or an unparsable passive reply
_FAILURES = (aioftp.AIOFTPException, OSError, EOFError, ValueError, asyncio.TimeoutError)


def parse_count(text: object, *, max_digits: int = 15) -> int | None:
    """A non-negative integer written in ASCII digits only (``"²"`` and ``"1e3"`` are not)."""
    if isinstance(text, str) and 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


@dataclass(frozen=True)
class RemoteEntry:
    """One listing entry, the name exactly as the server sent it (decoded, errors replaced)."""

    name: str
    is_dir: bool
    size: int | None


def _status(exc: aioftp.StatusCodeError) -> tuple[str, str]:
    """The reply code (``"???"`` if none) and the reply text (cut) of a refused command."""
    received = exc.received_codes[-1] if exc.received_codes else None
    text = " ".join(str(line).strip() for line in exc.info)[:200]
    return (str(received) if received is not None else "???"), text


def _transport(what: str, exc: BaseException) -> TransportError:
    """The :mod:`radarlib.errors` type for an aioftp/socket failure during ``what``."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, aioftp.StatusCodeError):
        code, text = _status(exc)
        if code == "421":
            return SessionLimitError(f"{what}: the server refused the session ({code} {text})")
        return TransportError(f"{what}: unexpected reply {code} {text}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TransportError(f"{what}: timed out")
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")


@dataclass(eq=False, repr=False)
class FTPClient:
    """One FTP control connection (one operation at a time) with typed errors and timeouts.

    ``password`` is never logged. ``command_timeout`` bounds each reply, ``data_timeout``
    each block of a data connection (a stalled transfer is cut).
    """

    host: str
    port: int = 21
    _: KW_ONLY
    username: str = "anonymous"
    password: str = ""
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    data_timeout: float = 60.0
    use_tls: bool = False
    ssl_context: ssl.SSLContext | None = None
    skipped_lines: int = field(default=0, init=False)  # listing lines that did not parse
    _client: aioftp.Client | None = field(default=None, init=False)
    _mlsd: bool = field(default=True, init=False)

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
        where, timeout = f"{self.host}:{self.port}", self.command_timeout
        client = aioftp.Client(
            socket_timeout=timeout, connection_timeout=self.connect_timeout, path_timeout=timeout
        )
        step = f"connect to {where}"
        try:
            await client.connect(self.host, self.port)
            if self.use_tls:
                await client.upgrade_to_tls(self.ssl_context or ssl.create_default_context())
            step = f"login to {where}"
            await client.login(self.username, self.password)
        except aioftp.StatusCodeError as exc:
            client.close()
            code, text = _status(exc)
            login = step.startswith("login")
            if login and (code == "421" or any(w in text.lower() for w in _LIMIT_WORDS)):
                raise SessionLimitError(
                    f"{step}: session refused at the server's limit ({code} {text})"
                ) from None
            if login and code.startswith("530"):
                raise FTPAuthError(
                    f"{where}: login refused for user {self.username!r} ({code} {text})"
                ) from None
            raise _transport(step, exc) from exc
        except BaseException as exc:
            client.close()
            if isinstance(exc, _FAILURES):
                raise _transport(step, exc) from exc
            raise
        self._client = client
        logger.debug("connected to %s as %s", where, self.username)

    async def close(self) -> None:
        """Say QUIT (briefly, best effort) and close the connection."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.quit(), 2.0)
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once (no reply awaited); safe in any state."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _command(self, line: str, expected: str) -> list[str]:
        """One command's reply lines; a 4xx/5xx is :class:`RemoteFileError` (session kept)."""
        if self._client is None:
            raise TransportError(f"{self.host}:{self.port}: not connected")
        try:
            _, info = await self._client.command(line, expected)
        except aioftp.StatusCodeError as exc:
            code, text = _status(exc)
            if code[:1] in "45" and code != "421":
                raise RemoteFileError(f"{line}: {code} {text}", code=code) from None
            self.abort()
            raise _transport(line, exc) from exc
        except BaseException as exc:  # also cancelled mid-reply: the connection is out of step
            self.abort()
            if isinstance(exc, _FAILURES):
                raise _transport(line, exc) from exc
            raise
        return [str(i) for i in info]

    async def check_dir(self, path: str) -> None:
        """:class:`RemotePathError` unless ``path`` is an existing folder on the server."""
        try:
            await self._command(f"CWD {path}", "2xx")
        except RemoteFileError:
            raise RemotePathError(f"{path}: no such folder on {self.host}:{self.port}") from None

    async def size(self, path: str) -> int | None:
        """The server's size of ``path`` (SIZE), or ``None`` if the file does not exist."""
        try:
            info = await self._command(f"SIZE {path}", "213")
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
        """The blocks of a data connection for ``line`` (REST ``offset`` first); its 2xx is read
        on a clean exit, leaving early drops the session. Not aioftp's ``get_stream``: a refused
        command must close its data socket, and each block read wait at most ``data_timeout``."""
        if self._client is None:
            raise TransportError(f"{self.host}:{self.port}: not connected")
        try:
            reader, writer = await self._client.get_passive_connection("I")
        except _FAILURES as exc:
            self.abort()
            raise _transport(f"{line}: data connection", exc) from exc
        stream = aioftp.DataConnectionThrottleStreamIO(
            self._client, reader, writer, throttles={}, timeout=self.data_timeout
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
            code, text = _status(exc)
            raise RemoteFileError(f"{line}: {code} {text}", code=code) from None
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
        """Stream the entries of folder ``path`` (MLSD if the server has it, else LIST); a missing
        folder is :class:`RemoteFileError`. Nothing else may use this client until it ends."""
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
            pending = b""
            async for chunk in blocks:
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    if (entry := self._parse(raw, mlsd)) is not None:
                        yield entry
                pending = pending[: MAX_LINE + 1]  # an over-long line stays over-long, bounded
            if (entry := self._parse(pending, mlsd)) is not None:
                yield entry

    def _parse(self, raw: bytes, mlsd: bool) -> RemoteEntry | None:
        """One listing line's entry; None for a blank line, ``.``/``..`` or a skipped line."""
        line = raw.rstrip(b"\r")
        if not line.strip():
            return None
        entry = None
        if len(line) <= MAX_LINE:
            with contextlib.suppress(ValueError, KeyError, IndexError):
                entry = _parse_mlsd(line) if mlsd else _parse_list(line)
        if entry is None:
            self.skipped_lines += 1
        return None if entry is None or entry.name in (".", "..") else entry

    @contextlib.asynccontextmanager
    async def retrieve(self, path: str, *, offset: int = 0) -> AsyncIterator[AsyncIterator[bytes]]:
        """The blocks of ``path`` from byte ``offset`` (REST); the transfer is confirmed on exit.
        A missing file or refused REST is :class:`RemoteFileError`; a stall longer than
        ``data_timeout`` or a broken connection is :class:`TransportError` (session dropped)."""
        async with self._data(f"RETR {path}", offset=offset) as blocks:
            yield blocks


_LISTER = aioftp.Client()  # used only for its listing line parsers (no connection)


def _parse_mlsd(line: bytes) -> RemoteEntry | None:
    path, facts = _LISTER.parse_mlsx_line(line.decode("utf-8", "replace"))
    kind = str(facts.get("type", "")).lower()
    if kind in ("cdir", "pdir") or not str(path):
        return None
    return RemoteEntry(str(path), kind == "dir", parse_count(facts.get("size")))


def _parse_list(line: bytes) -> RemoteEntry | None:
    path, info = _LISTER.parse_list_line(line)
    return RemoteEntry(str(path), str(info.get("type", "")) == "dir", parse_count(info.get("size")))
