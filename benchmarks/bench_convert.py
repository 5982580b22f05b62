"""Benchmark the conversion of the RMA11 0315/01 volume against Py-ART's default writer.

Times (median of ``--reps`` runs, default 7) of each stage of radarlib's conversion —
decode the 4 BUFR files, build the volume and the Py-ART ``Radar``, write the NetCDF —
and, in the same run: Py-ART's default ``pyart.io.write_cfradial`` on the same ``Radar``
(the baseline), the decode floor (libdeflate inflating the same zlib payloads, one after
the other, nothing else), and each other output format written from the same volume.
Bars (issue #17): our whole conversion <= 0.3 x Py-ART's write alone with a file no larger
than Py-ART's, and our decode <= 1.2 x the libdeflate floor. Single process; the decode
inflates the payloads in threads (the inflate releases the GIL)::

    .venv/bin/python benchmarks/bench_convert.py [--reps 7] [--compression-level 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("PYART_QUIET", "1")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "bufr" / "RMA11"
FIELDS = ("DBZH", "DBZV", "ZDR", "KDP")
STAMP = "20251020T152828Z"
BAR = 0.3
DECODE_BAR = 1.2


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table and ratios; exit 1 if the bar is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--compression-level", type=int, default=4)
    args = parser.parse_args(argv)
    if args.reps < 5:
        parser.error("--reps must be at least 5")
    logging.disable(logging.WARNING)  # the decoder warns about sweeps 13-14 every time

    import deflate
    import pyart

    from radarlib.bufr.reader import scan_bufr
    from radarlib.cfradial import write_cfradial
    from radarlib.convert import ConvertOptions, decode_files
    from radarlib.export.cfradial2 import write_cfradial2
    from radarlib.export.odim import write_odim
    from radarlib.export.zarrstore import write_zarr
    from radarlib.radar import volume_to_radar
    from radarlib.volume import assemble_volume

    paths = [SAMPLES / f"RMA11_0315_01_{f}_{STAMP}.BUFR" for f in FIELDS]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"sample files not found: {missing}", file=sys.stderr)
        return 2

    payloads = [
        (bytes(q.stream()), q.nbytes)
        for p in paths
        for s in scan_bufr(p).sweeps
        for q in s.quantities
    ]

    def floor() -> None:
        for stream, size in payloads:
            deflate.zlib_decompress(stream, size)

    stages: dict[str, list[float]] = {
        "floor": [], "decode": [], "decode1": [], "build": [], "write": [], "total": [],
        "pyart": [],
        "odim": [], "cfradial2": [], "zarr": [],
    }  # fmt: skip
    sizes: dict[str, int] = {}
    level = args.compression_level
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        ours = Path(tmp) / "ours.nc"
        theirs = Path(tmp) / "pyart.nc"
        others = {
            "odim": (Path(tmp) / "v.h5", write_odim),
            "cfradial2": (Path(tmp) / "v.cfradial2.nc", write_cfradial2),
            "zarr": (Path(tmp) / "v.zarr", write_zarr),
        }
        for _ in range(args.reps):
            stages["floor"].append(_timed(floor)[0])
            serial = ConvertOptions(decode_threads=1)
            stages["decode1"].append(_timed(lambda: decode_files(paths, options=serial))[0])  # noqa: B023
            t_decode, files = _timed(lambda: decode_files(paths))
            t_build, radar = _timed(lambda: volume_to_radar(assemble_volume(files)))  # noqa: B023
            t_write, _ = _timed(
                lambda: write_cfradial(radar, ours, compression_level=args.compression_level)  # noqa: B023
            )
            t_pyart, _ = _timed(lambda: pyart.io.write_cfradial(str(theirs), radar))  # noqa: B023
            volume = assemble_volume(files)
            for fmt, (target, writer) in others.items():
                kwargs = {} if fmt == "zarr" else {"compression_level": level}
                stages[fmt].append(_timed(lambda: writer(volume, target, **kwargs))[0])  # noqa: B023
            stages["decode"].append(t_decode)
            stages["build"].append(t_build)
            stages["write"].append(t_write)
            stages["total"].append(t_decode + t_build + t_write)
            stages["pyart"].append(t_pyart)
        sizes["ours"] = ours.stat().st_size
        sizes["pyart"] = theirs.stat().st_size
        for fmt, (target, _) in others.items():
            files_in = (
                [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
            )
            sizes[fmt] = sum(p.stat().st_size for p in files_in)

    med = {k: statistics.median(v) for k, v in stages.items()}
    print(f"RMA11 0315/01 ({', '.join(FIELDS)}), median of {args.reps} runs, "
          f"compression level {args.compression_level}")  # fmt: skip
    print(f"{'stage':<34}{'median s':>10}{'min s':>10}")
    labels = {
        "floor": "libdeflate floor (same payloads)",
        "decode": "radarlib decode (4 BUFR files)",
        "decode1": "  the same, inflating in 1 thread",
        "build": "radarlib volume + Radar build",
        "write": "radarlib write_cfradial",
        "total": "radarlib whole conversion",
        "pyart": "Py-ART default write_cfradial",
        "odim": "radarlib write_odim",
        "cfradial2": "radarlib write_cfradial2",
        "zarr": "radarlib write_zarr",
    }
    for key, label in labels.items():
        print(f"{label:<34}{med[key]:>10.3f}{min(stages[key]):>10.3f}")
    print(f"{'file size ours':<34}{sizes['ours'] / 1e6:>9.2f} MB")
    print(f"{'file size Py-ART default':<34}{sizes['pyart'] / 1e6:>9.2f} MB")
    for fmt in others:
        print(
            f"{fmt:<10} write {med[fmt]:.3f} s = {med[fmt] / med['write']:.2f} x CF/Radial's, "
            f"size {sizes[fmt] / 1e6:.2f} MB = {sizes[fmt] / sizes['ours']:.2f} x CF/Radial's"
        )
    time_ratio = med["total"] / med["pyart"]
    size_ratio = sizes["ours"] / sizes["pyart"]
    decode_ratio = med["decode"] / med["floor"]
    print(f"time ratio  ours total / Py-ART write = {time_ratio:.2f} (bar <= {BAR})")
    print(f"size ratio  ours / Py-ART             = {size_ratio:.2f} (bar <= 1.00)")
    print(f"decode ratio  decode / libdeflate floor = {decode_ratio:.2f} (bar <= {DECODE_BAR})")
    print(
        f"  (1 thread: {med['decode1'] / med['floor']:.2f}; load average {os.getloadavg()[0]:.1f})"
    )
    ok = time_ratio <= BAR and size_ratio <= 1.0 and decode_ratio <= DECODE_BAR
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
