"""The [qc] and [products] tables of the TOML config reach the conversions and the product stage."""

from __future__ import annotations

import textwrap
from pathlib import Path

import netCDF4
import pytest

from radarlib.config import ConfigErrors, load_config
from radarlib.errors import ConfigError
from radarlib.pipeline.supervisor import Pipeline
from radarlib.pipeline.workers import ConversionJob, run_job
from radarlib.qc import QCConfig

BASE = """
[paths]
root = "data"
[sources.main]
host = "127.0.0.1"
username = "u"
password = "secret-for-tests"
[[radars]]
code = "RMA1"
start_date = 2025-11-18T00:00:00Z
[[radars]]
code = "RMA5"
start_date = 2025-11-18T00:00:00Z
"""


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "radarlib.toml"
    path.write_text(BASE + textwrap.dedent(extra))
    return path


def test_qc_and_products_tables_per_radar(tmp_path: Path) -> None:
    config = load_config(
        _config(
            tmp_path,
            """
            [qc]
            clutter_rhohv_below = 0.9
            [qc.radars.RMA5]
            output = "flags"
            [products]
            enabled = true
            ppi_sweeps = [0, 2]
            [products.radars.RMA5]
            enabled = false
            output_dir = "png/{radar}"
            """,
        )
    )
    assert config.qc_config("RMA1") == QCConfig(clutter_rhohv_below=0.9)
    assert config.qc_config("RMA5").output == "flags"
    assert config.processing_config("RMA1").qc["clutter_rhohv_below"] == 0.9
    rma1 = config.product_config("RMA1")
    assert rma1.output_dir == tmp_path / "data" / "RMA1" / "products"
    assert rma1.settings.product_names()[-2:] == ["ppi_DBZH_2.png", "ppi_DBZH_2_transparent.png"]
    assert config.products_dir("RMA5") == tmp_path / "png" / "RMA5"
    roles = {(d.radar, d.role) for d in Pipeline(config).daemons}
    assert ("RMA1", "products") in roles and ("RMA5", "products") not in roles
    plain = load_config(_config(tmp_path, ""))
    assert plain.processing_config("RMA1").qc is None  # no [qc] table: no QC
    assert {d.role for d in Pipeline(plain).daemons} == {"download", "processing"}


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[qc]\nbogus = 1\n", "qc.bogus"),
        ("[qc]\noutput = 'both'\n", "qc.output"),
        ("[qc.radars.RMA5]\nspeckle_min_neighbours = 12\n", "qc.speckle_min_neighbours"),
        ("[products]\nppi_sweeps = 'all'\n", "products.ppi_sweeps"),
        ("[products]\nresolution_km = 0\n", "products.resolution_km"),
        ("[products]\nenable = true\n", "products.enable"),
        ("[processing]\nqc = {}\n", "processing.qc"),  # set from [qc], not a [processing] key
        (
            "[products]\nenabled = true\n[output]\nformats = ['odim', 'cfradial']\n",
            "output.formats",
        ),
    ],
)
def test_bad_values_fail_at_load_naming_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, extra))
    assert info.value.key == key


def test_worker_job_applies_the_configured_qc(rma11_dir: Path, tmp_path: Path) -> None:
    files = tuple(str(p) for p in sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR")))
    qc = QCConfig(output="flags").to_mapping()
    outcome = run_job(ConversionJob("RMA11_0315_01_x", files, str(tmp_path), qc=qc))
    assert outcome.ok, outcome.error
    with netCDF4.Dataset(outcome.netcdf_path) as ds:
        assert "DBZH_QC_FLAGS" in ds.variables and "DBZH_QC" not in ds.variables
        assert ds.qc_output == "flags" and "speckle applied" in ds.qc_steps


def test_qc_and_product_problems_are_reported_with_the_others(tmp_path: Path) -> None:
    """One load lists every problem: [qc] and [products] ones beside the daemon tables', once."""
    extra = "[processing]\nmax_attempts = 0\n[qc]\nbogus = 1\n[products]\nring_km = -1\n"
    with pytest.raises(ConfigErrors) as info:
        load_config(_config(tmp_path, extra))
    keys = [problem.key for problem in info.value.problems]
    assert sorted(keys) == ["processing.max_attempts", "products.ring_km", "qc.bogus"]
