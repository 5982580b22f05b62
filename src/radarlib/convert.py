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
(a :class:`~radarlib.errors.BufrDecodeError` of a corrupt field file is wrapped). With
``ConvertOptions(on_bad_field="drop")`` a field file that cannot be decoded is left out
instead: the volume is written with its good fields, and the dropped ones and their errors
are listed in ``ConversionResult.bad_fields`` and in the file's global attributes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from radarlib.bufr.layout import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_VOLUME_BYTES, Inflater
from radarlib.bufr.model import BufrFile
from radarlib.errors import BufrDecodeError, ConfigError, FileNameError, VolumeError
from radarlib.export import DEFAULT_FORMATS, output_name, parse_formats
from radarlib.filename import BufrFileName
from radarlib.vocabulary import DROPPED_FIELD_ERRORS_ATTR, DROPPED_FIELDS_ATTR
from radarlib.volume import Volume, assemble_volume

if TYPE_CHECKING:
    from radarlib.qc import QCConfig

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
    #: a field file that cannot be decoded: fail the volume, or write the volume without it
    on_bad_field: Literal["drop", "fail"] = "fail"
    #: output formats written for each volume (:data:`radarlib.export.FORMATS`)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    #: cap on the declared decoded bytes of one BUFR file (None: no cap)
    max_decoded_bytes_per_file: int | None = DEFAULT_MAX_FILE_BYTES
    #: cap on the declared decoded bytes of all the files of one volume (None: no cap)
    max_decoded_bytes_per_volume: int | None = DEFAULT_MAX_VOLUME_BYTES
    #: inflate and field-placing threads per volume (None: the usable cores, at most 4)
    decode_threads: int | None = None
    qc: QCConfig | None = None  #: quality control before writing (radarlib.qc); None = none

    def __post_init__(self) -> None:
        if self.on_bad_field not in ("drop", "fail"):
            raise ConfigError(
                "on_bad_field", f"must be 'drop' or 'fail', got {self.on_bad_field!r}"
            )
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
    #: ``(field, file name, error)`` of each field file left out (``on_bad_field="drop"``)
    bad_fields: tuple[tuple[str, str, str], ...] = ()


def decode_files(
    files: Sequence[str | Path],
    *,
    root_resources: Path | None = None,
    options: ConvertOptions | None = None,
    bad: list[tuple[str, str, str]] | None = None,
) -> list[BufrFile]:
    """Decode a volume's field files; a bad name, corrupt or oversized file is a VolumeError
    naming that file.

    Each file is scanned (metadata only) and its declared decoded size checked against
    ``options``' per-file cap and, cumulatively, the per-volume cap before any of its
    streams is inflated; its streams are then inflated in a thread pool while the next
    file is scanned (:class:`~radarlib.bufr.layout.Inflater`).

    With a ``bad`` list, a file that cannot be decoded (or is refused by a cap) is appended
    to it as ``(field, file name, error)`` and left out instead (unless no file can be
    decoded).
    """
    from radarlib.bufr.layout import Inflater

    opts = options or ConvertOptions(root_resources=root_resources)
    resources = root_resources if root_resources is not None else opts.root_resources
    total = 0
    queued: list[Path] = []
    decoded: list[BufrFile] = []
    with Inflater(opts.decode_threads) as inflater:
        for raw in files:
            path = Path(raw)
            try:
                total = _scan_one(path, resources, opts, total, inflater)
            except FileNameError as exc:
                raise VolumeError(str(exc), source=path.name) from exc
            except BufrDecodeError as exc:
                _bad_file(path, exc, bad)
                continue
            except OSError as exc:
                raise VolumeError(f"cannot read: {exc.strerror or exc}", source=path) from exc
            queued.append(path)
        for path, outcome in zip(queued, inflater.results(), strict=True):
            if isinstance(outcome, BufrDecodeError):  # a corrupt stream, found by the pool
                _bad_file(path, outcome, bad)
            else:
                decoded.append(outcome)
    if bad and not decoded:
        raise VolumeError("no field file could be decoded: " + "; ".join(e for *_, e in bad))
    return decoded


def _bad_file(path: Path, exc: BufrDecodeError, bad: list[tuple[str, str, str]] | None) -> None:
    """Raise the VolumeError of an undecodable file, or record it in ``bad`` (drop mode)."""
    error = VolumeError(f"cannot decode: {exc.reason}", source=path.name)
    if bad is None:
        raise error from exc
    bad.append((BufrFileName.parse(path.name).field, path.name, str(error)))


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
    bad: list[tuple[str, str, str]] | None = None,
    qc: bool = False,
) -> Volume:
    """Decode and assemble the field files of one volume (no Py-ART, no writing).

    ``qc``: run the quality-control identity check of ``options.qc`` (file name vs content)
    on the decoded files before they are assembled (:func:`radarlib.qc.check_files`).
    """
    opts = options or ConvertOptions()
    decoded = decode_files(files, options=opts, bad=bad)
    if qc and opts.qc is not None and opts.qc.enabled and opts.qc.check_identity:
        from radarlib.qc import check_files

        check_files(decoded, opts.qc)
    return assemble_volume(
        decoded,
        elevation_tolerance=opts.elevation_tolerance,
        expected_fields=expected_fields,
        threads=opts.decode_threads,
    )


def write_outputs(
    volume: Volume,
    output_dir: str | Path,
    options: ConvertOptions,
    *,
    attrs: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write ``volume`` in every format of ``options`` into ``output_dir`` (each atomically).

    ``attrs`` are extra global attributes (e.g. the dropped fields), in every format.
    """
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
                radar.metadata.update(attrs or {})
                write_cfradial(radar, target, compression_level=level)
            elif fmt == "odim":
                from radarlib.export.odim import write_odim

                write_odim(volume, target, compression_level=level, attrs=attrs)
            elif fmt == "cfradial2":
                from radarlib.export.cfradial2 import write_cfradial2

                write_cfradial2(
                    volume, target, compression_level=level, history=history, attrs=attrs
                )
            else:
                from radarlib.export.zarrstore import write_zarr

                write_zarr(volume, target, history=history, attrs=attrs)
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
    bad: list[tuple[str, str, str]] | None = [] if opts.on_bad_field == "drop" else None
    volume = load_volume(files, options=opts, expected_fields=expected_fields, bad=bad, qc=True)
    attrs: dict[str, str] = {}
    written = volume  # with QC: the raw fields plus their QC'd copies or flags
    if opts.qc is not None and opts.qc.enabled:
        from radarlib.qc import run_qc

        qc = run_qc(volume, opts.qc)
        written = qc.volume
        attrs.update(qc.attrs())
    if bad:
        attrs[DROPPED_FIELDS_ATTR] = ", ".join(f for f, *_ in bad)
        attrs[DROPPED_FIELD_ERRORS_ATTR] = "\n".join(f"{f}: {e}" for f, _, e in bad)
    paths = write_outputs(written, output_dir, opts, attrs=attrs)
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
        bad_fields=tuple(bad or ()),
    )
