"""Write a Py-ART ``Radar`` as a compressed CF/Radial 1.4 NetCDF-4 file, atomically.

Written with netCDF4 directly (not Py-ART's writer): fields as float32 (integer fields
such as the ``<FIELD>_status`` flags keep their type), zlib at a configurable level
(shuffle filter optional: off by default, it makes these fill-dominated fields larger),
and chunks of about one sweep (all rays of the longest sweep x all gates) instead of
Py-ART's one ray per chunk.

When h5py and the ``deflate`` package (libdeflate) are installed, the field chunks are
compressed by libdeflate (about twice as fast as zlib, same zlib format, any reader decodes
them) in a thread pool and stored with HDF5's direct chunk write into the variables
netCDF4 defined; otherwise netCDF4 compresses them itself. Both give the same variables,
filters and values.

The file appears under its final name only when complete: it is written to a hidden
temporary file in the same directory, fsynced, then renamed with :func:`os.replace` (the
directory is fsynced too), so a crash leaves at most a ``.<name>.<pid>.<random>.tmp``
file, never a partial ``<name>``::

    write_cfradial(radar, "out/RMA11_0315_01_20251020T152828Z.nc", compression_level=4)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radarlib.durability import fsync_path
from radarlib.filename import format_iso
from radarlib.vocabulary import (
    FILL_VALUE,
    STRING_LENGTH,
    coordinate_attrs,
)

if TYPE_CHECKING:
    import netCDF4
    from pyart.core import Radar

__all__ = ["GLOBAL_VARIABLES", "temporary_path", "write_cfradial"]

#: Radar.metadata keys that CF/Radial stores as variables (also kept as global attributes).
GLOBAL_VARIABLES: tuple[str, ...] = (
    "volume_number",
    "platform_type",
    "instrument_type",
    "primary_axis",
    "time_coverage_start",
    "time_coverage_end",
)

#: Keys of Py-ART variable dicts that steer the NetCDF encoding, not attributes.
_ENCODING_KEYS = frozenset(
    {
        "data",
        "_FillValue",
        "_Zlib",
        "_DeflateLevel",
        "_Shuffle",
        "_Fletcher32",
        "_Continguous",
        "_ChunkSizes",
        "_Endianness",
        "_Least_significant_digit",
    }
)


def temporary_path(path: Path) -> Path:
    """A unique hidden temporary name next to ``path`` (same directory, so rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def write_cfradial(
    radar: Radar,
    path: str | os.PathLike[str],
    *,
    compression_level: int = 4,
    shuffle: bool = False,
    fsync: bool = True,
) -> Path:
    """Write ``radar`` to ``path`` (CF/Radial 1.4, NetCDF-4, zlib ``compression_level`` 0-9).

    Atomic: a temporary file in the same directory, fsync, :func:`os.replace`; an
    existing file under ``path`` is replaced only by a complete one. Returns ``path``.
    """
    if not isinstance(compression_level, int) or not 0 <= compression_level <= 9:
        raise ValueError(f"compression_level must be an integer 0-9, got {compression_level!r}")
    import netCDF4

    final = Path(path)
    tmp = temporary_path(final)
    direct = _direct_chunk_backend() if compression_level > 0 else None
    try:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4", clobber=False) as ds:
            pending = _write(ds, radar, compression_level, shuffle, direct is not None)
        if pending and direct is not None:
            _write_chunks(tmp, pending, compression_level, shuffle, direct)
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_path(final.parent, directory=True)
    return final


def _direct_chunk_backend() -> tuple[Any, Any] | None:
    """``(h5py, deflate)`` when both are installed (fast path), else ``None``."""
    try:
        import deflate
        import h5py
    except ImportError:
        return None
    return h5py, deflate


def _chunk_bytes(array: np.ndarray, row: int, rows: int, shuffle: bool, pad: Any) -> np.ndarray:
    """One chunk as HDF5 stores it before compression: full chunk size, optionally shuffled.

    A whole chunk of rows of a C-contiguous array is a view (no copy): the compressor reads
    it through the buffer protocol.
    """
    block = array[row : row + rows]
    if block.shape[0] < rows:  # edge chunk: HDF5 keeps whole chunks; the padding is never read
        padded = np.full((rows, *array.shape[1:]), pad, dtype=array.dtype)
        padded[: block.shape[0]] = block
        block = padded
    raw = np.ascontiguousarray(block)
    if shuffle and raw.itemsize > 1:
        raw = np.ascontiguousarray(raw.view(np.uint8).reshape(-1, raw.itemsize).T)
    return raw


def _write_chunks(
    path: Path,
    pending: list[tuple[str, np.ndarray, tuple[int, int]]],
    level: int,
    shuffle: bool,
    backend: tuple[Any, Any],
) -> None:
    """Compress the field chunks with libdeflate in threads and store them directly."""
    h5py, deflate = backend
    jobs = [
        (name, row, array, rows)
        for name, array, (rows, _) in pending
        for row in range(0, array.shape[0], rows)
    ]

    def compress(job: tuple[str, int, np.ndarray, int]) -> bytes:
        _, row, array, rows = job
        pad = FILL_VALUE if array.dtype.kind == "f" else 0
        return bytes(deflate.zlib_compress(_chunk_bytes(array, row, rows, shuffle, pad), level))

    workers = min(len(jobs), os.cpu_count() or 1, 4)
    with h5py.File(path, "r+") as h5, ThreadPoolExecutor(max(1, workers)) as pool:
        ids = {name: h5[name].id for name, _, _ in pending}
        for (name, row, _, _), blob in zip(jobs, pool.map(compress, jobs), strict=True):
            ids[name].write_direct_chunk((row, 0), blob)


def _attrs(dic: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dic.items():
        if k in _ENCODING_KEYS or v is None:
            continue
        if isinstance(v, (str, bytes, int, float, np.generic, np.ndarray)) or (
            isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v)
        ):
            out[k] = v
    return out


def _put(
    ds: netCDF4.Dataset,
    name: str,
    dic: Mapping[str, Any],
    dims: tuple[str, ...],
    dtype: Any | None = None,
    defer: bool = False,
    **encoding: Any,
) -> np.ndarray | None:
    data = dic["data"]
    fill = dic.get("_FillValue")
    array = np.asarray(_filled(data, fill), dtype=dtype)
    var = ds.createVariable(
        name,
        array.dtype,
        dims,
        fill_value=False if fill is None else array.dtype.type(fill),
        **encoding,
    )
    var.setncatts(_attrs(dic))
    if defer:  # the caller stores the chunks itself (see _write_chunks)
        return array.reshape(var.shape)
    var[...] = array.reshape(var.shape)
    return None


def _filled(data: Any, fill: Any) -> np.ndarray:
    """``np.ma.filled`` without its copy when the masked gates already hold ``fill``
    (radarlib's own fields do: they are stored filled, the mask only describes them)."""
    values = np.ma.getdata(data)
    if fill is None or not isinstance(data, np.ma.MaskedArray) or data.mask is np.ma.nomask:
        return values
    if values.dtype.kind in "fiu":
        differs = values != np.asarray(fill).astype(values.dtype)
        if not np.logical_and(differs, np.ma.getmaskarray(data), out=differs).any():
            return values
    return np.ma.filled(data, fill)


def _chars(ds: netCDF4.Dataset, name: str, values: list[str], dims: tuple[str, ...]) -> None:
    import netCDF4

    width = ds.dimensions["string_length"].size
    text = np.array([v.encode()[:width].ljust(width, b"\0") for v in values], dtype=f"S{width}")
    chars = netCDF4.stringtochar(text)
    var = ds.createVariable(name, "S1", dims)
    attrs = coordinate_attrs(name) if name in _KNOWN_CHAR_VARS else {}
    var.setncatts(attrs)
    var[...] = chars.reshape(var.shape)


_KNOWN_CHAR_VARS = frozenset(
    {
        "sweep_mode",
        "rays_are_indexed",
        "time_coverage_start",
        "time_coverage_end",
        "platform_type",
        "instrument_type",
        "primary_axis",
    }
)


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _coverage(radar: Radar) -> tuple[str, str]:
    import netCDF4

    times = np.asarray(radar.time["data"], dtype=np.float64)
    start, end = (
        datetime.fromisoformat(
            str(
                netCDF4.num2date(
                    value,
                    radar.time["units"],
                    only_use_cftime_datetimes=False,
                    only_use_python_datetimes=True,
                )
            )
        ).replace(tzinfo=timezone.utc)
        for value in (times.min(), times.max())
    )
    start = start.replace(microsecond=0)
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return format_iso(start), format_iso(end)


def _sweep_chunk(radar: Radar) -> int:
    starts = np.asarray(radar.sweep_start_ray_index["data"], dtype=np.int64)
    ends = np.asarray(radar.sweep_end_ray_index["data"], dtype=np.int64)
    longest = int((ends - starts + 1).max()) if starts.size else radar.nrays
    return max(1, min(longest, radar.nrays))


def _write(
    ds: netCDF4.Dataset, radar: Radar, level: int, shuffle: bool, defer: bool
) -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    """Define and write everything; with ``defer``, return the field arrays left to store."""
    ds.set_auto_mask(False)
    strings = [_decode(s) for s in radar.sweep_mode["data"]]
    width = max([STRING_LENGTH, *(len(s) for s in strings)])
    ds.createDimension("time", radar.nrays)
    ds.createDimension("range", radar.ngates)
    ds.createDimension("sweep", radar.nsweeps)
    ds.createDimension("string_length", width)

    metadata = dict(radar.metadata)
    if "time_coverage_start" not in metadata or "time_coverage_end" not in metadata:
        start, end = _coverage(radar)
        metadata.setdefault("time_coverage_start", start)
        metadata.setdefault("time_coverage_end", end)
    metadata.setdefault("Conventions", "CF/Radial")
    metadata.setdefault("field_names", ", ".join(radar.fields))
    history = metadata.pop("history", f"{format_iso(datetime.now(timezone.utc))}: radarlib")
    ds.setncatts(_attrs(metadata))
    ds.setncattr("history", history)  # last attribute, as the ARM standard asks

    compress: dict[str, Any] = {}
    if level > 0:
        compress = {"zlib": True, "complevel": level, "shuffle": shuffle}
    ray_chunk = _sweep_chunk(radar)
    field_chunks = (ray_chunk, max(1, radar.ngates))

    _put(ds, "time", radar.time, ("time",), np.float64)
    _put(ds, "range", radar.range, ("range",), np.float32)
    _put(ds, "azimuth", radar.azimuth, ("time",), np.float32)
    _put(ds, "elevation", radar.elevation, ("time",), np.float32)

    defer = defer and radar.nrays > 0 and radar.ngates > 0
    pending: list[tuple[str, np.ndarray, tuple[int, int]]] = []
    for name, dic in radar.fields.items():
        data = dic["data"]
        dtype = np.float32 if np.issubdtype(np.asarray(data).dtype, np.floating) else None
        spec = dict(dic)
        if dtype is not None and spec.get("_FillValue") is None:
            spec["_FillValue"] = FILL_VALUE
        array = _put(
            ds, name, spec, ("time", "range"), dtype, defer, chunksizes=field_chunks, **compress
        )
        if array is not None:
            pending.append((name, array, field_chunks))

    _put(ds, "sweep_number", radar.sweep_number, ("sweep",), np.int32)
    _put(ds, "fixed_angle", radar.fixed_angle, ("sweep",), np.float32)
    _put(ds, "sweep_start_ray_index", radar.sweep_start_ray_index, ("sweep",), np.int32)
    _put(ds, "sweep_end_ray_index", radar.sweep_end_ray_index, ("sweep",), np.int32)
    _chars(ds, "sweep_mode", strings, ("sweep", "string_length"))
    if radar.rays_are_indexed is not None:
        _chars(
            ds,
            "rays_are_indexed",
            [_decode(s) for s in radar.rays_are_indexed["data"]],
            ("sweep", "string_length"),
        )
    if radar.ray_angle_res is not None:
        _put(ds, "ray_angle_res", radar.ray_angle_res, ("sweep",), np.float32)

    for name in ("latitude", "longitude", "altitude"):
        dic = getattr(radar, name)
        scalar = np.asarray(dic["data"]).size == 1
        _put(ds, name, dic, () if scalar else ("time",), np.float64)

    vol = {**coordinate_attrs("volume_number"), "data": int(metadata.get("volume_number", 0))}
    _put(ds, "volume_number", vol, (), np.int32)
    for name in GLOBAL_VARIABLES[1:]:
        if name in metadata:
            _chars(ds, name, [_decode(metadata[name])], ("string_length",))
    return pending
