"""The everyday faults of radar links, each against a real pyftpdlib server with fault handlers.

One test (or a few) per finding of issue #13: a file still being uploaded, files uploaded
days late, two owners of one folder, odd bytes in listings, session limits and full disks,
stale partial files, hostile listings, and idle connections after an outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from daemon_helpers import RunningDaemon, bufr_bytes, downloaded, ftp_daemon_config, wait_for
from ftpserver import FTPServerThread
from radarlib.errors import OwnershipError
from radarlib.filename import BufrFileName
from radarlib.io.ftp import DateBasedFTPDaemon
from radarlib.pipeline.download import request_rescan
from radarlib.state.sqlite import SQLiteStateTracker

UTC = timezone.utc
DAY = datetime(2025, 10, 20, tzinfo=UTC)


def _remote(server: FTPServerThread, name: str) -> Path:
    return server.path(BufrFileName.parse(name).remote_dir("/L2")) / name


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _row(tmp_path: Path, name: str) -> dict[str, Any] | None:
    with SQLiteStateTracker(tmp_path / "state.db") as tracker:
        return tracker.get_remote_file(name)


def _run(daemon: DateBasedFTPDaemon, timeout: float = 60.0) -> None:
    asyncio.run(asyncio.wait_for(daemon.run(), timeout))


# -- 1. a file still being uploaded is never recorded ------------------------------------------


def test_an_upload_in_progress_is_fetched_again_when_it_grows(
    ftp_server: FTPServerThread, rma11_dir: Path, tmp_path: Path
) -> None:
    """WRAD complete, VRAD 300,000 of 782,904 bytes: VRAD is not recorded until whole."""
    now = datetime.now(UTC).replace(microsecond=0)
    vrad = (rma11_dir / "RMA11_0315_02_VRAD_20251020T152429Z.BUFR").read_bytes()
    wrad = (rma11_dir / "RMA11_0315_02_WRAD_20251020T152429Z.BUFR").read_bytes()
    assert len(vrad) == 782_904
    moment = now - timedelta(minutes=2)
    names = {f: BufrFileName("RMA11", "0315", "02", f, moment).name for f in ("VRAD", "WRAD")}
    ftp_server.publish(names["WRAD"], wrad)
    target = ftp_server.publish(names["VRAD"], vrad[:300_000])
    daemon = DateBasedFTPDaemon(ftp_daemon_config(ftp_server, tmp_path))
    runner = RunningDaemon(daemon)
    wait_for(lambda: downloaded(tmp_path / "state.db", names["WRAD"]))
    wait_for(lambda: (_row(tmp_path, names["VRAD"]) or {}).get("status") == "short")
    polls = daemon.get_stats()["polls"]
    wait_for(lambda: daemon.get_stats()["polls"] >= polls + 2)  # a poll or two later
    assert not downloaded(tmp_path / "state.db", names["VRAD"])
    assert _row(tmp_path, names["VRAD"])["fetched_size"] == 300_000  # type: ignore[index]
    with open(target, "ab") as handle:  # the rest of the upload arrives
        handle.write(vrad[300_000:])
    wait_for(lambda: downloaded(tmp_path / "state.db", names["VRAD"]))
    runner.stop()
    local = tmp_path / "dl" / names["VRAD"]
    assert local.read_bytes() == vrad
    with SQLiteStateTracker(tmp_path / "state.db") as tracker:
        volume = tracker.get_volume(BufrFileName.parse(names["VRAD"]).volume_key.volume_id)
        assert volume["is_complete"] == 1 and volume["status"] == "pending"
        assert tracker.get_download(names["VRAD"])["checksum"] == _sha(vrad)  # type: ignore[index]
    assert daemon.get_stats()["failures"] == 0


def test_a_cut_file_in_a_closed_hour_is_taken_whenever_it_is_completed(
    ftp_server: FTPServerThread, rma11_dir: Path, tmp_path: Path
) -> None:
    """A backfill (closed hours, no stability wait at all) meets a cut file: it is not
    recorded; once the server has the whole file, a later run takes it."""
    vrad = (rma11_dir / "RMA11_0315_02_VRAD_20251020T152429Z.BUFR").read_bytes()
    name = "RMA11_0315_02_VRAD_20251020T152429Z.BUFR"
    target = ftp_server.publish(name, vrad[:300_000])
    config = ftp_daemon_config(
        ftp_server, tmp_path, start_date=DAY, end_date=DAY + timedelta(hours=23)
    )
    _run(DateBasedFTPDaemon(config))
    assert not downloaded(tmp_path / "state.db", name)
    assert _row(tmp_path, name)["status"] == "short"  # type: ignore[index]
    assert not (tmp_path / "dl" / name).exists()
    target.write_bytes(vrad)
    _run(DateBasedFTPDaemon(config))
    assert (tmp_path / "dl" / name).read_bytes() == vrad


# -- 2. files uploaded later than the look-back ------------------------------------------------


def test_files_uploaded_days_late_are_found_by_the_deep_rescan(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    recent = BufrFileName("RMA11", "0315", "01", "DBZH", now - timedelta(minutes=5)).name
    ftp_server.publish(recent, bufr_bytes(50_000))
    config = ftp_daemon_config(
        ftp_server, tmp_path, lookback_hours=1.0, rescan_days=4, rescan_interval=1.0
    )
    daemon = DateBasedFTPDaemon(config)
    runner = RunningDaemon(daemon)
    wait_for(lambda: downloaded(tmp_path / "state.db", recent))
    # the radar link comes back and pushes its backlog: files of 3 days and 5 hours ago
    late = [
        BufrFileName("RMA11", "0315", "01", "ZDR", now - timedelta(days=3)).name,
        BufrFileName("RMA11", "0315", "01", "KDP", now - timedelta(hours=5)).name,
    ]
    for name in late:
        ftp_server.publish(name, bufr_bytes(40_000))
    wait_for(lambda: all(downloaded(tmp_path / "state.db", n) for n in late), timeout=60)
    runner.stop()
    assert daemon.get_stats()["rescanned_hours"] >= 3 * 24 - 2  # reached three days back


def test_rescan_request_reaches_a_running_daemon(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    (ftp_server.root / "L2" / "RMA11").mkdir(parents=True)
    config = ftp_daemon_config(ftp_server, tmp_path, lookback_hours=1.0, rescan_days=0)
    daemon = DateBasedFTPDaemon(config)
    runner = RunningDaemon(daemon)
    wait_for(lambda: daemon.get_stats()["polls"] >= 2)
    old = BufrFileName("RMA11", "0315", "01", "DBZH", now - timedelta(days=10, hours=2)).name
    ftp_server.publish(old, bufr_bytes(30_000))
    time.sleep(0.5)
    assert not downloaded(tmp_path / "state.db", old)  # no look-back reaches it
    with SQLiteStateTracker(tmp_path / "state.db") as tracker:
        start = now - timedelta(days=10, hours=3)
        request_rescan(tracker, config, start, now - timedelta(days=10))
    wait_for(lambda: downloaded(tmp_path / "state.db", old))
    runner.stop()


def test_rescan_without_a_running_daemon_lists_the_period_and_returns(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    names = [
        BufrFileName("RMA11", "0315", "01", f, DAY + timedelta(hours=h)).name
        for f, h in (("DBZH", 1), ("ZDR", 2), ("KDP", 9))
    ]
    for name in names:
        ftp_server.publish(name, bufr_bytes(20_000))
    config = ftp_daemon_config(ftp_server, tmp_path)
    stats = asyncio.run(
        asyncio.wait_for(DateBasedFTPDaemon(config).rescan(DAY, DAY + timedelta(hours=3)), 60)
    )
    assert stats["files_downloaded"] == 2
    assert [downloaded(tmp_path / "state.db", n) for n in names] == [True, True, False]


# -- 3. one owner per folder and database ------------------------------------------------------


def test_a_second_daemon_on_the_same_folder_or_database_is_refused(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    name = BufrFileName("RMA11", "0315", "01", "DBZH", DAY + timedelta(hours=1)).name
    ftp_server.publish(name, bufr_bytes(2_000_000))
    ftp_server.throttle(500_000)  # a few seconds per file: the first one is busy
    config = ftp_daemon_config(ftp_server, tmp_path, start_date=DAY, end_date=DAY + timedelta(1))
    first = RunningDaemon(DateBasedFTPDaemon(config))
    wait_for(lambda: bool(list((tmp_path / "dl").glob(".*.part"))))
    part = next((tmp_path / "dl").glob(".*.part"))
    size_before = part.stat().st_size
    same_db_other_dir = replace(config, local_download_dir=tmp_path / "other")
    same_dir_other_db = replace(config, state_db=tmp_path / "other.db")
    for config2 in (config, same_db_other_dir, same_dir_other_db):
        with pytest.raises(OwnershipError, match=rf"pid {os.getpid()}"):
            _run(DateBasedFTPDaemon(config2), timeout=20)
    assert part.exists() and part.stat().st_size >= size_before  # the owner's file untouched
    ftp_server.throttle(0)
    first.thread.join(30)  # the date range is done: the first daemon returns by itself
    assert downloaded(tmp_path / "state.db", name)
    assert (tmp_path / "dl" / name).read_bytes() == _remote(ftp_server, name).read_bytes()
    _run(DateBasedFTPDaemon(config))  # the owner is gone: the lock is free again


# -- 4. odd characters in listings -------------------------------------------------------------


@pytest.mark.parametrize("mlsd", [True, False])
def test_an_odd_size_in_a_listing_does_not_stop_downloads(tmp_path: Path, mlsd: bool) -> None:
    with FTPServerThread(tmp_path / "ftproot", mlsd=mlsd) as server:
        good = BufrFileName("RMA11", "0315", "01", "DBZH", DAY + timedelta(hours=1)).name
        odd = BufrFileName("RMA11", "0315", "01", "ZDR", DAY + timedelta(hours=1)).name
        server.publish(good, bufr_bytes(10_000))
        folder = "/" + str(_remote(server, good).parent.relative_to(server.root))
        server.raw_listing[folder] = lambda is_mlsd: [
            f"type=file;size=²;modify=20250101000000; {odd}\r\n"
            if is_mlsd
            else f"-rw-r--r--   1 owner    group          ² Jan 01 00:00 {odd}\r\n"
        ]
        later = BufrFileName("RMA11", "0315", "01", "KDP", DAY + timedelta(hours=2)).name
        server.publish(later, bufr_bytes(10_000))
        server.size_reply = "²"
        config = ftp_daemon_config(
            server, tmp_path, start_date=DAY, end_date=DAY + timedelta(hours=3), max_attempts=1
        )
        daemon = DateBasedFTPDaemon(config)
        _run(daemon)
        assert downloaded(tmp_path / "state.db", good) and downloaded(tmp_path / "state.db", later)


# -- 5. session limits, full disks and databases -----------------------------------------------


def test_a_530_at_the_session_limit_adapts_the_connections(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    """The server allows 4 sessions and answers a bare '530 Login incorrect.' beyond."""
    names = {
        BufrFileName("RMA11", "0315", "01", f, DAY + timedelta(hours=h)).name
        for f in ("DBZH", "ZDR", "KDP", "DBZV")
        for h in range(1, 7)
    }
    for name in names:
        ftp_server.publish(name, bufr_bytes(100_000))
    ftp_server.session_limit = 4
    config = ftp_daemon_config(
        ftp_server,
        tmp_path,
        start_date=DAY,
        end_date=DAY + timedelta(hours=8),
        max_concurrent_downloads=6,
    )
    daemon = DateBasedFTPDaemon(config)
    _run(daemon)
    assert all(downloaded(tmp_path / "state.db", n) for n in names)
    assert ftp_server.refused_sessions >= 1
    assert daemon.get_stats()["connections_allowed"] <= 3  # 4 minus the scanner's session
    assert daemon.get_stats()["failures"] == 0


def test_a_full_state_database_is_waited_out(
    ftp_server: FTPServerThread, tmp_path: Path, small_disk: Callable[[Path, str], None]
) -> None:
    """ "database or disk is full" in the middle of a run: retried, never the end of it."""
    db_dir = tmp_path / "db"
    small_disk(db_dir, "400k")
    now = datetime.now(UTC).replace(microsecond=0)
    first = BufrFileName("RMA11", "0315", "01", "DBZH", now - timedelta(minutes=9)).name
    ftp_server.publish(first, bufr_bytes(10_000))
    config = ftp_daemon_config(
        ftp_server, tmp_path, lookback_hours=1.0, rescan_days=0, state_db=db_dir / "s.db"
    )
    daemon = DateBasedFTPDaemon(config)
    runner = RunningDaemon(daemon)
    wait_for(lambda: downloaded(db_dir / "s.db", first))
    filler = db_dir / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the database's disk to the last byte
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    more = {
        BufrFileName("RMA11", "0315", "01", f, now - timedelta(minutes=4)).name
        for f in ("DBZH", "ZDR", "KDP")
    }
    for name in more:
        ftp_server.publish(name, bufr_bytes(10_000))
    time.sleep(2.0)  # polls meet the full disk
    assert runner.thread.is_alive() and runner.error is None
    filler.unlink()
    wait_for(lambda: all(downloaded(db_dir / "s.db", n) for n in more), timeout=60)
    runner.stop()


# -- 6. stale partial files --------------------------------------------------------------------


def test_stale_part_files_are_never_spliced(ftp_server: FTPServerThread, tmp_path: Path) -> None:
    """A .part larger than the server's file, and one of the same size with other content
    (from a crashed run of an older version of the file): both are started over."""
    names = [
        BufrFileName("RMA11", "0315", "01", f, DAY + timedelta(hours=1)).name
        for f in ("DBZH", "ZDR")
    ]
    data = {n: bufr_bytes(200_000) for n in names}
    for name in names:
        ftp_server.publish(name, data[name])
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / f".{names[0]}.part").write_bytes(os.urandom(300_000))  # larger
    (tmp_path / "dl" / f".{names[1]}.part").write_bytes(bufr_bytes(200_000))  # same size
    config = ftp_daemon_config(
        ftp_server, tmp_path, start_date=DAY, end_date=DAY + timedelta(hours=2)
    )
    daemon = DateBasedFTPDaemon(config)
    _run(daemon)
    for name in names:
        assert (tmp_path / "dl" / name).read_bytes() == data[name]
        assert ftp_server.retr_count(name) == 1
    assert daemon.get_stats()["resumed_transfers"] == 0
    assert not list((tmp_path / "dl").glob(".*.part"))


def test_a_cut_transfer_resumes_from_its_own_checked_part(tmp_path: Path) -> None:
    name = BufrFileName("RMA11", "0315", "01", "DBZH", DAY + timedelta(hours=1)).name
    data = bufr_bytes(1_500_000)
    with FTPServerThread(tmp_path / "ftproot") as server:
        server.publish(name, data)
        server.throttle(400_000)
        config = ftp_daemon_config(
            server, tmp_path, start_date=DAY, end_date=DAY + timedelta(hours=2)
        )
        daemon = DateBasedFTPDaemon(config)
        runner = RunningDaemon(daemon)
        part = tmp_path / "dl" / f".{name}.part"
        wait_for(lambda: server.retr_count(name) >= 1)
        time.sleep(1.0)
        server.stop()  # the link drops mid-transfer
        wait_for(lambda: (_row(tmp_path, name) or {}).get("part_size") is not None)
        kept = _row(tmp_path, name)["part_size"]  # type: ignore[index]
        assert 0 < kept < len(data) and part.stat().st_size == kept
        server.throttle(0)
        server.start()
        wait_for(lambda: downloaded(tmp_path / "state.db", name))
        runner.stop()
    assert (tmp_path / "dl" / name).read_bytes() == data
    assert daemon.get_stats()["resumed_transfers"] == 1


# -- 7. hostile listings -----------------------------------------------------------------------


def _junk(count: int) -> Callable[[bool], Iterator[str]]:
    def lines(mlsd: bool) -> Iterator[str]:
        for i in range(count):
            yield f"type=file;size=10;modify=20250101000000; junk-{i:07d}.txt\r\n"

    return lines


def test_junk_in_a_listing_is_bounded_in_log_and_memory(
    ftp_server: FTPServerThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = BufrFileName("RMA11", "0315", "01", "DBZH", DAY + timedelta(hours=1)).name
    ftp_server.publish(good, bufr_bytes(10_000))
    folder = "/" + str(_remote(ftp_server, good).parent.relative_to(ftp_server.root))
    junk = _junk(300_000)

    def listing(mlsd: bool) -> Iterator[str]:
        yield "type=file;size=10; " + "R" * 300_000 + "\r\n"  # a 300 kB name
        yield f"type=file;size=1073741824;modify=20250101000000; {big}\r\n"  # 1 GiB
        yield from junk(mlsd)

    big = BufrFileName("RMA11", "0315", "01", "ZDR", DAY + timedelta(hours=1)).name
    ftp_server.raw_listing[folder] = listing
    config = ftp_daemon_config(
        ftp_server, tmp_path, start_date=DAY, end_date=DAY + timedelta(hours=2)
    )
    daemon = DateBasedFTPDaemon(config)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with caplog.at_level(logging.WARNING, logger="radarlib"):
        _run(daemon, timeout=240)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert downloaded(tmp_path / "state.db", good)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 1010  # one per bad name up to a cap, then only counted
    assert max(len(r.getMessage()) for r in warnings) < 1000  # no 300 kB log line
    assert daemon.get_stats()["ignored_names"] >= 300_000
    assert grown_mb < 150, f"peak memory grew by {grown_mb:.0f} MB"
    # the 1 GiB file named like a BUFR: refused from its listed size, never fetched
    assert ftp_server.retr_count(big) == 0
    row = _row(tmp_path, big)
    assert row is not None and row["status"] == "rejected" and "over" in row["last_error"]
    assert sum("rejected" in r.getMessage() for r in warnings) == 1


def test_a_file_growing_past_the_size_limit_is_cut_and_rejected(
    ftp_server: FTPServerThread, tmp_path: Path
) -> None:
    name = BufrFileName("RMA11", "0315", "01", "DBZH", DAY + timedelta(hours=1)).name
    ftp_server.publish(name, bufr_bytes(300_000))
    not_bufr = BufrFileName("RMA11", "0315", "01", "ZDR", DAY + timedelta(hours=1)).name
    ftp_server.publish(not_bufr, b"<html>maintenance</html>")
    config = ftp_daemon_config(
        ftp_server,
        tmp_path,
        start_date=DAY,
        end_date=DAY + timedelta(hours=2),
        max_file_size=100_000,
    )
    daemon = DateBasedFTPDaemon(config)
    _run(daemon)
    assert _row(tmp_path, name)["status"] == "rejected"  # type: ignore[index]
    assert "not a whole BUFR" in _row(tmp_path, not_bufr)["last_error"]  # type: ignore[index]
    assert not [p for p in (tmp_path / "dl").iterdir() if not p.name.endswith(".lock")]
    assert daemon.get_stats()["rejected_files"] == 2


# -- 8. after an outage, every connection takes work at once -----------------------------------


def test_after_an_outage_idle_connections_take_the_backlog_at_once(tmp_path: Path) -> None:
    names = [
        BufrFileName("RMA11", "0315", "01", f, DAY + timedelta(hours=h)).name
        for f in ("DBZH", "ZDR", "KDP", "DBZV")
        for h in (1, 2, 3)
    ]
    with FTPServerThread(tmp_path / "ftproot") as server:
        for name in names:
            server.publish(name, bufr_bytes(300_000))
        server.throttle(1_000_000)
        config = ftp_daemon_config(
            server,
            tmp_path,
            start_date=DAY,
            end_date=DAY + timedelta(hours=4),
            retry_backoff=20.0,  # a file's own backoff is long: the outage must not use it
            failed_retry_interval=600.0,
            max_concurrent_downloads=4,
        )
        daemon = DateBasedFTPDaemon(config)
        runner = RunningDaemon(daemon)
        wait_for(lambda: server.retr_count(names[0]) + server.retr_count(names[-1]) >= 1)
        server.stop()  # the outage: transfers cut, connections refused
        time.sleep(3.0)
        server.throttle(0)
        back = time.monotonic()
        server.start()
        wait_for(lambda: all(downloaded(tmp_path / "state.db", n) for n in names), timeout=60)
        took = time.monotonic() - back
        runner.thread.join(30)
    assert took < 10.0, f"the backlog took {took:.1f} s after the server was back"
    assert daemon.get_stats()["failures"] == 0
