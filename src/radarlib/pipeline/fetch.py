"""Fetch one remote file: into ``.<name>.part``, judged by its BUFR envelope, durable, renamed.

A file is kept only when it is one whole BUFR message (its size equals the length section 0
declares, and it ends with ``7777``, see :mod:`radarlib.bufr.envelope`). Then it is fsynced,
renamed to its final name and its folder fsynced: a final name always holds a whole file.
A file that is shorter than it declares is *short* (still being uploaded, or cut): nothing is
kept and the caller waits for the server's size to change. A file that is not BUFR, or grows
past ``max_size``, is *rejected*.

Blocks are gathered in memory and written by a worker thread (never on the event loop). A
transfer cut by the network leaves its bytes in the ``.part`` and reports their size and
sha256 (:class:`Interrupted`); the next attempt resumes with REST only if the ``.part`` is
still exactly those bytes and the server's file is at least as long, else it starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from radarlib.bufr.envelope import read_envelope
from radarlib.durability import fsync_path
from radarlib.errors import RemoteFileError, TransportError
from radarlib.io.ftp.client import FTPClient
from radarlib.state.remote_files import RemoteFile

__all__ = ["Fetched", "Interrupted", "Received", "part_path", "receive_file"]

_FLUSH = 1 << 20  # bytes gathered before a write


@dataclass(frozen=True)
class Fetched:
    """How a fetch ended: ``complete`` (renamed into place), ``short`` or ``rejected``."""

    kind: Literal["complete", "short", "rejected"]
    size: int
    sha256: str | None = None
    reason: str = ""
    resumed_from: int = 0


class Interrupted(TransportError):
    """The transfer broke after ``part_size`` bytes, kept in the ``.part`` for a resume."""

    def __init__(self, message: str, part_size: int, part_sha256: str) -> None:
        super().__init__(message)
        self.part_size = part_size
        self.part_sha256 = part_sha256


def part_path(final: Path) -> Path:
    """Where a file is received before it is whole: ``.<name>.part`` beside its final name."""
    return final.with_name(f".{final.name}.part")


class _Part:
    """The ``.part`` file being written, with the running sha256 of everything in it."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.sha = hashlib.sha256()
        self.size = 0
        if offset:
            with path.open("rb") as handle:
                while block := handle.read(_FLUSH):
                    self.sha.update(block)
                    self.size += len(block)
        if self.size != offset:
            raise OSError(f"{path}: holds {self.size} bytes, not {offset}")
        self._handle: Any = path.open("ab" if offset else "wb")

    def write(self, data: bytes) -> None:
        if data:
            self._handle.write(data)
            self.sha.update(data)
            self.size += len(data)

    def close(self, *, sync: bool = False) -> None:
        if not self._handle.closed:
            self._handle.flush()
            if sync:
                os.fsync(self._handle.fileno())
            self._handle.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.close()
        self.path.unlink(missing_ok=True)

    def finish(self, data: bytes, final: Path) -> Fetched:
        """Write the rest, make it durable, judge the envelope; rename a whole file into place."""
        self.write(data)
        self.close(sync=True)
        envelope = read_envelope(self.path)
        if envelope.state != "complete":
            self.path.unlink(missing_ok=True)
            kind: Literal["short", "rejected"] = (
                "short" if envelope.state == "short" else "rejected"
            )
            return Fetched(kind, self.size, reason=f"not a whole BUFR message: {envelope.reason}")
        os.replace(self.path, final)
        fsync_path(final.parent, directory=True)
        return Fetched("complete", self.size, self.sha.hexdigest())


def _open_part(path: Path, remote: RemoteFile, resume: bool) -> _Part:
    """The ``.part`` to write: resumed only if it is exactly the recorded bytes, else new."""
    offset = 0
    if resume and remote.part_size and remote.part_sha256:
        size_ok = remote.size is None or remote.part_size <= remote.size
        with contextlib.suppress(OSError):
            if size_ok and path.stat().st_size == remote.part_size:
                part = _Part(path, remote.part_size)
                if part.sha.hexdigest() == remote.part_sha256:
                    return part
                part.discard()
    path.unlink(missing_ok=True)
    return _Part(path, offset)


@dataclass
class Received:
    """Every byte of a file is in: the rest of it in memory, the rest in its ``.part``.

    The connection is free again; :meth:`finish` (blocking: a worker thread) writes the
    rest, makes it durable, judges its envelope and renames a whole file into place.
    """

    part: _Part
    rest: bytes
    final: Path
    resumed_from: int

    def finish(self) -> Fetched:
        """See :meth:`_Part.finish`; on a disk error nothing is kept (OSError is raised)."""
        try:
            outcome = self.part.finish(self.rest, self.final)
        except OSError:
            self.part.discard()
            raise
        return Fetched(
            outcome.kind, outcome.size, outcome.sha256, outcome.reason, self.resumed_from
        )


async def receive_file(
    client: FTPClient,
    remote: RemoteFile,
    final: Path,
    *,
    max_size: int,
    resume: bool = True,
) -> Received | Fetched:
    """Receive ``remote`` (see the module docstring); a :class:`Fetched` only when rejected.

    Raises:
        Interrupted: the connection broke mid-transfer; the bytes so far are in the ``.part``
            (when ``resume``).
        RemoteFileError: the server refused the file (gone, REST refused); nothing is kept.
        TransportError: the connection failed before any byte came.
        OSError: the local disk failed (full, read-only); nothing is kept.
    """
    if remote.size is not None and remote.size > max_size:
        return Fetched("rejected", remote.size, reason=f"{remote.size} bytes, over {max_size}")
    part = await asyncio.to_thread(_open_part, part_path(final), remote, resume)
    offset = part.size
    buffer = bytearray()
    try:
        async with client.retrieve(remote.remote_path, offset=offset) as blocks:
            async for block in blocks:
                buffer += block
                if part.size + len(buffer) > max_size:
                    size = part.size + len(buffer)
                    await asyncio.to_thread(part.discard)
                    return Fetched("rejected", size, reason=f"over {max_size} bytes")
                if len(buffer) >= _FLUSH:
                    await asyncio.to_thread(part.write, bytes(buffer))
                    buffer.clear()
    except RemoteFileError:
        await asyncio.to_thread(part.discard)  # e.g. REST refused: start over next time
        raise
    except TransportError as exc:
        if not resume or part.size + len(buffer) == 0:
            await asyncio.to_thread(part.discard)
            raise
        await asyncio.to_thread(part.write, bytes(buffer))
        await asyncio.to_thread(part.close)
        raise Interrupted(str(exc), part.size, part.sha.hexdigest()) from exc
    except BaseException:  # cancelled (stop), or a local write error: nothing half-written stays
        await asyncio.shield(asyncio.to_thread(part.discard))
        raise
    return Received(part, bytes(buffer), final, offset)
