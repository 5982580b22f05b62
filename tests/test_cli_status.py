"""`radarlib status` and `radarlib reprocess` on real state databases, driven as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from radarlib.state.sqlite import SQLiteStateTracker
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

T1 = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
FAILED_FILE = "RMA1_0315_02_VRAD_20251118T123500Z.BUFR"
FAILED_ID = "RMA1_0315_02_2025-11-18T12:35:00Z"
WAITING_ID = "RMA1_0315_01_2025-11-18T12:30:00Z"
EXPIRED_ID = "RMA1_0315_01_2025-11-18T12:40:00Z"
DONE_ID = "RMA5_0315_02_2025-11-18T12:35:00Z"


def radarlib(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADARLIB_")}
    result = subprocess.run(
        [sys.executable, "-m", "radarlib", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


def record(tracker: SQLiteStateTracker, name: str) -> list[str]:
    fields = {"01": DEFAULT_VOLUME_TYPES["0315"]["01"], "02": DEFAULT_VOLUME_TYPES["0315"]["02"]}
    number = name.split("_")[2]
    return tracker.mark_downloaded(
        name, f"/L2/{name}", f"/data/{name}", 1000, "ab" * 32, expected_fields=fields[number]
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    with SQLiteStateTracker(path) as tracker:
        for field in ("DBZH", "DBZV", "ZDR", "KDP"):  # waiting: PHIDP, RHOHV missing
            record(tracker, f"RMA1_0315_01_{field}_20251118T123000Z.BUFR")
        record(tracker, "RMA1_0315_01_DBZH_20251118T124000Z.BUFR")
        assert tracker.expire_incomplete(EXPIRED_ID)
        record(tracker, "RMA1_0315_02_WRAD_20251118T123500Z.BUFR")
        assert record(tracker, FAILED_FILE) == [FAILED_ID]
        [claimed] = tracker.claim_volumes("w1", 1, radar_code="RMA1")
        assert claimed["volume_id"] == FAILED_ID
        tracker.fail_volume(
            FAILED_ID, "w1",
            f"VolumeError: {FAILED_FILE}: cannot decode: truncated: the message declares 157870"
            " bytes but only 52623 are present",
            retry_at=None,
        )  # fmt: skip
        for field in ("VRAD", "WRAD"):
            record(tracker, f"RMA5_0315_02_{field}_20251118T123500Z.BUFR")
        [done] = tracker.claim_volumes("w2", 1, radar_code="RMA5")
        tracker.finish_volume(done["volume_id"], "w2", "/out/RMA5_0315_02_20251118T123500Z.nc")
        tracker.mark_download_failed(
            "RMA5_0315_01_DBZH_20251118T124000Z.BUFR",
            "/L2/RMA5/2025/11/18/12/4000/RMA5_0315_01_DBZH_20251118T124000Z.BUFR",
            "TransportError: data connection timed out after 60 s",
            next_attempt_at=T1 + timedelta(days=400),
        )
    return path


def test_status_text_names_failures_and_missing_fields(db: Path) -> None:
    out = radarlib("status", "--db", str(db)).stdout
    lines = out.splitlines()
    table = {line.split()[0]: line.split() for line in lines[2:4]}
    # radar, files, last download (date time), pending, processing, completed, failed, expired
    assert table["RMA1"][1] == "7" and table["RMA1"][4:] == ["1", "0", "0", "1", "1"]
    # RMA5: the failed download registered its volume (pending, nothing on disk yet)
    assert table["RMA5"][1] == "2" and table["RMA5"][4:] == ["1", "0", "1", "0", "0"]
    waiting = next(line for line in lines if WAITING_ID in line)
    assert "waiting, missing PHIDP,RHOHV" in waiting and "has DBZH,DBZV,KDP,ZDR" in waiting
    expired = next(line for line in lines if EXPIRED_ID in line)
    assert "expired" in expired and "PHIDP" in expired
    failed = next(line for line in lines if FAILED_ID in line and "failed" in line)
    assert FAILED_FILE in failed and "truncated" in failed and "1 attempt" in failed
    download = next(line for line in lines if "RMA5_0315_01_DBZH_20251118T124000Z.BUFR" in line)
    assert "timed out" in download
    assert DONE_ID not in out


def test_status_json_and_radar_filter(db: Path) -> None:
    report = json.loads(radarlib("status", "--db", str(db), "--json").stdout)
    [database] = report["databases"]
    radars = {r["radar"]: r for r in database["radars"]}
    assert set(radars) == {"RMA1", "RMA5"}
    assert radars["RMA1"]["volumes"]["failed"] == 1
    assert radars["RMA1"]["last_download"].endswith("Z")
    assert [f["volume_id"] for f in database["failures"]] == [FAILED_ID]
    assert FAILED_FILE in database["failures"][0]["error_message"]
    only = json.loads(radarlib("status", "--db", str(db), "--json", "--radar", "RMA5").stdout)
    assert [r["radar"] for r in only["databases"][0]["radars"]] == ["RMA5"]
    assert only["databases"][0]["failures"] == []
    assert len(only["databases"][0]["download_failures"]) == 1


def test_status_from_config_with_per_radar_databases(db: Path, tmp_path: Path) -> None:
    (tmp_path / "RMA1").mkdir()
    os.replace(db, tmp_path / "RMA1" / "state.db")
    config = tmp_path / "radarlib.toml"
    config.write_text(
        """
[paths]
state_db = "{root}/{radar}/state.db"
[sources.s]
host = "ftp.example.org"
username = "radar"
[[radars]]
code = "RMA1"
start_date = 2025-11-18
"""
    )
    # no password in the environment: status does not need it
    out = radarlib("status", "--config", str(config)).stdout
    assert str(tmp_path / "RMA1" / "state.db") in out and FAILED_FILE in out


def test_status_errors(tmp_path: Path) -> None:
    result = radarlib("status", "--db", str(tmp_path / "nope.db"), check=False)
    assert result.returncode == 2 and "no state database" in result.stderr
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 10)
    result = radarlib("status", "--db", str(garbage), check=False)
    assert result.returncode == 2 and "not a SQLite database" in result.stderr
    assert "Traceback" not in result.stderr


def test_reprocess_resets_by_status_radar_and_time(db: Path) -> None:
    dry = radarlib("reprocess", "--db", str(db), "--status", "failed", "--dry-run").stdout
    assert FAILED_ID in dry and "would reset 1" in dry
    with SQLiteStateTracker(db) as tracker:
        assert tracker.get_volume(FAILED_ID)["status"] == "failed"
    none = radarlib("reprocess", "--db", str(db), "--status", "failed", "--since", "2025-11-19")
    assert "reset 0" in none.stdout
    done = radarlib("reprocess", "--db", str(db), "--status", "failed", "--radar", "RMA1")
    assert f"{FAILED_ID}: failed -> pending" in done.stdout
    radarlib("reprocess", "--db", str(db), "--status", "expired")
    radarlib("reprocess", "--db", str(db), "--status", "completed", "--until", "2025-11-18")
    with SQLiteStateTracker(db) as tracker:
        failed = tracker.get_volume(FAILED_ID)
        assert failed["status"] == "pending" and failed["attempts"] == 0
        expired = tracker.get_volume(EXPIRED_ID)
        assert expired["status"] == "pending" and expired["process_incomplete"] == 1
        assert tracker.get_volume(DONE_ID)["status"] == "completed"  # after --until
        claimed = {v["volume_id"] for v in tracker.claim_volumes("w3", 10)}
    assert claimed == {FAILED_ID, EXPIRED_ID}
    bad = radarlib("reprocess", "--db", str(db), "--status", "pending", check=False)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    bad = radarlib("reprocess", "--db", str(db), "--status", "failed", "--since", "x", check=False)
    assert bad.returncode == 2 and "2025-11-18T00:00:00Z" in bad.stderr


def test_opening_a_second_tracker_keeps_the_wal_alive(tmp_path: Path) -> None:
    """`radarlib run` opens one tracker per daemon in one process; `status` reads from another.

    Closing any plain file descriptor of the database (e.g. to sniff its header) would drop
    the POSIX locks of the process's live connections; the other process's close would then
    delete the WAL under them and every later commit would be lost.
    """
    db = tmp_path / "state.db"
    first = SQLiteStateTracker(db)
    try:
        first.set_checkpoint("probe", "1")
        second = SQLiteStateTracker(db)  # a second daemon of the same process
        radarlib("status", "--db", str(db))  # another process opens and closes the database
        assert (tmp_path / "state.db-wal").exists()
        first.set_checkpoint("probe", "2")
        seen = subprocess.run(
            [sys.executable, "-c",
             "import sys; from radarlib.state.sqlite import SQLiteStateTracker as S; "
             "print(S(sys.argv[1]).get_checkpoint('probe'))", str(db)],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        assert seen == "2"
        second.close()
    finally:
        first.close()
