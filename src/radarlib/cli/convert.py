"""``radarlib convert``: BUFR field files (or folders of them) to output files, per volume.

    radarlib convert RMA11/ AR5_1000_1_DBZH_20240101T000746Z.BUFR -o out --compression-level 4
    radarlib convert RMA11/ -o out --format odim,cfradial2,zarr

Files are grouped into volumes by name; each volume prints one line (fields, sweeps, rays,
gates, output path, seconds) plus its warnings, each once: what the decoder reports per field
file is gathered and printed under its volume (a sweep whose end precedes its start is told
by the volume, not again by every field file). The exit code is 1 if any volume or given
path failed (each failure names the file and the reason), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from radarlib.errors import ConfigError, FileNameError, RadarlibError
from radarlib.export import parse_formats
from radarlib.filename import BufrFileName
from radarlib.volume_types import DEFAULT_VOLUME_TYPES, expected_fields

if TYPE_CHECKING:
    from radarlib.convert import ConversionResult

__all__ = ["collect_files", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``convert`` sub-command."""
    parser = subparsers.add_parser(
        "convert",
        help="convert BUFR volumes to CF/Radial, ODIM_H5, CfRadial 2.1 or Zarr",
        description=(
            "Group BUFR field files into volumes by name and write each volume in the chosen "
            "formats, atomically: cfradial = CF/Radial 1.4 <RADAR>_<STRATEGY>_<VOLNR>_<TIME>.nc, "
            "odim = ODIM_H5 PVOL .h5, cfradial2 = CfRadial 2.1 / FM 301 .cfradial2.nc, "
            "zarr = .zarr store."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="FILES_OR_DIRS",
        help="BUFR files, or folders searched recursively for *.BUFR radar files",
    )
    parser.add_argument("-o", "--output-dir", type=Path, required=True, metavar="OUTDIR")
    parser.add_argument(
        "--compression-level",
        type=int,
        default=4,
        choices=range(10),
        metavar="N",
        help="NetCDF-4 zlib level 0-9 (default 4)",
    )
    parser.add_argument(
        "--format",
        dest="formats",
        default="cfradial",
        metavar="FORMATS",
        help="comma-separated output formats: cfradial, odim, cfradial2, zarr (default cfradial)",
    )
    parser.add_argument(
        "--qc",
        action="store_true",
        help="quality control with the default settings (adds DBZH_QC; docs/products.md)",
    )
    parser.add_argument(
        "--products",
        action="store_true",
        help="also make the default products (COLMAX PNG + COG, lowest-sweep DBZH PPIs)",
    )
    parser.add_argument(
        "--products-dir", type=Path, metavar="DIR", help="where products go (default OUTDIR)"
    )
    parser.set_defaults(handler=run)


def _products(result: ConversionResult, out: Path) -> bool:
    """Make the default products of one converted volume here (by hand); False if any failed.

    Products whose field the volume lacks (no DBZH in a VRAD/WRAD volume) are not made.
    """
    from radarlib.products.settings import ProductSettings
    from radarlib.products.stage import ProductJob, run_product_job

    settings = ProductSettings()
    names = [n for n, f in settings.required_fields().items() if f in result.fields]
    if not names:
        print(f"  products: none apply (no {settings.colmax_field} or PPI field)")
        return True
    volume_id = result.volume_id
    netcdf = result.paths.get("cfradial", result.path)
    job = ProductJob(volume_id, str(netcdf), str(out), tuple(names), settings.to_mapping(),
                     force=True)  # fmt: skip
    ok = True
    for item in run_product_job(job).results:
        if item.ok:
            print(f"  product {item.product} -> {item.path} ({item.seconds:.2f} s)")
        else:
            ok = False
            print(f"FAILED {volume_id} {item.product}: {item.error}", file=sys.stderr)
    return ok


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Radar BUFR files named by ``paths`` (folders searched recursively) and the problems found.

    A folder contributes every file whose name is a radar BUFR file name; a file given
    explicitly must have such a name, else it is reported as a problem.
    """
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and BufrFileName.try_parse(p.name) is not None
            )
            if not found:
                problems.append(f"{path}: no radar BUFR files in this folder")
            files.extend(found)
        elif path.is_file():
            try:
                BufrFileName.parse(path.name)
            except FileNameError as exc:
                problems.append(f"{path}: {exc}")
                continue
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return list(dict.fromkeys(files)), problems


#: the decoder's per-file sweep-time warning, which the volume repeats in its own warnings
_SWEEP_TIME_FORMAT = "before it starts"


class _Gather(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _decoder_messages() -> Iterator[list[logging.LogRecord]]:
    """Gather the WARNING records of radarlib during a conversion instead of printing them."""
    handler = _Gather()
    records = handler.records
    root = logging.getLogger("radarlib")
    old_propagate = root.propagate
    root.addHandler(handler)
    root.propagate = False
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.propagate = old_propagate


def _extra_warnings(records: list[logging.LogRecord], volume_warnings: Iterable[str]) -> list[str]:
    """Decoder warnings not already said by the volume, each once."""
    told = bool(list(volume_warnings))
    lines: list[str] = []
    for record in records:
        if told and _SWEEP_TIME_FORMAT in str(record.msg):
            continue  # the volume's "sweep N: end time … precedes start time …" says it
        lines.append(record.getMessage())
    return list(dict.fromkeys(lines))


def run(args: argparse.Namespace) -> int:
    """Convert every volume found; 1 if anything failed."""
    from radarlib.convert import ConvertOptions, convert_volume
    from radarlib.volume import group_files_into_volumes

    try:
        formats = parse_formats(args.formats, "--format")
    except ConfigError as exc:
        print(f"FAILED {exc}", file=sys.stderr)
        return 2
    if args.products and "cfradial" not in formats:
        print("FAILED --products: products are made from the cfradial output; add it to "
              "--format", file=sys.stderr)  # fmt: skip
        return 2
    files, problems = collect_files(args.paths)
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    qc = None
    if args.qc:
        from radarlib.qc import QCConfig

        qc = QCConfig()
    options = ConvertOptions(compression_level=args.compression_level, formats=formats, qc=qc)
    failed = bool(problems)
    for key, paths in group_files_into_volumes(files).items():
        expected = expected_fields(DEFAULT_VOLUME_TYPES, key.strategy, key.volume_number)
        with _decoder_messages() as records:
            try:
                result = convert_volume(
                    paths, args.output_dir, options=options, expected_fields=expected
                )
            except (RadarlibError, OSError) as exc:
                failed = True
                print(f"FAILED {key.volume_id}: {exc}", file=sys.stderr)
                for line in _extra_warnings(records, ()):
                    print(f"  warning: {line}", file=sys.stderr)
                continue
        missing = f" missing={','.join(result.missing_fields)}" if result.missing_fields else ""
        print(
            f"OK {result.volume_id} fields={','.join(result.fields)}{missing} "
            f"sweeps={result.nsweeps} rays={result.nrays} gates={result.ngates} "
            f"-> {', '.join(str(p) for p in result.paths.values())} ({result.seconds:.2f} s)"
        )
        for warning in [*result.warnings, *_extra_warnings(records, result.warnings)]:
            print(f"  warning: {warning}")
        if args.products:
            out = args.products_dir or args.output_dir
            failed = not _products(result, out) or failed
    if not files and not problems:
        print("FAILED no BUFR files given", file=sys.stderr)
        failed = True
    return 1 if failed else 0
