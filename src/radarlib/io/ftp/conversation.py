"""One logged-in FTP session's operations, each run start to end in one thread.

>>> talk = Conversation(control, connect_timeout=10, data_timeout=60, mlsd=True)  # doctest: +SKIP
>>> talk.listing("/L2/RMA1/2025/01/01/00")                                       # doctest: +SKIP

Why threads: driven from the event loop, every reply of a transfer (EPSV, 150, 226) costs a
loop wake-up and GIL hand-offs shared with every other connection; with four transfers in
flight those hops, not the bytes, set the pace (``benchmarks/README.md``). Here the thread
that runs an operation sends each command, reads each reply, connects and receives the data
connection, all with blocking calls that release the GIL, so the event loop submits the
operation and awaits one future (:class:`radarlib.io.ftp.client.FTPClient`).

A download follows ftplib's order: EPSV (else PASV), connect, REST, RETR, the 1xx reply,
the TLS handshake of the data connection, the bytes into a :class:`FileSink`, the 2xx
reply. Then the thread announces the transfer and only after that writes the blocks the
sink still holds, so the caller's next commands overlap that work.

:meth:`Conversation.cut` stops the session from any thread: blocked socket calls fail at
once, and every later operation is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from radarlib.errors import TransportError
from radarlib.io.ftp.control import Control
from radarlib.io.ftp.replies import ReplyError, epsv_port, pasv_port
from radarlib.io.ftp.sink import FileSink

__all__ = ["Conversation", "Received"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_HASH_BLOCK = 1 << 20
_LISTING_BLOCK = 1 << 18  # listings are received into one buffer this size per thread
_thread_buffers = threading.local()  # one listing buffer per thread, reused

#: what :meth:`Conversation.retrieve` announces: (final size, resumed from, the sink)
Received = tuple[int, int, FileSink]


class _Cut(TransportError):
    """The session was cut (:meth:`Conversation.cut`) while this operation ran."""


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


def _recv_into(sock: socket.socket, view: memoryview, flags: int, cut: threading.Event) -> int:
    """One ``recv_into``; silence raises :class:`_Stalled`, a cut socket :class:`_Cut`."""
    try:
        return sock.recv_into(view, 0, flags)
    except (TimeoutError, BlockingIOError):  # nothing for the armed timeout
        if cut.is_set():
            raise _Cut("the connection was cut") from None
        raise _Stalled from None
    except OSError:
        if cut.is_set():
            raise _Cut("the connection was cut") from None
        raise


def _receive_bytes(sock: socket.socket, timeout: float, cut: threading.Event) -> bytes:
    """Everything a data connection sends until EOF, in memory (a listing)."""
    flags = _arm(sock, timeout)
    view: memoryview | None = getattr(_thread_buffers, "view", None)
    if view is None:
        view = _thread_buffers.view = memoryview(bytearray(_LISTING_BLOCK))
    chunks: list[bytes] = []
    while count := _recv_into(sock, view, flags, cut):
        chunks.append(bytes(view[:count]))
    if cut.is_set():  # a shutdown socket reads as EOF
        raise _Cut("the connection was cut")
    return b"".join(chunks)


def _receive_file(sock: socket.socket, sink: FileSink, timeout: float, cut: threading.Event) -> int:
    """Receive a data connection into ``sink``; returns the bytes received.

    Blocks are received straight into the sink's buffers; it writes and hashes each one
    when its buffer comes round again, and the caller finishes it (:meth:`FileSink.finish`).
    """
    flags = _arm(sock, timeout)
    sink.open()
    received = 0
    while True:
        view = sink.block()
        filled = 0
        try:
            while filled < len(view):
                count = _recv_into(sock, view[filled:], flags, cut)
                if not count:
                    break
                filled += count
        finally:  # bytes received before a failure are kept, for a later resume
            sink.put(view, filled)
        received += filled
        if filled < len(view):  # EOF
            break
    if cut.is_set():
        raise _Cut("the connection was cut")
    return received


def _hash_prefix(path: Path, length: int) -> Any | None:
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


class Conversation:
    """The operations of one logged-in session; each runs in the calling thread, one at a time.

    Args:
        control: the session's control connection.
        connect_timeout: seconds to connect a data connection.
        data_timeout: seconds a data connection may stay silent (a stalled transfer).

    ``mlsd`` (list folders with MLSD, else LIST) is what :meth:`setup` learnt from FEAT;
    ``epsv`` and ``supports_rest`` turn False when the server refuses EPSV or REST.
    """

    def __init__(self, control: Control, *, connect_timeout: float, data_timeout: float) -> None:
        self.control = control
        self.connect_timeout = connect_timeout
        self.data_timeout = data_timeout
        self.mlsd = False
        self.epsv = True
        self.supports_rest = True
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._busy = False
        self._data: socket.socket | None = None
        self._connecting = False

    # -- any thread -----------------------------------------------------------------------------
    def cut(self) -> bool:
        """Give the session up now; True if an operation may still be finishing (wait for it).

        A data connection still connecting is left to fail by itself: it has touched no
        file and will not, so nobody needs to wait for it.
        """
        with self._lock:
            self._cut.set()
            busy, data, connecting = self._busy, self._data, self._connecting
        if data is not None:  # connected: shut down; one still connecting is not held here
            with contextlib.suppress(OSError):
                data.shutdown(socket.SHUT_RDWR)
        self.control.interrupt()
        if not busy:
            self.control.close()
        return busy and not connecting

    # -- operations (in the thread that runs them) ----------------------------------------------
    def setup(self) -> None:
        """Binary mode, and whether the server lists with MLSD (FEAT: ``mlsd``)."""
        with self._turn():
            self.control.command("TYPE I", "200")
            try:
                _, lines = self.control.command("FEAT", "2xx")
            except ReplyError:
                lines = []
        self.mlsd = any(line.strip().upper().startswith("MLST") for line in lines)

    def command(self, line: str, expect: str, *, timeout: float | None = None) -> list[str]:
        """One command and its reply's lines (SIZE, CWD, QUIT)."""
        with self._turn():
            return self.control.command(line, expect, timeout=timeout)[1]

    def listing_command(self, path: str) -> str:
        """``MLSD path`` where the server offers it, else ``LIST path``."""
        return f"{'MLSD' if self.mlsd else 'LIST'} {path}"

    def listing(self, path: str) -> bytes:
        """The raw MLSD (or LIST) listing of ``path``."""
        command = self.listing_command(path)
        with self._turn():
            address = self._passive_address()
            return self._exchange(address, command, _receive_bytes, self.data_timeout, self._cut)

    def retrieve(
        self,
        remote_path: str,
        destination: Path,
        *,
        resume: bool,
        checksum: bool,
        announce: Callable[[Received], None],
    ) -> Received:
        """Download ``remote_path`` into ``destination``; ``announce`` it, then finish writing.

        With ``resume`` and a non-empty ``destination`` the transfer restarts at its size
        with REST (the existing bytes re-hashed first); if the server refuses REST it starts
        over. On failure the bytes received are written (for a later resume) before the
        error is raised; on success :meth:`FileSink.result` says when the file is complete.
        """
        what = f"RETR {remote_path}"
        offset = _local_size(destination) if resume and self.supports_rest else 0
        digest = hashlib.sha256() if checksum else None
        if offset and checksum:
            prefix = _hash_prefix(destination, offset)
            if prefix is None:
                offset = 0
            else:
                digest = prefix
        with self._turn():
            address = self._passive_address()
            if offset and not self._restart_at(offset, remote_path):
                offset, digest = 0, (hashlib.sha256() if checksum else None)
            sink = FileSink(destination, append=offset > 0, digest=digest)
            try:
                received = self._exchange(
                    address, what, _receive_file, sink, self.data_timeout, self._cut
                )
            except BaseException:
                sink.finish()
                raise
        outcome = (offset + received, offset, sink)
        announce(outcome)
        sink.finish()
        return outcome

    # -- the steps --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the control connection for one operation; a cut session refuses it."""
        with self._lock:
            if self._cut.is_set():
                raise _Cut("the connection was cut")
            self._busy = True
        try:
            yield
        finally:
            with self._lock:
                self._busy = False
            if self._cut.is_set():  # cut while this ran: the connection is ours to close
                self.control.close()

    def _passive_address(self) -> tuple[str, int]:
        """EPSV (else PASV): the data port, on the control connection's peer address."""
        if self.epsv:
            try:
                _, lines = self.control.command("EPSV", "229")
                return self.control.peer_host, epsv_port(lines[-1])
            except ReplyError as exc:
                if not exc.code.startswith("50"):
                    raise
                self.epsv = False
        _, lines = self.control.command("PASV", "227")
        return self.control.peer_host, pasv_port(lines[-1])

    def _restart_at(self, offset: int, remote_path: str) -> bool:
        """REST ``offset``; False (and no more REST this session) if the server refuses it."""
        try:
            self.control.command(f"REST {offset}", "350")
            return True
        except ReplyError as exc:
            if not exc.code.startswith("50"):
                raise
        logger.info("%s: server refused REST; downloading from the start", remote_path)
        self.supports_rest = False
        return False

    def _exchange(
        self,
        address: tuple[str, int],
        command: str,
        receive: Callable[..., _T],
        *args: Any,
    ) -> _T:
        """Connect to ``address``, send ``command``, ``receive(sock, *args)``, read the 2xx."""
        sock = self._connect(address)
        try:
            self.control.command(command, "1xx")
            tls = self.control.data_tls()
            if tls is not None:  # after the 1xx, as ftplib does: servers start TLS then
                sock = tls.context.wrap_socket(
                    sock, server_hostname=tls.hostname, session=tls.session
                )
                self._hold(sock)
            result = receive(sock, *args)
        except _Stalled:
            raise TransportError(
                f"{command}: no data for {self.data_timeout:g} s (stalled transfer)"
            ) from None
        finally:
            self._hold(None)
            sock.close()
        self.control.command(None, "2xx", "1xx", what=command)
        return result

    def _connect(self, address: tuple[str, int]) -> socket.socket:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        with self._lock:
            self._connecting = True
        try:
            sock.settimeout(self.connect_timeout)
            sock.connect(address)
        except BaseException:
            self._hold(None)
            sock.close()
            raise
        self._hold(sock)
        if self._cut.is_set():  # cut while connecting: nobody shut this socket down
            self._hold(None)
            sock.close()
            raise _Cut("the connection was cut")
        return sock

    def _hold(self, sock: socket.socket | None) -> None:
        """Make ``sock`` the data connection that :meth:`cut` shuts down (None: none)."""
        with self._lock:
            self._data, self._connecting = sock, False
