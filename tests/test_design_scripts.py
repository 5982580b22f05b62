"""The design's Examples 1 and 2 saved verbatim as files and run with ``python file.py``.

The examples end with a bare ``asyncio.run(...)`` (no ``if __name__ == "__main__":`` guard), as
users copy them. Only host, port, credentials, radar code and dates are changed to those of the
test FTP server and the sample data. Each script appends its pid to ``imports.log`` when it is
imported: conversion workers must never run the user's script, so the file must hold exactly
one line (with ``multiprocessing``'s ``spawn`` it held one per worker, and the volume stayed
``processing`` for ever because every worker started its own daemons).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
import xradar

from ftpserver import FTPServerThread
from radarlib.io.ftp import DateBasedDaemonConfig, DateBasedFTPDaemon, SQLiteStateTracker

ROOT = Path(__file__).resolve().parents[1]
NETCDF = "downloads/RMA11/netcdf/RMA11_0315_02_20251020T152429Z.nc"

MARKER = """\
import os as _os
with open("imports.log", "a") as _log:  # test probe: who imports this script
    _log.write(f"{_os.getpid()}\\n")
"""

EXAMPLE_1 = """\
import asyncio
from pathlib import Path
from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig

# Define volume types (must match download daemon config)
volume_types = {
    "0315": {
        "01": ["DBZH", "DBZV", "ZDR", "RHOHV", "PHIDP", "KDP"],
        "02": ["VRAD", "WRAD"],
    },
}

config = ProcessingDaemonConfig(
    local_bufr_dir=Path("./downloads/RMA11/bufr"),
    local_netcdf_dir=Path("./downloads/RMA11/netcdf"),
    state_db=Path("./downloads/RMA11/state.db"),
    volume_types=volume_types,
    radar_name="RMA11",
    poll_interval=30,  # Check every 30 seconds
    max_concurrent_processing=2,  # Process 2 volumes at once
)

daemon = ProcessingDaemon(config)
asyncio.run(daemon.run())
"""

EXAMPLE_2 = """\
import asyncio
from datetime import datetime, timezone
from pathlib import Path
from radarlib.io.ftp import (
    DateBasedDaemonConfig,
    DateBasedFTPDaemon,
    ProcessingDaemon,
    ProcessingDaemonConfig,
)

volume_types = {
    "0315": {
        "01": ["DBZH", "DBZV", "ZDR", "RHOHV", "PHIDP", "KDP"],
        "02": ["VRAD", "WRAD"],
    },
}

# Download daemon config
download_config = DateBasedDaemonConfig(
    host="127.0.0.1",
    port=PORT,
    username="user",
    password="pass",
    remote_base_path="/L2",
    radar_code="RMA11",
    local_download_dir=Path("./downloads/RMA11/bufr"),
    state_db=Path("./downloads/RMA11/state.db"),
    start_date=datetime(2025, 10, 20, tzinfo=timezone.utc),
    end_date=None,  # Continuous
    volume_types=volume_types,
)

# Processing daemon config (shares same state.db)
processing_config = ProcessingDaemonConfig(
    local_bufr_dir=Path("./downloads/RMA11/bufr"),
    local_netcdf_dir=Path("./downloads/RMA11/netcdf"),
    state_db=Path("./downloads/RMA11/state.db"),
    volume_types=volume_types,
    radar_name="RMA11",
)

async def run_pipeline():
    \"\"\"Run both daemons concurrently.\"\"\"
    download_daemon = DateBasedFTPDaemon(download_config)
    processing_daemon = ProcessingDaemon(processing_config)

    await asyncio.gather(
        download_daemon.run(),
        processing_daemon.run(),
    )

asyncio.run(run_pipeline())
"""


@pytest.fixture
def server(tmp_path: Path, rma11_dir: Path) -> Iterator[FTPServerThread]:
    ftp = FTPServerThread(tmp_path / "ftproot", user="user", password="pass").start()
    for path in sorted(rma11_dir.glob("*.BUFR")):
        ftp.publish(path.name, path)
    try:
        yield ftp
    finally:
        ftp.stop()


def _run_script(folder: Path, text: str) -> subprocess.Popen[bytes]:
    script = folder / "example.py"
    script.write_text(MARKER + text)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "example.py"], cwd=folder, env=env)


def _wait_for_netcdf(proc: subprocess.Popen[bytes], folder: Path) -> list[int]:
    """Wait for the volume's NetCDF; the pids of the script's worker processes meanwhile."""
    target = folder / NETCDF
    deadline = time.monotonic() + 150
    workers: set[int] = set()
    while not target.is_file():
        assert proc.poll() is None, f"the script exited with {proc.returncode}"
        assert time.monotonic() < deadline, "no NetCDF within 150 s"
        with_children = psutil.Process(proc.pid).children(recursive=True)
        workers |= {p.pid for p in with_children}
        time.sleep(0.2)
    return sorted(workers)


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user ends the example; the process and its workers must all end."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"workers still running after the script ended: {alive}"


def _check_result(folder: Path, proc: subprocess.Popen[bytes], workers: list[int]) -> None:
    assert workers, "conversions ran in worker processes"
    assert (folder / "imports.log").read_text().split() == [str(proc.pid)]
    tree = xradar.io.open_cfradial1_datatree(str(folder / NETCDF))
    assert {"VRAD", "WRAD"} <= set(tree["sweep_0"].ds.data_vars)
    with SQLiteStateTracker(folder / "downloads/RMA11/state.db") as tracker:
        assert tracker.get_volumes_by_status("processing") == []


def test_design_example_2_runs_as_a_script_without_a_main_guard(
    server: FTPServerThread, tmp_path: Path
) -> None:
    folder = tmp_path / "user"
    folder.mkdir()
    proc = _run_script(folder, EXAMPLE_2.replace("PORT", str(server.port)))
    try:
        workers = _wait_for_netcdf(proc, folder)
    finally:
        _interrupt(proc)
    _check_result(folder, proc, workers)


def test_design_example_1_runs_as_a_script_without_a_main_guard(
    server: FTPServerThread, tmp_path: Path
) -> None:
    folder = tmp_path / "user"
    folder.mkdir()
    asyncio.run(
        DateBasedFTPDaemon(
            DateBasedDaemonConfig(
                "127.0.0.1",
                port=server.port,
                username="user",
                password="pass",
                radar_code="RMA11",
                local_download_dir=folder / "downloads/RMA11/bufr",
                state_db=folder / "downloads/RMA11/state.db",
                start_date=datetime(2025, 10, 20, tzinfo=timezone.utc),
                end_date=datetime(2025, 10, 20, 23, 59, 59, tzinfo=timezone.utc),
            )
        ).run()
    )
    proc = _run_script(folder, EXAMPLE_1)
    try:
        workers = _wait_for_netcdf(proc, folder)
    finally:
        _interrupt(proc)
    _check_result(folder, proc, workers)


def test_a_pipeline_read_from_stdin_converts_too(server: FTPServerThread, tmp_path: Path) -> None:
    """``python - < example.py``: spawn failed with FileNotFoundError '<stdin>' in every worker."""
    folder = tmp_path / "user"
    folder.mkdir()
    text = MARKER + EXAMPLE_2.replace("PORT", str(server.port))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-"], cwd=folder, env=env, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    try:
        workers = _wait_for_netcdf(proc, folder)
    finally:
        _interrupt(proc)
    _check_result(folder, proc, workers)
