"""The volume model: grouping by name, sweep matching, range axis, ray order/time, masks."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from radarlib.bufr.model import (
    NODATA,
    UNDETECT,
    BufrFile,
    GateStatus,
    Quantity,
    Section1,
    Station,
    Sweep,
)
from radarlib.errors import FileNameError, VolumeError
from radarlib.filename import BufrFileName
from radarlib.vocabulary import FILL_VALUE
from radarlib.volume import assemble_volume, group_files_into_volumes, order_fields

T0 = datetime(2025, 10, 20, 15, 28, 28, tzinfo=timezone.utc)
SECTION1 = Section1(0, 41, 0, 0, False, 6, 2, 0, 16, 2, 2025, 10, 20, 15, 28, 28)
STATION = Station(latitude=-27.5026, longitude=-64.90575, height=313.0)


def payload(nrays: int, ngates: int, seed: int) -> np.ndarray:
    """Float32-exact values in float64 with undetect everywhere but every 5th gate."""
    rng = np.random.default_rng(seed)
    data = rng.normal(20.0, 10.0, (nrays, ngates)).astype(np.float32).astype(np.float64)
    data[:, np.arange(ngates) % 5 != 0] = UNDETECT
    return data


def sweep(
    i: int,
    *,
    nrays: int = 36,
    ngates: int = 20,
    offset: float = 1770.0,
    bin_size: float = 360.0,
    a1gate: int = 0,
    elevation: float | None = None,
    start: datetime | None = None,
    duration: float = 20.0,
    data: np.ndarray | None = None,
    seed: int = 0,
) -> Sweep:
    begin = start or T0 + timedelta(seconds=30 * i)
    return Sweep(
        start_time=begin,
        end_time=begin + timedelta(seconds=duration),
        elevation=0.5 + i if elevation is None else elevation,
        nrays=nrays,
        ngates=ngates,
        range_bin_size=bin_size,
        range_offset=offset,
        a1gate=a1gate,
        quantities=(Quantity(0, payload(nrays, ngates, seed + 100 * i) if data is None else data),),
    )


def bufr(field: str, sweeps: list[Sweep], *, radar: str = "RMA11", time: datetime = T0) -> BufrFile:
    name = BufrFileName(radar, "0315", "01", field, time)
    return BufrFile(SECTION1, STATION, tuple(sweeps), source=name.name, filename=name)


def test_group_files_into_volumes_by_name_in_field_order() -> None:
    paths = [
        "/a/RMA11_0315_01_KDP_20251020T152828Z.BUFR",
        "/b/RMA11_0315_02_VRAD_20251020T152429Z.BUFR",
        "/a/RMA11_0315_01_DBZH_20251020T152828Z.BUFR",
        "/a/RMA11_0315_01_XYZ_20251020T152828Z.BUFR",
        "/a/RMA11_0315_01_ZDR_20251020T152828Z.BUFR",
        "/c/RMA11_0315_01_DBZH_20251020T153828Z.BUFR",
    ]
    groups = group_files_into_volumes(paths)
    assert [k.volume_id for k in groups] == [
        "RMA11_0315_01_2025-10-20T15:28:28Z",
        "RMA11_0315_01_2025-10-20T15:38:28Z",
        "RMA11_0315_02_2025-10-20T15:24:29Z",
    ]
    first = groups[next(iter(groups))]
    assert [p.name.split("_")[3] for p in first] == ["DBZH", "ZDR", "KDP", "XYZ"]
    assert all(isinstance(p, Path) for p in first)
    assert order_fields(["WRAD", "AAA", "VRAD", "DBZV", "DBZH"]) == [
        "DBZH",
        "DBZV",
        "VRAD",
        "WRAD",
        "AAA",
    ]
    with pytest.raises(FileNameError, match=r"notes\.txt"):
        group_files_into_volumes(["/a/notes.txt"])


def test_range_axis_places_each_sweep_at_its_true_range_nothing_dropped() -> None:
    # KDP-like: offset 4770 m on sweeps 0 and 2, 1770 m on sweep 1; 3000 m is 8.33 gates.
    dbzh = bufr("DBZH", [sweep(i, ngates=30, offset=1770.0) for i in range(3)])
    kdp_offsets = [4770.0, 1770.0, 4770.0]
    kdp = bufr("KDP", [sweep(i, ngates=25, offset=o, seed=7) for i, o in enumerate(kdp_offsets)])
    vol = assemble_volume([kdp, dbzh])
    axis = vol.range_axis
    assert axis.first == 1770.0 + 180.0 and axis.spacing == 360.0
    # farthest last gate: KDP 4770 + 180 + 24 * 360 -> axis index 8 + 24 = 32
    assert axis.ngates == 33
    kf = vol.fields["KDP"]
    assert kf.gate_index.tolist() == [8, 0, 8]
    assert kf.range_shift.tolist() == [-120.0, 0.0, -120.0]
    assert vol.fields["DBZH"].range_shift.tolist() == [0.0, 0.0, 0.0]
    ranges = axis.ranges
    for i, sw in enumerate(kdp.sweeps):
        true = sw.range_offset + sw.range_bin_size / 2 + sw.range_bin_size * np.arange(sw.ngates)
        placed = ranges[kf.gate_index[i] : kf.gate_index[i] + sw.ngates]
        assert np.all(np.abs(placed - true) <= axis.spacing / 2)
        rays = slice(vol.sweeps[i].ray_start, vol.sweeps[i].ray_end + 1)
        block = kf.values[rays, kf.gate_index[i] : kf.gate_index[i] + sw.ngates]
        valid = sw.data != UNDETECT
        assert np.array_equal(block[valid], sw.data[valid].astype(np.float32))
        outside = np.ones(axis.ngates, bool)
        outside[kf.gate_index[i] : kf.gate_index[i] + sw.ngates] = False
        assert np.all(kf.status[rays][:, outside] == GateStatus.OUTSIDE)
    # every valid gate of every field is kept
    for f, fd in ((dbzh, vol.fields["DBZH"]), (kdp, kf)):
        n_valid = sum(int(np.count_nonzero(s.data != UNDETECT)) for s in f.sweeps)
        assert int(np.count_nonzero(fd.status == GateStatus.VALID)) == n_valid


def test_tie_rounds_up_and_error_is_at_most_half_a_gate() -> None:
    a = bufr("DBZH", [sweep(0, offset=0.0, bin_size=100.0)])
    b = bufr("ZDR", [sweep(0, offset=50.0, bin_size=100.0)])  # exactly half a gate further
    vol = assemble_volume([a, b])
    assert vol.fields["ZDR"].gate_index.tolist() == [1]
    assert vol.fields["ZDR"].range_shift.tolist() == [50.0]


def test_different_bin_sizes_are_refused_naming_the_file() -> None:
    a = bufr("DBZH", [sweep(0, bin_size=360.0)])
    b = bufr("ZDR", [sweep(0, bin_size=250.0)])
    with pytest.raises(VolumeError, match=r"RMA11_0315_01_ZDR_.*250\.0 m.*360\.0 m") as info:
        assemble_volume([a, b])
    assert info.value.source == b.filename.name


def test_sweeps_matched_by_index_checked_by_elevation() -> None:
    a = bufr("DBZH", [sweep(0, elevation=0.5), sweep(1, elevation=1.3)])
    near = bufr("ZDR", [sweep(0, elevation=0.9), sweep(1, elevation=1.3)])
    vol = assemble_volume([a, near], elevation_tolerance=0.5)
    assert [s.elevation for s in vol.sweeps] == [0.5, 1.3]  # reference field's elevations
    far = bufr("ZDR", [sweep(0, elevation=0.5), sweep(1, elevation=2.0)])
    with pytest.raises(VolumeError, match=r"ZDR.*sweep 1 elevation 2\.0") as info:
        assemble_volume([a, far], elevation_tolerance=0.5)
    assert info.value.source == far.filename.name


def test_different_nrays_between_fields_refused_naming_the_file() -> None:
    a = bufr("DBZH", [sweep(0, nrays=36)])
    b = bufr("VRAD", [sweep(0, nrays=72)])
    with pytest.raises(VolumeError, match=r"sweep 0 has 72 rays but DBZH has 36") as info:
        assemble_volume([a, b])
    assert info.value.source == b.filename.name


def test_nrays_may_differ_between_sweeps() -> None:
    a = bufr("DBZH", [sweep(0, nrays=36, a1gate=5), sweep(1, nrays=72, a1gate=70)])
    b = bufr("ZDR", [sweep(0, nrays=36, a1gate=5, seed=3), sweep(1, nrays=72, a1gate=70, seed=3)])
    vol = assemble_volume([a, b])
    assert vol.nrays == 108
    assert [(s.ray_start, s.ray_end) for s in vol.sweeps] == [(0, 35), (36, 107)]
    az = vol.azimuths()
    assert az[0] == (5 + 0.5) * 10.0 and az[36] == (70 + 0.5) * 5.0
    assert sorted(az[36:]) == list((np.arange(72) + 0.5) * 5.0)


def test_missing_sweep_is_fully_masked_and_reported() -> None:
    a = bufr("DBZH", [sweep(i) for i in range(3)])
    b = bufr("KDP", [sweep(i) for i in range(2)])
    vol = assemble_volume([a, b])
    kf = vol.fields["KDP"]
    assert kf.missing_sweeps == (2,)
    assert math.isnan(kf.range_shift[2]) and kf.gate_index[2] == -1
    last = slice(vol.sweeps[2].ray_start, vol.sweeps[2].ray_end + 1)
    assert np.all(kf.status[last] == GateStatus.OUTSIDE)
    assert np.all(kf.values[last] == FILL_VALUE)
    assert any("KDP lacks sweep(s) 2 of 3" in w for w in vol.warnings)


def test_rays_in_acquisition_order_with_odim_azimuths_and_times() -> None:
    nrays, a1 = 36, 29
    data = payload(nrays, 20, 1)
    data[:, 0] = np.arange(nrays)  # gate 0 holds the row number
    a = bufr("DBZH", [sweep(0, nrays=nrays, a1gate=a1, duration=36.0, data=data)])
    vol = assemble_volume([a])
    fd = vol.fields["DBZH"]
    rows = fd.values[:, 0].astype(int)
    assert rows.tolist() == [(a1 + j) % nrays for j in range(nrays)]
    assert np.array_equal(vol.azimuths(), (rows + 0.5) * 10.0)
    # ray j at start + (j + 0.5) * duration / nrays: row a1gate first, times roll by a1gate
    assert np.allclose(vol.ray_times(), np.arange(nrays) + 0.5)
    by_row = np.empty(nrays)
    by_row[rows] = vol.ray_times()
    assert np.allclose(by_row, np.roll(np.arange(nrays) + 0.5, a1))  # xradar's ODIM rule
    assert np.all(vol.elevations() == 0.5)


def test_time_rule_end_before_start_puts_all_rays_at_start() -> None:
    s0 = sweep(0, duration=20.0)
    s1 = sweep(1, start=T0 + timedelta(seconds=25), duration=-5.0)  # ends before it starts
    s2 = sweep(2, start=T0 + timedelta(seconds=40), duration=0.0)  # start == end (AR5)
    vol = assemble_volume([bufr("DBZH", [s0, s1, s2])])
    t = vol.ray_times()
    assert np.all(t[36:72] == 25.0) and np.all(t[72:] == 40.0)
    assert np.all(np.diff(t) >= 0)
    assert vol.start_time == T0 and vol.end_time == T0 + timedelta(seconds=40)
    assert vol.sweeps[1].duration == 0.0
    assert [w for w in vol.warnings if "precedes start" in w] == [
        "sweep 1: end time 2025-10-20T15:28:48Z precedes start time 2025-10-20T15:28:53Z; "
        "all its rays are timed at the start"
    ]


def test_masks_keep_undetect_nodata_nan_and_inf_apart() -> None:
    data = payload(36, 20, 2)
    data[3, :] = NODATA
    data[4, 5] = np.nan
    data[4, 10] = np.inf
    data[4, 15] = 12.5
    vol = assemble_volume([bufr("VRAD", [sweep(0, data=data)])])
    fd = vol.fields["VRAD"]
    assert np.array_equal(fd.status[3], np.full(20, GateStatus.NODATA, np.uint8))
    assert fd.status[4, 5] == GateStatus.NAN and fd.status[4, 10] == GateStatus.NAN
    assert fd.status[4, 15] == GateStatus.VALID and fd.values[4, 15] == np.float32(12.5)
    assert fd.status[4, 1] == GateStatus.UNDETECT
    assert np.all(fd.values[fd.mask] == FILL_VALUE)
    assert np.all(np.isfinite(fd.values))
    m = fd.masked()
    assert m.dtype == np.float32 and np.array_equal(m.mask, fd.status != 0)


def test_values_not_exact_in_float32_are_reported() -> None:
    data = payload(36, 20, 3)
    data[0, 0] = 0.1  # not a float32 number
    vol = assemble_volume([bufr("DBZH", [sweep(0, data=data)])])
    assert any("1 valid values are not exact in float32" in w for w in vol.warnings)


def test_files_of_different_volumes_or_twice_the_same_field_are_refused() -> None:
    a = bufr("DBZH", [sweep(0)])
    other = bufr("ZDR", [sweep(0)], time=T0 + timedelta(minutes=10))
    with pytest.raises(VolumeError, match="belongs to volume RMA11_0315_01_2025-10-20T15:38:28Z"):
        assemble_volume([a, other])
    with pytest.raises(VolumeError, match="field DBZH given twice"):
        assemble_volume([a, bufr("DBZH", [sweep(0)])])
    with pytest.raises(VolumeError, match="not a radar file name"):
        assemble_volume([replace(a, filename=None, source="x.bin")])
    with pytest.raises(VolumeError, match="no field files"):
        assemble_volume([])
    with pytest.raises(VolumeError, match="a1gate 40"):
        assemble_volume([bufr("DBZH", [sweep(0, a1gate=40)])])


def test_expected_fields_give_missing_fields() -> None:
    vol = assemble_volume(
        [bufr("DBZH", [sweep(0)]), bufr("KDP", [sweep(0)])],
        expected_fields=["DBZH", "DBZV", "KDP", "RHOHV"],
    )
    assert tuple(vol.fields) == ("DBZH", "KDP")
    assert vol.missing_fields == ("DBZV", "RHOHV")
    assert vol.sources == (
        "RMA11_0315_01_DBZH_20251020T152828Z.BUFR",
        "RMA11_0315_01_KDP_20251020T152828Z.BUFR",
    )


def test_every_gate_kind_and_the_fill_value_clash() -> None:
    data = payload(36, 20, 4)
    data[0, :4] = [np.nan, np.inf, -np.inf, NODATA]
    data[0, 4] = UNDETECT
    vol = assemble_volume([bufr("DBZH", [sweep(0, data=data)])])
    status = vol.fields["DBZH"].status[0, :5]
    nan, nodata, undetect = GateStatus.NAN, GateStatus.NODATA, GateStatus.UNDETECT
    assert status.tolist() == [nan, nan, nan, nodata, undetect]
    data[5, 5] = float(FILL_VALUE)  # a valid value that would read as masked: refused
    with pytest.raises(VolumeError, match="equals the fill value"):
        assemble_volume([bufr("DBZH", [sweep(0, data=data)])])


def test_fields_placed_in_threads_equal_one_thread_and_gates_outside_are_marked(
    rma11_dir: Path,
) -> None:
    from radarlib.convert import decode_files

    files = decode_files(sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR")))
    one = assemble_volume(files, threads=1)
    four = assemble_volume(files, threads=4)
    assert four.warnings == one.warnings and list(four.fields) == list(one.fields)
    for name, fd in one.fields.items():
        other = four.fields[name]
        assert np.array_equal(fd.values.view(np.uint32), other.values.view(np.uint32))
        assert np.array_equal(fd.status, other.status)
        for geometry in one.sweeps:  # beyond each sweep's gates: outside and filled
            rows = slice(geometry.ray_start, geometry.ray_start + geometry.nrays)
            beyond = slice(int(fd.gate_index[geometry.number] + fd.ngates[geometry.number]), None)
            assert np.all(fd.status[rows, beyond] == GateStatus.OUTSIDE)
            assert np.all(fd.values[rows, beyond] == FILL_VALUE)
        assert np.isin(fd.status, [int(s) for s in GateStatus]).all()  # no byte left unset
