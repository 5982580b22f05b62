"""The download daemon's batched recording: mark_downloaded_many == mark_downloaded in a row."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from radarlib.errors import FileNameError, StateError
from radarlib.filename import BufrFileName, VolumeKey
from radarlib.state.sqlite import DownloadedFile, SQLiteStateTracker
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

T0 = datetime(2025, 3, 4, 5, 0, tzinfo=timezone.utc)
VOL01 = sorted(DEFAULT_VOLUME_TYPES["0315"]["01"])


def _files() -> list[DownloadedFile]:
    """Two volumes: the first completed inside the batch, the second left incomplete."""
    files = []
    for minutes, fields in ((0, VOL01), (5, VOL01[:3])):
        when = T0 + timedelta(minutes=minutes)
        for field in fields:
            n = BufrFileName("RMA1", "0315", "01", field, when).name
            files.append(
                DownloadedFile(n, f"/L2/x/{n}", f"/data/{n}", 1000 + len(n), "cd" * 32, VOL01)
            )
    files.append(files[1])  # a repeated file: counted again, never completes a volume twice
    return files


def _state(tracker: SQLiteStateTracker, files: list[DownloadedFile]) -> list[dict[str, Any]]:
    """Download and volume rows without their time stamps."""
    rows: list[dict[str, Any]] = []
    for item in files:
        row = tracker.get_download(str(item.filename))
        assert row is not None
        rows.append({k: v for k, v in row.items() if not k.endswith("_at")})
    for minutes in (0, 5):
        key = VolumeKey("RMA1", "0315", "01", T0 + timedelta(minutes=minutes))
        volume = tracker.get_volume(key.volume_id)
        rows.append({k: v for k, v in volume.items() if not k.endswith("_at")})
    return rows


def test_many_records_exactly_like_one_by_one(tmp_path: Path) -> None:
    files = _files()
    with (
        SQLiteStateTracker(tmp_path / "one.db") as one,
        SQLiteStateTracker(tmp_path / "many.db") as many,
    ):
        singly = [
            one.mark_downloaded(
                f.filename,
                f.remote_path,
                f.local_path,
                f.file_size,
                f.checksum,
                expected_fields=f.expected_fields,
            )
            for f in files
        ]
        batched = many.mark_downloaded_many(files)
        assert batched == singly
        ready_id = VolumeKey("RMA1", "0315", "01", T0).volume_id
        assert batched[len(VOL01) - 1] == [ready_id]  # the sixth field completes the volume
        assert sum(1 for r in batched if r) == 1
        state = _state(many, files)
        assert state == _state(one, files)
        assert state[-2]["is_complete"] == 1 and state[-1]["is_complete"] == 0
        assert many.count("downloaded") == len(VOL01) + 3


def test_many_is_all_or_nothing(tmp_path: Path) -> None:
    files = _files()[:3]
    with SQLiteStateTracker(tmp_path / "s.db") as tracker:
        assert tracker.mark_downloaded_many([]) == []
        bad = DownloadedFile("not-a-radar-file.txt", "/L2/x", "/data/x", 10, None)
        with pytest.raises(FileNameError):
            tracker.mark_downloaded_many([*files, bad])
        negative = DownloadedFile(files[0].filename, "/L2/x", "/data/x", -1, None)
        with pytest.raises(StateError, match="file_size"):
            tracker.mark_downloaded_many([*files[1:], negative])
        assert tracker.count("downloaded") == 0
        assert all(tracker.get_download(str(f.filename)) is None for f in files)
