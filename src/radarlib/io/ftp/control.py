"""FTP control connections: on the event loop while a session opens, from a thread after.

>>> control = SocketControl.take_over(writer, "srv:21", "utf-8", 30.0)  # doctest: +SKIP
>>> control.command("SIZE /x.BUFR", "213")                            # doctest: +SKIP
('213', ['1234'])

aioftp opens every session (connection, explicit TLS, login) on the event loop, and
:class:`StreamControl` sends the setup commands over its stream. Then a session's commands
are sent from the thread that runs each operation (:mod:`radarlib.io.ftp.conversation`):

- :class:`SocketControl` for plain FTP: the socket aioftp opened, taken over with blocking
  calls, so a reply costs the thread one wake-up and no event loop iteration;
- :class:`LoopControl` for explicit TLS: the TLS state lives in the event loop's transport
  and cannot move to a thread, so each command is a coroutine of :class:`StreamControl`
  run on the loop while the thread waits.

Both raise :class:`~radarlib.io.ftp.replies.ReplyError` for an unexpected reply code,
``TimeoutError`` for silence, ``ConnectionResetError`` for a closed connection, and
:class:`~radarlib.errors.TransportError` for garbage.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from radarlib.errors import TransportError
from radarlib.io.ftp.replies import MAX_LINE, Reply, code_matches, decode_line

__all__ = ["Control", "LoopControl", "SocketControl", "StreamControl", "TLSData"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class TLSData:
    """What a data connection needs to be wrapped like the control connection."""

    context: ssl.SSLContext
    session: ssl.SSLSession | None
    hostname: str


class Control(Protocol):
    """A logged-in control connection, used from one operation's thread at a time."""

    peer_host: str

    def command(
        self,
        line: str | None,
        expect: str,
        wait: str = "",
        *,
        timeout: float | None = None,
        what: str | None = None,
    ) -> tuple[str, list[str]]:
        """Send ``line`` (None: only read), read replies until one that is not ``wait``."""

    def data_tls(self) -> TLSData | None:
        """How to wrap a data connection (None: plain)."""

    def interrupt(self) -> None:
        """From any thread: a command in progress fails now (the connection is given up)."""

    def close(self) -> None:
        """Release the connection (after :meth:`interrupt`, or when idle)."""


def _checked(line: str) -> str:
    if "\r" in line or "\n" in line:
        raise TransportError(f"refusing to send a command with a line break: {line!r}")
    return line


class StreamControl:
    """The control connection as aioftp's stream, on the event loop: one command at a time.

    One deadline (``timeout``, default the command timeout) covers the command and all its
    replies.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        where: str,
        encoding: str,
        timeout: float,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.where, self.encoding, self.timeout = where, encoding, timeout

    async def command(
        self,
        line: str | None,
        expect: str,
        wait: str = "",
        *,
        timeout: float | None = None,
        what: str | None = None,
    ) -> tuple[str, list[str]]:
        """As :meth:`Control.command`, awaited on the event loop."""
        seconds = self.timeout if timeout is None else timeout
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(seconds):
                reply = await self._exchange(line, wait)
        else:  # pragma: no cover - Python 3.10
            reply = await asyncio.wait_for(self._exchange(line, wait), seconds)
        return reply.check(expect, what or line or "reply")

    async def _exchange(self, line: str | None, wait: str) -> Reply:
        if line is not None:
            logger.debug("%s <- %s", self.where, line)
            self.writer.write(_checked(line).encode(self.encoding) + b"\r\n")
            await self.writer.drain()
        while True:
            reply = Reply(await self._line(), self.where)
            while not reply.complete:
                reply.add(await self._line())
            logger.debug("%s -> %s %s", self.where, reply.code, reply.lines[-1])
            if not (wait and code_matches(reply.code, wait)):
                return reply

    async def _line(self) -> str:
        try:
            raw = await self.reader.readline()
        except ValueError:  # longer than the stream limit (64 KiB): not an FTP reply
            raise TransportError(f"{self.where}: reply line too long") from None
        return decode_line(raw, self.encoding, self.where)

    def data_tls(self, hostname: str) -> TLSData | None:
        """The TLS context and session of this connection, for its data connections."""
        control = self.writer.get_extra_info("ssl_object")
        if control is None:
            return None
        return TLSData(control.context, control.session, hostname)

    @property
    def peer_host(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if peer else self.where.rpartition(":")[0]


class SocketControl:
    """A plain control connection driven with blocking calls from the operation's thread.

    Each receive waits at most the command timeout for the next bytes.
    """

    def __init__(self, sock: socket.socket, where: str, encoding: str, timeout: float) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")  # a buffered readline, in C
        self.where, self.encoding, self.timeout = where, encoding, timeout
        self._armed = timeout
        sock.settimeout(timeout)
        self.peer_host = str(sock.getpeername()[0])

    @classmethod
    def take_over(
        cls, writer: asyncio.StreamWriter, where: str, encoding: str, timeout: float
    ) -> SocketControl:
        """The socket under an (idle) asyncio stream, as a blocking control connection.

        The caller closes the stream right after: the transport then closes its file
        descriptor and stops watching it, the connection lives on in this duplicate.
        """
        transport_socket = writer.get_extra_info("socket")
        if transport_socket is None:
            raise TransportError(f"{where}: the control connection has no socket to take over")
        sock = socket.socket(fileno=os.dup(transport_socket.fileno()))
        try:
            return cls(sock, where, encoding, timeout)
        except BaseException:
            sock.close()
            raise

    def command(
        self,
        line: str | None,
        expect: str,
        wait: str = "",
        *,
        timeout: float | None = None,
        what: str | None = None,
    ) -> tuple[str, list[str]]:
        """As :meth:`Control.command`, blocking (in the operation's thread)."""
        seconds = self.timeout if timeout is None else timeout
        if seconds != self._armed:
            self._sock.settimeout(seconds)
            self._armed = seconds
        if line is not None:
            logger.debug("%s <- %s", self.where, line)
            self._sock.sendall(_checked(line).encode(self.encoding) + b"\r\n")
        while True:
            reply = Reply(self._line(), self.where)
            while not reply.complete:
                reply.add(self._line())
            logger.debug("%s -> %s %s", self.where, reply.code, reply.lines[-1])
            if not (wait and code_matches(reply.code, wait)):
                return reply.check(expect, what or line or "reply")

    def _line(self) -> str:
        return decode_line(self._file.readline(MAX_LINE), self.encoding, self.where)

    def data_tls(self) -> TLSData | None:
        return None

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._sock.close()


class LoopControl:
    """A TLS control connection for a thread: each command runs on the event loop.

    The thread waits for the loop at most the command's own timeout plus ``grace``, so a
    loop that is gone never holds it for ever.
    """

    def __init__(
        self,
        stream: StreamControl,
        loop: asyncio.AbstractEventLoop,
        hostname: str,
        close: Callable[[], None],
        grace: float = 5.0,
    ) -> None:
        self._stream, self._loop, self._hostname = stream, loop, hostname
        self._close, self._grace = close, grace
        self._lock = threading.Lock()
        self._pending: concurrent.futures.Future[Any] | None = None
        self._interrupted = False
        self.peer_host = stream.peer_host

    def command(
        self,
        line: str | None,
        expect: str,
        wait: str = "",
        *,
        timeout: float | None = None,
        what: str | None = None,
    ) -> tuple[str, list[str]]:
        """As :meth:`Control.command`: sent by the event loop, waited for here."""
        coroutine = self._stream.command(line, expect, wait, timeout=timeout, what=what)
        seconds = self._stream.timeout if timeout is None else timeout
        return self._on_loop(coroutine, seconds)

    def data_tls(self) -> TLSData | None:
        async def read() -> TLSData | None:  # the TLS object is the loop's to touch
            return self._stream.data_tls(self._hostname)

        return self._on_loop(read(), self._stream.timeout)

    def _on_loop(self, coroutine: Coroutine[Any, Any, _T], seconds: float) -> _T:
        with self._lock:
            if self._interrupted:
                coroutine.close()
                raise ConnectionResetError("the control connection was given up")
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            except RuntimeError:  # the loop is closed
                coroutine.close()
                raise ConnectionResetError("the event loop is gone") from None
            self._pending = future
        try:
            return future.result(seconds + self._grace)
        except concurrent.futures.CancelledError:
            raise ConnectionResetError("the control connection was given up") from None
        finally:
            with self._lock:
                self._pending = None

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            pending = self._pending
        if pending is not None:
            pending.cancel()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._close()
        else:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._close)
