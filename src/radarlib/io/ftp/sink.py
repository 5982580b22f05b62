"""A received file's blocks, written and hashed a few blocks behind the receiving.

The thread that receives a file (:mod:`radarlib.io.ftp.conversation`) keeps up to
:data:`RING_BLOCKS` received blocks unwritten, writing (and hashing) the oldest only when
it needs its buffer back. When the last byte is in and the server confirmed the transfer,
the thread first announces it, so the caller's next file starts on another thread, and
only then writes the blocks it still holds: for a file of up to ``RING_BLOCKS`` blocks,
the page-cache copy and the sha256 overlap the next transfer's round trips instead of
delaying them, without a thread hand-off of their own (``benchmarks/README.md``).
:meth:`FileSink.result` says when the file is complete.

>>> sink = FileSink(Path("x.part"), append=False, digest=hashlib.sha256())  # doctest: +SKIP
>>> sink.open(); view = sink.block(); sink.put(view, n); sink.finish()    # doctest: +SKIP
>>> sink.result().sha256                                                   # doctest: +SKIP

The hash is still computed from the received blocks, never re-read from disk.
"""

from __future__ import annotations

import collections
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BLOCK", "RING_BLOCKS", "WRITE_SLICE", "FileSink", "Stored"]

#: bytes per block: received, written and hashed in blocks of this size. Large, because
#: every block costs a few GIL hand-offs, and with several transfers in flight those
#: wake-ups (not the copying) are what the CPUs spend their time on.
BLOCK = 1 << 20
#: received blocks a receiving thread may hold unwritten; beyond that it writes the oldest first
RING_BLOCKS = 2
#: bytes per ``write()`` call. Right after a full test run on this VM, one 1 MiB write per
#: block cost 3.6-3.9 ms per MB against 1.0-1.4 ms in 64 KiB slices, and the daemon with
#: one write lost 6 of 6 alternating runs at x1 (``benchmarks/README.md``); on a quiet
#: machine the throughput is the same either way. The likely cause: the kernel sizes a
#: file's page-cache folios by the write, large folios come from large free blocks, and
#: those are the blocks a VM reports free to its host, which must fault them in again.
WRITE_SLICE = 64 << 10

_rings = threading.local()  # each receiving thread's buffers, reused from one file to the next


def _ring() -> list[memoryview]:
    ring: list[memoryview] | None = getattr(_rings, "buffers", None)
    if ring is None:
        ring = _rings.buffers = [memoryview(bytearray(BLOCK)) for _ in range(RING_BLOCKS)]
    return ring


@dataclass(frozen=True)
class Stored:
    """What a sink wrote: its byte count and, with a digest, the sha256 of the whole file."""

    size: int
    sha256: str | None


class FileSink:
    """The local side of one received file: blocks written and hashed in order, a little late.

    Args:
        path: the file to write; created, truncated, or appended to with ``append``.
        append: continue an existing file (a resumed transfer).
        digest: a ``hashlib`` object fed every block (already fed the existing bytes of a
            resumed file), or ``None`` to only write.

    One receiving thread uses a sink: :meth:`open` once the server accepted the transfer (so a
    refused command creates no file), :meth:`block` / :meth:`put` per block, and
    :meth:`finish` at the end, also after a failure, so the bytes received before it are
    written for a later resume. The first write error stops the writing; :meth:`block`
    raises it to the receiver and :meth:`result` to whoever waits for the file.
    """

    def __init__(self, path: Path, *, append: bool, digest: Any | None) -> None:
        self.path = path
        self._append = append
        self._digest = digest
        self._fd: int | None = None
        self._ring: list[memoryview] = []
        self._next = 0
        self._held: collections.deque[tuple[memoryview, int]] = collections.deque()
        self._written = 0
        self._error: OSError | None = None
        self._done: Future[Stored] = Future()
        self._opened = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r}, append={self._append})"

    # -- the receiving thread ------------------------------------------------------------------
    def open(self) -> None:
        """Open the file (in the receiving thread, once the server accepted the transfer)."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self._append else os.O_TRUNC)
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        with self._lock:
            if self._done.done():  # done() was asked first: the transfer was given up
                raise RuntimeError(f"{self!r}: opened after it was given up")
            self._fd = os.open(self.path, flags, 0o666)
            self._opened = True
        self._ring = _ring()

    def block(self) -> memoryview:
        """The buffer to receive the next block into, written out first if still held.

        Raises:
            OSError: writing an earlier block failed.
        """
        fd = self._fd
        if fd is None:
            raise RuntimeError(f"{self!r}: block() before open()")
        if self._error is not None:
            raise self._error
        if len(self._held) == len(self._ring):  # round robin: the oldest holds this buffer
            self._write(fd, *self._held.popleft())
        view = self._ring[self._next]
        self._next = (self._next + 1) % len(self._ring)
        return view

    def put(self, view: memoryview, count: int) -> None:
        """Hold the first ``count`` bytes of ``view`` (the buffer from :meth:`block`)."""
        if count:
            self._held.append((view, count))

    def finish(self) -> None:
        """Write what is held, close the file and complete :meth:`done` (never raises)."""
        fd = self._fd
        if fd is None:
            return
        try:
            while self._held and self._error is None:
                self._write(fd, *self._held.popleft())
        except OSError:
            pass  # kept in self._error, reported by result()
        finally:
            self._held.clear()
            try:
                os.close(fd)
            except OSError as exc:
                self._error = self._error or exc
            self._fd = None
        if self._error is not None:
            self._done.set_exception(self._error)
        else:
            digest = self._digest.hexdigest() if self._digest is not None else None
            self._done.set_result(Stored(self._written, digest))

    def _write(self, fd: int, view: memoryview, count: int) -> None:
        block = view[:count]
        try:
            if self._digest is not None:
                self._digest.update(block)
            while block:  # in slices (see WRITE_SLICE); a short write is continued
                block = block[os.write(fd, block[:WRITE_SLICE]) :]
        except OSError as exc:
            self._error = exc
            raise
        self._written += count

    # -- whoever waits for the file --------------------------------------------------------------
    def done(self) -> Future[Stored]:
        """Completes when the file is written and closed (at once if it was never opened)."""
        with self._lock:
            if not self._opened and not self._done.done():
                self._done.set_result(Stored(0, None))
        return self._done

    def result(self, timeout: float | None = None) -> Stored:
        """Wait (blocking) for the file: call it from a worker thread, never the event loop.

        Raises:
            OSError: writing the file failed.
        """
        return self.done().result(timeout)
