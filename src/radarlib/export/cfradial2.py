"""Write a volume as CfRadial 2.1 / WMO FM 301 NetCDF-4 (one group per sweep), atomically.

The groups are xradar's DataTree layout (:mod:`radarlib.datatree`): the root with the
volume's identity, station, time coverage and ``sweep_group_name``; ``sweep_0`` …
``sweep_<n-1>`` with ``(azimuth, range)`` fields. Fields are float32 with ``_FillValue`` =
:data:`~radarlib.vocabulary.FILL_VALUE` (valid gates exact) and their ``<FIELD>_status``
(uint8 CF flags: undetect and nodata kept apart), zlib at ``compression_level``, one chunk
per sweep. ``xradar.io.open_cfradial2_datatree`` and ``xarray.open_datatree`` read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radarlib.export.atomic import atomic_file

if TYPE_CHECKING:
    import xarray as xr

    from radarlib.volume import Volume

__all__ = ["field_encoding", "write_cfradial2", "write_datatree_netcdf"]


def field_encoding(tree: xr.DataTree, compression: dict[str, Any]) -> dict[str, Any]:
    """Per-group encoding: compression and one chunk per sweep for the 2-D variables."""
    encoding: dict[str, Any] = {}
    for node in tree.subtree:
        per: dict[str, Any] = {}
        for name, var in node.ds.data_vars.items():
            if var.ndim == 2 and all(var.shape):
                per[str(name)] = {**var.encoding, **compression, "chunksizes": var.shape}
        if per:
            encoding[node.path] = per
    return encoding


def write_datatree_netcdf(
    tree: xr.DataTree,
    path: str | os.PathLike[str],
    *,
    compression_level: int = 4,
    fsync: bool = True,
) -> Path:
    """Write ``tree`` to ``path`` (NetCDF-4 groups, netCDF4 engine), atomically."""
    final = Path(path)
    compression = {"zlib": True, "complevel": compression_level} if compression_level else {}
    encoding = field_encoding(tree, compression)
    with atomic_file(final, fsync=fsync) as tmp:
        tree.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return final


def write_cfradial2(
    volume: Volume,
    path: str | os.PathLike[str],
    *,
    compression_level: int = 4,
    fsync: bool = True,
    history: str | None = None,
    attrs: Mapping[str, str] | None = None,
) -> Path:
    """Write ``volume`` to ``path`` as CfRadial 2.1 (zlib ``compression_level`` 0-9).

    ``attrs`` are extra global attributes of the root group.
    """
    from radarlib.datatree import volume_to_datatree

    tree = volume_to_datatree(volume, history=history)
    tree.attrs.update(attrs or {})
    return write_datatree_netcdf(tree, path, compression_level=compression_level, fsync=fsync)
