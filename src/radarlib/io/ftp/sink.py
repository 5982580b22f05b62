"""A received file's blocks, written and hashed in order by a thread of their own.

The data thread that receives a file only receives: each filled block goes to the file's
:class:`FileSink`, whose writer writes it to the file and feeds it to the sha256, then
hands the buffer back for the next block. The transfer is over when the last byte is in;
the file is complete a moment later, when :meth:`FileSink.result` returns. A downloader
that waits for that only before it records the file lets the writing and hashing of one
file overlap the commands of the next (``benchmarks/README.md``).

>>> sink = FileSink(Path("x.part"), append=False, digest=hashlib.sha256())  # doctest: +SKIP
>>> sink.open(); view = sink.block(); sink.put(view, n); sink.close()     # doctest: +SKIP
>>> sink.result().sha256                                                   # doctest: +SKIP

The hash is still computed while receiving, from the received blocks (never re-read from
disk). At most :data:`RING_BLOCKS` blocks of a file wait for its writer; a receiver that
gets that far ahead waits for a free buffer.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BLOCK", "RING_BLOCKS", "FileSink", "Stored"]

#: bytes per block: received, written and hashed in blocks of this size. Large, because
#: every block costs each thread a few GIL hand-offs, and with several transfers in flight
#: those wake-ups (not the copying) are what the CPUs spend their time on.
BLOCK = 1 << 20
#: blocks of one file that may wait for its writer (the receiver waits beyond that): double
#: buffering, since the writer (page cache + sha256) outpaces a network transfer
RING_BLOCKS = 2

# A writer holds a thread while its file is being received: a pool of its own, as large as
# the data pool, so writers never queue behind other work (or each other).
_WRITERS = ThreadPoolExecutor(128, thread_name_prefix="ftp-store")


class _Ring:
    """:data:`RING_BLOCKS` receive buffers and the queue of those free to fill."""

    def __init__(self) -> None:
        self.free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(RING_BLOCKS):
            self.free.put(memoryview(bytearray(BLOCK)))


_idle_rings: list[_Ring] = []  # rings are allocated once and reused, not made per file
_rings_lock = threading.Lock()


def _take_ring() -> _Ring:
    with _rings_lock:
        return _idle_rings.pop() if _idle_rings else _Ring()


def _give_back(ring: _Ring) -> None:
    with _rings_lock:
        _idle_rings.append(ring)


@dataclass(frozen=True)
class Stored:
    """What a sink wrote: its byte count and, with a digest, the sha256 of the whole file."""

    size: int
    sha256: str | None


_END = None  # the receiver's last word: no more blocks


class FileSink:
    """Writes (and hashes) the blocks of one received file in order, in a writer thread.

    Args:
        path: the file to write; created, truncated, or appended to with ``append``.
        append: continue an existing file (a resumed transfer).
        digest: a ``hashlib`` object fed every block (already fed the existing bytes of a
            resumed file), or ``None`` to only write.

    The receiving thread calls :meth:`open` (once the server accepted the transfer, so a
    refused command creates no file), then :meth:`block` / :meth:`put` per block and
    :meth:`close` at the end, also after a failure: the bytes received before it are
    written too, for a later resume. The first write error stops writing; :meth:`block`
    raises it to the receiver and :meth:`result` to whoever waits for the file.
    """

    def __init__(self, path: Path, *, append: bool, digest: Any | None) -> None:
        self.path = path
        self._append = append
        self._digest = digest
        self._ring: _Ring | None = None
        self._blocks: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        self._error: OSError | None = None
        self._done: Future[Stored] = Future()
        self._opened = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r}, append={self._append})"

    # -- the receiving thread --------------------------------------------------------------------
    def open(self) -> None:
        """Open the file and start the writer (in the receiving thread)."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self._append else os.O_TRUNC)
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        with self._lock:
            if self._done.done():  # done() was asked first: the transfer was given up
                raise RuntimeError(f"{self!r}: opened after it was given up")
            fd = os.open(self.path, flags, 0o666)
            self._ring = ring = _take_ring()
            self._opened = True
        try:
            _WRITERS.submit(self._write_all, fd, ring)
        except BaseException:  # no writer (interpreter shutting down): nothing was written
            os.close(fd)
            self._done.set_result(Stored(0, None))
            raise

    def block(self) -> memoryview:
        """A free buffer to receive the next block into; raises the writer's error, if any."""
        if self._ring is None:
            raise RuntimeError(f"{self!r}: block() before open()")
        while True:
            try:
                view = self._ring.free.get(timeout=1.0)
                break
            except queue.Empty:  # the writer is slow (a slow disk), or gone
                if self._done.done():
                    raise self._error or RuntimeError(f"{self!r}: the writer ended") from None
        if self._error is not None:
            self._ring.free.put(view)
            raise self._error
        return view

    def put(self, view: memoryview, count: int) -> None:
        """Queue the first ``count`` bytes of ``view`` (a buffer from :meth:`block`)."""
        self._blocks.put((view, count))

    def close(self) -> None:
        """No more blocks: the writer closes the file after the last one."""
        if self._opened:
            self._blocks.put(_END)

    # -- whoever waits for the file --------------------------------------------------------------
    def done(self) -> Future[Stored]:
        """Completes when the file is written and closed (at once if it was never opened)."""
        with self._lock:
            if not self._opened and not self._done.done():
                self._done.set_result(Stored(0, None))
        return self._done

    def result(self, timeout: float | None = None) -> Stored:
        """Wait for the writer (blocking: call it from a worker thread, never the event loop).

        Raises:
            OSError: writing the file failed.
        """
        return self.done().result(timeout)

    # -- the writer thread -----------------------------------------------------------------------
    def _write_all(self, fd: int, ring: _Ring) -> None:
        written = 0
        try:
            while (item := self._blocks.get()) is not _END:
                view, count = item
                try:
                    if self._error is None and count:
                        block = view[:count]
                        if self._digest is not None:
                            self._digest.update(block)
                        while block:  # a short write is continued
                            block = block[os.write(fd, block) :]
                        written += count
                except OSError as exc:
                    self._error = exc
                finally:
                    ring.free.put(view)
        except BaseException as exc:  # not expected; never leave a waiter hanging
            os.close(fd)  # (the ring is not reused: the receiver may still hold it)
            self._done.set_exception(exc)
            raise
        try:
            os.close(fd)
        except OSError as exc:
            self._error = self._error or exc
        _give_back(ring)
        if self._error is not None:
            self._done.set_exception(self._error)
        else:
            digest = self._digest.hexdigest() if self._digest is not None else None
            self._done.set_result(Stored(written, digest))
