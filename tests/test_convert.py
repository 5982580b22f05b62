"""Acceptance: real BUFR volumes -> CF/Radial NetCDF, read back with netCDF4, xradar and Py-ART.

Every check recomputes the expected position of each BUFR gate from the BUFR sweep
header (row r -> azimuth (r + 0.5) * 360 / nrays, gate g -> offset + bin/2 + g * bin,
time by the documented ODIM rule), independently of how the converter stores rays.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest

from radarlib.bufr import write_bufr
from radarlib.bufr.model import NODATA, UNDETECT, BufrFile, GateStatus
from radarlib.bufr.synthetic import synthetic_volume
from radarlib.convert import ConversionResult, ConvertOptions, convert_volume, decode_files
from radarlib.errors import ConfigError, VolumeError
from radarlib.filename import parse_iso

os.environ.setdefault("PYART_QUIET", "1")

VOL01 = ["DBZH", "DBZV", "ZDR", "KDP"]
VOL02 = ["VRAD", "WRAD"]
STAMP01 = "20251020T152828Z"
STAMP02 = "20251020T152429Z"
AR5 = "AR5_1000_1_DBZH_20240101T000746Z.BUFR"


def _paths(rma11_dir: Path, vol: str, fields: list[str], stamp: str) -> list[Path]:
    return [rma11_dir / f"RMA11_0315_{vol}_{f}_{stamp}.BUFR" for f in fields]


@pytest.fixture(scope="module")
def converted(
    rma11_dir: Path, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[ConversionResult, list[Path]]]:
    """The three real volumes converted once for this module."""
    out = tmp_path_factory.mktemp("nc")
    jobs = {
        "01": _paths(rma11_dir, "01", VOL01, STAMP01),
        "02": _paths(rma11_dir, "02", VOL02, STAMP02),
        "AR5": [samples_dir / AR5],
    }
    expected = {"01": [*VOL01, "RHOHV", "PHIDP"], "02": VOL02, "AR5": None}
    return {k: (convert_volume(p, out, expected_fields=expected[k]), p) for k, p in jobs.items()}


def _sweep_times(sw: Any) -> np.ndarray:
    """Expected ray time (s since epoch) per BUFR row, by the documented rule."""
    start = sw.start_time.timestamp()
    duration = max((sw.end_time - sw.start_time).total_seconds(), 0.0)
    order = (np.arange(sw.nrays) - sw.a1gate) % sw.nrays  # acquisition position of each row
    return start + (order + 0.5) * duration / sw.nrays


def _status_of(data: np.ndarray) -> np.ndarray:
    st = np.full(data.shape, GateStatus.VALID, np.uint8)
    st[data == UNDETECT] = GateStatus.UNDETECT
    st[data == NODATA] = GateStatus.NODATA
    st[np.isnan(data)] = GateStatus.NAN
    return st


def _check_netcdf(path: Path, bufrs: list[BufrFile], expected: dict[str, Any]) -> None:
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(True)
        rng = ds["range"][:].astype(np.float64)
        az = ds["azimuth"][:]
        units = ds["time"].units
        base = parse_iso(units.removeprefix("seconds since ")).timestamp()
        times = base + ds["time"][:].astype(np.float64)
        starts = ds["sweep_start_ray_index"][:]
        ends = ds["sweep_end_ray_index"][:]
        fixed = ds["fixed_angle"][:]
        for f in bufrs:
            name = f.field
            assert name is not None
            var, status_var = ds[name], ds[f"{name}_status"]
            assert var.dtype == np.float32 and var._FillValue == np.float32(-9999.0)
            values = var[:]
            status = status_var[:]
            assert np.array_equal(np.ma.getmaskarray(values), status != GateStatus.VALID)
            assert f.filename is not None
            counts = expected[f.filename.name]["counts"]
            assert int(np.ma.count(values)) == counts["valid"]
            assert int(np.count_nonzero(status == GateStatus.UNDETECT)) == counts["undetect"]
            assert int(np.count_nonzero(status == GateStatus.NODATA)) == counts["nodata"]
            assert int(np.count_nonzero(status == GateStatus.NAN)) == counts["nan"]
            for i, sw in enumerate(f.sweeps):
                assert fixed[i] == np.float32(sw.elevation)
                rays = np.arange(starts[i], ends[i] + 1)
                assert rays.size == sw.nrays
                # BUFR row r -> the file ray whose azimuth is the centre of bin r
                want_az = (np.arange(sw.nrays) + 0.5) * 360.0 / sw.nrays
                pos = {float(a): int(r) for a, r in zip(az[rays], rays, strict=True)}
                ray_of_row = np.array([pos[float(np.float32(a))] for a in want_az])
                # gate g -> nearest axis gate, at most half a gate from its true range
                true = sw.range_offset + sw.range_bin_size * (np.arange(sw.ngates) + 0.5)
                gate = np.abs(rng[None, :] - true[:, None]).argmin(axis=1)
                assert np.all(np.abs(rng[gate] - true) <= sw.range_bin_size / 2)
                got = values[ray_of_row[:, None], gate[None, :]]
                want_status = _status_of(sw.data)
                assert np.array_equal(status[ray_of_row[:, None], gate[None, :]], want_status)
                valid = want_status == GateStatus.VALID
                assert np.array_equal(np.ma.getmaskarray(got), ~valid)
                assert np.array_equal(got.data[valid], sw.data[valid].astype(np.float32))
                assert np.array_equal(got.data[valid].astype(np.float64), sw.data[valid])
                # every other gate of the sweep is "outside"
                inside = np.zeros(rng.size, bool)
                inside[gate] = True
                assert np.all(status[rays][:, ~inside] == GateStatus.OUTSIDE)
                assert np.allclose(times[ray_of_row], _sweep_times(sw), atol=1e-3, rtol=0)


@pytest.mark.parametrize("key", ["01", "02", "AR5"])
def test_every_valid_gate_exact_at_its_azimuth_range_and_time_netcdf4(
    key: str, converted: dict[str, tuple[ConversionResult, list[Path]]], expected: dict[str, Any]
) -> None:
    result, paths = converted[key]
    bufrs = decode_files(paths)
    _check_netcdf(result.path, bufrs, expected)


def test_volume_01_metadata_and_result(
    converted: dict[str, tuple[ConversionResult, list[Path]]],
) -> None:
    result, paths = converted["01"]
    assert pickle.loads(pickle.dumps(result)) == result  # crosses process boundaries
    options = ConvertOptions(compression_level=2, root_resources=Path("/x"))
    assert pickle.loads(pickle.dumps(options)) == options
    assert result.path.name == f"RMA11_0315_01_{STAMP01}.nc"
    assert result.volume_id == "RMA11_0315_01_2025-10-20T15:28:28Z"
    assert result.fields == tuple(VOL01)
    assert result.missing_fields == ("PHIDP", "RHOHV")
    assert (result.nsweeps, result.nrays, result.ngates) == (15, 15 * 360, 653)
    assert sum("precedes start time" in w for w in result.warnings) == 2
    with netCDF4.Dataset(result.path) as ds:
        assert ds.Conventions == "CF/Radial" and ds.version == "1.4"
        assert ds.time_coverage_start == "2025-10-20T15:28:28Z"
        assert ds.time_coverage_end == "2025-10-20T15:32:52Z"
        assert netCDF4.chartostring(ds["time_coverage_start"][:]) == "2025-10-20T15:28:28Z"
        assert ds["time"].units == "seconds since 2025-10-20T15:28:28Z"
        assert ds.instrument_name == "RMA11" and ds.site_name == "RMA11"
        assert ds.scan_name == "0315" and ds.scan_id == 315
        assert int(ds["volume_number"][:]) == 1
        assert ds.source == ", ".join(p.name for p in paths)
        assert "radarlib 0.1.0" in ds.history
        assert ds.missing_fields == "PHIDP, RHOHV"
        assert "sweep 13: end time" in ds.conversion_warnings
        for attr in ("title", "institution", "references", "comment"):
            assert getattr(ds, attr)
        for name, std in (("latitude", "latitude"), ("longitude", "longitude")):
            assert ds[name].standard_name == std
        assert float(ds["latitude"][:]) == -27.5026 and float(ds["altitude"][:]) == 313.0
        assert netCDF4.chartostring(ds["platform_type"][:]) == "fixed"
        assert netCDF4.chartostring(ds["primary_axis"][:]) == "axis_z"
        modes = netCDF4.chartostring(ds["sweep_mode"][:])
        assert set(modes.tolist()) == {"azimuth_surveillance"}
        kdp = ds["KDP"]
        assert kdp.units == "degrees/km" and kdp.standard_name == "specific_differential_phase_hv"
        assert kdp.coordinates == "elevation azimuth range"
        assert kdp.ancillary_variables == "KDP_status"
        # KDP's 4770 m sweeps sit 8 gates out, 120 m nearer than their true range
        shift = np.asarray(kdp.range_shift)
        assert shift[[0, 3, 4]].tolist() == [-120.0] * 3 and shift[[1, 2, 13]].tolist() == [0.0] * 3
        st = ds["DBZH_status"]
        assert st.flag_meanings == "valid undetect nodata nan outside"
        assert np.asarray(st.flag_values).tolist() == [0, 1, 2, 3, 4]
        # ray times of the sweeps whose end precedes their start: all at the start
        t = ds["time"][:]
        s13 = slice(int(ds["sweep_start_ray_index"][13]), int(ds["sweep_end_ray_index"][13]) + 1)
        assert np.all(t[s13] == 249.0)  # 15:32:37 - 15:28:28
        assert np.all(np.diff(t) >= 0) and ds.ray_times_increase == "true"
        # field data are chunked per sweep, compressed, float32
        assert kdp.chunking() == [360, 653] and kdp.filters()["zlib"] is True


@pytest.mark.parametrize("key", ["01", "02", "AR5"])
def test_xradar_reads_the_same_gates_and_times(
    key: str, converted: dict[str, tuple[ConversionResult, list[Path]]]
) -> None:
    import xradar

    result, paths = converted[key]
    bufrs = decode_files(paths)
    tree = xradar.io.open_cfradial1_datatree(result.path)
    ref = bufrs[0]
    assert str(tree.ds.attrs["instrument_name"]) == ref.radar
    start = ref.sweeps[0].start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tree["/"]["time_coverage_start"].item().decode() == start
    for i, sw0 in enumerate(ref.sweeps):
        ds = tree[f"sweep_{i}"].ds
        assert float(ds["sweep_fixed_angle"]) == pytest.approx(sw0.elevation, abs=1e-5)
        az = ds["azimuth"].values
        assert np.array_equal(az, ((np.arange(sw0.nrays) + 0.5) * 360 / sw0.nrays).astype("f4"))
        t = ds["time"].values.astype("datetime64[ns]").astype(np.int64) / 1e9
        assert np.allclose(t, _sweep_times(sw0), atol=1e-3, rtol=0)
        rng = ds["range"].values.astype(np.float64)
        for f in bufrs:
            sw = f.sweeps[i]
            true = sw.range_offset + sw.range_bin_size * (np.arange(sw.ngates) + 0.5)
            gate = np.abs(rng[None, :] - true[:, None]).argmin(axis=1)
            assert np.all(np.abs(rng[gate] - true) <= sw.range_bin_size / 2)
            got = ds[f.field].values[:, gate]  # rows sorted by azimuth = BUFR rows
            valid = _status_of(sw.data) == GateStatus.VALID
            assert np.array_equal(np.isnan(got), ~valid)
            assert np.array_equal(got[valid], sw.data[valid].astype(np.float32))


def test_pyart_reads_the_files(converted: dict[str, tuple[ConversionResult, list[Path]]]) -> None:
    import pyart

    for key, (result, paths) in converted.items():
        radar = pyart.io.read_cfradial(str(result.path))
        assert radar.nsweeps == result.nsweeps and radar.ngates == result.ngates
        for f in decode_files(paths):
            n_valid = sum(int(np.count_nonzero(_status_of(s.data) == 0)) for s in f.sweeps)
            assert int(np.ma.count(radar.fields[f.field]["data"])) == n_valid, key
        lat, lon, _ = radar.get_gate_lat_lon_alt(0)
        assert np.isfinite(lat).all() and np.isfinite(lon).all()


def test_a_corrupt_field_file_fails_naming_that_file(rma11_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    paths = []
    for p in _paths(rma11_dir, "01", VOL01, STAMP01):
        target = src / p.name
        data = p.read_bytes()
        target.write_bytes(data[: len(data) // 2] if "_ZDR_" in p.name else data)
        paths.append(target)
    with pytest.raises(VolumeError, match=r"RMA11_0315_01_ZDR_20251020T152828Z\.BUFR") as info:
        convert_volume(paths, tmp_path / "out")
    assert info.value.source == f"RMA11_0315_01_ZDR_{STAMP01}.BUFR"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    empty = src / "RMA11_0315_01_DBZV_20251020T152828Z.BUFR"
    empty.write_bytes(b"")
    with pytest.raises(VolumeError, match="DBZV"):
        convert_volume([paths[0], empty], tmp_path / "out")
    with pytest.raises(VolumeError, match="cannot read"):
        convert_volume([tmp_path / "gone" / paths[0].name], tmp_path / "out")


def _write(directory: Path, files: dict[str, BufrFile]) -> list[Path]:
    paths = []
    for f in files.values():
        assert f.filename is not None
        path = directory / f.filename.name
        path.write_bytes(write_bufr(f, level=1))
        paths.append(path)
    return paths


def test_fields_with_different_nrays_are_refused_naming_the_file(tmp_path: Path) -> None:
    a = synthetic_volume("RMA1", "0315", "02", nsweeps=2, nrays=360, ngates=50)
    b = synthetic_volume("RMA1", "0315", "02", nsweeps=2, nrays=480, ngates=50)
    paths = _write(tmp_path, {"VRAD": a["VRAD"], "WRAD": b["WRAD"]})
    with pytest.raises(VolumeError, match="sweep 0 has 480 rays but VRAD has 360") as info:
        convert_volume(paths, tmp_path / "out")
    assert info.value.source == paths[1].name


def test_sweeps_with_different_nrays_are_handled(tmp_path: Path) -> None:
    a = synthetic_volume("RMA1", "0315", "02", nsweeps=2, nrays=360, ngates=50)
    b = synthetic_volume("RMA1", "0315", "02", nsweeps=2, nrays=480, ngates=50)
    mixed = {
        name: replace(a[name], sweeps=(a[name].sweeps[0], b[name].sweeps[1])) for name in VOL02
    }
    paths = _write(tmp_path, mixed)
    result = convert_volume(paths, tmp_path / "out", options=ConvertOptions(compression_level=1))
    assert result.nrays == 360 + 480
    bufrs = decode_files(paths)
    assert [s.nrays for s in bufrs[0].sweeps] == [360, 480]
    counts = {
        f.field: {
            "counts": {
                "valid": sum(int(np.count_nonzero(_status_of(s.data) == 0)) for s in f.sweeps),
                "undetect": sum(int(np.count_nonzero(s.data == UNDETECT)) for s in f.sweeps),
                "nodata": sum(int(np.count_nonzero(s.data == NODATA)) for s in f.sweeps),
                "nan": sum(int(np.count_nonzero(np.isnan(s.data))) for s in f.sweeps),
            }
        }
        for f in bufrs
    }
    _check_netcdf(result.path, bufrs, {f"{f.filename}": counts[f.field] for f in bufrs})
    with netCDF4.Dataset(result.path) as ds:
        assert np.asarray(ds["ray_angle_res"][:]).tolist() == [1.0, 0.75]


def test_a_field_lacking_sweeps_is_masked_and_reported(tmp_path: Path) -> None:
    vol = synthetic_volume("RMA1", "0315", "02", nsweeps=3, ngates=40)
    vol["WRAD"] = replace(vol["WRAD"], sweeps=vol["WRAD"].sweeps[:2])
    result = convert_volume(_write(tmp_path, vol), tmp_path / "out")
    assert any("WRAD lacks sweep(s) 2 of 3" in w for w in result.warnings)
    with netCDF4.Dataset(result.path) as ds:
        assert "WRAD lacks sweep(s) 2" in ds.conversion_warnings
        assert np.atleast_1d(ds["WRAD"].missing_sweeps).tolist() == [2]
        s2 = slice(int(ds["sweep_start_ray_index"][2]), int(ds["sweep_end_ray_index"][2]) + 1)
        assert np.all(ds["WRAD_status"][s2] == GateStatus.OUTSIDE)
        assert np.ma.count(ds["WRAD"][s2]) == 0 and np.ma.count(ds["VRAD"][s2]) > 0


def test_rewrite_replaces_and_compression_level_is_applied(tmp_path: Path) -> None:
    vol = synthetic_volume("RMA1", "0315", "02", nsweeps=2, ngates=60)
    paths = _write(tmp_path, vol)
    out = tmp_path / "out"
    first = convert_volume(paths, out, options=ConvertOptions(compression_level=0))
    size0 = first.path.stat().st_size
    again = convert_volume(paths, out, options=ConvertOptions(compression_level=9))
    assert again.path == first.path and again.path.stat().st_size < size0
    with netCDF4.Dataset(again.path) as ds:
        assert ds["VRAD"].filters()["complevel"] == 9
    assert sorted(p.name for p in out.iterdir()) == [first.path.name]  # no temp files left
    with pytest.raises(ConfigError, match="compression_level"):
        ConvertOptions(compression_level=10)


def test_volume_time_rule_across_days(tmp_path: Path) -> None:
    moment = datetime(2025, 12, 31, 23, 59, 50, tzinfo=timezone.utc)
    vol = synthetic_volume("RMA1", "0315", "02", time=moment, fields=["VRAD"], nsweeps=2, ngates=30)
    result = convert_volume(_write(tmp_path, vol), tmp_path / "out")
    with netCDF4.Dataset(result.path) as ds:
        assert ds.time_coverage_start == "2025-12-31T23:59:50Z"
        end = vol["VRAD"].sweeps[-1].end_time
        assert ds.time_coverage_end == (end + timedelta(0)).strftime("%Y-%m-%dT%H:%M:%SZ")
