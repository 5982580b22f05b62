"""The state tracker on real SQLite files: design API, completeness, queue, retries, errors."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radarlib.errors import (
    FileNameError,
    InvalidStatusError,
    StateError,
    UnknownVolumeError,
)
from radarlib.filename import BufrFileName, VolumeKey
from radarlib.state.schema import CURRENT_VERSION
from radarlib.state.sqlite import SQLiteStateTracker
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

T0 = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
VOL01 = sorted(DEFAULT_VOLUME_TYPES["0315"]["01"])  # 6 fields
VOL02 = sorted(DEFAULT_VOLUME_TYPES["0315"]["02"])  # VRAD, WRAD
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def name(field: str, when: datetime = T0, number: str = "01", radar: str = "RMA1") -> str:
    """A radar file name from the filename model."""
    return BufrFileName(radar, "0315", number, field, when).name


def vid(when: datetime = T0, number: str = "01", radar: str = "RMA1") -> str:
    return VolumeKey(radar, "0315", number, when).volume_id


def record(
    tracker: SQLiteStateTracker,
    field: str,
    when: datetime = T0,
    number: str = "01",
    expected: list[str] | None = None,
    radar: str = "RMA1",
) -> list[str]:
    n = name(field, when, number, radar)
    return tracker.mark_downloaded(
        n, f"/L2/{radar}/{n}", f"/data/{n}", 1234, "ab" * 32, expected_fields=expected
    )


class Clock:
    """A settable clock for the tracker."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def tracker(tmp_path: Path) -> SQLiteStateTracker:
    with SQLiteStateTracker(tmp_path / "state.db") as t:
        yield t


# --------------------------------------------------------------------------- design examples


EXAMPLE_3 = textwrap.dedent(
    """
    from pathlib import Path
    from radarlib.io.ftp import SQLiteStateTracker

    tracker = SQLiteStateTracker(Path("./downloads/RMA1/state.db"))

    # Get volumes by status
    pending = tracker.get_volumes_by_status("pending")
    processing = tracker.get_volumes_by_status("processing")
    completed = tracker.get_volumes_by_status("completed")
    failed = tracker.get_volumes_by_status("failed")

    print(f"Pending: {len(pending)}")
    print(f"Processing: {len(processing)}")
    print(f"Completed: {len(completed)}")
    print(f"Failed: {len(failed)}")

    # Get complete volumes ready for processing
    ready = tracker.get_complete_unprocessed_volumes()
    print(f"Ready to process: {len(ready)}")

    # Get details of a specific volume
    if ready:
        volume = ready[0]
        print(f"\\nVolume: {volume['volume_id']}")
        print(f"  Radar: {volume['radar_name']}")
        print(f"  Strategy/Vol Nr: {volume['strategy']}/{volume['vol_nr']}")
        print(f"  Time: {volume['observation_datetime']}")
        print(f"  Expected fields: {volume['expected_fields']}")
        print(f"  Downloaded fields: {volume['downloaded_fields']}")
        print(f"  Complete: {volume['is_complete'] == 1}")

    tracker.close()
    """
)


def test_design_example_3_check_processing_status_runs_as_written(tmp_path: Path) -> None:
    db = tmp_path / "downloads" / "RMA1" / "state.db"
    with SQLiteStateTracker(db) as t:
        t1, t2, t3, t4 = (T0 + timedelta(minutes=5 * i) for i in range(4))
        for f in VOL02:  # complete, pending -> ready
            record(t, f, t1, "02", VOL02)
        record(t, "VRAD", t2, "02", VOL02)  # incomplete, pending
        for when in (t3, t4):
            for f in VOL02:
                record(t, f, when, "02", VOL02)
        claimed = t.claim_volumes("w1", 2)
        assert [v["volume_id"] for v in claimed] == [vid(t1, "02"), vid(t3, "02")]
        t.finish_volume(vid(t1, "02"), "w1", "/nc/a.nc")
        t.fail_volume(vid(t3, "02"), "w1", "decode error", retry_at=None)
        for f in VOL02:
            record(t, f, T0 + timedelta(hours=1), "02", VOL02)  # ready
    result = subprocess.run(
        [sys.executable, "-c", EXAMPLE_3],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ready_id = vid(t4, "02")
    assert result.stdout.splitlines() == [
        "Pending: 3",
        "Processing: 0",
        "Completed: 1",
        "Failed: 1",
        "Ready to process: 2",
        "",
        f"Volume: {ready_id}",
        "  Radar: RMA1",
        "  Strategy/Vol Nr: 0315/02",
        f"  Time: {ready_id[-20:]}",
        "  Expected fields: VRAD,WRAD",
        "  Downloaded fields: VRAD,WRAD",
        "  Complete: True",
    ]


def test_design_download_api_count_date_range_file_info(tracker: SQLiteStateTracker) -> None:
    for i, f in enumerate(VOL01):
        record(tracker, f, T0 + timedelta(minutes=10 * i))
    record(tracker, "DBZH", T0, radar="RMA11")
    assert tracker.count() == 7
    assert tracker.count("completed") == 7  # the original design's status name
    assert tracker.count("failed") == 0
    with pytest.raises(InvalidStatusError):
        tracker.count("bogus")
    in_range = tracker.get_files_by_date_range(
        T0 + timedelta(minutes=10), T0 + timedelta(minutes=30), radar_code="RMA1"
    )
    assert in_range == [name(f, T0 + timedelta(minutes=10 * i)) for i, f in enumerate(VOL01)][1:4]
    assert len(tracker.get_files_by_date_range(T0, T0)) == 2  # both radars
    naive = tracker.get_files_by_date_range(T0.replace(tzinfo=None), T0.replace(tzinfo=None))
    assert len(naive) == 2
    info = tracker.get_file_info(name("DBZH"))
    assert info is not None
    assert info["file_size"] == 1234 and info["checksum"] == "ab" * 32
    assert info["local_path"] == f"/data/{name('DBZH')}"
    assert info["field"] == info["field_type"] == "DBZH"
    assert info["volume_id"] == vid()
    assert tracker.get_file_info("RMA1_0315_01_DBZH_20000101T000000Z.BUFR") is None
    assert tracker.get_file_info("notes.txt") is None
    assert tracker.is_downloaded(name("DBZH"))
    assert tracker.is_downloaded(f"/some/dir/{name('DBZH')}")
    assert not tracker.is_downloaded("notes.txt")
    assert tracker.latest_observation("RMA1") == T0 + timedelta(minutes=50)
    assert tracker.latest_observation("RMA2") is None


def test_reprocessing_by_resetting_status_to_pending(tracker: SQLiteStateTracker) -> None:
    for f in VOL02:
        record(tracker, f, number="02", expected=VOL02)
    v = vid(number="02")
    assert [x["volume_id"] for x in tracker.claim_volumes("w", 1)] == [v]
    tracker.fail_volume(v, "w", "boom", retry_at=None)
    assert tracker.get_volume(v)["status"] == "failed"
    assert tracker.get_volume(v)["attempts"] == 1
    tracker.mark_volume_processing(v, "pending")  # the design's reprocessing recipe
    again = tracker.get_volume(v)
    assert again["status"] == "pending" and again["attempts"] == 0
    assert again["error_message"] == "boom"  # kept for the record
    assert [x["volume_id"] for x in tracker.get_complete_unprocessed_volumes()] == [v]
    assert tracker.claim_volumes("w", 1)[0]["volume_id"] == v
    tracker.mark_volume_processing(v, "completed", netcdf_path="/nc/v.nc")
    done = tracker.get_volume(v)
    assert done["status"] == "completed" and done["netcdf_path"] == "/nc/v.nc"
    assert done["processed_at"] is not None and done["claimed_by"] is None


def test_register_and_update_volume_design_api(tracker: SQLiteStateTracker) -> None:
    v = vid()
    tracker.register_volume(v, "RMA1", "0315", "01", "2025-11-18T12:30:00Z", VOL01)
    vol = tracker.get_volume(v)
    assert (vol["radar_name"], vol["strategy"], vol["vol_nr"]) == ("RMA1", "0315", "01")
    assert vol["expected_fields"] == ",".join(VOL01) and vol["is_complete"] == 0
    tracker.update_volume_fields(v, ["DBZH", "ZDR"], False)
    assert tracker.get_volume(v)["downloaded_fields"] == "DBZH,ZDR"
    tracker.update_volume_fields(v, ["KDP"], False)  # fields only accumulate
    assert tracker.get_volume(v)["downloaded_fields"] == "DBZH,KDP,ZDR"
    assert tracker.claim_volumes("w", 1) == []  # incomplete: nothing ready
    tracker.allow_incomplete(v)
    [claimed] = tracker.claim_volumes("w", 1)
    assert claimed["attempts"] == 1
    # a repeated registration is an idempotent upsert: no counter or status reset
    tracker.register_volume(v, "RMA1", "0315", "01", T0, VOL01, is_complete=True)
    vol = tracker.get_volume(v)
    assert vol["attempts"] == 1 and vol["status"] == "processing" and vol["is_complete"] == 1
    assert vol["missing_fields"] == "DBZV,PHIDP,RHOHV"
    with pytest.raises(FileNameError):
        tracker.register_volume("RMA1_0315_01_bad", "RMA1", "0315", "01", T0, VOL01)
    with pytest.raises(UnknownVolumeError):
        tracker.update_volume_fields(vid(T0 + timedelta(days=1)), ["DBZH"], True)


# --------------------------------------------------------------------------- completeness


def test_volume_completes_once_out_of_order_late_and_duplicated(tmp_path: Path) -> None:
    clock = Clock(T0)
    with SQLiteStateTracker(tmp_path / "state.db", clock=clock) as t:
        order = ["KDP", "DBZH", "KDP", "ZDR", "RHOHV", "DBZH"]
        returns = [record(t, f, expected=VOL01) for f in order]
        assert returns == [[]] * len(order)
        # newer volumes are registered and completed meanwhile (the legacy bug skipped
        # anything older than the newest registered volume)
        for day in range(1, 4):
            clock.now = T0 + timedelta(days=day)
            for f in VOL02:
                record(t, f, T0 + timedelta(days=day), "02", VOL02)
        clock.now = T0 + timedelta(days=3, hours=2)  # days late
        assert record(t, "PHIDP", expected=VOL01) == []
        assert record(t, "DBZV", expected=VOL01) == [vid()]
        for f in [*VOL01, "DBZV"]:  # everything again
            assert record(t, f, expected=VOL01) == []
        vol = t.get_volume(vid())
        assert vol["is_complete"] == 1 and vol["missing_fields"] == ""
        assert vol["downloaded_fields"] == ",".join(VOL01)
        assert vol["completed_at"] == "2025-11-21T14:30:00Z"
        assert t.get_download(name("KDP"))["attempts"] == 3
        files = t.get_volume_files(vid())
        assert [f["field"] for f in files] == VOL01
        assert all(f["local_path"].endswith(f["filename"]) for f in files)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([*VOL02, "DBZH"]), min_size=1, max_size=8))
def test_completion_is_reported_exactly_when_the_last_expected_field_first_arrives(
    arrivals: list[str],
) -> None:
    with tempfile.TemporaryDirectory() as tmp, SQLiteStateTracker(Path(tmp) / "s.db") as t:
        results = [record(t, f, number="02", expected=VOL02) for f in arrivals]
        seen: set[str] = set()
        expected_results = []
        for f in arrivals:
            before = set(VOL02) <= seen
            seen.add(f)
            expected_results.append([vid(number="02")] if set(VOL02) <= seen and not before else [])
        assert results == expected_results
        assert sum(len(r) for r in results) <= 1
        ready = t.get_complete_unprocessed_volumes()
        assert len(ready) == (1 if set(VOL02) <= seen else 0)


def test_sync_volumes_supplies_expected_fields_incrementally(tracker: SQLiteStateTracker) -> None:
    t1 = T0 + timedelta(minutes=5)
    for f in VOL02:
        assert record(tracker, f, T0, "02") == []  # expected unknown: not complete
    record(tracker, "DBZH", T0)
    vol = tracker.get_volume(vid(number="02"))
    assert vol["expected_fields"] is None and vol["is_complete"] == 0
    assert vol["missing_fields"] is None
    assert tracker.sync_volumes(DEFAULT_VOLUME_TYPES) == [vid(number="02")]
    assert tracker.sync_volumes(DEFAULT_VOLUME_TYPES) == []  # cursor moved: nothing again
    assert tracker.get_volume(vid())["missing_fields"] == "DBZV,KDP,PHIDP,RHOHV,ZDR"
    # a file that failed first and downloads later is re-sequenced after the cursor
    tracker.mark_download_failed(name("VRAD", t1, "02"), "/L2/x", "timeout", next_attempt_at=t1)
    record(tracker, "WRAD", t1, "02")
    assert tracker.sync_volumes(DEFAULT_VOLUME_TYPES) == []  # expected now known: incomplete
    cursor = int(tracker.get_checkpoint("sync_volumes/processing") or 0)
    assert tracker.get_download(name("VRAD", t1, "02"))["id"] < cursor
    assert record(tracker, "VRAD", t1, "02") == [vid(t1, "02")]  # completes on arrival
    assert tracker.get_download(name("VRAD", t1, "02"))["id"] > cursor
    assert tracker.sync_volumes(DEFAULT_VOLUME_TYPES) == []  # never reported twice
    # another consumer has its own cursor and sees everything once
    assert tracker.sync_volumes(DEFAULT_VOLUME_TYPES, consumer="audit") == []
    assert tracker.get_checkpoint("sync_volumes/audit") == tracker.get_checkpoint(
        "sync_volumes/processing"
    )
    # unconfigured strategy: stays incomplete, listed as such
    record(tracker, "DBZH", T0, "05")
    assert tracker.sync_volumes(DEFAULT_VOLUME_TYPES) == []
    assert vid(number="05") in [v["volume_id"] for v in tracker.get_incomplete_volumes()]


def test_late_field_revives_expired_and_partially_written_volumes(tmp_path: Path) -> None:
    clock = Clock(T0)
    with SQLiteStateTracker(tmp_path / "state.db", clock=clock) as t:
        record(t, "VRAD", number="02", expected=VOL02)
        v = vid(number="02")
        clock.now = T0 + timedelta(hours=2)
        stale = t.get_incomplete_volumes(older_than=T0 + timedelta(hours=1))
        assert [x["volume_id"] for x in stale] == [v]
        assert t.get_incomplete_volumes(older_than=T0 - timedelta(hours=1)) == []
        assert t.expire_incomplete(v) is True
        assert t.get_volume(v)["status"] == "expired"
        assert [x["volume_id"] for x in t.get_volumes_by_status("expired")] == [v]
        clock.now = T0 + timedelta(days=2)
        assert record(t, "WRAD", number="02", expected=VOL02) == [v]  # late field
        vol = t.get_volume(v)
        assert vol["status"] == "pending" and vol["is_complete"] == 1

        # processed incomplete (allowed), then the missing field arrives: rewritten
        w = vid(T0 + timedelta(minutes=5))
        record(t, "DBZH", T0 + timedelta(minutes=5), expected=VOL01)
        t.allow_incomplete(w)
        [claimed] = t.claim_volumes("w", 1, radar_code="RMA1")
        assert claimed["volume_id"] == v  # oldest first
        t.finish_volume(v, "w", "/nc/v.nc")
        [claimed] = t.claim_volumes("w", 1, radar_code="RMA1")
        assert claimed["volume_id"] == w and claimed["is_complete"] == 0
        missing = [f for f in VOL01 if f != "DBZH"]
        t.finish_volume(w, "w", "/nc/w.nc", missing_fields=missing)
        assert t.get_volume(w)["status"] == "completed"
        assert record(t, "ZDR", T0 + timedelta(minutes=5), expected=VOL01) == []
        assert t.get_volume(w)["status"] == "pending"  # back in the queue with ZDR
        assert t.get_volume(w)["missing_fields"] == "DBZV,KDP,PHIDP,RHOHV"
        # a duplicate of a field already written does not revive a completed volume
        record(t, "VRAD", number="02", expected=VOL02)
        assert t.get_volume(v)["status"] == "completed"


def test_expire_never_hits_a_complete_volume(tracker: SQLiteStateTracker) -> None:
    for f in VOL02:
        record(tracker, f, number="02", expected=VOL02)
    assert tracker.expire_incomplete(vid(number="02")) is False
    assert tracker.get_volume(vid(number="02"))["status"] == "pending"
    with pytest.raises(UnknownVolumeError):
        tracker.expire_incomplete(vid(T0 + timedelta(days=9)))


def test_field_arriving_during_processing_requeues_on_finish(tracker: SQLiteStateTracker) -> None:
    record(tracker, "VRAD", number="02", expected=VOL02)
    v = vid(number="02")
    tracker.allow_incomplete(v)
    assert tracker.claim_volumes("w", 1)[0]["volume_id"] == v
    assert record(tracker, "WRAD", number="02", expected=VOL02) == []  # not pending: no notify
    tracker.finish_volume(v, "w", "/nc/v.nc", missing_fields=["WRAD"])
    vol = tracker.get_volume(v)
    assert vol["status"] == "pending" and vol["is_complete"] == 1
    assert vol["netcdf_path"] == "/nc/v.nc" and vol["missing_fields"] == ""
    assert tracker.claim_volumes("w", 1)[0]["volume_id"] == v


# --------------------------------------------------------------------------- queue


def test_claim_finish_fail_release_and_recover(tmp_path: Path) -> None:
    clock = Clock(T0)
    with SQLiteStateTracker(tmp_path / "state.db", clock=clock) as t:
        times = [T0 + timedelta(minutes=5 * i) for i in range(5)]
        for when in reversed(times):
            for f in VOL02:
                record(t, f, when, "02", VOL02)
        ids = [vid(w, "02") for w in times]
        a = t.claim_volumes("a", 2)
        assert [x["volume_id"] for x in a] == ids[:2]
        assert all(x["status"] == "processing" and x["claimed_by"] == "a" for x in a)
        assert all(x["attempts"] == 1 and ISO.match(x["claimed_at"]) for x in a)
        b = t.claim_volumes("b", 10)
        assert [x["volume_id"] for x in b] == ids[2:]
        assert t.claim_volumes("c", 10) == []
        with pytest.raises(StateError, match="not claimed by worker 'b'"):
            t.finish_volume(ids[0], "b", "/nc/x.nc")
        t.finish_volume(ids[0], "a", "/nc/0.nc", missing_fields=[])
        clock.now = T0 + timedelta(minutes=1)
        t.fail_volume(ids[1], "a", "decode failed", retry_at=T0 + timedelta(minutes=30))
        assert t.get_volume(ids[1])["status"] == "pending"
        assert t.claim_volumes("c", 10) == []  # not due yet
        assert [x["volume_id"] for x in t.claim_volumes("c", 10, now=T0 + timedelta(hours=1))] == [
            ids[1]
        ]
        assert t.get_volume(ids[1])["attempts"] == 2
        t.release_volume(ids[2], "b")
        assert t.get_volume(ids[2])["attempts"] == 0
        t.release_volume(ids[2], "zzz")  # not claimed by zzz: left alone
        assert t.get_volume(ids[2])["status"] == "pending"
        # b dies holding ids[3], ids[4]; c holds ids[1] since T0+1min
        clock.now = T0 + timedelta(minutes=20)
        assert t.recover_stale_claims(older_than=timedelta(minutes=30)) == []
        assert t.recover_stale_claims(worker_id="b") == ids[3:]
        assert t.get_volume(ids[3])["error_message"].startswith("claim by b at")
        clock.now = T0 + timedelta(hours=2)
        assert t.recover_stale_claims(older_than=timedelta(minutes=30)) == [ids[1]]
        counts = t.count_volumes_by_status()
        assert counts == {"pending": 4, "processing": 0, "completed": 1, "failed": 0, "expired": 0}
        assert t.count_volumes_by_status("RMA9")["pending"] == 0
        with pytest.raises(StateError):
            t.claim_volumes("", 1)


def test_retry_counters_survive_upserts(tmp_path: Path) -> None:
    clock = Clock(T0)
    with SQLiteStateTracker(tmp_path / "state.db", clock=clock) as t:
        n = name("DBZH")
        assert t.mark_download_failed(n, "/L2/x", "550", next_attempt_at=T0) == 1
        clock.now = T0 + timedelta(minutes=1)
        retry = T0 + timedelta(minutes=10)
        assert t.mark_download_failed(n, "/L2/x", "timeout", next_attempt_at=retry) == 2
        row = t.get_download(n)
        assert row["status"] == "failed" and row["last_error"] == "timeout"
        assert row["created_at"] == "2025-11-18T12:30:00Z"
        assert t.downloads_due_for_retry("RMA1", now=T0 + timedelta(minutes=5)) == []
        due = t.downloads_due_for_retry("RMA1", now=retry)
        assert [d["filename"] for d in due] == [n]
        assert t.downloads_due_for_retry("RMA2", now=retry) == []
        assert not t.is_downloaded(n)
        clock.now = T0 + timedelta(minutes=11)
        assert record(t, "DBZH", expected=VOL01) == []
        row = t.get_download(n)
        assert row["status"] == "downloaded" and row["attempts"] == 3
        assert row["created_at"] == "2025-11-18T12:30:00Z"
        assert row["downloaded_at"] == "2025-11-18T12:41:00Z"
        assert t.downloads_due_for_retry("RMA1", now=retry) == []
        # a later failed re-download does not demote the file
        assert t.mark_download_failed(n, "/L2/x", "reset", next_attempt_at=retry) == 4
        assert t.is_downloaded(n) and t.get_download(n)["next_attempt_at"] is None
        # next_attempt_at None: never due
        other = name("ZDR")
        t.mark_download_failed(other, "/L2/x", "550 gone", next_attempt_at=None)
        assert t.downloads_due_for_retry("RMA1", now=T0 + timedelta(days=100)) == []
        # volumes: attempts survive re-registration and field updates
        v = vid()
        t.allow_incomplete(v)
        t.claim_volumes("w", 1)
        t.fail_volume(v, "w", "x", retry_at=T0)
        record(t, "KDP", expected=VOL01)
        t.register_volume(v, "RMA1", "0315", "01", T0, VOL01)
        assert t.get_volume(v)["attempts"] == 1


def test_checkpoints(tracker: SQLiteStateTracker) -> None:
    assert tracker.get_checkpoint("download/RMA1") is None
    tracker.set_checkpoint("download/RMA1", "2025-11-18T12:00:00Z")
    tracker.set_checkpoint("download/RMA1", "2025-11-18T13:00:00Z")
    assert tracker.get_checkpoint("download/RMA1") == "2025-11-18T13:00:00Z"


# --------------------------------------------------------------------------- bad input


def test_bad_input_gives_typed_errors_and_loses_nothing(tracker: SQLiteStateTracker) -> None:
    record(tracker, "DBZH", expected=VOL01)
    before = tracker.get_volume(vid())
    for bad in ("notes.txt", "RMA1_0315_01_DBZH_20251318T123000Z.BUFR", "RMA1_DBZH.BUFR", ""):
        with pytest.raises(FileNameError):
            tracker.mark_downloaded(bad, "/r", "/l", 1, None)
        with pytest.raises(FileNameError):
            tracker.mark_download_failed(bad, "/r", "x", next_attempt_at=None)
    with pytest.raises(StateError):
        tracker.mark_downloaded(name("ZDR"), "/r", "/l", -5, None)
    unknown = vid(T0 + timedelta(days=1))
    for call in (
        lambda: tracker.get_volume(unknown),
        lambda: tracker.get_volume_files(unknown),
        lambda: tracker.mark_volume_processing(unknown, "completed"),
        lambda: tracker.finish_volume(unknown, "w", "/x.nc"),
        lambda: tracker.fail_volume(unknown, "w", "x", retry_at=None),
        lambda: tracker.release_volume(unknown, "w"),
        lambda: tracker.allow_incomplete(unknown),
        lambda: tracker.get_volume("garbage"),
    ):
        with pytest.raises(UnknownVolumeError, match="unknown volume"):
            call()
    for status in ("done", "PENDING", "", None):
        with pytest.raises(InvalidStatusError, match="invalid volume status"):
            tracker.get_volumes_by_status(status)  # type: ignore[arg-type]
        with pytest.raises(InvalidStatusError):
            tracker.mark_volume_processing(vid(), status)  # type: ignore[arg-type]
    assert tracker.count() == 1
    assert tracker.get_volume(vid()) == before


def test_closed_tracker_raises_state_error(tmp_path: Path) -> None:
    t = SQLiteStateTracker(tmp_path / "s.db")
    t.close()
    t.close()
    with pytest.raises(StateError, match="closed"):
        t.count()


# --------------------------------------------------------------------------- storage rules


def test_all_times_use_one_iso_utc_format(tracker: SQLiteStateTracker, tmp_path: Path) -> None:
    record(tracker, "VRAD", number="02", expected=VOL02)
    record(tracker, "WRAD", number="02", expected=VOL02)
    tracker.mark_download_failed(
        name("DBZH"), "/r", "x", next_attempt_at=datetime(2025, 11, 18, 9, 0)
    )
    tracker.claim_volumes("w", 1)
    tracker.finish_volume(vid(number="02"), "w", "/nc/x.nc")
    tracker.set_checkpoint("x", "y")
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.row_factory = sqlite3.Row
    checked = 0
    for table in ("downloads", "volume_processing", "checkpoints"):
        for row in conn.execute(f"SELECT * FROM {table}"):
            for key in row.keys():  # noqa: SIM118 - sqlite3.Row iterates values
                is_time = key.endswith("_at") or key == "observation_datetime"
                if is_time and row[key] is not None:
                    assert ISO.match(row[key]), (table, key, row[key])
                    checked += 1
    conn.close()
    assert checked >= 15
    assert tracker.get_download(name("DBZH"))["next_attempt_at"] == "2025-11-18T09:00:00Z"


def test_database_runs_wal_with_foreign_keys(tracker: SQLiteStateTracker, tmp_path: Path) -> None:
    record(tracker, "DBZH")
    conn = sqlite3.connect(tmp_path / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    conn.close()
    assert tracker._conn is not None
    assert tracker._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert tracker._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert tracker.integrity_check() == []
    # a download needs its volume: the deferred foreign key fails the commit, rolled back
    with pytest.raises(StateError, match="FOREIGN KEY"), tracker._write() as conn2:
        conn2.execute(
            "INSERT INTO downloads(filename, remote_path, radar_code, vol_code, vol_number,"
            " field, observation_datetime, volume_id, status, created_at, updated_at)"
            " VALUES ('x', 'r', 'RMA1', '0315', '01', 'DBZH', 'x', 'nope', 'downloaded',"
            " 'x', 'x')"
        )
    assert tracker.count() == 1


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, str]]:
    result = []
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper()
        if head in {"BEGIN", "COMMIT", "ROLLBACK", "PRAGMA"}:
            continue
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
            result.append((sql, str(row[3])))
    return result


def test_hot_queries_are_index_backed_never_table_scans(tmp_path: Path) -> None:
    clock = Clock(T0)
    db = tmp_path / "state.db"
    with SQLiteStateTracker(db, clock=clock) as t:
        for i in range(60):  # some history, all statuses present
            when = T0 + timedelta(minutes=5 * i)
            for f in VOL02:
                record(t, f, when, "02", VOL02)
            record(t, "DBZH", when, "01", VOL01)
        t.claim_volumes("w", 30)
        assert t._conn is not None
        traced: list[str] = []
        t._conn.set_trace_callback(traced.append)
        hot: list[Callable[[], object]] = [
            lambda: record(t, "VRAD", T0 + timedelta(days=1), "02", VOL02),
            lambda: record(t, "WRAD", T0 + timedelta(days=1), "02", VOL02),
            lambda: record(t, "ZDR", T0, "01", VOL01),
            lambda: t.mark_download_failed(name("KDP"), "/r", "x", next_attempt_at=T0),
            lambda: t.is_downloaded(name("DBZH")),
            lambda: t.get_complete_unprocessed_volumes(),
            lambda: t.get_complete_unprocessed_volumes("RMA1"),
            lambda: t.claim_volumes("w2", 2),
            lambda: t.claim_volumes("w2", 2, radar_code="RMA1"),
            lambda: t.sync_volumes(DEFAULT_VOLUME_TYPES),
            lambda: t.recover_stale_claims(worker_id="w"),
            lambda: t.downloads_due_for_retry("RMA1"),
            lambda: t.get_volume_files(vid()),
            lambda: t.latest_observation("RMA1"),
            lambda: t.get_files_by_date_range(T0, T0 + timedelta(hours=1), radar_code="RMA1"),
        ]
        for call in hot:
            call()
        t._conn.set_trace_callback(None)
        plans = _plans(t._conn, traced)
    assert len(plans) > 20
    scans = [(sql, plan) for sql, plan in plans if plan.startswith("SCAN")]
    assert scans == []
    used = " ".join(plan for _, plan in plans)
    for index in ("ix_downloads_volume", "ix_volumes_ready", "ix_downloads_retry"):
        assert index in used


# --------------------------------------------------------------------------- threads


def test_one_tracker_shared_by_threads(tmp_path: Path) -> None:
    times = [T0 + timedelta(minutes=5 * i) for i in range(40)]
    jobs = [(f, when) for when in times for f in VOL02 for _ in range(2)]  # duplicates too
    completed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    with SQLiteStateTracker(tmp_path / "state.db") as t:

        def work(part: list[tuple[str, datetime]]) -> None:
            try:
                for f, when in part:
                    got = record(t, f, when, "02", VOL02)
                    with lock:
                        completed.extend(got)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(jobs[i::6],)) for i in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert sorted(completed) == sorted(vid(w, "02") for w in times)
        assert t.count() == 80
        assert len(t.get_complete_unprocessed_volumes()) == 40


def test_threads_with_their_own_trackers(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SQLiteStateTracker(db).close()
    times = [T0 + timedelta(minutes=5 * i) for i in range(30)]
    completed: list[str] = []
    lock = threading.Lock()

    def work(field: str) -> None:
        with SQLiteStateTracker(db, timeout=60) as mine:
            for when in times:
                got = record(mine, field, when, "02", VOL02)
                with lock:
                    completed.extend(got)

    threads = [threading.Thread(target=work, args=(f,)) for f in VOL02 * 2]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(completed) == sorted(vid(w, "02") for w in times)


def test_a_volume_known_only_from_a_failed_download_is_not_an_incomplete_volume(
    tracker: SQLiteStateTracker,
) -> None:
    tracker.mark_download_failed(name("VRAD", number="02"), "/L2/x", "timeout", next_attempt_at=T0)
    assert tracker.get_volume(vid(number="02"))["downloaded_fields"] in (None, "")
    assert tracker.get_incomplete_volumes() == []
    record(tracker, "WRAD", number="02", expected=VOL02)
    assert [v["volume_id"] for v in tracker.get_incomplete_volumes()] == [vid(number="02")]


def test_summaries_for_status_reports(tracker: SQLiteStateTracker) -> None:
    record(tracker, "DBZH")
    record(tracker, "VRAD", number="02", radar="RMA5")
    tracker.mark_download_failed(
        name("WRAD", number="02", radar="RMA5"), "/L2/x", "timeout", next_attempt_at=None
    )
    assert tracker.radar_codes() == ["RMA1", "RMA5"]
    files, last = tracker.download_summary("RMA1")
    assert files == 1 and last is not None and last.endswith("Z")
    assert tracker.download_summary("RMA9") == (0, None)
    [failed] = tracker.get_failed_downloads("RMA5")
    assert failed["filename"] == name("WRAD", number="02", radar="RMA5")
    assert failed["last_error"] == "timeout"
    assert tracker.get_failed_downloads("RMA1") == []
