"""Write a volume as an ODIM_H5 2.3 polar volume (``PVOL``), atomically, with h5py.

Layout (EUMETNET OPERA ODIM_H5 information model 2.3, not 2.4: readers disagree on the
unit of 2.4's ``where/rstart``, km or m, while for 2.3 it is km for all)::

    /                      Conventions = "ODIM_H5/V2_3"
    /what                  object = PVOL, version, date, time (volume start), source
    /where                 lat, lon, height
    /how                   software, sw_version, task (scan strategy), startepochs, endepochs,
                           comment (conversion warnings), radarlib_fields
    /dataset<n>/what       product = SCAN, startdate/starttime, enddate/endtime
    /dataset<n>/where      elangle, nbins, nrays, rstart (km), rscale (m), a1gate
    /dataset<n>/how        startepochs, endepochs, scan_index
    /dataset<n>/data<k>/what   quantity, gain = 1, offset = 0, undetect, nodata
    /dataset<n>/data<k>/data   float32 (nrays, nbins), gzip; row = azimuth bin (ODIM)

One dataset per sweep, one ``data<k>`` per field, in the volume's field order. Data are
float32 with gain 1 and offset 0, so every valid gate is the BUFR value exactly (the
radars' values are float32-exact, see :mod:`radarlib.volume`). ``undetect`` and ``nodata``
stay apart as in the CF/Radial ``<FIELD>_status``: scanned-nothing-detected gates hold
:data:`~radarlib.vocabulary.ODIM_UNDETECT`, not-scanned gates (and gates outside a field's
range or a sweep a field lacks) hold :data:`~radarlib.vocabulary.ODIM_NODATA`, and NaN
artefacts stay NaN. Rows are in ODIM order (row ``r`` = azimuth bin ``r``, the first ray
acquired is row ``a1gate``): the BUFR rows exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radarlib import __version__
from radarlib.bufr.model import GateStatus
from radarlib.export.atomic import atomic_file
from radarlib.vocabulary import (
    ODIM_CONVENTIONS,
    ODIM_IMAGE_ATTRS,
    ODIM_NODATA,
    ODIM_OBJECT,
    ODIM_PRODUCT,
    ODIM_UNDETECT,
    ODIM_VERSION,
    SOFTWARE,
    odim_source,
)

if TYPE_CHECKING:
    from radarlib.volume import Volume

__all__ = ["odim_data", "write_odim"]


def _date(moment: datetime) -> tuple[str, str]:
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def _str(value: str) -> np.bytes_:
    """ODIM strings are fixed-length, NUL-terminated HDF5 strings."""
    return np.bytes_(value.encode())


def odim_data(volume: Volume, name: str, index: int) -> tuple[np.ndarray, int]:
    """Field ``name`` of sweep ``index`` as ODIM stores it: float32 ``(nrays, nbins)`` with
    undetect/nodata values, rows in azimuth order; and the first axis gate of the window."""
    fd = volume.fields[name]
    geometry = volume.sweeps[index]
    lo, width = volume.gate_window(index)
    rays = slice(geometry.ray_start, geometry.ray_start + geometry.nrays)
    status = fd.status[rays, lo : lo + width]
    out = np.array(fd.values[rays, lo : lo + width], dtype=np.float32, copy=True)
    out[status == GateStatus.UNDETECT] = ODIM_UNDETECT
    out[(status == GateStatus.NODATA) | (status == GateStatus.OUTSIDE)] = ODIM_NODATA
    out[status == GateStatus.NAN] = np.nan
    # stored ray j is BUFR row (a1gate + j) % nrays: roll back to azimuth order
    return np.roll(out, geometry.a1gate, axis=0), lo


def write_odim(
    volume: Volume,
    path: str | os.PathLike[str],
    *,
    compression_level: int = 4,
    fsync: bool = True,
    attrs: Mapping[str, str] | None = None,
) -> Path:
    """Write ``volume`` to ``path`` as ODIM_H5 PVOL (gzip ``compression_level``, 0 = none).

    ``attrs`` are extra attributes of the top-level ``how`` group.
    """
    import h5py

    final = Path(path)
    with atomic_file(final, fsync=fsync) as tmp, h5py.File(tmp, "w", libver="earliest") as h5:
        _write(h5, volume, compression_level)
        _attrs(h5["how"], dict(attrs or {}))
    return final


def _attrs(group: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        group.attrs[key] = _str(value) if isinstance(value, str) else value


def _write(h5: Any, volume: Volume, level: int) -> None:
    key = volume.key
    start = volume.start_time
    st = volume.station
    epochs_start = [s.start_time.timestamp() for s in volume.sweeps]
    epochs_end = [s.effective_end.timestamp() for s in volume.sweeps]
    h5.attrs["Conventions"] = _str(ODIM_CONVENTIONS)
    date, time = _date(start)
    _attrs(
        h5.create_group("what"),
        {
            "object": ODIM_OBJECT,
            "version": ODIM_VERSION,
            "date": date,
            "time": time,
            "source": odim_source(key.radar, st.wmo_block, st.wmo_station),
        },
    )
    _attrs(
        h5.create_group("where"),
        {"lat": float(st.latitude), "lon": float(st.longitude), "height": float(st.height)},
    )
    _attrs(
        h5.create_group("how"),
        {
            "software": SOFTWARE,
            "sw_version": __version__,
            "task": f"{key.strategy}/{key.volume_number}",
            "startepochs": min(epochs_start),
            "endepochs": max(epochs_end),
            "source_files": ", ".join(volume.sources),
            "missing_fields": ", ".join(volume.missing_fields),
            "comment": "\n".join(volume.warnings),
        },
    )
    axis = volume.range_axis
    compress: dict[str, Any] = {}
    if level > 0:
        compress = {"compression": "gzip", "compression_opts": level}
    for i, sweep in enumerate(volume.sweeps):
        ds = h5.create_group(f"dataset{i + 1}")
        sdate, stime = _date(sweep.start_time)
        edate, etime = _date(sweep.effective_end)
        _attrs(
            ds.create_group("what"),
            {
                "product": ODIM_PRODUCT,
                "startdate": sdate,
                "starttime": stime,
                "enddate": edate,
                "endtime": etime,
            },
        )
        lo, width = volume.gate_window(i)
        _attrs(
            ds.create_group("where"),
            {
                "elangle": float(sweep.elevation),
                "nbins": np.int64(width),
                "nrays": np.int64(sweep.nrays),
                # start of the first bin (centre minus half a bin), km
                "rstart": float(axis.first + (lo - 0.5) * axis.spacing) / 1000.0,
                "rscale": float(axis.spacing),
                "a1gate": np.int64(sweep.a1gate),
            },
        )
        _attrs(
            ds.create_group("how"),
            {
                "startepochs": epochs_start[i],
                "endepochs": epochs_end[i],
                "scan_index": np.int64(i + 1),
            },
        )
        for k, name in enumerate(volume.fields):
            values, _ = odim_data(volume, name, i)
            group = ds.create_group(f"data{k + 1}")
            _attrs(
                group.create_group("what"),
                {
                    "quantity": name,
                    "gain": 1.0,
                    "offset": 0.0,
                    "nodata": ODIM_NODATA,
                    "undetect": ODIM_UNDETECT,
                },
            )
            shape = values.shape
            chunks = shape if (level > 0 and all(shape)) else None
            data = group.create_dataset("data", data=values, chunks=chunks, **compress)
            _attrs(data, dict(ODIM_IMAGE_ATTRS))
            shift = float(volume.fields[name].range_shift[i])
            if np.isfinite(shift):
                _attrs(group.create_group("how"), {"range_shift": shift})
