"""Decode speed and memory of radarlib.bufr.read_bufr against an inflate-only floor, same run.

    python benchmarks/bench_decode.py [--repeats 9] [--strict]

Per sample file (../shared/data/bufr relative to the repository root) and in total, the
median time of ``read_bufr(path)`` beside the floor "read the file + stdlib
``zlib.decompress`` of the same streams" (streams extracted once, outside the timing), and
the ratio. The decode is timed with each available inflate backend (libdeflate through the
``deflate`` package, and stdlib zlib), and the libdeflate floor is shown too. Then the peak
RSS of decoding the RMA11 DBZH file in a fresh process, beside a fresh process that only
imports numpy (the child's own peak: VmHWM on Linux, where ru_maxrss would carry over this
process's peak across fork+exec; ru_maxrss elsewhere).
Bars: total decode <= 1.3 x stdlib floor; peak RSS < 120 MB; stretch: total below the
stdlib floor. ``--strict`` exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from radarlib.bufr import inflate as inflate_mod
from radarlib.bufr import read_bufr
from radarlib.bufr.bits import BitReader
from radarlib.bufr.decoder import decode_values
from radarlib.bufr.sections import parse_message
from radarlib.bufr.tables import Replication, Sequence, Tables

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "bufr"
RSS_FILE = "RMA11_0315_01_DBZH_20251020T152828Z.BUFR"
BAR_RATIO, BAR_RSS_MB = 1.3, 120.0

Streams = list[tuple[bytes, int]]


def extract_streams(path: Path) -> Streams:
    """(zlib stream, inflated size) of every sweep x quantity, for the floor."""
    bufr = read_bufr(path)
    message = parse_message(memoryview(path.read_bytes()))
    nodes = Tables.load().expand(message.descriptors)
    runs: list[bytes] = []

    def walk(nodes: tuple, values: list) -> None:
        for node, value in zip(nodes, values, strict=True):
            if isinstance(node, Sequence):
                walk(node.body, value)
            elif isinstance(node, Replication):
                if node.byte_run:
                    runs.append(bytes(value))
                else:
                    for one in value:
                        walk(node.body, one)

    walk(nodes, decode_values(nodes, BitReader(message.data)))
    streams: Streams = []
    at = 0
    for sweep in bufr.sweeps:
        for q in sweep.quantities:
            streams.append((b"".join(runs[at : at + q.n_chunks]), q.data.nbytes))
            at += q.n_chunks
    if at != len(runs):
        raise SystemExit(f"{path.name}: {len(runs)} byte runs, {at} accounted for")
    for stream, size in streams:  # the floor must do the same work as the decoder
        if len(zlib.decompress(stream)) != size:
            raise SystemExit(f"{path.name}: stream does not inflate to {size} bytes")
    return streams


def floor_zlib(path: Path, streams: Streams) -> None:
    path.read_bytes()
    for stream, size in streams:
        zlib.decompress(stream, 15, size)


def floor_libdeflate(path: Path, streams: Streams) -> None:
    path.read_bytes()
    for stream, size in streams:
        inflate_mod._deflate.zlib_decompress(stream, size)


def floor_zlib_kept(path: Path, streams: Streams) -> None:
    """As the floor, but keeping every output until the end, as a decoder must.

    Dropping each output lets malloc hand the same warm pages to the next stream; keeping
    them costs first-touch page faults on fresh memory (large on this VM).
    """
    path.read_bytes()
    kept = [zlib.decompress(stream, 15, size) for stream, size in streams]
    del kept


def floor_libdeflate_kept(path: Path, streams: Streams) -> None:
    path.read_bytes()
    kept = [inflate_mod._deflate.zlib_decompress(stream, size) for stream, size in streams]
    del kept


def decode_with(backend: str) -> Callable[[Path, Streams], None]:
    def run(path: Path, _streams: Streams) -> None:
        inflate_mod.BACKEND = backend
        try:
            read_bufr(path)
        finally:
            inflate_mod.BACKEND = DEFAULT_BACKEND

    return run


DEFAULT_BACKEND = inflate_mod.BACKEND


_RSS_PROBE = """
import resource, sys
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # Linux: ru_maxrss keeps the parent's peak across fork+exec; VmHWM is this process's own
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    if sys.platform == "darwin":
        peak //= 1024  # bytes there, KiB elsewhere
print(peak)
"""


def peak_rss_mb(code: str) -> float:
    """Peak resident set size (MB) of a fresh interpreter running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", code + "\n" + _RSS_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per case (>= 7)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a bar is missed")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the decoder warns about RMA11 sweeps 13-14 every time
    repeats = max(7, args.repeats)
    paths = sorted(SAMPLES.rglob("*.BUFR"))
    if not paths:
        raise SystemExit(f"no sample files under {SAMPLES}")
    have_libdeflate = inflate_mod._deflate is not None
    cases: dict[str, Callable[[Path, Streams], None]] = {
        "floor zlib": floor_zlib,
        "floor zlib kept": floor_zlib_kept,
    }
    if have_libdeflate:
        cases["floor libdeflate"] = floor_libdeflate
        cases["floor libdeflate kept"] = floor_libdeflate_kept
        cases["decode libdeflate"] = decode_with("libdeflate")
    cases["decode zlib"] = decode_with("zlib")

    medians: dict[str, dict[str, float]] = {name: {} for name in cases}
    for path in paths:
        streams = extract_streams(path)
        for fn in cases.values():  # warm up caches and the page cache
            fn(path, streams)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        gc.disable()
        try:
            for _ in range(repeats):
                for name, fn in cases.items():  # interleaved: noise hits every case alike
                    t0 = time.perf_counter()
                    fn(path, streams)
                    samples[name].append(time.perf_counter() - t0)
        finally:
            gc.enable()
        for name in cases:
            medians[name][path.name] = statistics.median(samples[name]) * 1000

    default = "decode libdeflate" if have_libdeflate else "decode zlib"
    print(f"read_bufr decode time, median of {repeats} (ms); default backend: {DEFAULT_BACKEND}")
    print("floor = read file + inflate the same streams; 'kept' = outputs kept alive (see code);")
    print("ratio = decode / stdlib floor (the bar); ldf = libdeflate")
    head = f"{'file':41} {'MB':>4} {'floor zlib':>10} {'kept':>6}"
    if have_libdeflate:
        head += f" {'floor ldf':>9} {'kept':>6} {'decode ldf':>10} {'ratio':>5}"
    head += f" {'decode zlib':>11} {'ratio':>5}"
    print(head)
    print("-" * len(head))
    names = [p.name for p in paths] + ["TOTAL"]
    sizes = {p.name: p.stat().st_size / 1e6 for p in paths}
    sizes["TOTAL"] = sum(sizes.values())
    for name in list(medians):
        medians[name]["TOTAL"] = sum(medians[name].values())
    for name in names:
        fz = medians["floor zlib"][name]
        row = f"{name:41} {sizes[name]:4.2f} {fz:10.2f} {medians['floor zlib kept'][name]:6.2f}"
        if have_libdeflate:
            dl = medians["decode libdeflate"][name]
            row += (
                f" {medians['floor libdeflate'][name]:9.2f}"
                f" {medians['floor libdeflate kept'][name]:6.2f} {dl:10.2f} {dl / fz:5.2f}"
            )
        dz = medians["decode zlib"][name]
        row += f" {dz:11.2f} {dz / fz:5.2f}"
        if name == "TOTAL":
            print("-" * len(head))
        print(row)

    rss_path = next((p for p in paths if p.name == RSS_FILE), paths[0])
    numpy_only = peak_rss_mb("import numpy")
    decoded = peak_rss_mb(f"from radarlib.bufr import read_bufr; read_bufr({str(rss_path)!r})")
    print()
    print(
        f"peak RSS, fresh process: import numpy only {numpy_only:.1f} MB; "
        f"decode {rss_path.name} {decoded:.1f} MB (+{decoded - numpy_only:.1f} MB)"
    )

    total_ratio = medians[default]["TOTAL"] / medians["floor zlib"]["TOTAL"]
    bars = [
        (
            f"total {default} <= {BAR_RATIO} x stdlib floor",
            total_ratio <= BAR_RATIO,
            f"{total_ratio:.2f} x",
        ),
        (f"peak RSS < {BAR_RSS_MB:.0f} MB", decoded < BAR_RSS_MB, f"{decoded:.1f} MB"),
    ]
    stretch = (
        f"stretch: total {default} below the stdlib floor",
        total_ratio < 1.0,
        f"{total_ratio:.2f} x",
    )
    print()
    for label, ok, value in [*bars, stretch]:
        print(f"{'PASS' if ok else 'MISS':4}  {label}: {value}")
    return 1 if args.strict and not all(ok for _, ok, _ in bars) else 0


if __name__ == "__main__":
    sys.exit(main())
