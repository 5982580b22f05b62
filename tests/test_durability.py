"""sync_files/fsync_path/sync_folder on real files: every file gets its own outcome."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from radarlib.durability import fsync_path, sync_files, sync_folder


def _files(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f".f{i}.part"
        path.write_bytes(os.urandom(10_000 + i))
        paths.append(path)
    return paths


@pytest.mark.parametrize("count", [1, 5])
def test_each_file_gets_its_own_outcome(tmp_path: Path, count: int) -> None:
    paths = _files(tmp_path, count)
    missing = tmp_path / ".gone.part"
    outcomes = sync_files([paths[0], missing, *paths[1:]])
    assert isinstance(outcomes[1], FileNotFoundError) and str(missing) in str(outcomes[1])
    assert outcomes[:1] + outcomes[2:] == [None] * count
    assert sync_files(paths) == [None] * count
    assert [len(p.read_bytes()) for p in paths] == [10_000 + i for i in range(count)]


def test_unopenable_paths_are_reported_per_file(tmp_path: Path) -> None:
    """A path that cannot be opened gets its own error; the others are still synced."""
    (tmp_path / "sub").mkdir()
    unreadable = tmp_path / "locked.part"
    unreadable.write_bytes(b"x")
    unreadable.chmod(0)
    outcomes = sync_files([tmp_path / "sub" / "nope", unreadable])
    assert isinstance(outcomes[0], FileNotFoundError)
    if os.geteuid() != 0:  # root reads anything
        assert isinstance(outcomes[1], PermissionError)


def test_fsync_path_and_sync_folder(tmp_path: Path) -> None:
    path = _files(tmp_path, 1)[0]
    fsync_path(path)
    fsync_path(tmp_path, directory=True)
    sync_folder(tmp_path / "missing")  # best effort: no error
    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing.part")
