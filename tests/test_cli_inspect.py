"""``radarlib inspect`` as users run it: a real subprocess on the sample files, text and --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

AR5 = "AR5_1000_1_DBZH_20240101T000746Z.BUFR"
KDP = "RMA11_0315_01_KDP_20251020T152828Z.BUFR"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radarlib", "inspect", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_text_summary(sample_paths, expected: dict[str, Any]):
    done = run(sample_paths[KDP])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    exp = expected[KDP]
    assert str(sample_paths[KDP]) in out
    assert "radar RMA11" in out and "field KDP" in out and "station ids RMA 11" in out
    assert "lat -27.50260" in out and "lon -64.90575" in out and "height 313 m" in out
    assert "time 2025-10-20T15:28:28Z" in out
    counts = exp["counts"]
    assert (
        f"gates valid {counts['valid']}, undetect {counts['undetect']}, "
        f"nodata {counts['nodata']}, nan {counts['nan']}"
    ) in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:2].strip().isdigit()]
    rows = [r for r in rows if len(r) == 14]
    assert len(rows) == exp["nsweeps"]
    for k, (row, sweep) in enumerate(zip(rows, exp["sweeps"], strict=True)):
        index, start, end, elev, nrays, ngates, size, offset, a1gate, code = row[:10]
        assert int(index) == k and (start, end) == (sweep["start"], sweep["end"])
        assert float(elev) == sweep["elevation"] and int(nrays) == sweep["nrays"]
        assert int(ngates) == sweep["ngates"] and float(size) == sweep["range_size"]
        assert float(offset) == sweep["range_offset"] and int(a1gate) == sweep["a1gate"]
        assert int(code) == sweep["quantity_code"]
    # the not-acquired sweeps 13 and 14 are all nodata
    assert int(rows[13][12]) == 360 * exp["sweeps"][13]["ngates"]
    assert "ends" in done.stderr  # their end-before-start warning


def test_json_lines_one_object_per_file(sample_paths, expected):
    done = run("--json", sample_paths[AR5], sample_paths[KDP])
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(o["file"]).name for o in objects] == [AR5, KDP]
    for obj in objects:
        exp = expected[Path(obj["file"]).name]
        assert obj["counts"] == exp["counts"]
        assert obj["nsweeps"] == exp["nsweeps"] == len(obj["sweeps"])
        assert obj["station"]["latitude"] == exp["station"]["lat"]
        assert obj["station"]["ids"] == exp["station_ids"]
        assert obj["section1"]["local_version"] == exp["section1"]["local_version"]
        for sweep, es in zip(obj["sweeps"], exp["sweeps"], strict=True):
            assert (sweep["start"], sweep["end"], sweep["a1gate"]) == (
                es["start"],
                es["end"],
                es["a1gate"],
            )
            assert sweep["quantities"][0]["n_chunks"] == es["n_chunks"]
    assert objects[0]["radar"] == "AR5" and objects[1]["field"] == "KDP"


def test_bad_file_is_named_and_the_others_still_shown(sample_paths, tmp_path: Path):
    broken = tmp_path / "RMA1_0315_01_DBZH_20251118T123000Z.BUFR"
    broken.write_bytes(sample_paths[AR5].read_bytes()[:1000])
    empty = tmp_path / "empty.BUFR"
    empty.write_bytes(b"")
    done = run(broken, sample_paths[AR5], empty)
    assert done.returncode == 1
    assert f"{broken}: truncated" in done.stderr and f"{empty}: empty file" in done.stderr
    assert "Traceback" not in done.stderr
    assert str(sample_paths[AR5]) in done.stdout and "radar AR5" in done.stdout

    done = run("--json", broken, sample_paths[AR5])
    assert done.returncode == 1
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["file"] == str(broken) and "truncated" in first["error"]
    assert second["radar"] == "AR5" and "error" not in second
