"""Test helpers shared by the daemon tests: run a daemon until a condition, a fast FTP config."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radarlib.filename import BufrFileName
from radarlib.pipeline.download import DateBasedDaemonConfig
from radarlib.state.sqlite import SQLiteStateTracker
from radarlib.volume_types import VolumeTypes, expected_fields


async def run_until(
    daemon: Any,
    done: Callable[[], bool],
    *,
    timeout: float = 120,
    during: Callable[[], Any] | None = None,
) -> None:
    """Run ``daemon`` until ``done()`` holds (checked off the loop), then stop it.

    ``during`` runs (off the loop) between checks, e.g. to add late files. Fails when the
    daemon stops by itself or the condition is not reached within ``timeout`` seconds.
    """
    task = asyncio.create_task(daemon.run())
    deadline = time.monotonic() + timeout
    try:
        while not await asyncio.to_thread(done):
            if task.done():
                task.result()
                raise AssertionError("daemon stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached in {timeout}s: {daemon.get_stats()}")
            if during is not None:
                await asyncio.to_thread(during)
            await asyncio.sleep(0.05)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 120)


def ftp_daemon_config(server: Any, tmp_path: Path, **kw: Any) -> DateBasedDaemonConfig:
    """A download-daemon config for the test server with short polls, timeouts and backoff."""
    options: dict[str, Any] = {
        "port": server.port,
        "username": "radar",
        "password": "secret",
        "radar_code": "RMA11",
        "local_download_dir": tmp_path / "dl",
        "state_db": tmp_path / "state.db",
        "poll_interval": 0.2,
        "connect_timeout": 2.0,
        "command_timeout": 5.0,
        "data_timeout": 5.0,
        "retry_backoff": 0.05,
        "failed_retry_interval": 0.5,
    }
    options.update(kw)
    return DateBasedDaemonConfig("127.0.0.1", **options)


def record_download(tracker: Any, path: Path, types: VolumeTypes) -> list[str]:
    """Record ``path`` as downloaded, with its volume's expected fields from ``types``."""
    name = BufrFileName.parse(path.name)
    return list(
        tracker.mark_downloaded(
            name.name,
            f"/L2/{name.radar}/{name.name}",
            str(path),
            path.stat().st_size,
            None,
            expected_fields=expected_fields(types, name.strategy, name.volume_number),
        )
    )


def bufr_bytes(size: int) -> bytes:
    """Random content framed as one whole BUFR message of ``size`` bytes (section 0 length,
    edition 4, ``7777`` at the end): what the download side takes as a complete file."""
    return b"BUFR" + size.to_bytes(3, "big") + b"\x04" + os.urandom(size - 12) + b"7777"


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


class RunningDaemon:
    """Runs a daemon in a background thread with its own event loop (for live scenarios)."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            asyncio.run(self.daemon.run())
        except BaseException as exc:  # handed to the test
            self.error = exc

    def stop(self, timeout: float = 10.0) -> float:
        started = time.monotonic()
        self.daemon.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "daemon did not stop"
        if self.error is not None:
            raise self.error
        return time.monotonic() - started


def downloaded(db: Path, name: str) -> bool:
    if not db.exists():
        return False
    with SQLiteStateTracker(db) as tracker:
        return tracker.is_downloaded(name)
