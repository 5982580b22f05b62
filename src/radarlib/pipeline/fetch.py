"""Fetch one remote file: into ``.<name>.part``, judged by its BUFR envelope, durable, renamed.

A file is kept only when it is one whole BUFR message (its size equals the length section 0
declares and it ends with ``7777``, see :mod:`radarlib.bufr.envelope`); it is then fsynced,
renamed, and its folder fsynced: a final name always holds a whole file. A shorter file is
*short* (still uploading, or cut): nothing is kept and it is fetched again when the server's
size changes. One that is not BUFR, or grows past ``max_size``, is *rejected*. Blocks are
written by a worker thread, never on the event loop. A transfer cut by the network leaves its
bytes in the ``.part`` (:class:`Interrupted`); the next attempt resumes with REST only if the
``.part`` is still exactly those bytes and the server's file is at least as long.
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


class Received:
    """A file's ``.part`` being written from byte ``offset``, with the running sha256 of it all.

    When every byte is in (the last ones still in memory, :attr:`rest`), the connection is free
    again and :meth:`finish` (blocking: a worker thread) completes the file.
    """

    def __init__(self, final: Path, offset: int) -> None:
        self.final, self.path, self.resumed_from = final, part_path(final), offset
        self.sha, self.size, self.rest = hashlib.sha256(), 0, b""
        if offset:
            with self.path.open("rb") as handle:
                while block := handle.read(_FLUSH):
                    self.sha.update(block)
                    self.size += len(block)
        if self.size != offset:
            raise OSError(f"{self.path}: holds {self.size} bytes, not {offset}")
        self._handle: Any = self.path.open("ab" if offset else "wb")

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

    def finish(self) -> Fetched:
        """Write the rest, make it durable, judge the envelope, rename a whole file into place
        (on a disk error nothing is kept, and the OSError is raised)."""
        try:
            self.write(self.rest)
            self.close(sync=True)
            envelope = read_envelope(self.path)
            if envelope.state != "complete":
                self.path.unlink(missing_ok=True)
                kind: Literal["short", "rejected"] = (
                    "short" if envelope.state == "short" else "rejected"
                )
                reason = f"not a whole BUFR message: {envelope.reason}"
                return Fetched(kind, self.size, None, reason, self.resumed_from)
            os.replace(self.path, self.final)
            fsync_path(self.final.parent, directory=True)
        except OSError:
            self.discard()
            raise
        return Fetched("complete", self.size, self.sha.hexdigest(), "", self.resumed_from)


def _open_part(final: Path, remote: RemoteFile, resume: bool) -> Received:
    """The ``.part`` to write: resumed only if it is exactly the recorded bytes, else new."""
    path = part_path(final)
    if resume and remote.part_size and remote.part_sha256:
        size_ok = remote.size is None or remote.part_size <= remote.size
        with contextlib.suppress(OSError):
            if size_ok and path.stat().st_size == remote.part_size:
                part = Received(final, remote.part_size)
                if part.sha.hexdigest() == remote.part_sha256:
                    return part
                part.discard()
    path.unlink(missing_ok=True)
    return Received(final, 0)


async def receive_file(
    client: FTPClient, remote: RemoteFile, final: Path, *, max_size: int, resume: bool = True
) -> Received | Fetched:
    """Receive ``remote`` (see the module docstring); a :class:`Fetched` only when rejected.

    Raises :class:`Interrupted` (cut mid-transfer; with ``resume`` the bytes so far stay in the
    ``.part``), :class:`RemoteFileError` (the server refused the file), :class:`TransportError`
    (no byte came) or :class:`OSError` (the local disk failed); nothing else is kept.
    """
    if remote.size is not None and remote.size > max_size:
        return Fetched("rejected", remote.size, reason=f"{remote.size} bytes, over {max_size}")
    part = await asyncio.to_thread(_open_part, final, remote, resume)
    buffer = bytearray()
    try:
        async with client.retrieve(remote.remote_path, offset=part.size) as blocks:
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
    part.rest = bytes(buffer)
    return part
