"""Which products to make per volume and how: the ``[products]`` table of the TOML config.

>>> settings = ProductSettings(ppi_fields=("DBZH",), ppi_sweeps=(0, 1))
>>> settings.product_names()[:3]
['colmax.png', 'colmax_transparent.png', 'colmax.tif']

Each product has a name (the ``product`` column of its state row and the suffix of its file):
``colmax.png``, ``colmax_transparent.png``, ``colmax.tif`` (the COG) and, per chosen field and
sweep, ``ppi_<FIELD>_<sweep>.png`` and ``ppi_<FIELD>_<sweep>_transparent.png``. A volume's
file is ``<output_dir>/<volume netcdf stem>_<product name>``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radarlib.checks import check_bool, check_integer, check_number, radar_table
from radarlib.errors import ConfigError

__all__ = ["ProductSettings", "product_settings_from_mapping"]

_FIELD = re.compile(r"[A-Z][A-Z0-9_]{0,15}")


@dataclass(frozen=True)
class ProductSettings:
    """Products of one radar: which ones, the COLMAX grid, images, retries."""

    #: make products in `radarlib run` (the CLI commands work either way)
    enabled: bool = False
    colmax: bool = True  #: COLMAX PNG
    cog: bool = True  #: COLMAX Cloud-Optimized GeoTIFF
    transparent: bool = True  #: transparent-background variants of every PNG
    ppi_fields: tuple[str, ...] = ("DBZH",)
    ppi_sweeps: tuple[int, ...] = (0,)
    extent_km: float = 240.0
    resolution_km: float = 1.0
    ring_km: float = 50.0
    #: reflectivity field COLMAX is made of (its QC'd copy when the NetCDF has one)
    colmax_field: str = "DBZH"
    max_attempts: int = 3
    retry_backoff_seconds: float = 60.0
    max_concurrent: int = 1
    poll_interval: float = 30.0
    #: where the files go; None = ``<netcdf_dir>/../products``
    output_dir: Path | None = None

    def __post_init__(self) -> None:
        for key in ("enabled", "colmax", "cog", "transparent"):
            check_bool(key, getattr(self, key))
        fields = self.ppi_fields
        if isinstance(fields, str) or not all(
            isinstance(f, str) and _FIELD.fullmatch(f) for f in fields
        ):
            raise ConfigError("ppi_fields", f"must be a list of field names, got {fields!r}")
        object.__setattr__(self, "ppi_fields", tuple(fields))
        sweeps = self.ppi_sweeps
        if isinstance(sweeps, (str, int)):
            raise ConfigError("ppi_sweeps", f"must be a list of sweep numbers, got {sweeps!r}")
        for s in sweeps:
            check_integer("ppi_sweeps", s, 0, 254)
        object.__setattr__(self, "ppi_sweeps", tuple(sweeps))
        for key in ("extent_km", "resolution_km", "ring_km", "poll_interval"):
            check_number(key, getattr(self, key))
        check_number("retry_backoff_seconds", self.retry_backoff_seconds, strict=False)
        check_integer("max_attempts", self.max_attempts, 1)
        check_integer("max_concurrent", self.max_concurrent, 1, 64)
        if self.extent_km / self.resolution_km > 4000:
            raise ConfigError("resolution_km", "grid larger than 8000 x 8000 cells")
        if self.output_dir is not None:
            object.__setattr__(self, "output_dir", Path(self.output_dir))

    def required_fields(self) -> dict[str, str]:
        """Product name -> the field a volume must have for it (volume 02 has no DBZH), in
        making order."""
        needs: dict[str, str] = {}
        variants = ("", "_transparent") if self.transparent else ("",)
        if self.colmax:
            needs.update({f"colmax{v}.png": self.colmax_field for v in variants})
        if self.cog:
            needs["colmax.tif"] = self.colmax_field
        for field in self.ppi_fields:
            for sweep in self.ppi_sweeps:
                for v in variants:
                    needs[f"ppi_{field}_{sweep}{v}.png"] = field.removesuffix("_QC")
        return needs

    def product_names(self) -> list[str]:
        """The products every volume gets, in making order."""
        return list(self.required_fields())

    def to_mapping(self) -> dict[str, Any]:
        """Plain values (cross the process boundary to the workers)."""
        data = dataclasses.asdict(self)
        data["output_dir"] = None if self.output_dir is None else str(self.output_dir)
        return data


def product_settings_from_mapping(
    data: Mapping[str, Any] | None, radar: str | None = None, *, base_dir: Path | None = None
) -> ProductSettings:
    """Settings from the ``[products]`` table; ``[products.radars.<CODE>]`` overrides per radar."""
    known = [f.name for f in dataclasses.fields(ProductSettings)]
    values = radar_table(data, "products", radar, known)
    if isinstance(values.get("output_dir"), str) and base_dir is not None:
        path = Path(values["output_dir"].replace("{radar}", radar or ""))
        values["output_dir"] = path if path.is_absolute() else base_dir / path
    try:
        return ProductSettings(**values)
    except ConfigError as exc:
        raise ConfigError(f"products.{exc.key}", exc.problem) from None
