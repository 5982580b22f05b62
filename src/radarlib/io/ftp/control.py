"""FTP control connections after login, used from the thread that runs each operation.

>>> control = SocketControl.take_over(writer, "srv:21", "utf-8", 30.0)  # doctest: +SKIP
>>> control.command("SIZE /x.BUFR", "213")                            # doctest: +SKIP
('213', ['1234'])

aioftp opens every session (connection, explicit TLS, login) on the event loop. Then the
session's commands are sent from the thread that runs each operation
(:mod:`radarlib.io.ftp.conversation`):

- :class:`SocketControl` for plain FTP: the socket aioftp opened, taken over with blocking
  calls, so a reply costs the thread one wake-up and no event loop iteration. Replies are
  read exactly as RFC 959 4.2 says (:class:`~radarlib.io.ftp.replies.Reply`).
- :class:`LoopControl` for explicit TLS: the TLS state lives in the event loop's transport
  and cannot move to a thread, so each command is aioftp's ``Client.command`` run on the
  loop while the thread waits.

Both raise :class:`~radarlib.io.ftp.replies.ReplyError` for an unexpected reply code,
``TimeoutError`` for silence and ``ConnectionResetError`` for a closed connection; a
plain connection raises :class:`~radarlib.errors.TransportError` for garbage.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aioftp

from radarlib.errors import TransportError
from radarlib.io.ftp.replies import MAX_LINE, Reply, ReplyError, code_matches, decode_line

__all__ = ["Control", "LoopControl", "SocketControl", "TLSData", "status_of"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class TLSData:
    """What a data connection needs to be wrapped like the control connection."""

    context: ssl.SSLContext
    session: ssl.SSLSession | None
    hostname: str


class Control(abc.ABC):
    """A logged-in control connection, used from one operation's thread at a time."""

    peer_host: str
    timeout: float  #: seconds to wait for a reply (per command, unless told otherwise)

    def command(
        self,
        line: str | None,
        expect: str,
        wait: str = "",
        *,
        timeout: float | None = None,
        what: str | None = None,
    ) -> tuple[str, list[str]]:
        """Send ``line`` (None: only read), read replies until one that is not ``wait``.

        Returns the reply code and its text lines. A code not matching ``expect`` raises
        :class:`ReplyError` naming ``what`` (default: the command line).
        """
        if line is not None and ("\r" in line or "\n" in line):
            raise TransportError(f"refusing to send a command with a line break: {line!r}")
        code, lines = self._exchange(line, wait, self.timeout if timeout is None else timeout)
        if not code_matches(code, expect):
            text = " ".join(part.strip() for part in lines).strip()
            raise ReplyError.unexpected(what or line or "reply", code, text)
        return code, lines

    @abc.abstractmethod
    def _exchange(self, line: str | None, wait: str, seconds: float) -> tuple[str, list[str]]:
        """Send ``line``, return the first reply whose code does not match ``wait``."""

    @abc.abstractmethod
    def data_tls(self) -> TLSData | None:
        """How to wrap a data connection (None: plain)."""

    @abc.abstractmethod
    def interrupt(self) -> None:
        """From any thread: a command in progress fails now (the connection is given up)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection (after :meth:`interrupt`, or when idle)."""


def status_of(exc: aioftp.StatusCodeError) -> tuple[str, str]:
    """The reply code and text of aioftp's unexpected-reply error."""
    code = str(exc.received_codes[-1]) if exc.received_codes else "???"
    text = " ".join(str(part).strip() for part in exc.info).strip() if exc.info else ""
    return code, text


class SocketControl(Control):
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

    def _exchange(self, line: str | None, wait: str, seconds: float) -> tuple[str, list[str]]:
        if seconds != self._armed:
            self._sock.settimeout(seconds)
            self._armed = seconds
        if line is not None:
            logger.debug("%s <- %s", self.where, line)
            self._sock.sendall(line.encode(self.encoding) + b"\r\n")
        while True:
            reply = Reply(self._line(), self.where)
            while not reply.complete:
                reply.add(self._line())
            logger.debug("%s -> %s %s", self.where, reply.code, reply.lines[-1])
            if not (wait and code_matches(reply.code, wait)):
                return reply.code, reply.lines

    def _line(self) -> str:
        return decode_line(self._file.readline(MAX_LINE), self.encoding, self.where)

    def data_tls(self) -> TLSData | None:
        return None  # plain FTP

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._sock.close()


class LoopControl(Control):
    """A TLS control connection for a thread: each command is aioftp's, run on the event loop.

    The thread waits for the loop at most the command's own timeout plus ``grace``, so a
    loop that is gone never holds it for ever.
    """

    def __init__(
        self,
        client: aioftp.Client,
        loop: asyncio.AbstractEventLoop,
        hostname: str,
        timeout: float,
        grace: float = 5.0,
    ) -> None:
        self._client, self._loop, self._hostname = client, loop, hostname
        self.timeout, self._grace = timeout, grace
        self._lock = threading.Lock()
        self._pending: concurrent.futures.Future[Any] | None = None
        self._interrupted = False
        peer = client.stream.writer.get_extra_info("peername")
        self.peer_host = str(peer[0]) if peer else hostname

    def _exchange(self, line: str | None, wait: str, seconds: float) -> tuple[str, list[str]]:
        return self._on_loop(self._command(line, wait, seconds), seconds)

    async def _command(self, line: str | None, wait: str, seconds: float) -> tuple[str, list[str]]:
        # "xxx" accepts any code (the caller checks it); aioftp reads until it is not ``wait``
        reply = self._client.command(line, "xxx", wait or ())
        try:
            code, lines = await asyncio.wait_for(reply, seconds)
        except aioftp.StatusCodeError as exc:  # a multi-line reply whose codes disagree
            raise TransportError(f"{self.peer_host}: unreadable reply {status_of(exc)}") from None
        # aioftp keeps the separator after the code ("229 text" -> " text"): drop it
        return str(code), [part[1:] if part[:1] in (" ", "-") else part for part in lines]

    def data_tls(self) -> TLSData | None:
        async def read() -> TLSData | None:  # the TLS object is the loop's to touch
            control = self._client.stream.writer.get_extra_info("ssl_object")
            if control is None:
                return None
            return TLSData(control.context, control.session, self._hostname)

        return self._on_loop(read(), self.timeout)

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
            self._client.close()
        else:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._client.close)
