"""sync_files/fsync_path on real files: per-file outcomes, one syncfs per file system, fallbacks."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from radarlib import durability
from radarlib.durability import fsync_path, sync_files, sync_folder, syncfs_available

_REAL_PENDING_WRITEBACK = durability._pending_writeback  # before the fixture replaces it


@pytest.fixture(autouse=True)
def _fresh_detection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Kernel detection redone per test; nothing else pending on the machine by default."""
    detect = durability._syncfs  # tests may replace it; clear the real cache either way
    detect.cache_clear()
    monkeypatch.setattr(durability, "_pending_writeback", lambda: 0)
    yield
    detect.cache_clear()


def _files(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f".f{i}.part"
        path.write_bytes(os.urandom(10_000 + i))
        paths.append(path)
    return paths


@pytest.mark.parametrize("use_syncfs", [True, False])
def test_each_file_gets_its_own_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_syncfs: bool
) -> None:
    if not use_syncfs:
        monkeypatch.setattr(durability, "_syncfs", lambda: None)
    elif not syncfs_available():
        pytest.skip("syncfs needs Linux 5.8 or later")
    paths = _files(tmp_path, 3)
    missing = tmp_path / ".gone.part"
    outcomes = sync_files([paths[0], missing, paths[1], paths[2]])
    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
    assert isinstance(outcomes[1], FileNotFoundError)
    assert [len(p.read_bytes()) for p in paths] == [10_000, 10_001, 10_002]
    assert sync_files(paths[:1]) == [None]


def _recording(calls: list[int]) -> Callable[[], Callable[[int], int] | None]:
    real = durability._syncfs()
    if real is None:
        pytest.skip("syncfs needs Linux 5.8 or later")

    def record(fd: int) -> int:
        calls.append(os.fstat(fd).st_dev)
        return real(fd)

    return lambda: record


def test_one_syncfs_per_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a second file system")
    calls: list[int] = []
    monkeypatch.setattr(durability, "_syncfs", _recording(calls))
    here = _files(tmp_path, 4)
    other = shm / f".radarlib-test-{os.getpid()}.part"
    other.write_bytes(b"x" * 100)
    try:
        assert sync_files([*here[:2], other, *here[2:]]) == [None] * 5
    finally:
        other.unlink()
    assert sorted(calls) == sorted({os.stat(tmp_path).st_dev, os.stat(shm).st_dev})


def test_a_failed_syncfs_fails_every_file_of_that_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(durability, "_syncfs", lambda: failing)
    outcomes = sync_files(_files(tmp_path, 3))
    assert all(isinstance(o, OSError) and o.errno == errno.EIO for o in outcomes)
    assert "syncfs" in str(outcomes[0]) and str(tmp_path) in str(outcomes[0])


@pytest.mark.parametrize(
    ("release", "expected"), [("5.4.0-42-generic", False), ("5.8.0", True), ("6.1.0-18", True)]
)
def test_syncfs_only_where_the_kernel_reports_writeback_errors(
    monkeypatch: pytest.MonkeyPatch, release: str, expected: bool
) -> None:
    if sys.platform != "linux":
        pytest.skip("syncfs is Linux only")
    monkeypatch.setattr(platform, "release", lambda: release)
    assert syncfs_available() is expected


def test_fsync_path_and_sync_folder(tmp_path: Path) -> None:
    path = _files(tmp_path, 1)[0]
    fsync_path(path)
    fsync_path(tmp_path, directory=True)
    sync_folder(tmp_path / "missing")  # best effort: no error
    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing.part")


@pytest.mark.parametrize("pending", [durability.SYNCFS_MAX_OTHER_PENDING + 10_000_000, None])
def test_much_other_pending_data_or_unknown_means_fsync_of_our_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pending: int | None
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(durability, "_syncfs", _recording(calls))
    monkeypatch.setattr(durability, "_pending_writeback", lambda: pending)
    paths = _files(tmp_path, 3)
    assert sync_files(paths) == [None] * 3
    assert calls == []  # syncfs would have written back the others' data too


def test_our_own_burst_does_not_count_as_other_pending_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(durability, "_syncfs", _recording(calls))
    paths = _files(tmp_path, 3)
    ours = sum(p.stat().st_size for p in paths)
    monkeypatch.setattr(
        durability, "_pending_writeback", lambda: ours + durability.SYNCFS_MAX_OTHER_PENDING
    )
    assert sync_files(paths) == [None] * 3
    assert calls == [os.stat(tmp_path).st_dev]


def test_pending_writeback_reads_the_kernel_counters() -> None:
    if not Path("/proc/meminfo").exists():
        pytest.skip("no /proc/meminfo")
    value = _REAL_PENDING_WRITEBACK()
    assert isinstance(value, int) and value >= 0
