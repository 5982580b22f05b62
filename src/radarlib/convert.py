"""Convert the BUFR field files of one volume into its output files (CF/Radial by default).

The whole flow for one volume — decode, assemble (:mod:`radarlib.volume`), write each
requested format atomically (CF/Radial 1.4 through the Py-ART ``Radar`` of
:mod:`radarlib.radar` and :mod:`radarlib.cfradial`; ODIM_H5, CfRadial 2.1 and Zarr from
the volume, :mod:`radarlib.export`) — behind one picklable call that worker processes run::

    result = convert_volume(paths, "out", expected_fields=["DBZH", "DBZV", "ZDR", "KDP"])
    result.path      # out/RMA11_0315_01_20251020T152828Z.nc
    result.paths     # {"cfradial": out/RMA11_0315_01_20251020T152828Z.nc}
    result.warnings  # e.g. sweeps whose end precedes their start

    options = ConvertOptions(formats=("odim", "cfradial2", "zarr"))

The conversion succeeds only when every requested output is written; a volume's files
are decoded together, their zlib streams inflated in one thread pool (the inflate
releases the GIL), after their declared decoded size has been checked against the
per-file and per-volume caps (:class:`ConvertOptions`), before anything is inflated.

Every failure is a :class:`~radarlib.errors.VolumeError` naming the file and the reason
(a :class:`~radarlib.errors.BufrDecodeError` of a corrupt field file is wrapped).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from radarlib.bufr.layout import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_VOLUME_BYTES, Inflater
from radarlib.bufr.model import BufrFile
from radarlib.errors import BufrDecodeError, ConfigError, FileNameError, VolumeError
from radarlib.export import DEFAULT_FORMATS, output_name, parse_formats
from radarlib.filename import BufrFileName
from radarlib.volume import Volume, assemble_volume

__all__ = [
    "ConversionResult",
    "ConvertOptions",
    "convert_volume",
    "decode_files",
    "load_volume",
    "write_outputs",
]


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert: formats, compression, extra BUFR tables, tolerance, decoder caps."""

    compression_level: int = 4  #: NetCDF-4 zlib level 0-9 (also ODIM gzip, CfRadial2)
    root_resources: Path | None = None  #: extra BUFR tables for the decoder
    elevation_tolerance: float = 0.5  #: degrees, when matching sweeps across fields
    #: output formats written for each volume (:data:`radarlib.export.FORMATS`)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    #: cap on the declared decoded bytes of one BUFR file (None: no cap)
    max_decoded_bytes_per_file: int | None = DEFAULT_MAX_FILE_BYTES
    #: cap on the declared decoded bytes of all the files of one volume (None: no cap)
    max_decoded_bytes_per_volume: int | None = DEFAULT_MAX_VOLUME_BYTES
    #: inflate threads per volume (None: the usable cores, at most 4)
    decode_threads: int | None = None

    def __post_init__(self) -> None:
        level = self.compression_level
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise ConfigError("compression_level", f"must be an integer 0-9, got {level!r}")
        object.__setattr__(self, "formats", parse_formats(self.formats, "formats"))
        for key in ("max_decoded_bytes_per_file", "max_decoded_bytes_per_volume"):
            cap = getattr(self, key)
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
                raise ConfigError(key, f"must be a positive number of bytes or None, got {cap!r}")
        if not self.elevation_tolerance >= 0:
            raise ConfigError(
                "elevation_tolerance", f"must be >= 0 degrees, got {self.elevation_tolerance!r}"
            )


@dataclass(frozen=True)
class ConversionResult:
    """What one conversion produced: where, which fields, the grid size, time and warnings."""

    volume_id: str
    #: the first output written (the CF/Radial file when that format is chosen)
    path: Path
    fields: tuple[str, ...]
    missing_fields: tuple[str, ...]
    nsweeps: int
    ngates: int
    nrays: int
    seconds: float
    warnings: tuple[str, ...]
    #: every output written, by format
    paths: dict[str, Path] = field(default_factory=dict)


def decode_files(
    files: Sequence[str | Path],
    *,
    root_resources: Path | None = None,
    options: ConvertOptions | None = None,
) -> list[BufrFile]:
    """Decode a volume's field files; a bad name, corrupt or oversized file is a VolumeError
    naming that file.

    Each file is scanned (metadata only) and its declared decoded size checked against
    ``options``' per-file cap and, cumulatively, the per-volume cap before any of its
    streams is inflated; its streams are then inflated in a thread pool while the next
    file is scanned (:class:`~radarlib.bufr.layout.Inflater`).
    """
    from radarlib.bufr.layout import Inflater

    opts = options or ConvertOptions(root_resources=root_resources)
    resources = root_resources if root_resources is not None else opts.root_resources
    total = 0
    with Inflater(opts.decode_threads) as inflater:
        for raw in files:
            path = Path(raw)
            try:
                total = _scan_one(path, resources, opts, total, inflater)
            except FileNameError as exc:
                raise VolumeError(str(exc), source=path.name) from exc
            except BufrDecodeError as exc:
                raise VolumeError(f"cannot decode: {exc.reason}", source=path.name) from exc
            except OSError as exc:
                raise VolumeError(f"cannot read: {exc.strerror or exc}", source=path) from exc
        try:
            return inflater.finish()
        except BufrDecodeError as exc:  # a corrupt stream, found by the pool
            name = Path(exc.source).name if exc.source else "<bytes>"
            raise VolumeError(f"cannot decode: {exc.reason}", source=name) from exc


def _scan_one(
    path: Path, resources: Path | None, opts: ConvertOptions, total: int, inflater: Inflater
) -> int:
    """Scan one file, check both caps, queue its streams; returns the volume's running total."""
    from radarlib.bufr.reader import scan_bufr

    BufrFileName.parse(path.name)
    layout = scan_bufr(
        path, root_resources=resources, max_decoded_bytes=opts.max_decoded_bytes_per_file
    )
    total += layout.decoded_bytes
    cap = opts.max_decoded_bytes_per_volume
    if cap is not None and total > cap:
        raise BufrDecodeError(
            f"the volume's files declare {total / 2**20:.1f} MiB of decoded data with this "
            f"one, more than the {cap / 2**20:.0f} MiB allowed per volume "
            "(max_decoded_mb_per_volume); this file was not inflated",
            str(path),
        )
    inflater.add(layout)
    return total


def load_volume(
    files: Sequence[str | Path],
    *,
    options: ConvertOptions | None = None,
    expected_fields: Sequence[str] | None = None,
) -> Volume:
    """Decode and assemble the field files of one volume (no Py-ART, no writing)."""
    opts = options or ConvertOptions()
    return assemble_volume(
        decode_files(files, options=opts),
        elevation_tolerance=opts.elevation_tolerance,
        expected_fields=expected_fields,
    )


def write_outputs(
    volume: Volume, output_dir: str | Path, options: ConvertOptions
) -> dict[str, Path]:
    """Write ``volume`` in every format of ``options`` into ``output_dir`` (each atomically)."""
    from radarlib.radar import history_line

    out_dir = Path(output_dir)
    history = history_line(volume.sources)
    level = options.compression_level
    paths: dict[str, Path] = {}
    for fmt in options.formats:
        target = out_dir / output_name(volume.key, fmt)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            if fmt == "cfradial":
                from radarlib.cfradial import write_cfradial
                from radarlib.radar import volume_to_radar

                radar = volume_to_radar(volume, history=history)
                write_cfradial(radar, target, compression_level=level)
            elif fmt == "odim":
                from radarlib.export.odim import write_odim

                write_odim(volume, target, compression_level=level)
            elif fmt == "cfradial2":
                from radarlib.export.cfradial2 import write_cfradial2

                write_cfradial2(volume, target, compression_level=level, history=history)
            else:
                from radarlib.export.zarrstore import write_zarr

                write_zarr(volume, target, history=history)
        except OSError as exc:
            raise VolumeError(f"cannot write {fmt}: {exc}", source=target) from exc
        paths[fmt] = target
    return paths


def convert_volume(
    files: Sequence[str | Path],
    output_dir: str | Path,
    *,
    options: ConvertOptions | None = None,
    expected_fields: Sequence[str] | None = None,
) -> ConversionResult:
    """Convert one volume's field files to its outputs in ``output_dir``, each atomically.

    The result's ``path`` is the first format's output (the CF/Radial
    ``<volume netcdf_name>`` by default) and ``paths`` holds every output by format.
    """
    began = time.perf_counter()
    opts = options or ConvertOptions()
    if not files:
        raise VolumeError("no field files given")
    volume = load_volume(files, options=opts, expected_fields=expected_fields)
    paths = write_outputs(volume, output_dir, opts)
    return ConversionResult(
        volume_id=volume.key.volume_id,
        path=next(iter(paths.values())),
        fields=tuple(volume.fields),
        missing_fields=volume.missing_fields,
        nsweeps=len(volume.sweeps),
        ngates=volume.range_axis.ngates,
        nrays=volume.nrays,
        seconds=time.perf_counter() - began,
        warnings=volume.warnings,
        paths=paths,
    )
