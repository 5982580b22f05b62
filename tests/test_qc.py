"""Quality control (radarlib.qc) on the real sample volumes and on synthetic volumes with planted
clutter, speckle and name/content mismatches; every threshold's effect is checked gate by gate.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from scipy import ndimage

from radarlib.bufr.model import GateStatus
from radarlib.bufr.synthetic import synthetic_volume, write_synthetic_volume
from radarlib.convert import ConvertOptions, convert_volume, decode_files, load_volume
from radarlib.errors import ConfigError, QCError, VolumeError
from radarlib.filename import BufrFileName
from radarlib.qc import FLAG_BITS, QCConfig, check_files, qc_config_from_mapping, run_qc
from radarlib.vocabulary import FILL_VALUE
from radarlib.volume import Volume, assemble_volume

AR5 = "AR5_1000_1_DBZH_20240101T000746Z.BUFR"
VALID = GateStatus.VALID


def _synthetic(fields: tuple[str, ...] = ("DBZH", "RHOHV"), nsweeps: int = 2) -> Volume:
    files = synthetic_volume("RMA1", "0315", "01", fields=list(fields), nsweeps=nsweeps)
    return assemble_volume(list(files.values()))


def _set(volume: Volume, name: str, values: np.ndarray, status: np.ndarray) -> Volume:
    fd = dataclasses.replace(volume.fields[name], values=values, status=status)
    return dataclasses.replace(volume, fields={**volume.fields, name: fd})


def _planted_clutter(volume: Volume) -> tuple[Volume, dict[tuple[int, int], tuple[float, float]]]:
    """A 6x6 valid block in sweep 0 with (DBZH, RHOHV) pairs around both thresholds."""
    dbz = volume.fields["DBZH"].values.copy()
    dst = volume.fields["DBZH"].status.copy()
    rho = volume.fields["RHOHV"].values.copy()
    rst = volume.fields["RHOHV"].status.copy()
    block = (slice(20, 26), slice(50, 56))
    dbz[block], dst[block], rho[block], rst[block] = 45.0, VALID, 0.99, VALID
    planted = {
        (21, 51): (29.9, 0.86),  # both below: clutter
        (21, 52): (30.0, 0.50),  # DBZH at the threshold: kept
        (22, 51): (10.0, 0.87),  # RHOHV at the threshold: kept
        (22, 52): (-5.0, 0.10),  # clutter
        (23, 53): (35.0, 0.30),  # strong echo, low RHOHV: kept (e.g. hail)
        (24, 54): (20.0, 0.95),  # weak echo, high RHOHV: kept (light rain)
    }
    for (ray, gate), (z, r) in planted.items():
        dbz[ray, gate], rho[ray, gate] = z, r
    volume = _set(volume, "DBZH", dbz, dst)
    return _set(volume, "RHOHV", rho, rst), planted


def test_clutter_rule_gate_by_gate_on_planted_values() -> None:
    volume, planted = _planted_clutter(_synthetic())
    result = run_qc(volume, QCConfig(speckle=False))
    qc = result.volume.fields["DBZH_QC"]
    expected_removed = {(21, 51), (22, 52)}
    for gate in planted:
        removed = gate in expected_removed
        assert bool(qc.status[gate] != VALID) is removed, gate
        assert bool(qc.values[gate] == FILL_VALUE) is removed, gate
        if removed:
            assert qc.status[gate] == GateStatus.UNDETECT
            assert result.flags["DBZH"][gate] == FLAG_BITS["clutter"]
        else:
            assert qc.values[gate] == volume.fields["DBZH"].values[gate]
    # over the whole volume: removed exactly where both valid and both below the thresholds
    dbz, rho = volume.fields["DBZH"], volume.fields["RHOHV"]
    rule = (dbz.status == VALID) & (rho.status == VALID) & (rho.values < 0.87) & (dbz.values < 30)
    np.testing.assert_array_equal(result.flags["DBZH"] != 0, rule)
    step = next(s for s in result.steps if s.name == "clutter")
    assert step.status == "applied" and step.removed == {"DBZH": int(rule.sum())}


def test_clutter_thresholds_are_configurable() -> None:
    volume, _ = _planted_clutter(_synthetic())
    result = run_qc(
        volume, QCConfig(speckle=False, clutter_rhohv_below=0.9, clutter_dbzh_below=31.0)
    )
    flags = result.flags["DBZH"]
    assert flags[21, 52] == FLAG_BITS["clutter"]  # 30 dBZ < 31 and 0.5 < 0.9
    assert flags[22, 51] == FLAG_BITS["clutter"]  # 0.87 < 0.9
    assert flags[23, 53] == 0  # 35 dBZ
    assert flags[24, 54] == 0  # 0.95
    off = run_qc(volume, QCConfig(speckle=False, clutter=False))
    assert not off.flags["DBZH"].any()
    assert next(s for s in off.steps if s.name == "clutter").status == "skipped"


def _empty_sweep0(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    values = volume.fields["DBZH"].values.copy()
    status = volume.fields["DBZH"].status.copy()
    nrays = volume.sweeps[0].nrays
    values[:nrays], status[:nrays] = FILL_VALUE, GateStatus.UNDETECT
    return values, status


def test_speckle_removes_gates_with_few_neighbours_gate_by_gate() -> None:
    volume = _synthetic(("DBZH",))
    values, status = _empty_sweep0(volume)
    nrays = volume.sweeps[0].nrays
    plant = [
        (100, 100),  # isolated: 0 neighbours
        (110, 100),
        (110, 101),  # a pair: 1 neighbour each
        (120, 100),
        (120, 101),
        (120, 102),  # a line of 3: ends 1, middle 2
        (0, 200),
        (nrays - 1, 200),
        (1, 200),  # across north: ray 0 has neighbours 359 and 1 (wrap)
    ]
    for gate in plant:
        values[gate], status[gate] = 40.0, VALID
    volume = _set(volume, "DBZH", values, status)
    removed = run_qc(volume, QCConfig()).flags["DBZH"][:nrays] != 0
    expected = {(100, 100), (110, 100), (110, 101), (120, 100), (120, 102)}
    expected |= {(nrays - 1, 200), (1, 200)}
    assert {tuple(int(i) for i in g) for g in np.argwhere(removed)} == expected
    # threshold 1: only the isolated gate; threshold 0: nothing; 3: every planted gate
    for minimum, want in ((1, {(100, 100)}), (0, set()), (3, set(plant))):
        flags = run_qc(volume, QCConfig(speckle_min_neighbours=minimum)).flags["DBZH"][:nrays]
        assert {tuple(int(i) for i in g) for g in np.argwhere(flags != 0)} == want, minimum


def test_raw_fields_untouched_and_flags_mode() -> None:
    volume, _ = _planted_clutter(_synthetic())
    before = {n: (f.values.copy(), f.status.copy()) for n, f in volume.fields.items()}
    copies = run_qc(volume, QCConfig())
    flags = run_qc(volume, QCConfig(output="flags"))
    for name, (values, status) in before.items():
        for res in (copies, flags):
            np.testing.assert_array_equal(res.volume.fields[name].values, values)
            np.testing.assert_array_equal(res.volume.fields[name].status, status)
    assert set(copies.volume.fields) == {"DBZH", "RHOHV", "DBZH_QC"}
    assert set(flags.volume.fields) == {"DBZH", "RHOHV", "DBZH_QC_FLAGS"}
    fl = flags.volume.fields["DBZH_QC_FLAGS"]
    valid = volume.fields["DBZH"].status == VALID
    np.testing.assert_array_equal(fl.values[valid], flags.flags["DBZH"][valid].astype(np.float32))
    assert fl.values[21, 51] == FLAG_BITS["clutter"] and fl.values[23, 53] == 0


def test_velocity_filter_optional() -> None:
    files = synthetic_volume("RMA1", "0315", "02", nsweeps=1)
    volume = assemble_volume(list(files.values()))
    assert "VRAD" not in run_qc(volume, QCConfig(fields=("VRAD",), speckle=False)).flags or not (
        run_qc(volume, QCConfig(fields=("VRAD",), speckle=False)).flags["VRAD"].any()
    )
    vrad, wrad = volume.fields["VRAD"], volume.fields["WRAD"]
    cfg = QCConfig(fields=(), speckle=False, velocity=True, velocity_max_width=3.0,
                   velocity_min_abs=1.0)  # fmt: skip
    flags = run_qc(volume, cfg).flags["VRAD"]
    valid = (vrad.status == VALID) & (wrad.status == VALID)
    wide = valid & (wrad.values > 3.0)
    still = (vrad.status == VALID) & (np.abs(vrad.values) < 1.0)
    assert wide.any() and still.any()
    np.testing.assert_array_equal((flags & FLAG_BITS["velocity_width"]) != 0, wide)
    np.testing.assert_array_equal((flags & FLAG_BITS["velocity_zero"]) != 0, still)


def _renamed(files: dict, radar: str | None = None, shift: timedelta = timedelta()) -> list:
    out = []
    for f in files.values():
        n = f.filename
        name = BufrFileName(radar or n.radar, n.strategy, n.volume_number, n.field, n.time + shift)
        out.append(dataclasses.replace(f, filename=name, source=name.name))
    return out


def test_name_content_mismatch_is_a_hard_failure() -> None:
    files = synthetic_volume("RMA1", "0315", "01", fields=["DBZH", "RHOHV"], nsweeps=2)
    check_files(list(files.values()))  # consistent: passes
    wrong_radar = _renamed(files, radar="RMA2")
    with pytest.raises(QCError, match="radar RMA2, station ids say RMA1") as info:
        check_files(wrong_radar)
    assert info.value.check == "identity" and "RMA2_0315_01_DBZH" in str(info.value)
    with pytest.raises(QCError, match="QC identity"):
        run_qc(assemble_volume(wrong_radar))
    late = _renamed(files, shift=timedelta(minutes=10))
    with pytest.raises(QCError, match="differs from the content's"):
        check_files(late)
    with pytest.raises(QCError, match="identity"):
        run_qc(assemble_volume(late), QCConfig(check_times=False))
    # within the tolerance (AR5 style, 46 s late): passes; a tight tolerance refuses it
    slightly = assemble_volume(_renamed(files, shift=timedelta(seconds=46)))
    run_qc(slightly)
    with pytest.raises(QCError):
        run_qc(slightly, QCConfig(time_tolerance_seconds=30))
    assert issubclass(QCError, VolumeError)


def test_geometry_and_time_checks() -> None:
    volume = _synthetic()
    bad = dataclasses.replace(
        volume.fields["RHOHV"],
        values=volume.fields["RHOHV"].values[:, :-1],
        status=volume.fields["RHOHV"].status[:, :-1],
    )
    broken = dataclasses.replace(volume, fields={**volume.fields, "RHOHV": bad})
    with pytest.raises(QCError, match="geometry: field RHOHV has shape"):
        run_qc(broken)
    run_qc(broken, QCConfig(check_geometry=False, clutter=False))
    long_sweep = dataclasses.replace(
        volume.sweeps[0], end_time=volume.sweeps[0].start_time + timedelta(hours=1)
    )
    slow = dataclasses.replace(volume, sweeps=(long_sweep, *volume.sweeps[1:]))
    with pytest.raises(QCError, match="times: sweep 0 lasts 3600 s"):
        run_qc(slow)


def test_config_from_toml_table_with_radar_override() -> None:
    table = {"clutter_rhohv_below": 0.9, "radars": {"RMA5": {"speckle": False}}}
    assert qc_config_from_mapping(table, "RMA1") == QCConfig(clutter_rhohv_below=0.9)
    assert qc_config_from_mapping(table, "RMA5").speckle is False
    with pytest.raises(ConfigError, match=r"qc\.bogus"):
        qc_config_from_mapping({"bogus": 1})
    with pytest.raises(ConfigError, match=r"qc\.speckle_min_neighbours"):
        qc_config_from_mapping({"speckle_min_neighbours": 9})


# --------------------------------------------------------------------------- real files


def test_real_volumes_pass_and_speckle_matches_an_independent_filter(
    rma11_dir: Path, sample_paths: dict[str, Path]
) -> None:
    volume = load_volume(sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR")))
    result = run_qc(volume)
    names = [s.name for s in result.steps]
    assert names == ["geometry", "times", "identity", "clutter", "speckle"]
    assert result.steps[3].status == "skipped"  # the samples have no RHOHV
    dbz = volume.fields["DBZH"]
    valid = dbz.status == VALID
    kernel = np.ones((3, 3), dtype=int)
    kernel[1, 1] = 0
    expected = np.zeros_like(valid)
    for s in volume.sweeps:
        block = valid[s.ray_start : s.ray_end + 1].astype(int)
        count = ndimage.convolve(block, kernel, mode="constant")
        # azimuth wraps: add the neighbours across the first/last ray by hand
        for edge, other in ((0, -1), (-1, 0)):
            row = np.pad(block[other], 1)
            count[edge] += row[:-2] + row[1:-1] + row[2:]
        expected[s.ray_start : s.ray_end + 1] = (block == 1) & (count < 2)
    np.testing.assert_array_equal(result.flags["DBZH"] != 0, expected)
    assert result.steps[4].removed == {"DBZH": int(expected.sum())} and expected.sum() > 1000
    ar5 = load_volume([sample_paths[AR5]])
    run_qc(ar5)  # name 00:07:46, content 00:07:00: within the default 120 s
    check_files(decode_files([sample_paths[AR5]]))
    with pytest.raises(QCError, match=r"identity: .* by 46 s"):
        run_qc(ar5, QCConfig(time_tolerance_seconds=40, check_times=False))
    with pytest.raises(QCError, match="times: sweep 0 starts at 2024-01-01T00:07:00Z"):
        run_qc(ar5, QCConfig(time_tolerance_seconds=40))


def test_convert_with_qc_writes_copies_and_records_steps(rma11_dir: Path, tmp_path: Path) -> None:
    files = sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    plain = convert_volume(files, tmp_path / "plain")
    qc = convert_volume(files, tmp_path / "qc", options=ConvertOptions(qc=QCConfig()))
    with netCDF4.Dataset(plain.path) as a, netCDF4.Dataset(qc.path) as b:
        np.testing.assert_array_equal(a["DBZH"][:], b["DBZH"][:])
        raw, filtered = b["DBZH"][:], b["DBZH_QC"][:]
        assert np.ma.count(filtered) < np.ma.count(raw)
        kept = ~np.ma.getmaskarray(filtered)
        np.testing.assert_array_equal(filtered[kept], raw[kept])
        assert "speckle applied" in b.qc_steps and "identity passed" in b.qc_steps
        assert b["DBZH_QC"].long_name.endswith("quality controlled")
        assert "DBZH_QC" not in a.variables


def test_convert_refuses_a_mismatched_volume_and_writes_nothing(tmp_path: Path) -> None:
    paths = write_synthetic_volume(tmp_path / "in", "RMA1", "0315", "01", nsweeps=2)
    moved = []
    for p in paths:  # the same content under RMA3's name
        target = p.with_name(p.name.replace("RMA1_", "RMA3_"))
        p.rename(target)
        moved.append(target)
    out = tmp_path / "out"
    with pytest.raises(QCError, match="station ids say RMA1"):
        convert_volume(moved, out, options=ConvertOptions(qc=QCConfig()))
    assert not out.exists() or not any(out.iterdir())


def test_qc_fields_reach_every_output_format(rma11_dir: Path, tmp_path: Path) -> None:
    """The QC'd copy and the QC record are written in ODIM_H5 and CfRadial 2.1 too."""
    import h5py

    files = sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    options = ConvertOptions(qc=QCConfig(), formats=("cfradial", "odim", "cfradial2"))
    result = convert_volume(files, tmp_path, options=options)
    assert set(result.paths) == {"cfradial", "odim", "cfradial2"}
    assert "DBZH_QC" not in result.fields  # the result lists the volume's own fields
    with h5py.File(result.paths["odim"], "r") as h5:
        quantities = {
            h5[f"dataset1/{name}/what"].attrs["quantity"].decode()
            for name in h5["dataset1"]
            if name.startswith("data")
        }
    assert {"DBZH", "DBZH_QC"} <= quantities
    with netCDF4.Dataset(result.paths["cfradial2"]) as nc:
        assert "speckle applied" in nc.qc_steps
        sweep = nc.groups[sorted(g for g in nc.groups if g.startswith("sweep"))[0]]
        assert "DBZH_QC" in sweep.variables
