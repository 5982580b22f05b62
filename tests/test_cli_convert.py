"""``radarlib convert``: folders and files in, one NetCDF per volume out, failures named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import pytest

from radarlib.bufr import write_bufr
from radarlib.bufr.synthetic import synthetic_volume
from radarlib.cli import main
from radarlib.cli.convert import collect_files

os.environ.setdefault("PYART_QUIET", "1")

AR5 = "AR5_1000_1_DBZH_20240101T000746Z.BUFR"


def test_converts_every_volume_found_in_folders_and_files(
    rma11_dir: Path, samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["convert", str(rma11_dir), str(samples_dir / AR5), "-o", str(out),
                 "--compression-level", "1"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = [line for line in captured.out.splitlines() if line.startswith("OK ")]
    assert len(lines) == 3
    vol01 = next(line for line in lines if "RMA11_0315_01_" in line)
    assert "fields=DBZH,DBZV,ZDR,KDP missing=PHIDP,RHOHV sweeps=15 rays=5400 gates=653" in vol01
    assert str(out / "RMA11_0315_01_20251020T152828Z.nc") in vol01
    assert "warning: sweep 13: end time" in captured.out
    assert sorted(p.name for p in out.iterdir()) == [
        "AR5_1000_1_20240101T000746Z.nc",
        "RMA11_0315_01_20251020T152828Z.nc",
        "RMA11_0315_02_20251020T152429Z.nc",
    ]
    with netCDF4.Dataset(out / "RMA11_0315_02_20251020T152429Z.nc") as ds:
        assert ds["VRAD"].filters()["complevel"] == 1
        assert ds.missing_fields == ""


def test_failed_volume_named_with_file_and_reason_exit_1(
    rma11_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for p in rma11_dir.glob("RMA11_0315_02_*.BUFR"):
        data = p.read_bytes()
        (src / p.name).write_bytes(data[:1000] if "WRAD" in p.name else data)
    good = synthetic_volume("RMA1", "0315", "02", nsweeps=1, ngates=20)
    for f in good.values():
        assert f.filename is not None
        (src / f.filename.name).write_bytes(write_bufr(f))
    (src / "notes.txt").write_text("not a radar file")
    out = tmp_path / "out"
    code = main(["convert", str(src), "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert (
        "FAILED RMA11_0315_02_2025-10-20T15:24:29Z: RMA11_0315_02_WRAD_20251020T152429Z.BUFR"
        in (captured.err)
    )
    assert "cannot decode" in captured.err
    assert [p.name for p in out.iterdir()] == ["RMA1_0315_02_20251118T123000Z.nc"]
    assert "OK RMA1_0315_02_" in captured.out


def test_bad_paths_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "odd.BUFR"
    odd.write_bytes(b"BUFR")
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["convert", str(odd), str(empty), str(tmp_path / "missing"), "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "odd.BUFR" in err and "does not match" in err
    assert "no radar BUFR files in this folder" in err
    assert "no such file or folder" in err
    files, problems = collect_files([empty])
    assert files == [] and len(problems) == 1


def test_runs_as_a_command(rma11_dir: Path, tmp_path: Path) -> None:
    vrad = rma11_dir / "RMA11_0315_02_VRAD_20251020T152429Z.BUFR"
    proc = subprocess.run(
        [sys.executable, "-m", "radarlib", "convert", str(vrad), "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "fields=VRAD missing=WRAD sweeps=5 rays=1800 gates=320" in proc.stdout
    assert (tmp_path / "RMA11_0315_02_20251020T152429Z.nc").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "radarlib", "convert", str(vrad), "-o", str(tmp_path),
         "--compression-level", "12"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "compression-level" in bad.stderr


def test_each_sweep_time_warning_is_printed_once(rma11_dir: Path, tmp_path: Path) -> None:
    """RMA11 0315/01's sweeps 13 and 14 end before they start, in each of its 4 field files."""
    files = sorted(str(p) for p in rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    proc = subprocess.run(
        [sys.executable, "-m", "radarlib", "convert", *files, "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    for sweep in (13, 14):
        lines = [line for line in output.splitlines() if f"sweep {sweep}" in line]
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"  warning: sweep {sweep}: end time 2025-10-20T15:32:32Z")
