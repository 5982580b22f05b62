"""`radarlib run` as a user runs it: a config, a real FTP server, SIGTERM, then status/reprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PYART_QUIET", "1")

from tests.ftpserver import FTPServerThread

from radarlib.bufr.synthetic import write_synthetic_volume
from radarlib.state.sqlite import SQLiteStateTracker

PASSWORD = "Xy7-secret-Pa55word"
T0 = "2025-11-18T12:30:00Z"


def python_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADARLIB_")}
    env.update(PYART_QUIET="1", **extra)
    return env


class RunProcess:
    """`python -m radarlib run` in a subprocess, its log in a file."""

    def __init__(self, config: Path, log: Path, *args: str, env: dict[str, str]) -> None:
        self.log = log
        self._handle = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radarlib", "run", "--config", str(config), *args],
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = 150.0, db: Path | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"run exited early ({self.proc.returncode}):\n{self.text()}")
            if condition():
                return
            time.sleep(0.3)
        self.proc.kill()
        state = {v: r["status"] for v, r in volumes(db).items()} if db else {}
        raise AssertionError(
            f"condition not met in {timeout}s; volumes {state}; log:\n" + self.text()[-4000:]
        )

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._handle.close()
        return code

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def volumes(db: Path) -> dict[str, dict[str, Any]]:
    if not db.exists():
        return {}
    with SQLiteStateTracker(db) as tracker:
        rows = [
            v
            for status in ("pending", "processing", "completed", "failed", "expired")
            for v in tracker.get_volumes_by_status(status)
        ]
    return {str(v["volume_id"]): v for v in rows}


def settled(db: Path, expected: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = volumes(db)
        return len(rows) == expected and all(
            v["status"] in ("completed", "failed") for v in rows.values()
        )

    return check


def write_config(path: Path, port: int, root: Path, *, fmt: str = "text") -> Path:
    path.write_text(
        f"""
[logging]
level = "DEBUG"
format = "{fmt}"

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
max_concurrent_downloads = 2

[processing]
poll_interval = 0.5
max_concurrent_processing = 1
max_attempts = 1
shutdown_grace_seconds = 20
on_bad_field = "fail"  # the corrupt VRAD fails its volume (the default "drop" would drop it)

[[radars]]
code = "RMA1"
start_date = 2025-11-18T12:00:00Z

[[radars]]
code = "RMA2"
start_date = 2025-11-18T12:00:00Z
"""
    )
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FTPServerThread, dict[str, Path]]]:
    """RMA1: two good volumes; RMA2: one good volume and one with a corrupt VRAD file."""
    root = tmp_path / "ftproot"
    good: dict[str, Path] = {}
    from datetime import datetime, timezone

    t0 = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
    t1 = datetime(2025, 11, 18, 12, 35, tzinfo=timezone.utc)
    for radar, number, moment in (
        ("RMA1", "01", t0), ("RMA1", "02", t1), ("RMA2", "01", t0), ("RMA2", "02", t1),
    ):  # fmt: skip
        for path in write_synthetic_volume(
            root, radar, "0315", number, moment, layout="ftp", nsweeps=2 if number == "01" else 1
        ):
            good[path.name] = path
    corrupt = good["RMA2_0315_02_VRAD_20251118T123500Z.BUFR"]
    pristine = tmp_path / "pristine" / corrupt.name
    pristine.parent.mkdir()
    pristine.write_bytes(corrupt.read_bytes())
    spoiled = bytearray(corrupt.read_bytes())  # whole (length, 7777), the data garbled
    spoiled[60 : len(spoiled) // 2] = b"\xff" * (len(spoiled) // 2 - 60)
    corrupt.write_bytes(bytes(spoiled))
    good["pristine"] = pristine
    server = FTPServerThread(root, user="radar", password=PASSWORD).start()
    try:
        yield server, good
    finally:
        server.stop()


def hidden_files(root: Path) -> list[Path]:
    """Left-over temporary files (not the download owner's ``.radarlib-download-*.lock``)."""
    return [p for p in root.rglob(".*") if p.is_file() and not p.name.endswith(".lock")]


def test_run_status_reprocess_cycle(
    served: tuple[FTPServerThread, dict[str, Path]], tmp_path: Path
) -> None:
    server, files = served
    data = tmp_path / "data"
    config = write_config(tmp_path / "r.toml", server.port, data)
    db = data / "state.db"
    env = python_env(RADARLIB_FTP_PASSWORD=PASSWORD)

    # 1. run until every volume has an outcome, then SIGTERM -> exit 0
    run = RunProcess(config, tmp_path / "run1.log", env=env)
    run.wait_until(settled(db, 4), db=db)
    assert run.terminate() == 0, run.text()[-3000:]
    log = run.text()
    assert PASSWORD not in log  # never logged, even at DEBUG
    assert "stopped cleanly" in log

    rows = volumes(db)
    assert {v: r["status"] for v, r in rows.items()} == {
        "RMA1_0315_01_2025-11-18T12:30:00Z": "completed",
        "RMA1_0315_02_2025-11-18T12:35:00Z": "completed",
        "RMA2_0315_01_2025-11-18T12:30:00Z": "completed",
        "RMA2_0315_02_2025-11-18T12:35:00Z": "failed",
    }
    assert not any(r["status"] == "processing" for r in rows.values())
    assert hidden_files(data) == []  # no .part / .tmp left behind
    for radar in ("RMA1", "RMA2"):
        names = {p.name for p in (data / radar / "bufr").glob("*.BUFR")}
        assert names == {n for n in files if n.startswith(radar + "_")}
    import netCDF4

    netcdf = Path(rows["RMA1_0315_01_2025-11-18T12:30:00Z"]["netcdf_path"])
    with netCDF4.Dataset(netcdf) as ds:
        assert {"DBZH", "ZDR", "KDP"} <= set(ds.variables)
    with SQLiteStateTracker(db) as tracker:
        assert tracker.integrity_check() == []
    # log lines of a volume carry the radar and the volume id
    line = next(line for line in log.splitlines() if "RMA1_0315_01_2025-11-18T12:30:00Z" in line)
    assert "[RMA1 RMA1_0315_01_2025-11-18T12:30:00Z]" in line

    # 2. status names the failed file and shows what happened
    status = subprocess.run(
        [sys.executable, "-m", "radarlib", "status", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=python_env(),
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "RMA2_0315_02_VRAD_20251118T123500Z.BUFR" in status.stdout
    assert "RMA2_0315_02_2025-11-18T12:35:00Z" in status.stdout and "failed" in status.stdout
    rma1 = next(line for line in status.stdout.splitlines() if line.strip().startswith("RMA1 "))
    assert rma1.split()[1] == str(sum(1 for n in files if n.startswith("RMA1_")))
    as_json = subprocess.run(
        [sys.executable, "-m", "radarlib", "status", "--db", str(db), "--json"],
        capture_output=True, text=True, timeout=60, env=python_env(),
    )  # fmt: skip
    report = json.loads(as_json.stdout)["databases"][0]
    by_radar = {r["radar"]: r for r in report["radars"]}
    assert by_radar["RMA2"]["volumes"]["failed"] == 1
    assert by_radar["RMA1"]["volumes"]["completed"] == 2
    assert by_radar["RMA1"]["last_download"].endswith("Z")

    # 3. the operator fixes the file, resets failed + one completed volume, runs again
    local = data / "RMA2" / "bufr" / "RMA2_0315_02_VRAD_20251118T123500Z.BUFR"
    local.write_bytes(files["pristine"].read_bytes())
    before = netcdf.stat().st_mtime_ns
    for args in (
        ["--status", "failed"],
        [
            "--status",
            "completed",
            "--radar",
            "RMA1",
            "--since",
            "2025-11-18T12:30:00Z",
            "--until",
            "2025-11-18T12:30:00Z",
        ],
    ):
        reset = subprocess.run(
            [sys.executable, "-m", "radarlib", "reprocess", "--config", str(config), *args],
            capture_output=True, text=True, timeout=60, env=python_env(),
        )  # fmt: skip
        assert reset.returncode == 0, reset.stderr
        assert "1 " in reset.stdout and "volume(s) to pending" in reset.stdout
    rows = volumes(db)
    assert rows["RMA2_0315_02_2025-11-18T12:35:00Z"]["status"] == "pending"
    assert rows["RMA1_0315_01_2025-11-18T12:30:00Z"]["status"] == "pending"
    assert rows["RMA1_0315_02_2025-11-18T12:35:00Z"]["status"] == "completed"

    run = RunProcess(config, tmp_path / "run2.log", "--log-format", "json", env=env)

    def all_completed() -> bool:
        rows = volumes(db)
        return len(rows) == 4 and all(r["status"] == "completed" for r in rows.values())

    run.wait_until(all_completed, db=db)
    assert run.terminate() == 0
    assert netcdf.stat().st_mtime_ns > before  # rewritten
    rows = volumes(db)
    assert Path(rows["RMA2_0315_02_2025-11-18T12:35:00Z"]["netcdf_path"]).is_file()
    assert hidden_files(data) == []
    records = [json.loads(line) for line in run.text().splitlines() if line.startswith("{")]
    assert records and all(
        {"time", "level", "logger", "message", "radar"} <= set(r) for r in records
    )
    about = [r for r in records if r["volume_id"] == "RMA2_0315_02_2025-11-18T12:35:00Z"]
    assert about and all(r["radar"] == "RMA2" for r in about)
    assert PASSWORD not in run.text()


def test_run_rejects_a_bad_config_before_starting(tmp_path: Path) -> None:
    config = write_config(tmp_path / "r.toml", 21, tmp_path / "data")
    config.write_text(config.read_text().replace("max_attempts = 1", "max_attempts = 0"))
    result = subprocess.run(
        [sys.executable, "-m", "radarlib", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
        env=python_env(RADARLIB_FTP_PASSWORD=PASSWORD),
    )  # fmt: skip
    assert result.returncode == 2
    assert "processing.max_attempts" in result.stderr and ">= 1" in result.stderr
    assert not (tmp_path / "data").exists()


def test_wrong_password_is_one_clear_error_not_logged(
    served: tuple[FTPServerThread, dict[str, Path]], tmp_path: Path
) -> None:
    server, _ = served
    config = write_config(tmp_path / "r.toml", server.port, tmp_path / "data")
    config.write_text(config.read_text().replace('code = "RMA2"', 'code = "RMA2"\nenabled = false'))
    wrong = "wrong-Pa55word-xyz"
    result = subprocess.run(
        [sys.executable, "-m", "radarlib", "run", "--config", str(config), "--only", "download"],
        capture_output=True, text=True, timeout=90,
        env=python_env(RADARLIB_FTP_PASSWORD=wrong),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "RMA1" in result.stderr and "download" in result.stderr
    assert wrong not in result.stderr and wrong not in result.stdout


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "radarlib", "--help"],
        capture_output=True, text=True, timeout=60, env=python_env(),
    )  # fmt: skip
    for command in ("run", "rescan", "status", "reprocess", "demo", "convert", "inspect"):
        assert command in result.stdout
    for command in ("run", "status", "reprocess", "demo"):
        sub = subprocess.run(
            [sys.executable, "-m", "radarlib", command, "--help"],
            capture_output=True, text=True, timeout=60, env=python_env(),
        )  # fmt: skip
        assert sub.returncode == 0 and "usage: radarlib " + command in sub.stdout


def test_log_lines_carry_radar_and_volume_and_hide_secrets() -> None:
    import io
    import logging

    from radarlib.logsetup import bind_radar, setup_logging

    stream = io.StringIO()
    handler = setup_logging("DEBUG", "json", stream=stream, secrets=[PASSWORD])
    try:
        log = logging.getLogger("radarlib.test")
        bind_radar("RMA9")
        log.info("polling")  # radar from the task's binding
        bind_radar(None)
        log.info("got RMA1_0315_02_VRAD_20251118T123500Z.BUFR")  # from the file name
        log.warning("x", extra={"volume_id": "RMA5_0315_01_2025-11-18T12:30:00Z"})
        log.error("login with %s failed", PASSWORD)
    finally:
        logging.getLogger().removeHandler(handler)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["radar"], r["volume_id"]) for r in records] == [
        ("RMA9", None),
        ("RMA1", "RMA1_0315_02_2025-11-18T12:35:00Z"),
        ("RMA5", "RMA5_0315_01_2025-11-18T12:30:00Z"),
        (None, None),
    ]
    assert PASSWORD not in stream.getvalue() and "login with *** failed" in stream.getvalue()


def test_rescan_command_downloads_a_period_then_a_running_daemon_takes_requests(
    served: tuple[FTPServerThread, dict[str, Path]], tmp_path: Path
) -> None:
    """`radarlib rescan` lists a period itself; while `radarlib run` owns the radar, the
    request goes to that daemon through the state database."""
    server, files = served
    data = tmp_path / "data"
    config = write_config(tmp_path / "r.toml", server.port, data)
    env = python_env(RADARLIB_FTP_PASSWORD=PASSWORD)
    command = [sys.executable, "-m", "radarlib", "rescan", "--config", str(config)]
    window = ["--since", "2025-11-18T12:30:00Z", "--until", "2025-11-18T12:30:00Z"]
    result = subprocess.run(
        [*command, "--radar", "RMA1", *window],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rma1_vol1 = {n for n in files if n.startswith("RMA1_0315_01_")}
    assert f"RMA1: {len(rma1_vol1)} file(s) downloaded" in result.stdout
    assert {p.name for p in (data / "RMA1" / "bufr").glob("*.BUFR")} == rma1_vol1

    run = RunProcess(config, tmp_path / "run.log", "--only", "download", env=env)
    try:
        db = data / "state.db"
        run.wait_until(lambda: (data / "RMA2" / "bufr").is_dir(), db=db)
        queued = subprocess.run(
            [*command, "--radar", "RMA2", *window],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert queued.returncode == 0, queued.stderr[-2000:]
        assert "RMA2: a running daemon owns this radar" in queued.stdout
    finally:
        assert run.terminate() == 0
