"""Building the Py-ART Radar: vocabulary in step with Py-ART, fields, status flags, geometry."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from radarlib.bufr.model import GateStatus
from radarlib.bufr.synthetic import synthetic_volume
from radarlib.filename import BufrFileName
from radarlib.radar import history_line, volume_to_radar
from radarlib.vocabulary import (
    FIELD_VOCABULARY,
    FILL_VALUE,
    coordinate_attrs,
    field_attrs,
    global_attrs,
    status_attrs,
)
from radarlib.volume import Volume, assemble_volume

os.environ.setdefault("PYART_QUIET", "1")
import pyart


@pytest.fixture(scope="module")
def volume() -> Volume:
    files = synthetic_volume("RMA1", "0315", "01", fields=["DBZH", "KDP"], nsweeps=3, ngates=80)
    return assemble_volume(list(files.values()), expected_fields=["DBZH", "KDP", "ZDR"])


def test_vocabulary_matches_pyart_default_config() -> None:
    for name, vocab in FIELD_VOCABULARY.items():
        assert vocab.pyart_name is not None
        meta = pyart.config.get_metadata(vocab.pyart_name)
        assert meta["units"] == vocab.units, name
        assert meta["standard_name"] == vocab.standard_name, name
    for name in ("azimuth", "elevation", "range", "fixed_angle", "sweep_number"):
        ours, theirs = coordinate_attrs(name), pyart.config.get_metadata(name)
        assert ours["standard_name"] == theirs["standard_name"], name


def test_field_and_status_attributes() -> None:
    attrs = field_attrs("ZDR")
    assert attrs["units"] == "dB" and attrs["standard_name"] == "log_differential_reflectivity_hv"
    assert attrs["_FillValue"] == FILL_VALUE and attrs["coordinates"] == "elevation azimuth range"
    assert attrs["ancillary_variables"] == "ZDR_status"
    other = field_attrs("TH")
    assert other["long_name"] == "TH" and "standard_name" not in other
    st = status_attrs("ZDR")
    assert st["flag_values"].tolist() == [int(s) for s in GateStatus]
    assert st["flag_meanings"].split() == [s.name.lower() for s in GateStatus]
    g = global_attrs(
        instrument_name="RMA1", scan_name="0315", volume_number="01", sources=["a", "b"],
        history="h", time_coverage_start="s", time_coverage_end="e", missing_fields=["ZDR"],
        warnings=["w1", "w2"], ray_times_increase=True,
    )  # fmt: skip
    assert g["source"] == "a, b" and g["missing_fields"] == "ZDR" and g["scan_id"] == 315
    assert g["conversion_warnings"] == "w1\nw2" and g["Conventions"] == "CF/Radial"


def test_radar_fields_geometry_and_metadata(volume: Volume) -> None:
    radar = volume_to_radar(volume)
    assert (
        radar.nsweeps == 3 and radar.nrays == 3 * 360 and radar.ngates == volume.range_axis.ngates
    )
    assert set(radar.fields) == {"DBZH", "DBZH_status", "KDP", "KDP_status"}
    for name in ("DBZH", "KDP"):
        f = radar.fields[name]
        fd = volume.fields[name]
        assert isinstance(f["data"], np.ma.MaskedArray) and f["data"].dtype == np.float32
        assert np.array_equal(f["data"].mask, fd.status != 0)
        assert f["units"] == FIELD_VOCABULARY[name].units
        assert np.array_equal(f["range_shift"], fd.range_shift.astype(np.float32))
        st = radar.fields[f"{name}_status"]
        assert st["data"].dtype == np.uint8 and np.array_equal(st["data"], fd.status)
    assert radar.fields["KDP"]["range_shift"].tolist()[0] == -120.0  # 4770 m offset, sweep 0
    assert radar.time["units"] == "seconds since 2025-11-18T12:30:00Z"
    assert np.array_equal(radar.time["data"], volume.ray_times())
    assert radar.time["data"][0] > 0 and np.all(np.diff(radar.time["data"]) >= 0)
    assert np.array_equal(radar.azimuth["data"], volume.azimuths().astype(np.float32))
    assert radar.fixed_angle["data"].tolist() == pytest.approx([s.elevation for s in volume.sweeps])
    assert radar.sweep_start_ray_index["data"].tolist() == [0, 360, 720]
    assert radar.sweep_end_ray_index["data"].tolist() == [359, 719, 1079]
    assert radar.sweep_mode["data"].tolist() == [b"azimuth_surveillance"] * 3
    assert radar.latitude["standard_name"] == "latitude"
    assert radar.altitude["standard_name"] == "altitude"
    assert radar.range["meters_to_center_of_first_gate"] == 1950.0
    md = radar.metadata
    assert md["instrument_name"] == "RMA1" and md["volume_number"] == 1
    assert md["time_coverage_start"] == "2025-11-18T12:30:00Z"
    assert md["missing_fields"] == "ZDR" and md["scan_name"] == "0315"


def test_pyart_functions_work_on_the_radar(volume: Volume) -> None:
    radar = volume_to_radar(volume)
    x, _, z = radar.get_gate_x_y_z(1)
    assert x.shape == (360, radar.ngates) and np.isfinite(z).all()
    sub = radar.extract_sweeps([2])
    assert sub.nrays == 360 and sub.fixed_angle["data"][0] == radar.fixed_angle["data"][2]
    gf = pyart.filters.GateFilter(radar)
    gf.exclude_masked("DBZH")
    assert int(gf.gate_excluded.sum()) == int(np.count_nonzero(volume.fields["DBZH"].mask))


def test_unknown_quantity_passes_through_with_its_name() -> None:
    files = synthetic_volume("RMA1", "0315", "02", fields=["VRAD"], nsweeps=1, ngates=10)
    vrad = files["VRAD"]
    assert vrad.filename is not None
    name = BufrFileName("RMA1", "0315", "02", "VRADH", vrad.filename.time)
    radar = volume_to_radar(assemble_volume([replace(vrad, filename=name)]))
    assert radar.fields["VRADH"]["long_name"] == "VRADH"
    assert "VRADH_status" in radar.fields


def test_history_names_version_and_time() -> None:
    line = history_line(["a.BUFR"], datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert line == "2025-01-02T03:04:05Z: converted by radarlib 0.1.0 from a.BUFR"
