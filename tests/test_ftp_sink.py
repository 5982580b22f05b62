"""FileSink: a received file's blocks written and hashed in order, a few blocks behind."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from radarlib.io.ftp import sink as sink_module
from radarlib.io.ftp.sink import BLOCK, RING_BLOCKS, WRITE_SLICE, FileSink


def _feed(sink: FileSink, data: bytes, step: int) -> None:
    """Hand ``data`` over as a receiver would, ``step`` bytes per block (the last one short)."""
    sink.open()
    try:
        for start in range(0, len(data) + 1, step):
            view = sink.block()
            chunk = data[start : start + step]
            view[: len(chunk)] = chunk
            sink.put(view, len(chunk))
    finally:
        sink.finish()


@pytest.mark.parametrize(("size", "step"), [(20, 1), (300_000, 4096), (3 * BLOCK + 5, BLOCK)])
def test_blocks_are_written_in_order_and_hashed(tmp_path: Path, size: int, step: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "x.part"
    sink = FileSink(path, append=False, digest=hashlib.sha256())
    _feed(sink, data, step)
    stored = sink.result(0)  # finish() completed it
    assert path.read_bytes() == data
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_append_continues_a_file_and_its_digest(tmp_path: Path) -> None:
    head, tail = os.urandom(100_000), os.urandom(BLOCK + 7)
    path = tmp_path / "x.part"
    path.write_bytes(head)
    sink = FileSink(path, append=True, digest=hashlib.sha256(head))
    _feed(sink, tail, BLOCK)
    stored = sink.result(0)
    assert path.read_bytes() == head + tail
    assert stored.size == len(tail)
    assert stored.sha256 == hashlib.sha256(head + tail).hexdigest()


def test_blocks_go_to_the_file_in_slices_and_short_writes_are_continued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No write() asks for more than WRITE_SLICE bytes; one that takes fewer is continued."""
    asked: list[int] = []
    real_write = os.write

    def short_write(fd: int, data: memoryview) -> int:  # the kernel may take only part
        asked.append(len(data))
        return real_write(fd, data[: max(1, len(data) - 1000)])

    monkeypatch.setattr(sink_module.os, "write", short_write)
    data = os.urandom(BLOCK + 12_345)
    path = tmp_path / "x.part"
    sink = FileSink(path, append=False, digest=hashlib.sha256())
    _feed(sink, data, BLOCK)
    monkeypatch.undo()
    assert path.read_bytes() == data
    assert sink.result(0).sha256 == hashlib.sha256(data).hexdigest()
    assert max(asked) == WRITE_SLICE
    assert len(asked) > 2 * len(data) // WRITE_SLICE  # every slice was cut short once


def test_without_a_digest_it_only_writes(tmp_path: Path) -> None:
    data = os.urandom(5000)
    sink = FileSink(tmp_path / "x", append=False, digest=None)
    _feed(sink, data, 1000)
    assert sink.result(0).sha256 is None
    assert (tmp_path / "x").read_bytes() == data


def test_at_most_ring_blocks_are_held_unwritten(tmp_path: Path) -> None:
    """Memory stays bounded: the receiver writes the oldest block before it reuses its buffer."""
    path = tmp_path / "x"
    sink = FileSink(path, append=False, digest=None)
    sink.open()
    blocks = [os.urandom(BLOCK) for _ in range(RING_BLOCKS + 2)]
    sizes = []
    for block in blocks:
        view = sink.block()
        sizes.append(path.stat().st_size)
        view[:] = block
        sink.put(view, BLOCK)
    assert sizes == [0] * RING_BLOCKS + [BLOCK, 2 * BLOCK]
    assert not sink.done().done()  # the held blocks are written by finish()
    sink.finish()
    assert path.read_bytes() == b"".join(blocks)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_fails_the_file_and_stops_the_receiver() -> None:
    sink = FileSink(Path("/dev/full"), append=False, digest=hashlib.sha256())
    sink.open()
    with pytest.raises(OSError) as raised:  # the receiver learns when a block is written
        for _ in range(RING_BLOCKS + 1):
            sink.put(sink.block(), BLOCK)
    assert raised.value.errno == errno.ENOSPC
    sink.finish()
    with pytest.raises(OSError) as failed:
        sink.result(0)
    assert failed.value.errno == errno.ENOSPC


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_write_error_after_the_transfer_reaches_whoever_waits() -> None:
    sink = FileSink(Path("/dev/full"), append=False, digest=None)
    sink.open()
    sink.put(sink.block(), 1000)  # held: the transfer ends before anything is written
    sink.finish()
    with pytest.raises(OSError, match="No space left"):
        sink.result(0)


def test_a_sink_never_opened_is_done_and_cannot_open_later(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "never", append=False, digest=hashlib.sha256())
    assert sink.done().result(0).size == 0
    with pytest.raises(RuntimeError, match="given up"):
        sink.open()
    assert not (tmp_path / "never").exists()
