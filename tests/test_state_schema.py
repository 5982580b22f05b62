"""Schema versions on real files: migration from version 1, newer and corrupt files refused."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from radarlib.errors import SchemaVersionError, StateError
from radarlib.filename import BufrFileName, VolumeKey
from radarlib.state import schema
from radarlib.state.schema import CURRENT_VERSION, create_version_1
from radarlib.state.sqlite import SQLiteStateTracker

T0 = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
VOL01 = ["DBZH", "DBZV", "KDP", "PHIDP", "RHOHV", "ZDR"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def name(field: str, number: str = "01", when: datetime = T0) -> str:
    return BufrFileName("RMA1", "0315", number, field, when).name


def vid(number: str = "01", when: datetime = T0) -> str:
    return VolumeKey("RMA1", "0315", number, when).volume_id


def make_version_1(path: Path, *, stamped: bool) -> None:
    """A database as the original design's tracker wrote it (isoformat() times, its statuses)."""
    conn = sqlite3.connect(path)
    create_version_1(conn)
    if not stamped:  # the original never set user_version
        conn.execute("PRAGMA user_version = 0")
    then = (T0 + timedelta(minutes=1)).isoformat()  # '2025-11-18T12:31:00+00:00'
    downloads = [
        (name("VRAD", "02"), "completed", "2025-11-18T12:30:00+00:00"),
        (name("WRAD", "02"), "completed", "2025-11-18T12:30:00Z"),
        (name("DBZH"), "completed", "2025-11-18T12:30:00"),
        (name("ZDR"), "failed", "2025-11-18T12:30:00+00:00"),
        ("readme.txt", "completed", None),
        (name("KDP"), "weird", "2025-11-18T12:30:00+00:00"),
    ]
    for filename, status, obs in downloads:
        conn.execute(
            "INSERT INTO downloads(filename, remote_path, local_path, downloaded_at, file_size,"
            " checksum, radar_name, strategy, vol_nr, field_type, observation_datetime, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 100, 'c0ffee', 'RMA1', '0315', ?, ?,"
            " ?, ?, ?, ?)",
            (
                filename,
                f"/L2/RMA1/{filename}",
                f"/data/{filename}",
                then,
                filename[10:12],
                filename[13:17],
                obs,
                status,
                then,
                then,
            ),
        )
    earlier = T0 - timedelta(minutes=5)
    volumes = [
        # volume_id as the original built it, from a '+00:00' observation time
        (
            "RMA1_0315_02_2025-11-18T12:30:00+00:00",
            "02",
            "2025-11-18T12:30:00+00:00",
            "processing",
            1,
            "VRAD,WRAD",
            "VRAD,WRAD",
            None,
            None,
        ),
        (
            f"RMA1_0315_01_{T0.isoformat()}",
            "01",
            T0.isoformat(),
            "pending",
            0,
            ",".join(VOL01),
            "DBZH",
            None,
            None,
        ),
        (
            f"RMA1_0315_02_{earlier.isoformat()}",
            "02",
            earlier.isoformat(),
            "completed",
            1,
            "VRAD,WRAD",
            "VRAD,WRAD",
            "/nc/old.nc",
            then,
        ),
        ("RMA1_0315_01_yesterday", "01", "yesterday", "pending", 0, "DBZH", "", None, None),
    ]
    for volume_id, number, obs, status, complete, expected, got, nc, processed in volumes:
        conn.execute(
            "INSERT INTO volume_processing(volume_id, radar_name, strategy, vol_nr,"
            " observation_datetime, status, netcdf_path, processed_at, is_complete,"
            " expected_fields, downloaded_fields, created_at, updated_at)"
            " VALUES (?, 'RMA1', '0315', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (volume_id, number, obs, status, nc, processed, complete, expected, got, then, then),
        )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("stamped", [True, False], ids=["user_version=1", "unversioned"])
def test_migration_from_version_1(tmp_path: Path, stamped: bool) -> None:
    db = tmp_path / "state.db"
    make_version_1(db, stamped=stamped)
    with SQLiteStateTracker(db) as t:
        assert t.integrity_check() == []
        assert t.count() == 3 and t.count("failed") == 1
        row = t.get_download(name("VRAD", "02"))
        assert row is not None
        assert row["status"] == "downloaded" and row["volume_id"] == vid("02")
        assert row["observation_datetime"] == "2025-11-18T12:30:00Z"
        assert row["downloaded_at"] == row["created_at"] == "2025-11-18T12:31:00Z"
        assert row["file_size"] == 100 and row["checksum"] == "c0ffee"
        assert t.get_download(name("DBZH"))["observation_datetime"] == "2025-11-18T12:30:00Z"

        # the volume left 'processing' by a version-1 daemon is claimable again
        ready = t.get_complete_unprocessed_volumes()
        assert [v["volume_id"] for v in ready] == [vid("02")]
        assert ready[0]["missing_fields"] == ""
        old = t.get_volume(vid("02", T0 - timedelta(minutes=5)))
        assert old["status"] == "completed" and old["netcdf_path"] == "/nc/old.nc"
        assert old["processed_at"] == "2025-11-18T12:31:00Z"
        vol01 = t.get_volume(vid())
        assert vol01["missing_fields"] == "DBZV,KDP,PHIDP,RHOHV,ZDR"
        assert t.get_volumes_by_status("pending", "RMA1")  # design API works on the result

        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert not {"v1_downloads", "v1_volume_processing"} & tables
        rejects = conn.execute(
            "SELECT source_table, reason, row_json FROM migration_rejects ORDER BY id"
        ).fetchall()
        conn.close()
        # nothing recorded is lost: what could not be understood is kept verbatim
        assert [r[0] for r in rejects] == ["volume_processing", "downloads", "downloads"]
        assert rejects[0][1] == "unreadable time"
        assert rejects[1][1].startswith("'readme.txt' does not match <RADAR>_")
        assert rejects[2][1] == "unknown status 'weird'"
        assert "RMA1_0315_01_yesterday" in rejects[0][2]

        # and the pipeline carries on from there
        for field in VOL01[1:]:
            done = t.mark_downloaded(name(field), "/r", "/l", 1, None)
        assert done == [vid()]


def test_failed_migration_leaves_version_1_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "state.db"
    make_version_1(db, stamped=True)

    def explode(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(schema, "_copy_v1_downloads", explode)
    with pytest.raises(StateError, match="simulated"):
        SQLiteStateTracker(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM downloads").fetchone()[0] == 6
    assert conn.execute("SELECT COUNT(*) FROM volume_processing").fetchone()[0] == 4
    conn.close()
    monkeypatch.undo()
    with SQLiteStateTracker(db) as t:  # a later start migrates it
        assert t.count() == 3


def test_concurrent_openers_migrate_once(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    make_version_1(db, stamped=True)
    counts: list[int] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def open_it() -> None:
        try:
            gate.wait()
            with SQLiteStateTracker(db) as t:
                counts.append(t.count())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert counts == [3, 3, 3, 3]


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as t:
        t.mark_downloaded(name("DBZH"), "/r", "/l", 1, None)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 7}")
    conn.close()
    before = digest(db)
    with pytest.raises(SchemaVersionError, match=rf"version {CURRENT_VERSION + 7}.*upgrade"):
        SQLiteStateTracker(db)
    assert digest(db) == before


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(8192),
        b"SQLite format 3\x00" + os.urandom(8192 - 16),
        b"",  # empty: a new database, not an error
    ],
    ids=["random-bytes", "sqlite-header-then-garbage", "empty"],
)
def test_corrupt_or_foreign_file(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(content)
    if not content:
        with SQLiteStateTracker(db) as t:
            assert t.count() == 0
        return
    with pytest.raises(StateError) as info:
        SQLiteStateTracker(db)
    assert str(db) in str(info.value)
    assert db.read_bytes() == content  # left as it was for inspection


def test_other_applications_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices(total) VALUES (9.5)")
    conn.commit()
    conn.close()
    before = digest(db)
    with pytest.raises(StateError, match="not a radarlib state database"):
        SQLiteStateTracker(db)
    assert digest(db) == before


def test_damaged_page_surfaces_as_state_error(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db) as t:
        for i in range(400):
            when = T0 + timedelta(minutes=5 * i)
            for field in ("VRAD", "WRAD"):
                t.mark_downloaded(name(field, "02", when), f"/L2/{'x' * 200}", "/l", 1, None)
    size = db.stat().st_size
    assert size > 40 * 4096 and not Path(f"{db}-wal").exists()  # checkpointed on close
    with db.open("r+b") as handle:  # smash pages in the middle of the file
        handle.seek(size // 2 - 4 * 4096)
        handle.write(b"\xa5" * 8 * 4096)
    outcome: list[str] = []
    try:
        with SQLiteStateTracker(db) as t:
            outcome = t.integrity_check()
            t.get_files_by_date_range(T0, T0 + timedelta(days=3))
            t.get_volumes_by_status("pending")
            t.count()
    except StateError as exc:
        outcome.append(str(exc))
    assert outcome, "damage went unnoticed"
