"""Synthetic RMA volumes: they decode through the real reader and look like the radar's files."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from radarlib.bufr import NODATA, UNDETECT, BufrFile, read_bufr, write_bufr
from radarlib.bufr.synthetic import (
    DEFAULT_TIME,
    FIELD_RANGES,
    NYQUIST,
    QUANTITY_CODES,
    STATIONS,
    station_for,
    synthetic_volume,
    write_synthetic_volume,
)
from radarlib.filename import BufrFileName
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

VOL01 = ["DBZH", "DBZV", "ZDR", "RHOHV", "PHIDP", "KDP"]


@pytest.fixture(scope="module")
def vol01() -> dict[str, BufrFile]:
    """The full default volume 01 (15 sweeps, real gate counts)."""
    return synthetic_volume("RMA1", "0315", "01", seed=3)


@pytest.fixture(scope="module")
def vol02() -> dict[str, BufrFile]:
    return synthetic_volume("RMA1", "0315", "02", seed=3)


def _all(f: BufrFile) -> np.ndarray:
    return np.concatenate([s.data.ravel() for s in f.sweeps])


def _valid(data: np.ndarray) -> np.ndarray:
    return data[(data != UNDETECT) & (data != NODATA) & ~np.isnan(data)]


def test_default_fields_follow_the_volume_types(
    vol01: dict[str, BufrFile], vol02: dict[str, BufrFile]
) -> None:
    assert list(vol01) == DEFAULT_VOLUME_TYPES["0315"]["01"] == VOL01
    assert list(vol02) == DEFAULT_VOLUME_TYPES["0315"]["02"] == ["VRAD", "WRAD"]
    for field, f in {**vol01, **vol02}.items():
        assert f.filename is not None
        assert f.filename.field == field and f.field == field and f.radar == "RMA1"
        assert f.filename.time == DEFAULT_TIME
        assert {s.quantity_code for s in f.sweeps} == {QUANTITY_CODES[field]}


def test_every_field_decodes_bit_for_bit_through_the_reader(
    vol01: dict[str, BufrFile], vol02: dict[str, BufrFile]
) -> None:
    for f in [*vol01.values(), *vol02.values()]:
        assert f.filename is not None
        again = read_bufr(write_bufr(f, level=1), name=f.filename.name)
        assert again.same_as(f)
        assert again.filename == f.filename
        assert again.station.latitude == STATIONS["RMA1"][0]


def test_geometry_is_like_the_real_files(
    vol01: dict[str, BufrFile], vol02: dict[str, BufrFile]
) -> None:
    dbzh = vol01["DBZH"]
    assert len(dbzh.sweeps) == 15
    gates = [s.ngates for s in dbzh.sweeps]
    assert gates[0] == 653 and gates == sorted(gates, reverse=True) and gates[-1] < 150
    elevations = [s.elevation for s in dbzh.sweeps]
    assert elevations == sorted(elevations) and elevations[0] == 0.5 and elevations[-1] > 25
    for f in vol01.values():
        for s in f.sweeps:
            assert (s.nrays, s.range_bin_size) == (360, 360.0)
            assert s.data.shape == (s.nrays, s.ngates) and s.data.dtype == np.float64
    assert {s.range_offset for f in vol01.values() if f.field != "KDP" for s in f.sweeps} == {
        1770.0
    }
    kdp_offsets = [s.range_offset for s in vol01["KDP"].sweeps]
    assert set(kdp_offsets) == {1770.0, 4770.0}  # differs between sweeps, like the real KDP
    assert kdp_offsets[1] == kdp_offsets[2] == 1770.0 and kdp_offsets[0] == 4770.0
    assert len(vol02["VRAD"].sweeps) == 5
    assert {(s.nrays, s.ngates) for s in vol02["VRAD"].sweeps} == {(360, 320)}


def test_times_and_a1gate(vol01: dict[str, BufrFile]) -> None:
    f = vol01["DBZH"]
    assert f.section1.time == f.sweeps[0].start_time == DEFAULT_TIME
    assert f.station.time == DEFAULT_TIME.replace(second=0)
    for a, b in zip(f.sweeps, f.sweeps[1:], strict=False):
        assert b.start_time >= a.end_time > a.start_time
    durations = [(s.end_time - s.start_time).total_seconds() for s in f.sweeps]
    assert all(8 <= d <= 40 for d in durations)
    assert len({s.a1gate for s in f.sweeps}) > 5
    assert all(0 <= s.a1gate < s.nrays for s in f.sweeps)
    for other in vol01.values():  # one antenna: every field shares times and a1gate
        assert [(s.start_time, s.end_time, s.a1gate) for s in other.sweeps] == [
            (s.start_time, s.end_time, s.a1gate) for s in f.sweeps
        ]


def test_values_stay_in_their_plausible_ranges(
    vol01: dict[str, BufrFile], vol02: dict[str, BufrFile]
) -> None:
    for field, f in {**vol01, **vol02}.items():
        data = _all(f)
        valid = _valid(data)
        lo, hi = FIELD_RANGES[field]
        assert valid.size > 0
        assert lo <= valid.min() and valid.max() <= hi, field
        # float32 numbers widened to float64, like the radar's
        assert np.array_equal(valid.astype(np.float32).astype(np.float64), valid)
        assert not np.isinf(data).any()
    assert FIELD_RANGES["VRAD"] == (-NYQUIST, NYQUIST)


def test_sentinels_undetect_majority_and_nodata_rays(
    vol01: dict[str, BufrFile], vol02: dict[str, BufrFile]
) -> None:
    for volume in (vol01, vol02):
        rows_per_field = []
        for field, f in volume.items():
            data = _all(f)
            assert (data == UNDETECT).mean() > 0.5, field
            nodata_rows = [
                (i, r)
                for i, s in enumerate(f.sweeps)
                for r in range(s.nrays)
                if (s.data[r] == NODATA).any()
            ]
            assert 1 <= len(nodata_rows) <= 10, field
            for i, r in nodata_rows:  # nodata fills whole rays
                assert (f.sweeps[i].data[r] == NODATA).all()
            rows_per_field.append(nodata_rows)
        assert all(rows == rows_per_field[0] for rows in rows_per_field)  # same rays in all


def test_weather_is_realistic(vol01: dict[str, BufrFile], vol02: dict[str, BufrFile]) -> None:
    dbzh = vol01["DBZH"]
    valid = _valid(_all(dbzh))
    assert valid.max() >= 45.0  # convective cores
    assert ((valid >= 20) & (valid <= 35)).mean() > 0.15  # stratiform rain

    # echoes fade with elevation: over the same ranges (20-38 km) the top sweep sees less
    def seen(index: int) -> float:
        s = dbzh.sweeps[index]
        r = s.range_offset + s.range_bin_size * np.arange(s.ngates)
        return float(np.mean(s.data[:, (r > 20_000) & (r < 38_000)] != UNDETECT))

    assert seen(len(dbzh.sweeps) - 1) < seen(0) / 3
    # KDP mostly undetect, valid only in heavy rain
    kdp = _all(vol01["KDP"])
    assert (kdp == UNDETECT).mean() > 0.9 and _valid(kdp).size > 100
    # PHIDP grows with range through rain: on rays with KDP, the far end exceeds the near end
    phidp = vol01["PHIDP"].sweeps[0].data
    assert vol01["PHIDP"].sweeps[0].range_offset == 1770.0  # DBZH's geometry, not KDP's
    rises = 0
    for row in phidp:
        ok = _valid(row)
        if ok.size > 60:
            rises += np.median(ok[-20:]) > np.median(ok[:20]) + 5
    assert rises > 10
    # velocities of both signs and folded within ±Nyquist; widths non-negative
    vrad = _valid(_all(vol02["VRAD"]))
    assert vrad.min() < -5 and vrad.max() > 5
    assert np.isnan(_all(vol02["VRAD"])).sum() > 0  # float32-NaN artefacts like the real VRAD
    assert _valid(_all(vol02["WRAD"])).min() >= 0


def test_same_arguments_same_bytes_and_seed_matters() -> None:
    kwargs = dict(nsweeps=3, seed=11)
    a = synthetic_volume("RMA4", "0315", "01", fields=["DBZH", "KDP"], **kwargs)
    b = synthetic_volume("RMA4", "0315", "01", fields=["DBZH", "KDP"], **kwargs)
    c = synthetic_volume("RMA4", "0315", "01", fields=["DBZH", "KDP"], nsweeps=3, seed=12)
    for field in ("DBZH", "KDP"):
        assert write_bufr(a[field], level=1) == write_bufr(b[field], level=1)
        assert write_bufr(a[field], level=1) != write_bufr(c[field], level=1)


def test_storms_move_between_volumes() -> None:
    t = datetime(2025, 11, 18, 12, 0, tzinfo=timezone.utc)
    first = synthetic_volume("RMA1", fields=["DBZH"], time=t, nsweeps=1)["DBZH"]
    later = synthetic_volume("RMA1", fields=["DBZH"], time=t + timedelta(minutes=30), nsweeps=1)
    assert first.filename is not None and later["DBZH"].filename is not None
    assert later["DBZH"].filename.time - first.filename.time == timedelta(minutes=30)
    a, b = first.sweeps[0].data, later["DBZH"].sweeps[0].data
    assert not np.array_equal(a != UNDETECT, b != UNDETECT)


def test_options_nsweeps_nrays_ngates() -> None:
    f = synthetic_volume("RMA9", fields=["DBZH"], nsweeps=4, nrays=720, ngates=100)["DBZH"]
    assert [(s.nrays, s.ngates) for s in f.sweeps] == [(720, 100)] * 4
    elevations = [s.elevation for s in f.sweeps]
    assert elevations[0] == 0.5 and elevations[-1] == 29.7
    assert read_bufr(write_bufr(f, level=1)).same_as(f)
    with pytest.raises(ValueError, match="nsweeps"):
        synthetic_volume(nsweeps=255)
    with pytest.raises(ValueError, match="ngates"):
        synthetic_volume(ngates=5000)
    with pytest.raises(ValueError, match="unknown synthetic fields"):
        synthetic_volume(fields=["FOO"])


def test_stations_known_and_hashed() -> None:
    assert station_for("RMA1") == (-31.4413, -64.1919, 476.0)
    assert station_for("RMA11") == (-27.5026, -64.90575, 313.0)  # the sample file's site
    a, b = station_for("RMA99"), station_for("RMA99")
    assert a == b and a != station_for("RMA98")
    lat, lon, height = a
    assert -55 < lat < -20 and -75 < lon < -50 and 0 <= height < 1500
    f = synthetic_volume("RMA99", "0315", "02", fields=["VRAD"], nsweeps=1)["VRAD"]
    assert (f.station.latitude, f.station.longitude) == (lat, lon)
    again = read_bufr(write_bufr(f, level=1))
    assert again.same_as(f) and again.radar == "RMA99"
    assert list(synthetic_volume("RMA3", "0315", "2", nsweeps=1)) == ["VRAD", "WRAD"]
    # other network codes: not RMA, one-digit volume number, DBZH by default
    ar5 = synthetic_volume("AR5", "1000", "1", nsweeps=1)
    assert list(ar5) == ["DBZH"]
    assert read_bufr(write_bufr(ar5["DBZH"], level=1)).station.ids[0].kind == "ar"


def test_write_synthetic_volume_flat_and_ftp(tmp_path: Path) -> None:
    t = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    flat = write_synthetic_volume(tmp_path / "flat", "RMA5", "0315", "02", t, nsweeps=2, level=1)
    assert sorted(p.name for p in flat) == [
        "RMA5_0315_02_VRAD_20250304T050607Z.BUFR",
        "RMA5_0315_02_WRAD_20250304T050607Z.BUFR",
    ]
    assert all(p.parent == tmp_path / "flat" for p in flat)
    ftp = write_synthetic_volume(
        tmp_path / "ftp", "RMA5", "0315", "02", t, layout="ftp", base="/L2", nsweeps=2, level=1
    )
    for path in ftp:
        name = BufrFileName.parse(path.name)
        assert path.parent.relative_to(tmp_path / "ftp").as_posix() == name.remote_dir("L2")
        assert path.parent.relative_to(tmp_path / "ftp").as_posix() == "L2/RMA5/2025/03/04/05/0607"
        decoded = read_bufr(path)
        assert decoded.filename == name and decoded.field in ("VRAD", "WRAD")
    for a, b in zip(sorted(flat), sorted(ftp), strict=True):
        assert a.read_bytes() == b.read_bytes()
    leftovers = [n for _, _, files in os.walk(tmp_path) for n in files if n.endswith(".tmp")]
    assert leftovers == []
    with pytest.raises(ValueError, match="layout"):
        write_synthetic_volume(tmp_path, layout="tree")  # type: ignore[arg-type]
