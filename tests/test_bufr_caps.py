"""The decoder bounds its work on hostile input before allocating (issue #14 item 5).

* nested replications (``1 05 255, 1 04 255, 1 03 255, 1 01 000, 0 31 000, 0 02 001``,
  section 4 zeros, 2 MB): refused after section 3, naming the file and the descriptor;
  hidden behind the radar template, stopped by the value budget;
* a valid 978 KB file declaring 15 sweeps of 2046 x 4094 gates (1 GB decoded): refused by
  the per-file cap before any stream is inflated; the per-volume cap likewise.

Time and peak memory (VmHWM) are measured in a child process (generous bounds, no tight
timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from radarlib.bufr import read_bufr
from radarlib.bufr.reader import MAX_DECODED_VALUES, scan_bufr
from radarlib.convert import ConvertOptions, decode_files
from radarlib.errors import BufrDecodeError, VolumeError
from test_bufr_bad_input import build, chunked

NESTED = (105255, 104255, 103255, 101000, 31000, 2001)
RADAR_TEMPLATE = (321204, 301031, 321203)


def message(descriptors: tuple[int, ...], data: bytes) -> bytes:
    """A BUFR edition-4 message with the given section-3 descriptors and section-4 data."""
    sec1 = bytes([0, 0, 22, 0, 0, 41, 0, 0, 0, 0, 6, 2, 0, 16, 2])
    sec1 += (2025).to_bytes(2, "big") + bytes([1, 2, 3, 4, 0])
    desc = b"".join(
        (((d // 100000) << 14) | ((d // 1000 % 100) << 8) | (d % 1000)).to_bytes(2, "big")
        for d in descriptors
    )
    body = b"\x00" + (1).to_bytes(2, "big") + b"\x80" + desc
    body += b"\x00" * ((len(body) + 3) % 2)
    sec3 = (len(body) + 3).to_bytes(3, "big") + body
    data += b"\x00" * (len(data) % 2)
    sec4 = (4 + len(data)).to_bytes(3, "big") + b"\0" + data
    total = 8 + len(sec1) + len(sec3) + len(sec4) + 4
    return b"BUFR" + total.to_bytes(3, "big") + b"\x04" + sec1 + sec3 + sec4 + b"7777"


def nested_bomb() -> bytes:
    return message(NESTED, bytes(2 << 20))


def huge_sweeps(nsweeps: int = 15, nrays: int = 2046, ngates: int = 4094) -> bytes:
    """A valid radar file of ``nsweeps`` all-zero sweeps of nrays x ngates (about 65 KB each)."""
    packer = zlib.compressobj(9)
    row = bytes(ngates * 8)
    stream = b"".join(packer.compress(row) for _ in range(nrays)) + packer.flush()
    sweep = (nrays, ngates, [(0, 0, chunked(stream))])
    return build([sweep] * nsweeps)


def test_nested_replications_are_refused_before_section_4(tmp_path: Path) -> None:
    path = tmp_path / "RMA1_0315_01_DBZH_20250102T030400Z.BUFR"
    path.write_bytes(nested_bomb())
    with pytest.raises(BufrDecodeError) as info:
        read_bufr(path)
    text = str(info.value)
    assert text.startswith(f"{path}: not the radar polar-volume template")
    assert "1 05 255" in text and "section 4" in text


def test_nested_replications_behind_the_radar_template_hit_the_value_budget() -> None:
    bomb = message(NESTED + RADAR_TEMPLATE, bytes(2 << 20))
    with pytest.raises(BufrDecodeError, match=f"more than {MAX_DECODED_VALUES} values"):
        read_bufr(bomb, name="hidden.BUFR")


def test_declared_size_above_the_file_cap_is_refused_before_inflating() -> None:
    data = huge_sweeps()
    assert 900_000 < len(data) < 1_100_000  # the 978 KB file of the report
    with pytest.raises(BufrDecodeError, match=r"declares 958\.6 MiB.*15 sweeps of 2046x4094"):
        read_bufr(data, name="big.BUFR")
    layout = scan_bufr(data, name="big.BUFR", max_decoded_bytes=None)  # metadata only
    assert layout.decoded_bytes == 15 * 2046 * 4094 * 8
    with pytest.raises(BufrDecodeError, match="more than the 10 MiB allowed"):
        read_bufr(huge_sweeps(2, 360, 4094), name="b.BUFR", max_decoded_bytes=10 << 20)


def test_volume_cap_names_the_file_that_crosses_it(rma11_dir: Path) -> None:
    files = sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    opts = ConvertOptions(max_decoded_bytes_per_volume=50 << 20)  # real files: 19.8 MB each
    with pytest.raises(VolumeError, match=r"RMA11_0315_01_\w+\.BUFR: cannot decode: .*per volume"):
        decode_files(files, options=opts)
    assert len(decode_files(files)) == 4  # the defaults are far above real volumes


_CHILD = """
import json, sys, time
from radarlib.bufr import read_bufr
from radarlib.errors import BufrDecodeError
began = time.perf_counter()
try:
    read_bufr(sys.argv[1])
    error = None
except BufrDecodeError as exc:
    error = str(exc)
# VmHWM: peak RSS of this process image (ru_maxrss would include the forking parent's)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
print(json.dumps({"error": error, "seconds": time.perf_counter() - began,
                  "peak_mb": peak_kb / 1024}))
"""


@pytest.mark.parametrize("make", [nested_bomb, huge_sweeps], ids=["nested", "huge"])
def test_hostile_files_fail_fast_and_small_in_a_child_process(make, tmp_path: Path) -> None:
    path = tmp_path / "RMA1_0315_01_DBZH_20250102T030400Z.BUFR"
    path.write_bytes(make())
    src = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["error"] and report["error"].startswith(str(path))
    assert report["seconds"] < 20  # was 71 s for the nested file
    assert report["peak_mb"] < 400  # was 3.9 GB (nested) and 1 GB (huge)
