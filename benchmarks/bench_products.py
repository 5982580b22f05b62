"""Benchmark the products of the real RMA11 0315/01 volume against Py-ART, and the product stage's
cost to the pipeline's throughput.

    .venv/bin/python benchmarks/bench_products.py [--rounds 5] [--reps 3] [--levels 16]
                                                  [--volumes 20] [--no-pipeline]

1. Products of one volume (the sample converted once with QC, so DBZH_QC is there), medians:
   radarlib's COLMAX grid (240 km, 1 km: 480 x 480; the cached nearest-gate mapping, so the
   gather only), 2 PPI PNGs (DBZH sweeps 0 and 2), the COLMAX PNG and COG; and, in the same
   run, Py-ART's own gridding of the same field on the same horizontal grid
   (``pyart.map.grid_from_radars``, ``--levels`` heights 0.5-15 km, its default Barnes
   weighting; COLMAX = the maximum over the levels) and its plotting (``RadarDisplay.plot_ppi``
   twice and the COLMAX image with matplotlib). Py-ART has no COG writer without GDAL's
   Python bindings, so its side has no COG. Bar: our grid <= 0.25 x Py-ART's grid. The
   one-time mapping build (first volume of a radar geometry) is reported apart.
2. ``bench_pipeline.py``'s throughput (2 workers; 0315/01 volumes of DBZH, 5 x 360 x 320)
   without and with the product stage in the same run (the product daemon making COLMAX
   PNG + transparent PNG + COG and a lowest-sweep PPI + transparent PPI per volume, in its
   own worker process). Bar: with products >= 0.5 x without.
"""

from __future__ import annotations

import argparse
import asyncio
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
GRID_BAR = 0.25
PIPELINE_BAR = 0.5


def _median(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(reps):
        began = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), value


def _ours(nc: Path, out: Path, reps: int) -> dict[str, float]:
    from radarlib.products import grid
    from radarlib.products.cog import write_cog
    from radarlib.products.colmax import make_colmax
    from radarlib.products.grid import GridSpec, build_mapping, mapping_for
    from radarlib.products.polar import read_polar
    from radarlib.products.ppi import render_colmax, render_ppi

    spec = GridSpec(240.0, 1.0)
    read, volume = _median(lambda: read_polar(nc), reps)
    build, _ = _median(lambda: build_mapping(volume, spec), reps)
    grid._MEMORY.clear()
    mapping = mapping_for(volume, spec)
    field = volume.reflectivity()
    gather, _ = _median(lambda: mapping.column_max(volume, field), reps)
    colmax_t, colmax = _median(lambda: make_colmax(volume, spec), reps)
    ppi, _ = _median(
        lambda: [render_ppi(volume, "DBZH", s, out / f"ppi{s}.png", fsync=False) for s in (0, 2)],
        reps,
    )
    png, _ = _median(lambda: render_colmax(colmax, out / "colmax.png", fsync=False), reps)
    cog, _ = _median(lambda: write_cog(colmax, out / "colmax.tif", fsync=False), reps)
    return {"read": read, "build": build, "grid": gather, "colmax": colmax_t, "ppi2": ppi,
            "colmax_png": png, "cog": cog}  # fmt: skip


def _pyart(nc: Path, out: Path, reps: int, levels: int) -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np
    import pyart

    read, radar = _median(lambda: pyart.io.read_cfradial(str(nc)), reps)

    def grid() -> Any:
        return pyart.map.grid_from_radars(
            radar,
            grid_shape=(levels, 480, 480),
            grid_limits=((500.0, 15000.0), (-240000.0, 240000.0), (-240000.0, 240000.0)),
            fields=["DBZH_QC"],
        )

    grid_t, g = _median(grid, reps)
    colmax = np.ma.max(g.fields["DBZH_QC"]["data"], axis=0)

    def ppis() -> None:
        for sweep in (0, 2):
            fig = plt.figure(figsize=(8, 7))
            display = pyart.graph.RadarDisplay(radar)
            display.plot_ppi("DBZH_QC", sweep, vmin=-10, vmax=75, cmap="NWSRef")
            display.plot_range_rings([50, 100, 150, 200])
            fig.savefig(out / f"pyart_ppi{sweep}.png")
            plt.close(fig)

    def colmax_png() -> None:
        fig = plt.figure(figsize=(8, 7))
        plt.imshow(colmax, origin="lower", cmap="NWSRef", vmin=-10, vmax=75,
                   extent=(-240, 240, -240, 240))  # fmt: skip
        plt.colorbar()
        plt.title("COLMAX (Py-ART grid)")
        fig.savefig(out / "pyart_colmax.png")
        plt.close(fig)

    ppi, _ = _median(ppis, reps)
    png, _ = _median(colmax_png, reps)
    return {"read": read, "grid": grid_t, "ppi2": ppi, "colmax_png": png}


def _pipeline(volumes: int, poll: float, reps: int) -> tuple[float, float]:
    """Median volumes/min of bench_pipeline's run_case (2 workers) without / with products."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_pipeline

    args = argparse.Namespace(
        volumes=volumes,
        latency_volumes=1,
        poll=poll,
        product_volumes=True,  # same volumes
    )
    rates: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench_products_") as tmp:
        for rep in range(reps):
            for products in (False, True):  # interleaved: both see the same machine load
                base = Path(tmp) / f"rep{rep}"
                result = asyncio.run(bench_pipeline.run_case(2, args, base, products=products))
                rates[products].append(float(result["throughput"]))
    return statistics.median(rates[False]), statistics.median(rates[True])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians)")
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--volumes", type=int, default=20)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--pipeline-reps", type=int, default=1)
    parser.add_argument("--no-pipeline", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    files = sorted(SAMPLES.glob("RMA11_0315_01_*.BUFR"))
    if not files:
        print(f"sample files not found in {SAMPLES}", file=sys.stderr)
        return 2
    from radarlib.convert import ConvertOptions, convert_volume
    from radarlib.qc import QCConfig

    with tempfile.TemporaryDirectory(prefix="bench_products_") as tmp:
        out = Path(tmp)
        nc = convert_volume(files, out, options=ConvertOptions(qc=QCConfig())).path
        # rounds alternate radarlib and Py-ART so both see the same load on a shared machine
        rounds = [
            (_ours(nc, out, args.reps), _pyart(nc, out, 1, args.levels)) for _ in range(args.rounds)
        ]
        ours = {k: statistics.median(r[0][k] for r in rounds) for k in rounds[0][0]}
        theirs = {k: statistics.median(r[1][k] for r in rounds) for k in rounds[0][1]}
    ours_total = ours["colmax"] + ours["ppi2"] + ours["colmax_png"] + ours["cog"]
    theirs_total = theirs["grid"] + theirs["ppi2"] + theirs["colmax_png"]
    print(f"products of RMA11 0315/01 (medians of {args.rounds} alternating rounds; radarlib "
          f"{args.reps} runs per round, Py-ART 1, "
          f"{os.cpu_count()} CPUs)")  # fmt: skip
    print(f"  radarlib: read NetCDF {ours['read']:.3f} s; COLMAX grid 480x480 {ours['grid']:.4f} s"
          f" (mapping cached; first build {ours['build']:.3f} s); 2 PPI PNGs {ours['ppi2']:.3f} s;"
          f" COLMAX PNG {ours['colmax_png']:.3f} s; COG {ours['cog']:.3f} s;"
          f" total (no read) {ours_total:.3f} s")  # fmt: skip
    print(f"  Py-ART:   read NetCDF {theirs['read']:.3f} s; grid_from_radars "
          f"{args.levels}x480x480 "
          f"{theirs['grid']:.3f} s; 2 PPI PNGs {theirs['ppi2']:.3f} s; COLMAX PNG "
          f"{theirs['colmax_png']:.3f} s; total (no read, no COG) "
          f"{theirs_total:.3f} s")  # fmt: skip
    grid_ratio = ours["grid"] / theirs["grid"]
    first_ratio = (ours["build"] + ours["grid"]) / theirs["grid"]
    print(
        f"  grid ratio radarlib / Py-ART: {grid_ratio:.5f} (with the one-time mapping build: "
        f"{first_ratio:.4f}); bar <= {GRID_BAR}: {'PASS' if grid_ratio <= GRID_BAR else 'FAIL'}"
    )
    print(f"  all products ratio radarlib / Py-ART: {ours_total / theirs_total:.3f}")
    if not args.no_pipeline:
        without, with_products = _pipeline(args.volumes, args.poll, args.pipeline_reps)
        ratio = with_products / without
        print(f"pipeline, 2 workers, {args.volumes} volumes 0315/01 (DBZH 5x360x320): "
              f"{without:.1f} volumes/min without products, {with_products:.1f} with "
              f"(ratio {ratio:.2f}); bar >= {PIPELINE_BAR}: "
              f"{'PASS' if ratio >= PIPELINE_BAR else 'FAIL'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
