"""Make the pictures of docs/products.md from the real RMA11 0315/01 sample volume.

    radarlib convert ../shared/data/bufr/RMA11 -o /tmp/docs-nc --qc
    PYTHONPATH=src python docs/make_pictures.py /tmp/docs-nc/RMA11_0315_01_20251020T152828Z.nc
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np

from radarlib.products.colmax import make_colmax
from radarlib.products.colors import style_for
from radarlib.products.grid import GridSpec
from radarlib.products.polar import read_polar
from radarlib.products.ppi import render_colmax, render_ppi
from radarlib.quicklook import cell_edges

DOCS = Path(__file__).resolve().parent


def qc_panels(volume, target: Path) -> None:  # type: ignore[no-untyped-def]
    """Lowest sweep: raw DBZH, DBZH_QC and the gates QC removed, side by side."""
    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    start, end = int(volume.sweep_start[0]), int(volume.sweep_end[0]) + 1
    order = np.argsort(volume.azimuth[start:end])
    az = np.deg2rad(cell_edges(volume.azimuth[start:end][order], circular=True))
    rng = np.clip(cell_edges(volume.range_m), 0, None) / 1000
    x, y = np.sin(az)[:, None] * rng[None, :], np.cos(az)[:, None] * rng[None, :]
    raw = volume.fields["DBZH"][start:end][order]
    qc = volume.fields["DBZH_QC"][start:end][order]
    gone = ~np.ma.getmaskarray(raw) & np.ma.getmaskarray(qc)
    removed = np.ma.MaskedArray(raw.data, mask=~gone)
    cmap, norm = style_for("DBZH")
    fig = Figure(figsize=(12, 5.6), dpi=100)
    panels = ((raw, "DBZH (raw)"), (qc, "DBZH_QC"), (removed, "removed by QC"))
    for i, (data, title) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.pcolormesh(x, y, data, cmap=cmap, norm=norm, shading="flat")
        ax.set_xlim(-120, 120)
        ax.set_ylim(-120, 120)
        ax.set_aspect("equal")
        ax.set_title(f"{title}\nRMA11 2025-10-20 15:28:28 UTC, 0.53°", fontsize=9)
        ax.set_xlabel("km east")
    fig.tight_layout()
    fig.savefig(target)


def main(netcdf: str) -> None:
    volume = read_polar(netcdf)
    render_colmax(make_colmax(volume, GridSpec(240, 1.0)), DOCS / "products-colmax-rma11.png")
    render_ppi(volume, "DBZH", 0, DOCS / "products-ppi-dbzh-rma11.png")
    render_ppi(volume, "ZDR", 0, DOCS / "products-ppi-zdr-rma11.png")
    qc_panels(volume, DOCS / "qc-rma11-lowest-sweep.png")


if __name__ == "__main__":
    main(sys.argv[1])
