"""The product stage for one volume: a picklable job that a worker process runs after the NetCDF.

>>> outcome = run_product_job(ProductJob(volume_id, nc_path, out_dir, ("colmax.tif",), settings))
>>> [(r.product, r.ok, r.path) for r in outcome.results]              # doctest: +SKIP

The worker reads the NetCDF once (:func:`~radarlib.products.polar.read_polar`), computes
COLMAX once if any product needs it, and writes each product atomically
(:mod:`radarlib.products.files`). A product whose file already exists is not made again
(a run killed after the rename but before the state row was updated) unless ``force``.
Every error of one product is reported in its result; the other products still get made.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radarlib.errors import ProductError

__all__ = ["ProductJob", "ProductOutcome", "ProductResult", "product_path", "run_product_job"]


@dataclass(frozen=True)
class ProductJob:
    """Products to make for one volume: plain, picklable values only."""

    volume_id: str
    netcdf_path: str
    output_dir: str
    products: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False
    fsync: bool = True


@dataclass(frozen=True)
class ProductResult:
    """One product's outcome: its file, or the error that stopped it."""

    product: str
    ok: bool
    path: str | None = None
    made: bool = False  #: False when an existing complete file was kept
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class ProductOutcome:
    """What the worker reports back for one volume."""

    volume_id: str
    results: tuple[ProductResult, ...]
    seconds: float
    worker_pid: int = field(default_factory=os.getpid)


def product_path(output_dir: str | os.PathLike[str], netcdf_path: str, product: str) -> Path:
    """``<output_dir>/<netcdf stem>_<product>``."""
    return Path(output_dir) / f"{Path(netcdf_path).stem}_{product}"


class _Maker:
    """Makes the products of one volume, sharing the read volume and the COLMAX grid."""

    def __init__(self, job: ProductJob) -> None:
        from radarlib.products.settings import ProductSettings

        values = dict(job.settings)
        self.settings = ProductSettings(**values) if values else ProductSettings()
        self.job = job
        self._volume: Any = None
        self._colmax: Any = None

    @property
    def volume(self) -> Any:
        if self._volume is None:
            from radarlib.products.polar import read_polar

            self._volume = read_polar(self.job.netcdf_path)
        return self._volume

    @property
    def colmax(self) -> Any:
        if self._colmax is None:
            from radarlib.products.colmax import make_colmax
            from radarlib.products.grid import GridSpec

            spec = GridSpec(self.settings.extent_km, self.settings.resolution_km)
            cache = Path(self.job.output_dir) / ".grid-cache"
            self._colmax = make_colmax(self.volume, spec, cache, self.settings.colmax_field)
        return self._colmax

    def make(self, product: str, target: Path) -> None:
        from radarlib.products.cog import write_cog
        from radarlib.products.ppi import render_colmax, render_ppi

        transparent = product.endswith("_transparent.png")
        stem = product.removesuffix(".png").removesuffix("_transparent")
        ring, fsync = self.settings.ring_km, self.job.fsync
        if product == "colmax.tif":
            write_cog(self.colmax, target, fsync=fsync)
        elif stem == "colmax":
            render_colmax(self.colmax, target, transparent=transparent, ring_km=ring, fsync=fsync)
        elif stem.startswith("ppi_"):
            name, _, sweep = stem[4:].rpartition("_")
            if not name or not sweep.isdigit():
                raise ProductError(f"unknown product {product!r}", source=self.job.volume_id)
            render_ppi(
                self.volume,
                name,
                int(sweep),
                target,
                transparent=transparent,
                ring_km=ring,
                fsync=fsync,
                cache_dir=Path(self.job.output_dir) / ".grid-cache",
            )
        else:
            raise ProductError(f"unknown product {product!r}", source=self.job.volume_id)


def run_product_job(job: ProductJob) -> ProductOutcome:
    """Make ``job.products`` for one volume; every exception becomes a failed result."""
    os.environ.setdefault("PYART_QUIET", "1")
    began = time.perf_counter()
    results: list[ProductResult] = []
    try:
        maker = _Maker(job)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        failed = [ProductResult(p, ok=False, error=reason) for p in job.products]
        return ProductOutcome(job.volume_id, tuple(failed), time.perf_counter() - began)
    for product in job.products:
        started = time.perf_counter()
        target = product_path(job.output_dir, job.netcdf_path, product)
        try:
            if target.is_file() and not job.force:
                results.append(ProductResult(product, ok=True, path=str(target), made=False))
                continue
            maker.make(product, target)
            results.append(
                ProductResult(
                    product, ok=True, path=str(target), made=True,
                    seconds=time.perf_counter() - started,
                )
            )  # fmt: skip
        except Exception as exc:  # one product's failure must not stop the others
            detail = "" if isinstance(exc, ProductError) else f"\n{traceback.format_exc()}"
            results.append(
                ProductResult(
                    product, ok=False, error=f"{type(exc).__name__}: {exc}{detail}",
                    seconds=time.perf_counter() - started,
                )
            )  # fmt: skip
    return ProductOutcome(job.volume_id, tuple(results), time.perf_counter() - began)
