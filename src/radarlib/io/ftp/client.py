"""A thin async FTP client on aioftp: timeouts everywhere, resumable hashed downloads, typed errors.

>>> async with FTPClient("127.0.0.1", 2121, username="u", password="p") as ftp:  # doctest: +SKIP
...     entries = await ftp.list_dir("/L2/RMA1/2025/01/01/00")
...     done = await ftp.download("/L2/RMA1/.../x.BUFR", Path("x.BUFR.part"))

Every failure leaves as a :mod:`radarlib.errors` type: :class:`FTPAuthError` (credentials
refused), :class:`RemotePathError` (a folder that must exist does not), otherwise
:class:`TransportError` (timeouts, refused connections, resets, unexpected replies), which
callers may retry. Connects, commands and data transfers all have timeouts; a data transfer
that makes no progress for ``data_timeout`` seconds is cut and reported as stalled.

aioftp opens the session (connection, explicit TLS, login). After that, each operation
(a listing, SIZE, a download) runs from its first command to its last reply in one thread
of a shared pool (:mod:`radarlib.io.ftp.conversation`), and the event loop awaits one
future per operation: the replies of a transfer never wait for the loop. A download is
announced as soon as the server confirmed it, before its last blocks are written:
:meth:`FTPClient.fetch` returns then, so a caller can start the next file meanwhile;
:meth:`FTPClient.download` waits for the file too. Cancelling an operation (or
:meth:`FTPClient.abort`) cuts the session's sockets, so the thread ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aioftp

from radarlib.errors import FTPAuthError, RemotePathError, TransportError
from radarlib.io.ftp.control import LoopControl, SocketControl, status_of
from radarlib.io.ftp.conversation import Conversation, Received
from radarlib.io.ftp.replies import ReplyError
from radarlib.io.ftp.sink import FileSink

__all__ = ["FTPClient", "Fetched", "RemoteEntry", "ReplyError", "Transfer"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_MAX_OPERATION_THREADS = 128  # one per operation in flight, shared by every client
# Operations hold a thread for their whole duration: a pool of their own, so they never
# queue behind (or block) the default executor used for SQLite and file system calls.
_POOL = ThreadPoolExecutor(_MAX_OPERATION_THREADS, thread_name_prefix="ftp-data")


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


@contextlib.contextmanager
def _translated(what: str, *, login: bool = False) -> Iterator[None]:
    """Turn aioftp/socket failures into :class:`TransportError` naming the operation."""
    try:
        yield
    except TransportError:
        raise
    except aioftp.StatusCodeError as exc:
        code, text = status_of(exc)
        if login and code == "530":
            raise FTPAuthError(f"{what}: login refused by the server ({code} {text})") from None
        raise ReplyError.unexpected(what, code, text) from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise TransportError(f"{what}: timed out") from exc
    except (OSError, EOFError, ssl.SSLError, aioftp.AIOFTPException, ConnectionError) as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _announcer(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
) -> Callable[[Any], None]:
    """A callable for an operation's thread that hands ``future`` its result on the loop."""

    def settle(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    def announce(value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, value)

    return announce


def _pass_on(announced: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    """Done callback of an operation: its outcome settles ``announced`` if nothing did yet."""
    if announced.done():
        return
    if done.cancelled():
        announced.cancel()
    elif (error := done.exception()) is not None:
        announced.set_exception(error)
    else:
        announced.set_result(done.result())


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Done callback: mark a future's exception as seen (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


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
        self._session: Conversation | None = None
        self._lister = aioftp.Client(encoding=self.encoding)  # only parses LIST lines

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"FTPClient({self.username}@{self.host}:{self.port}, {state})"

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`close`/:meth:`abort`."""
        return self._session is not None

    @property
    def _mlsd(self) -> bool:
        """The session lists with MLSD (the server offered it in FEAT)."""
        return self._session is not None and self._session.mlsd

    @property
    def supports_rest(self) -> bool:
        """False once the server refused REST in this session (downloads then start over)."""
        return self._session is None or self._session.supports_rest

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
            control: LoopControl | SocketControl
            with _translated(f"setup of {where}"):
                if self.use_tls:  # the TLS state stays with the loop's transport
                    loop = asyncio.get_running_loop()
                    control = LoopControl(client, loop, self.host, self.command_timeout)
                else:  # plain: the operations' threads talk over the socket directly
                    control = SocketControl.take_over(
                        client.stream.writer, where, self.encoding, self.command_timeout
                    )
                    client.close()
        except BaseException:
            client.close()
            raise
        self._session = session = Conversation(
            control, connect_timeout=self.connect_timeout, data_timeout=self.data_timeout
        )
        try:
            await self._call(f"setup of {where}", session.setup)
        except BaseException:
            self.abort()
            raise
        logger.debug("connected to %s as %s (MLSD %s)", where, self.username, self._mlsd)

    async def close(self) -> None:
        """Say QUIT (briefly, best effort) and close the connection."""
        session = self._session
        if session is not None:
            with contextlib.suppress(Exception):
                await self._call("QUIT", session.command, "QUIT", "2xx", timeout=2.0)
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once (no reply awaited); safe in any state."""
        session, self._session = self._session, None
        if session is not None:
            session.cut()

    # -- operations -----------------------------------------------------------------------------
    def _require(self) -> Conversation:
        if self._session is None:
            raise TransportError(f"{self.host}:{self.port}: not connected")
        return self._session

    async def _call(
        self, what: str, operation: Callable[..., _T], *args: Any, early: bool = False, **kw: Any
    ) -> _T:
        """Run ``operation(*args, **kw)`` in a pool thread; its result, or its announcement.

        With ``early`` the operation gets ``announce=``: what it announces is returned while
        it goes on with local work (see :meth:`Conversation.retrieve`). A reply error keeps
        the session; any other failure, and cancellation, cuts it, and waits for the thread
        while it may still touch a file.
        """
        session = self._require()
        loop = asyncio.get_running_loop()
        announced: asyncio.Future[_T] = loop.create_future()
        if early:
            kw["announce"] = _announcer(loop, announced)
        done = loop.run_in_executor(_POOL, functools.partial(operation, *args, **kw))
        done.add_done_callback(functools.partial(_pass_on, announced))
        try:
            with _translated(what):
                result = await announced
        except ReplyError:
            raise
        except BaseException:
            announced.cancel()
            if self._session is session:
                self._session = None
            if session.cut():  # the thread ends at once: wait, so no write follows our cleanup
                with contextlib.suppress(BaseException):
                    await asyncio.wait({done})
            raise
        finally:
            done.add_done_callback(_retrieve)  # outcomes after a cut (often _Cut) are expected
        return result

    async def check_dir(self, path: str) -> None:
        """:class:`RemotePathError` unless ``path`` is an existing folder on the server."""
        session = self._require()
        try:
            await self._call(f"CWD {path}", session.command, f"CWD {path}", "2xx")
        except ReplyError as exc:
            if exc.code in {"550", "501", "450"}:
                raise RemotePathError(
                    f"{path}: no such folder on {self.host}:{self.port}"
                ) from None
            raise

    async def size(self, path: str) -> int | None:
        """The server's size of ``path`` (SIZE), or ``None`` if the file does not exist."""
        session = self._require()
        try:
            lines = await self._call(f"SIZE {path}", session.command, f"SIZE {path}", "213")
        except ReplyError as exc:
            if exc.code.startswith("55"):
                return None
            raise
        text = lines[-1].strip() if lines else ""
        if not text.isdigit():
            self.abort()
            raise TransportError(f"SIZE {path}: unreadable reply {text!r}")
        return int(text)

    # -- listings -------------------------------------------------------------------------------
    async def list_dir(self, path: str) -> list[RemoteEntry] | None:
        """Entries of folder ``path`` (MLSD if offered, else LIST); ``None`` if it is missing."""
        session = self._require()
        try:
            data = await self._call(session.listing_command(path), session.listing, path)
        except ReplyError as exc:
            if exc.code in {"450", "501", "550"}:
                return None
            raise
        return self._parse_listing(data, mlsd=session.mlsd)

    def _parse_listing(self, data: bytes, *, mlsd: bool) -> list[RemoteEntry]:
        entries: list[RemoteEntry] = []
        for raw in data.split(b"\n"):
            line = raw.rstrip(b"\r")
            if not line.strip():
                continue
            entry = self._parse_mlsd(line) if mlsd else self._parse_list(line)
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
            path, info = self._lister.parse_list_line(line)
        except ValueError:
            logger.warning("unparseable LIST line from %s: %r", self.host, line[:200])
            return None
        size = str(info.get("size", ""))
        return RemoteEntry(
            str(path), info.get("type") == "dir", int(size) if size.isdigit() else None
        )

    # -- downloads ------------------------------------------------------------------------------
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
        session = self._require()
        received: Received = await self._call(
            f"RETR {remote_path}",
            session.retrieve,
            remote_path,
            destination,
            resume=resume,
            checksum=checksum,
            early=True,
        )
        size, offset, sink = received
        return Fetched(size=size, resumed_from=offset, sink=sink)
