"""The conversion process pool: results and errors come back, a dead worker only costs its job."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from radarlib.pipeline.workers import (
    ConversionJob,
    ConversionPool,
    WorkerDiedError,
    run_job,
)

HERE = f"{__name__}"


@dataclass(frozen=True)
class FakeResult:
    """Stands in for radarlib.convert.ConversionResult (same attribute names)."""

    path: Path
    fields: tuple[str, ...]
    missing_fields: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def fake_convert(files, output_dir, *, options=None, expected_fields=None):  # type: ignore[no-untyped-def]
    """Write a tiny file naming the inputs and the converting process; crash on request."""
    names = [Path(f).name for f in files]
    if any("CRASH" in Path(f).read_text() for f in files):
        os._exit(3)  # a worker dying hard, as a segfault or the OOM killer would
    if any("BAD" in Path(f).read_text() for f in files):
        raise ValueError(f"{names[0]}: truncated section 4")
    out = Path(output_dir) / (names[0] + ".out")
    out.write_text(f"{os.getpid()}\n" + "\n".join(names))
    fields = tuple(sorted(n.split("_")[3] for n in names))
    missing = tuple(sorted(set(expected_fields or ()) - set(fields)))
    return FakeResult(out, fields, missing, ("a warning",))


def _job(tmp_path: Path, name: str, content: str = "ok", volume: str = "V1") -> ConversionJob:
    src = tmp_path / name
    src.write_text(content)
    return ConversionJob(
        volume_id=volume,
        files=(str(src),),
        output_dir=str(tmp_path),
        expected_fields=("DBZH", "ZDR"),
        converter=f"{HERE}:fake_convert",
    )


def test_run_job_reports_result_and_missing_fields(tmp_path: Path) -> None:
    outcome = run_job(_job(tmp_path, "RMA1_0315_01_DBZH_20250101T000000Z.BUFR"))
    assert outcome.ok, outcome
    assert Path(outcome.netcdf_path or "").read_text().endswith("DBZH_20250101T000000Z.BUFR")
    assert outcome.fields == ("DBZH",)
    assert outcome.missing_fields == ("ZDR",)
    assert outcome.warnings == ("a warning",)


def test_run_job_turns_exceptions_into_outcomes(tmp_path: Path) -> None:
    outcome = run_job(_job(tmp_path, "RMA1_0315_01_DBZH_20250101T000000Z.BUFR", "BAD"))
    assert not outcome.ok
    assert outcome.error_type == "ValueError"
    assert outcome.error_message == (
        "ValueError: RMA1_0315_01_DBZH_20250101T000000Z.BUFR: truncated section 4"
    )
    assert "fake_convert" in (outcome.error_traceback or "")


def test_run_job_names_a_missing_local_file(tmp_path: Path) -> None:
    job = _job(tmp_path, "RMA1_0315_01_DBZH_20250101T000000Z.BUFR")
    Path(job.files[0]).unlink()
    outcome = run_job(job)
    assert not outcome.ok
    assert outcome.error_type == "FileNotFoundError"
    assert "RMA1_0315_01_DBZH_20250101T000000Z.BUFR: local BUFR file is missing" in (
        outcome.error or ""
    )


def test_run_job_reports_an_unimportable_converter(tmp_path: Path) -> None:
    job = _job(tmp_path, "RMA1_0315_01_DBZH_20250101T000000Z.BUFR")
    outcome = run_job(ConversionJob(**{**job.__dict__, "converter": "no.such.module:convert"}))
    assert not outcome.ok
    assert outcome.error_type == "ModuleNotFoundError"


def test_pool_runs_jobs_in_other_processes_and_survives_a_dead_worker(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = ConversionPool(2, converter=f"{HERE}:fake_convert")
        try:
            await pool.warm_up()
            assert len(pool.worker_pids()) == 2
            good = [
                _job(tmp_path, f"RMA1_0315_01_DBZH_2025010{i}T000000Z.BUFR", volume=f"V{i}")
                for i in range(1, 5)
            ]
            outcomes = await asyncio.gather(*(pool.convert(j) for j in good))
            assert all(o.ok for o in outcomes)
            pids = {int(Path(o.netcdf_path or "").read_text().split()[0]) for o in outcomes}
            assert os.getpid() not in pids  # never converted in the daemon's process
            assert pids <= {o.worker_pid for o in outcomes}

            # a job that kills its worker fails alone; the job beside it is unaffected
            crash = _job(tmp_path, "RMA1_0315_01_DBZH_20250201T000000Z.BUFR", "CRASH", "VX")
            beside = _job(tmp_path, "RMA1_0315_01_KDP_20250201T000000Z.BUFR", volume="VY")
            results = await asyncio.gather(
                pool.convert(crash), pool.convert(beside), return_exceptions=True
            )
            assert isinstance(results[0], WorkerDiedError)
            assert str(results[0]).startswith("VX: the worker process died")
            assert not isinstance(results[1], BaseException) and results[1].ok
            assert pool.restarts == 1
            # the dead worker's slot gets a fresh process
            again = await asyncio.gather(
                *(
                    pool.convert(_job(tmp_path, f"RMA1_0315_01_ZDR_2025030{i}T000000Z.BUFR"))
                    for i in (1, 2)
                )
            )
            assert all(o.ok for o in again)
            assert pool.restarts == 1
            assert len(pool.worker_pids()) == 2
        finally:
            await pool.close(abandon=False)
        assert pool.worker_pids() == []

    asyncio.run(scenario())


def test_kill_terminates_workers_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = ConversionPool(1, converter=f"{HERE}:fake_convert")
        await pool.warm_up()
        pids = pool.worker_pids()
        assert len(pids) == 1
        await pool.close(abandon=True)
        assert pool.worker_pids() == []
        with pytest.raises(ProcessLookupError):
            os.kill(pids[0], 0)

    asyncio.run(scenario())


def test_pool_rejects_zero_workers() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        ConversionPool(0)


def slow_convert(files, output_dir, *, options=None, expected_fields=None):  # type: ignore[no-untyped-def]
    """A conversion that would take a minute."""
    import time

    time.sleep(60)
    return fake_convert(files, output_dir, options=options, expected_fields=expected_fields)


def test_a_busy_worker_exits_when_its_stdin_closes(tmp_path: Path) -> None:
    """The pipe alone ends a worker whose parent is gone, even in the middle of a job."""
    import subprocess
    import sys
    import time

    from radarlib.pipeline.worker import PARENT_ENV, read_frame, write_frame

    env = {k: v for k, v in os.environ.items() if k != PARENT_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), *sys.path])
    proc = subprocess.Popen(
        [sys.executable, "-m", "radarlib.pipeline.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        write_frame(proc.stdin, {"sys_path": sys.path, "converter": f"{HERE}:slow_convert"})
        assert read_frame(proc.stdout) == ("ready", proc.pid)
        job = _job(tmp_path, "RMA1_0315_01_DBZH_20250101T000000Z.BUFR")
        write_frame(
            proc.stdin,
            ("job", ConversionJob(**{**job.__dict__, "converter": f"{HERE}:slow_convert"})),
        )
        time.sleep(0.5)
        assert proc.poll() is None  # converting
        started = time.monotonic()
        proc.stdin.close()
        proc.wait(timeout=5)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def worker_square(value: int) -> tuple[int, int]:
    """Runs in a worker: the square and the process that computed it."""
    return value * value, os.getpid()


def worker_refuse(value: int) -> int:
    raise KeyError(f"no value {value}")


def worker_unpicklable(_value: int) -> object:
    return lambda: None  # a lambda cannot cross the pipe


def worker_die(_value: int) -> int:
    os._exit(5)


def test_pool_call_runs_functions_in_workers(tmp_path: Path) -> None:
    """``ConversionPool.call`` (the product stage's jobs): results, errors, a dead worker."""

    async def scenario() -> None:
        pool = ConversionPool(1, converter=f"{HERE}:fake_convert")
        try:
            square, pid = await pool.call(worker_square, 7)
            assert square == 49 and pid != os.getpid() and pid in pool.worker_pids()
            with pytest.raises(KeyError, match="no value 3"):
                await pool.call(worker_refuse, 3)
            with pytest.raises(RuntimeError, match="worker_unpicklable: its result cannot"):
                await pool.call(worker_unpicklable, 1)
            assert pool.worker_pids() == [pid]  # none of that cost the worker
            with pytest.raises(WorkerDiedError, match=r"worker_die.*exited with status 5"):
                await pool.call(worker_die, 1)
            assert pool.restarts == 1
            square, second = await pool.call(worker_square, 3)
            assert square == 9 and second != pid
        finally:
            await pool.close(abandon=False)
        assert pool.worker_pids() == []

    asyncio.run(scenario())
