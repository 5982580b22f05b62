"""fsync_path/sync_folder on real files and folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from radarlib.durability import fsync_path, sync_folder


def test_fsync_path_and_sync_folder(tmp_path: Path) -> None:
    path = tmp_path / ".f.part"
    path.write_bytes(b"x" * 10_000)
    fsync_path(path)
    fsync_path(tmp_path, directory=True)
    sync_folder(tmp_path / "missing")  # best effort: no error
    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing.part")
