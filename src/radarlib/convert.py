"""Convert the BUFR field files of one volume into one CF/Radial NetCDF file.

The whole flow for one volume — decode, assemble (:mod:`radarlib.volume`), build the
Py-ART ``Radar`` (:mod:`radarlib.radar`), write atomically (:mod:`radarlib.cfradial`) —
behind one picklable call that worker processes run::

    result = convert_volume(paths, "out", expected_fields=["DBZH", "DBZV", "ZDR", "KDP"])
    result.path      # out/RMA11_0315_01_20251020T152828Z.nc
    result.warnings  # e.g. sweeps whose end precedes their start

Every failure is a :class:`~radarlib.errors.VolumeError` naming the file and the reason
(a :class:`~radarlib.errors.BufrDecodeError` of a corrupt field file is wrapped). With
``ConvertOptions(on_bad_field="drop")`` a field file that cannot be decoded is left out
instead: the volume is written with its good fields, and the dropped ones and their errors
are listed in ``ConversionResult.bad_fields`` and in the file's global attributes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from radarlib.bufr.model import BufrFile
from radarlib.errors import BufrDecodeError, ConfigError, FileNameError, VolumeError
from radarlib.filename import BufrFileName
from radarlib.vocabulary import DROPPED_FIELD_ERRORS_ATTR, DROPPED_FIELDS_ATTR
from radarlib.volume import Volume, assemble_volume

__all__ = [
    "ConversionResult",
    "ConvertOptions",
    "convert_volume",
    "decode_files",
    "load_volume",
]


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert: NetCDF compression, extra BUFR tables, sweep-matching tolerance."""

    compression_level: int = 4  #: NetCDF-4 zlib level 0-9
    root_resources: Path | None = None  #: extra BUFR tables for the decoder
    elevation_tolerance: float = 0.5  #: degrees, when matching sweeps across fields
    #: a field file that cannot be decoded: fail the volume, or write the volume without it
    on_bad_field: Literal["drop", "fail"] = "fail"

    def __post_init__(self) -> None:
        if self.on_bad_field not in ("drop", "fail"):
            raise ConfigError(
                "on_bad_field", f"must be 'drop' or 'fail', got {self.on_bad_field!r}"
            )
        level = self.compression_level
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise ConfigError("compression_level", f"must be an integer 0-9, got {level!r}")
        if not self.elevation_tolerance >= 0:
            raise ConfigError(
                "elevation_tolerance", f"must be >= 0 degrees, got {self.elevation_tolerance!r}"
            )


@dataclass(frozen=True)
class ConversionResult:
    """What one conversion produced: where, which fields, the grid size, time and warnings."""

    volume_id: str
    path: Path
    fields: tuple[str, ...]
    missing_fields: tuple[str, ...]
    nsweeps: int
    ngates: int
    nrays: int
    seconds: float
    warnings: tuple[str, ...]
    #: ``(field, file name, error)`` of each field file left out (``on_bad_field="drop"``)
    bad_fields: tuple[tuple[str, str, str], ...] = ()


def decode_files(
    files: Sequence[str | Path],
    *,
    root_resources: Path | None = None,
    bad: list[tuple[str, str, str]] | None = None,
) -> list[BufrFile]:
    """Decode field files; a bad file name or corrupt file is a VolumeError naming that file.

    With a ``bad`` list, a file that cannot be decoded is appended to it as
    ``(field, file name, error)`` and left out instead (unless no file can be decoded).
    """
    from radarlib.bufr.reader import read_bufr

    decoded: list[BufrFile] = []
    for raw in files:
        path = Path(raw)
        try:
            name = BufrFileName.parse(path.name)
            decoded.append(read_bufr(path, root_resources=root_resources))
        except FileNameError as exc:
            raise VolumeError(str(exc), source=path.name) from exc
        except BufrDecodeError as exc:
            error = VolumeError(f"cannot decode: {exc.reason}", source=path.name)
            if bad is None:
                raise error from exc
            bad.append((name.field, path.name, str(error)))
        except OSError as exc:
            raise VolumeError(f"cannot read: {exc.strerror or exc}", source=path) from exc
    if bad and not decoded:
        raise VolumeError("no field file could be decoded: " + "; ".join(e for *_, e in bad))
    return decoded


def load_volume(
    files: Sequence[str | Path],
    *,
    options: ConvertOptions | None = None,
    expected_fields: Sequence[str] | None = None,
    bad: list[tuple[str, str, str]] | None = None,
) -> Volume:
    """Decode and assemble the field files of one volume (no Py-ART, no writing)."""
    opts = options or ConvertOptions()
    return assemble_volume(
        decode_files(files, root_resources=opts.root_resources, bad=bad),
        elevation_tolerance=opts.elevation_tolerance,
        expected_fields=expected_fields,
    )


def convert_volume(
    files: Sequence[str | Path],
    output_dir: str | Path,
    *,
    options: ConvertOptions | None = None,
    expected_fields: Sequence[str] | None = None,
) -> ConversionResult:
    """Convert one volume's field files to ``<output_dir>/<volume netcdf_name>``, atomically."""
    from radarlib.cfradial import write_cfradial
    from radarlib.radar import volume_to_radar

    began = time.perf_counter()
    opts = options or ConvertOptions()
    if not files:
        raise VolumeError("no field files given")
    bad: list[tuple[str, str, str]] | None = [] if opts.on_bad_field == "drop" else None
    volume = load_volume(files, options=opts, expected_fields=expected_fields, bad=bad)
    radar = volume_to_radar(volume)
    if bad:
        radar.metadata[DROPPED_FIELDS_ATTR] = ", ".join(f for f, *_ in bad)
        radar.metadata[DROPPED_FIELD_ERRORS_ATTR] = "\n".join(f"{f}: {e}" for f, _, e in bad)
    out_dir = Path(output_dir)
    target = out_dir / volume.key.netcdf_name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_cfradial(radar, target, compression_level=opts.compression_level)
    except OSError as exc:
        raise VolumeError(f"cannot write: {exc}", source=target) from exc
    return ConversionResult(
        volume_id=volume.key.volume_id,
        path=target,
        fields=tuple(volume.fields),
        missing_fields=volume.missing_fields,
        nsweeps=len(volume.sweeps),
        ngates=volume.range_axis.ngates,
        nrays=volume.nrays,
        seconds=time.perf_counter() - began,
        warnings=volume.warnings,
        bad_fields=tuple(bad or ()),
    )
