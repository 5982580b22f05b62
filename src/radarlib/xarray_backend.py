"""xarray backend for RMA/OPERA radar BUFR: ``engine="rmabufr"``, xradar's sweep layout, lazy.

After ``pip install radarlib`` (the ``xarray.backends`` entry point ``rmabufr``), with no
import of radarlib::

    import xarray as xr
    ds = xr.open_dataset("RMA11_0315_01_DBZH_20251020T152828Z.BUFR", engine="rmabufr",
                         group="sweep_0")
    tree = open_rmabufr_datatree(sorted(Path("RMA11").glob("RMA11_0315_01_*.BUFR")))

``group`` is ``"sweep_<i>"`` (or the sweep number; default ``sweep_0``) or ``"/"`` for the
root metadata. The datasets are those of :mod:`radarlib.datatree` (the CfRadial 2.1 /
FM 301 layout xradar uses): ``(azimuth, range)`` fields, NaN where masked, with their
``<FIELD>_status`` flags keeping undetect and nodata apart.

Lazy where it costs nothing: opening reads the files' metadata (section 3, the sweep
headers, no zlib stream inflated: :func:`radarlib.bufr.reader.scan_bufr`); a sweep's field
is inflated and placed on first access of its values (and then kept, shared by the field and
its status), through a :class:`xarray.backends.BackendArray`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from radarlib.bufr.layout import DEFAULT_MAX_FILE_BYTES, BufrLayout
from radarlib.bufr.model import GateStatus
from radarlib.bufr.reader import scan_bufr
from radarlib.datatree import azimuth_order
from radarlib.vocabulary import SWEEP_GROUP

__all__ = ["RmaBufrBackendEntrypoint", "open_rmabufr_datatree"]

PathLike = str | os.PathLike[str]


class _SweepCache:
    """Decoded (values, status) per (field, sweep), computed once under a lock."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.lock = threading.Lock()
        self.blocks: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self.decoded = 0  #: how many (field, sweep) blocks were inflated (tests read it)

    def get(self, name: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        from radarlib.volume import sweep_block

        with self.lock:
            got = self.blocks.get((name, index))
            if got is None:
                layout: BufrLayout = self.plan.files[name]
                sweep = layout.sweep(index) if index < len(layout.sweeps) else None
                values, status = sweep_block(self.plan, name, index, sweep)
                values = np.where(status == GateStatus.VALID, values, np.float32(np.nan))
                a1gate = self.plan.sweeps[index].a1gate
                got = (
                    azimuth_order(values.astype(np.float32, copy=False), a1gate),
                    azimuth_order(status, a1gate),
                )
                self.blocks[(name, index)] = got
                self.decoded += 1
            return got

    def clear(self) -> None:
        with self.lock:
            self.blocks.clear()


class _SweepArray(BackendArray):
    """One field (``part`` 0) or its status (``part`` 1) of one sweep, decoded on access."""

    def __init__(self, cache: _SweepCache, name: str, index: int, part: int) -> None:
        self.cache, self.name, self.index, self.part = cache, name, index, part
        nrays = cache.plan.sweeps[index].nrays
        self.shape = (nrays, cache.plan.gate_window(index)[1])
        self.dtype = np.dtype(np.float32 if part == 0 else np.uint8)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw
        )

    def _raw(self, key: tuple[Any, ...]) -> np.ndarray:
        return self.cache.get(self.name, self.index)[self.part][key]


def _paths(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _open(paths: list[Path], max_decoded_bytes: int | None) -> tuple[Any, _SweepCache]:
    from radarlib.volume import plan_volume

    if not paths:
        raise ValueError("open_rmabufr_datatree needs at least one BUFR file")
    layouts = [scan_bufr(p, max_decoded_bytes=max_decoded_bytes) for p in paths]
    plan = plan_volume(layouts)
    return plan, _SweepCache(plan)


def _lazy_blocks(cache: _SweepCache) -> Any:
    def blocks(name: str, index: int) -> tuple[Any, Any]:
        values = indexing.LazilyIndexedArray(_SweepArray(cache, name, index, 0))
        status = indexing.LazilyIndexedArray(_SweepArray(cache, name, index, 1))
        return values, status

    return blocks


def _shifts(plan: Any, index: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in plan.files:
        placed = plan.placement(name, index)
        if placed is not None:
            out[name] = placed[2]
    return out


def _sources(plan: Any) -> list[str]:
    return [Path(f.source or "<bytes>").name for f in plan.files.values()]


def _history(plan: Any) -> str:
    from radarlib.radar import history_line

    return history_line(_sources(plan))


def _group_index(group: str | int | None, nsweeps: int) -> int | None:
    """Sweep index of ``group``; None for the root."""
    if group is None:
        return 0
    if isinstance(group, int):
        index = group
    else:
        text = group.strip("/")
        if text in ("", "root"):
            return None
        prefix = SWEEP_GROUP.format("")
        if not text.startswith(prefix) or not text[len(prefix) :].isdigit():
            raise ValueError(f"group {group!r}: use 'sweep_<i>' (0..{nsweeps - 1}) or '/'")
        index = int(text[len(prefix) :])
    if not 0 <= index < nsweeps:
        raise ValueError(f"group {group!r}: the file has sweeps 0..{nsweeps - 1}")
    return index


def open_rmabufr_datatree(
    paths: PathLike | Iterable[PathLike],
    *,
    max_decoded_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
) -> xr.DataTree:
    """One BUFR file, or the field files of one volume, as xradar's DataTree (lazy sweeps).

    Raises :class:`~radarlib.errors.BufrDecodeError` for a bad file and
    :class:`~radarlib.errors.VolumeError` when the files are not one volume.
    """
    from radarlib.datatree import build_datatree

    plan, cache = _open(_paths(paths), max_decoded_bytes)
    tree = build_datatree(
        plan,
        list(plan.files),
        _lazy_blocks(cache),
        _sources(plan),
        _history(plan),
        lambda i: _shifts(plan, i),
    )
    tree.set_close(cache.clear)
    return tree


class RmaBufrBackendEntrypoint(BackendEntrypoint):
    """``xr.open_dataset(path, engine="rmabufr", group="sweep_0")`` for RMA radar BUFR."""

    description = "RMA/OPERA weather-radar BUFR (radarlib), xradar/FM 301 sweep layout"
    url = "https://github.com/radarlib/radarlib"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group")

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for paths ending in ``.BUFR`` / ``.bufr``."""
        try:
            return Path(os.fspath(filename_or_obj)).suffix.lower() == ".bufr"
        except TypeError:
            return False

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | int | None = None,
        max_decoded_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    ) -> xr.Dataset:
        """The sweep ``group`` (default ``sweep_0``) or the root (``"/"``) of one file."""
        from radarlib.datatree import root_dataset, sweep_dataset

        plan, cache = _open(_paths(os.fspath(filename_or_obj)), max_decoded_bytes)
        index = _group_index(group, len(plan.sweeps))
        if index is None:
            ds = root_dataset(plan, _sources(plan), _history(plan))
        else:
            ds = sweep_dataset(
                plan, index, list(plan.files), _lazy_blocks(cache), _shifts(plan, index)
            )
        if drop_variables is not None:
            drop = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables)
            ds = ds.drop_vars(drop, errors="ignore")
        ds.set_close(cache.clear)
        return ds

    def open_datatree(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        max_decoded_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        **kwargs: Any,
    ) -> xr.DataTree:
        """The whole file as a DataTree (:func:`open_rmabufr_datatree`), for
        ``xr.open_datatree(path, engine="rmabufr")``."""
        tree = open_rmabufr_datatree(
            os.fspath(filename_or_obj), max_decoded_bytes=max_decoded_bytes
        )
        if drop_variables is not None:
            drop = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables)
            tree = tree.map_over_datasets(lambda ds: ds.drop_vars(drop, errors="ignore"))
        return tree
