"""``radarlib run`` as a process: it fails whole, and its workers never outlive it.

Real subprocesses against a real FTP server: a daemon that ends with an error ends the whole
process with exit code 1 within seconds; ``kill -9`` of the process leaves no worker behind;
``--only processing`` runs without the FTP password.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
from tests.ftpserver import FTPServerThread
from tests.test_cli_run import PASSWORD, RunProcess, python_env, volumes

from radarlib.bufr.synthetic import write_synthetic_volume

T0 = datetime(2025, 11, 18, 12, 0, tzinfo=timezone.utc)


def _config(path: Path, port: int, root: Path, *, workers: int = 1) -> Path:
    path.write_text(
        f"""
[logging]
level = "INFO"

[paths]
root = "{root}"

[sources.local]
host = "127.0.0.1"
port = {port}
username = "radar"
connect_timeout = 5
command_timeout = 10
data_timeout = 10

[download]
poll_interval = 0.5

[processing]
poll_interval = 0.5
max_concurrent_processing = {workers}
shutdown_grace_seconds = 5

[[radars]]
code = "RMA1"
start_date = 2025-11-18T12:00:00Z
"""
    )
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FTPServerThread]:
    root = tmp_path / "ftproot"
    for minute in range(0, 40, 4):
        moment = T0.replace(minute=minute)
        write_synthetic_volume(
            root, "RMA1", "0315", "01", moment, layout="ftp", nsweeps=6, ngates=400
        )
    ftp = FTPServerThread(root, user="radar", password=PASSWORD).start()
    try:
        yield ftp
    finally:
        ftp.stop()


def test_a_daemon_that_fails_ends_the_whole_process_with_exit_1(
    server: FTPServerThread, tmp_path: Path
) -> None:
    """Wrong credentials end the download daemon; the processing daemon must not run on."""
    config = _config(tmp_path / "r.toml", server.port, tmp_path / "data")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "radarlib", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(RADARLIB_FTP_PASSWORD="wrong-password-1"),
    )
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]
    assert took < 40, f"took {took:.0f}s to exit"
    assert "download daemon of RMA1 stopped by an error" in result.stderr
    assert "processing daemon" in result.stderr and "stopped:" in result.stderr
    assert "wrong-password-1" not in result.stderr


def test_kill_9_of_run_leaves_no_worker_behind(server: FTPServerThread, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = _config(tmp_path / "r.toml", server.port, data, workers=2)
    db = data / "state.db"
    run = RunProcess(config, tmp_path / "run.log", env=python_env(RADARLIB_FTP_PASSWORD=PASSWORD))
    try:
        run.wait_until(
            lambda: any(v["status"] == "processing" for v in volumes(db).values()), db=db
        )
        workers = psutil.Process(run.proc.pid).children(recursive=True)
        assert len(workers) >= 2, workers  # both conversion workers are up, one is busy
    finally:
        run.proc.kill()  # kill -9: no chance to stop the workers itself
        run.proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"workers outlived kill -9 of their parent: {alive}"


def test_only_processing_needs_no_ftp_password(server: FTPServerThread, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = _config(tmp_path / "r.toml", server.port, data)
    config.write_text(config.read_text().replace('username = "radar"', 'username = "radar"\n'))
    run = RunProcess(config, tmp_path / "run.log", "--only", "processing", env=python_env())
    try:
        run.wait_until(lambda: "processing daemon" in run.text() and "started" in run.text())
    finally:
        code = run.terminate()
    assert code == 0, run.text()[-3000:]
    assert "RADARLIB_FTP_PASSWORD" not in run.text()
