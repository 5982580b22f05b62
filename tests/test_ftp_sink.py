"""FileSink: a received file's blocks written and hashed in order, in a writer thread."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from radarlib.io.ftp.sink import BLOCK, RING_BLOCKS, FileSink


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
        sink.close()


@pytest.mark.parametrize("step", [1, 4096, BLOCK - 1, BLOCK])
def test_blocks_are_written_in_order_and_hashed(tmp_path: Path, step: int) -> None:
    data = os.urandom(3 * BLOCK + 12345)
    path = tmp_path / "x.part"
    sink = FileSink(path, append=False, digest=hashlib.sha256())
    _feed(sink, data[: 20 * step] if step < 4096 else data, step)
    expected = data[: 20 * step] if step < 4096 else data
    stored = sink.result(10)
    assert path.read_bytes() == expected
    assert stored.size == len(expected)
    assert stored.sha256 == hashlib.sha256(expected).hexdigest()


def test_append_continues_a_file_and_its_digest(tmp_path: Path) -> None:
    head, tail = os.urandom(100_000), os.urandom(BLOCK + 7)
    path = tmp_path / "x.part"
    path.write_bytes(head)
    digest = hashlib.sha256(head)
    sink = FileSink(path, append=True, digest=digest)
    _feed(sink, tail, BLOCK)
    stored = sink.result(10)
    assert path.read_bytes() == head + tail
    assert stored.size == len(tail)
    assert stored.sha256 == hashlib.sha256(head + tail).hexdigest()


def test_without_a_digest_it_only_writes(tmp_path: Path) -> None:
    data = os.urandom(5000)
    sink = FileSink(tmp_path / "x", append=False, digest=None)
    _feed(sink, data, 1000)
    assert sink.result(10).sha256 is None
    assert (tmp_path / "x").read_bytes() == data


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_fails_the_file_and_stops_the_receiver() -> None:
    sink = FileSink(Path("/dev/full"), append=False, digest=hashlib.sha256())
    sink.open()
    view = sink.block()
    sink.put(view, 1000)
    with pytest.raises(OSError) as raised:  # the receiver learns at its next block or so
        for _ in range(RING_BLOCKS + 2):
            sink.put(sink.block(), BLOCK)
    assert raised.value.errno == errno.ENOSPC
    sink.close()
    with pytest.raises(OSError) as failed:
        sink.result(10)
    assert failed.value.errno == errno.ENOSPC


class _Gate:
    """A digest whose update waits for a gate: a writer that cannot keep up."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.inner = hashlib.sha256()

    def update(self, data: memoryview) -> None:
        self.gate.wait(10)
        self.inner.update(data)

    def hexdigest(self) -> str:
        return self.inner.hexdigest()


def test_a_receiver_ahead_of_its_writer_waits_bounded(tmp_path: Path) -> None:
    """At most RING_BLOCKS blocks wait for the writer: memory stays bounded, nothing dropped."""
    digest = _Gate()
    sink = FileSink(tmp_path / "x", append=False, digest=digest)
    sink.open()
    data = os.urandom(BLOCK)
    handed = 0

    def receive() -> None:
        nonlocal handed
        for _ in range(2 * RING_BLOCKS):
            view = sink.block()
            view[:] = data
            sink.put(view, BLOCK)
            handed += 1
        sink.close()

    receiver = threading.Thread(target=receive)
    receiver.start()
    receiver.join(0.5)
    assert receiver.is_alive() and handed <= RING_BLOCKS  # held back, not buffering on
    digest.gate.set()
    receiver.join(10)
    assert not receiver.is_alive() and handed == 2 * RING_BLOCKS
    stored = sink.result(10)
    assert stored.size == 2 * RING_BLOCKS * BLOCK
    assert stored.sha256 == hashlib.sha256(data * (2 * RING_BLOCKS)).hexdigest()


def test_a_sink_never_opened_is_done_and_cannot_open_later(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "never", append=False, digest=hashlib.sha256())
    assert sink.done().result(0).size == 0
    with pytest.raises(RuntimeError, match="given up"):
        sink.open()
    assert not (tmp_path / "never").exists()
