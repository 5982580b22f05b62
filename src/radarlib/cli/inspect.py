"""``radarlib inspect FILE...``: what a radar BUFR file holds, as a readable summary or JSON.

    radarlib inspect RMA11_0315_01_DBZH_20251020T152828Z.BUFR
    radarlib inspect --json *.BUFR        # one JSON object per line and file

A file that cannot be decoded is reported (on stderr, and as ``{"file", "error"}`` with
``--json``) and the others are still shown; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from radarlib.bufr.model import BufrFile, GateStatus, classify
from radarlib.bufr.reader import read_bufr
from radarlib.errors import BufrDecodeError

__all__ = ["describe", "register", "run"]

_ISO = "%Y-%m-%dT%H:%M:%SZ"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``inspect`` sub-command."""
    parser = subparsers.add_parser(
        "inspect",
        help="summarise radar BUFR files (station, time, sweeps, gate counts)",
        description="Decode radar BUFR files and summarise station, time and every sweep.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="BUFR files")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per file (JSON Lines)"
    )
    parser.add_argument(
        "--root-resources",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory of extra BUFR tables (table_b*.csv, table_d*.csv)",
    )
    parser.set_defaults(handler=run)


def _counts(data: np.ndarray) -> dict[str, int]:
    tally = np.bincount(classify(data).ravel(), minlength=len(GateStatus))
    return {
        "valid": int(tally[GateStatus.VALID]),
        "undetect": int(tally[GateStatus.UNDETECT]),
        "nodata": int(tally[GateStatus.NODATA]),
        "nan": int(tally[GateStatus.NAN]),
    }


def describe(path: Path, bufr: BufrFile) -> dict[str, Any]:
    """A JSON-ready summary of one decoded file."""
    s1 = bufr.section1
    st = bufr.station
    sweeps = []
    totals = dict.fromkeys(("valid", "undetect", "nodata", "nan"), 0)
    for index, sweep in enumerate(bufr.sweeps):
        quantities = []
        for q in sweep.quantities:
            counts = _counts(q.data)
            for key, value in counts.items():
                totals[key] += value
            quantities.append({"code": q.code, "n_chunks": q.n_chunks, **counts})
        sweeps.append(
            {
                "index": index,
                "start": sweep.start_time.strftime(_ISO),
                "end": sweep.end_time.strftime(_ISO),
                "elevation": sweep.elevation,
                "nrays": sweep.nrays,
                "ngates": sweep.ngates,
                "range_bin_size": sweep.range_bin_size,
                "range_offset": sweep.range_offset,
                "a1gate": sweep.a1gate,
                "object_type": sweep.object_type,
                "quantities": quantities,
            }
        )
    return {
        "file": str(path),
        "radar": bufr.radar,
        "field": bufr.field,
        "edition": bufr.edition,
        "section1": {
            "centre": s1.centre,
            "subcentre": s1.subcentre,
            "master_version": s1.master_version,
            "local_version": s1.local_version,
            "data_category": s1.data_category,
            "intl_subcategory": s1.intl_subcategory,
            "time": s1.time.strftime(_ISO),
        },
        "station": {
            "latitude": st.latitude,
            "longitude": st.longitude,
            "height": st.height,
            "ids": [[sid.kind, sid.value] for sid in st.ids],
            "wmo_block": st.wmo_block,
            "wmo_station": st.wmo_station,
        },
        "time": bufr.start_time.strftime(_ISO),
        "nsweeps": len(sweeps),
        "counts": totals,
        "sweeps": sweeps,
    }


def _text(summary: dict[str, Any]) -> str:
    st = summary["station"]
    ids = ", ".join(f"{kind} {value}".strip() for kind, value in st["ids"]) or "-"
    s1 = summary["section1"]
    lines = [
        f"{summary['file']}",
        f"  radar {summary['radar'] or '-'}  field {summary['field'] or '-'}  station ids {ids}",
        f"  station lat {st['latitude']:.5f}  lon {st['longitude']:.5f}  height {st['height']:g} m",
        f"  time {summary['time']}  (section 1: {s1['time']}, edition {summary['edition']}, "
        f"centre {s1['centre']}, tables {s1['master_version']}/{s1['local_version']})",
        f"  {summary['nsweeps']} sweeps; gates valid {summary['counts']['valid']}, "
        f"undetect {summary['counts']['undetect']}, nodata {summary['counts']['nodata']}, "
        f"nan {summary['counts']['nan']}",
    ]
    header = (
        f"  {'#':>3} {'start':20} {'end':20} {'elev':>6} {'rays':>5} {'gates':>5} "
        f"{'bin m':>6} {'off m':>7} {'a1g':>4} {'q':>4} {'valid':>8} {'undet':>8} "
        f"{'nodata':>7} {'nan':>5}"
    )
    lines.append(header)
    for sw in summary["sweeps"]:
        for k, q in enumerate(sw["quantities"]):
            lead = (
                f"  {sw['index']:>3} {sw['start']:20} {sw['end']:20} {sw['elevation']:>6.2f} "
                f"{sw['nrays']:>5} {sw['ngates']:>5} {sw['range_bin_size']:>6g} "
                f"{sw['range_offset']:>7g} {sw['a1gate']:>4}"
                if k == 0
                else " " * 86
            )
            lines.append(
                f"{lead} {q['code']:>4} {q['valid']:>8} {q['undetect']:>8} "
                f"{q['nodata']:>7} {q['nan']:>5}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Inspect every file; returns 1 if any could not be decoded, else 0."""
    status = 0
    for index, path in enumerate(args.files):
        try:
            summary = describe(path, read_bufr(path, root_resources=args.root_resources))
        except BufrDecodeError as exc:
            status = 1
            print(f"radarlib inspect: error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": str(path), "error": str(exc)}), flush=True)
            continue
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            print(("\n" if index else "") + _text(summary), flush=True)
    return status
