"""Every output format, gate-exact against the BUFR on all real samples, independent readers.

The real sample volumes (RMA11 0315/01 with 4 fields, 0315/02 with 2, AR5 with 1) are
converted once to CF/Radial, ODIM_H5, CfRadial 2.1 and Zarr; each file is read back with
h5py (ODIM) and xradar (all of them) and every gate of every sweep of every field is
compared with the BUFR payload: valid gates equal exactly, undetect and nodata gates where
the BUFR has -DBL_MAX / +DBL_MAX and nowhere else, no value where the BUFR has no gate.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import xarray as xr
import xradar as xd

from radarlib.bufr import read_bufr
from radarlib.bufr.model import NODATA, UNDETECT, GateStatus, Sweep, classify
from radarlib.config import parse_config
from radarlib.convert import ConvertOptions, convert_volume
from radarlib.errors import ConfigError, VolumeError
from radarlib.export import FORMATS, output_name, parse_formats
from radarlib.vocabulary import ODIM_NODATA, ODIM_UNDETECT
from radarlib.volume import group_files_into_volumes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def converted(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Each sample volume converted to every format: paths and the BUFR sweeps by field."""
    logging.disable(logging.WARNING)
    out = tmp_path_factory.mktemp("outputs")
    paths = sorted(samples_dir.rglob("*.BUFR"))
    volumes = []
    for key, files in group_files_into_volumes(paths).items():
        result = convert_volume(files, out, options=ConvertOptions(formats=FORMATS))
        assert set(result.paths) == set(FORMATS)
        for fmt, path in result.paths.items():
            assert path == out / output_name(key, fmt) and path.exists()
        bufr = {f.field: f for f in (read_bufr(p) for p in files)}
        volumes.append({"key": key, "paths": result.paths, "bufr": bufr})
    logging.disable(logging.NOTSET)
    assert len(volumes) == 3
    return volumes


def check_sweep(
    sweep: Sweep,
    values: np.ndarray,
    azimuths: np.ndarray,
    first_range: float,
    *,
    status: np.ndarray | None = None,
    undetect: float | None = None,
    nodata: float | None = None,
) -> int:
    """Compare one field's sweep (rows in any azimuth order) with its BUFR; valid gate count."""
    nrays, ngates = sweep.nrays, sweep.ngates
    rows = np.floor(np.asarray(azimuths, dtype=np.float64) * nrays / 360.0).astype(int)
    assert sorted(rows) == list(range(nrays))
    offset = (sweep.range_offset + sweep.range_bin_size / 2 - first_range) / sweep.range_bin_size
    col = round(offset)
    assert abs(offset - col) <= 0.5 + 1e-6 and col >= 0
    got = np.asarray(values)[:, col : col + ngates]
    want = sweep.data[rows]
    assert got.shape == want.shape
    kind = classify(want)
    valid = kind == GateStatus.VALID
    assert np.array_equal(got[valid].astype(np.float64), want[valid])
    for gate_kind, raw in ((GateStatus.UNDETECT, undetect), (GateStatus.NODATA, nodata)):
        where = kind == gate_kind
        if raw is None:
            assert np.isnan(got[where]).all()
        else:
            assert (got[where] == np.float32(raw)).all()
    if status is not None:
        st = np.asarray(status)[:, col : col + ngates]
        assert np.array_equal(st, kind)
        outside = np.ones(np.asarray(status).shape, bool)
        outside[:, col : col + ngates] = False
        assert (np.asarray(status)[outside] == GateStatus.OUTSIDE).all()
    # nothing valid outside the field's own gates
    rest = np.asarray(values, dtype=np.float64).copy()
    rest[:, col : col + ngates] = np.nan
    bad = np.isfinite(rest) & (np.abs(rest) < 1e30)
    assert not bad.any()
    return int(valid.sum())


def test_odim_read_with_h5py_is_gate_exact(converted, expected) -> None:
    for vol in converted:
        with h5py.File(vol["paths"]["odim"], "r") as h5:
            assert h5.attrs["Conventions"] == b"ODIM_H5/V2_3"
            assert h5["what"].attrs["object"] == b"PVOL"
            assert h5["what"].attrs["source"].decode().startswith(("NOD:ar", "WMO:"))
            for k in ("lat", "lon", "height"):
                assert k in h5["where"].attrs
            counts = dict.fromkeys(vol["bufr"], 0)
            nsweeps = max(len(f.sweeps) for f in vol["bufr"].values())
            assert sorted(k for k in h5 if k.startswith("dataset")) == sorted(
                f"dataset{i + 1}" for i in range(nsweeps)
            )
            for i in range(nsweeps):
                ds = h5[f"dataset{i + 1}"]
                where = ds["where"].attrs
                assert ds["what"].attrs["product"] == b"SCAN"
                first = where["rstart"] * 1000 + where["rscale"] / 2
                nrays = int(where["nrays"])
                for k, name in enumerate(vol["bufr"]):
                    what = ds[f"data{k + 1}/what"].attrs
                    assert what["quantity"].decode() == name
                    assert (what["gain"], what["offset"]) == (1.0, 0.0)
                    assert what["undetect"] == ODIM_UNDETECT and what["nodata"] == ODIM_NODATA
                    data = ds[f"data{k + 1}/data"][...]
                    assert data.dtype == np.float32 and data.shape == (nrays, where["nbins"])
                    sweep = vol["bufr"][name].sweeps[i]
                    assert int(where["a1gate"]) == sweep.a1gate
                    assert where["elangle"] == sweep.elevation
                    azimuths = (np.arange(nrays) + 0.5) * 360.0 / nrays  # ODIM row = azimuth bin
                    counts[name] += check_sweep(
                        sweep, data, azimuths, first, undetect=ODIM_UNDETECT, nodata=ODIM_NODATA
                    )
            for name, f in vol["bufr"].items():
                assert counts[name] == expected[Path(f.source).name]["counts"]["valid"]


def test_odim_read_with_xradar_is_gate_exact(converted) -> None:
    for vol in converted:
        tree = xd.io.open_odim_datatree(vol["paths"]["odim"])
        for i in range(len(tree.children)):
            ds = tree[f"sweep_{i}"].ds
            for name, f in vol["bufr"].items():
                check_sweep(
                    f.sweeps[i],
                    ds[name].values,
                    ds["azimuth"].values,
                    float(ds["range"].values[0]),
                    undetect=ODIM_UNDETECT,
                )


@pytest.mark.parametrize("fmt", ["cfradial2", "zarr"])
def test_datatree_formats_read_with_xradar_are_gate_exact(converted, fmt: str) -> None:
    for vol in converted:
        kwargs = {"engine": "zarr"} if fmt == "zarr" else {}
        tree = xd.io.open_cfradial2_datatree(vol["paths"][fmt], **kwargs)
        nsweeps = max(len(f.sweeps) for f in vol["bufr"].values())
        assert [f"sweep_{i}" for i in range(nsweeps)] == [
            n for n in tree.children if n.startswith("sweep_")
        ]
        for i in range(nsweeps):
            ds = tree[f"sweep_{i}"].ds
            for name, f in vol["bufr"].items():
                assert ds[name].dtype == np.float32
                check_sweep(
                    f.sweeps[i],
                    ds[name].values,
                    ds["azimuth"].values,
                    float(ds["range"].values[0]),
                    status=ds[f"{name}_status"].values,
                )


def test_cfradial2_groups_and_fill_on_disk(converted) -> None:
    import netCDF4

    vol = converted[0]
    with netCDF4.Dataset(vol["paths"]["cfradial2"]) as nc:
        assert nc.Conventions == "Cf/Radial-2.1" and nc.version == "2.1"
        assert "sweep_0" in nc.groups and "sweep_group_name" in nc.variables
        var = nc.groups["sweep_0"][next(iter(vol["bufr"]))]
        assert var.dtype == np.float32 and var._FillValue == np.float32(-9999.0)
        assert var.filters()["zlib"]


def test_undetect_and_nodata_both_occur_in_the_samples(converted) -> None:
    """The distinction is tested, not vacuous: the samples have both kinds of gate."""
    kinds = set()
    for vol in converted:
        for f in vol["bufr"].values():
            for s in f.sweeps:
                kinds |= set(np.unique(classify(s.data)).tolist())
    assert {GateStatus.UNDETECT, GateStatus.NODATA, GateStatus.VALID} <= kinds
    assert UNDETECT < 0 < NODATA


def test_failed_format_leaves_no_partial_output(
    samples_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import radarlib.export.odim as odim

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(odim, "_write", boom)
    files = sorted((samples_dir / "RMA11").glob("RMA11_0315_02_*.BUFR"))
    with pytest.raises(VolumeError, match=r"cannot write odim.*No space"):
        convert_volume(files, tmp_path, options=ConvertOptions(formats=("cfradial", "odim")))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not any(n.endswith(".h5") or n.endswith(".tmp") for n in names)


def test_zarr_store_is_replaced_whole(samples_dir: Path, tmp_path: Path) -> None:
    files = sorted((samples_dir / "RMA11").glob("RMA11_0315_02_*.BUFR"))
    opts = ConvertOptions(formats=("zarr",))
    first = convert_volume(files, tmp_path, options=opts).paths["zarr"]
    (first / "stale-marker").write_text("x")
    again = convert_volume(files, tmp_path, options=opts).paths["zarr"]
    assert again == first and not (again / "stale-marker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]


def test_dropped_field_is_named_in_every_format(samples_dir: Path, tmp_path: Path) -> None:
    """on_bad_field = "drop": the corrupt DBZV is left out of, and named in, all four outputs."""
    bad_name = "RMA11_0315_01_DBZV_20251020T152828Z.BUFR"
    files = []
    for path in sorted((samples_dir / "RMA11").glob("RMA11_0315_01_*.BUFR")):
        data = bytearray(path.read_bytes())
        if path.name == bad_name:  # flipped bytes in a zlib stream: found by the inflate pool
            middle = len(data) // 2
            data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        files.append(tmp_path / path.name)
        files[-1].write_bytes(bytes(data))
    out = tmp_path / "out"
    opts = ConvertOptions(formats=FORMATS, on_bad_field="drop")
    result = convert_volume(files, out, options=opts)
    assert [(f, name) for f, name, _ in result.bad_fields] == [("DBZV", bad_name)]
    assert "DBZV" not in result.fields and set(result.paths) == set(FORMATS)
    with h5py.File(result.paths["odim"]) as h5:
        assert h5["how"].attrs["dropped_fields"] == b"DBZV"
        assert h5["how"].attrs["dropped_field_errors"].decode().startswith(f"DBZV: {bad_name}")
        data = [k for k in h5["dataset1"] if k.startswith("data")]
        quantities = {h5[f"dataset1/{k}/what"].attrs["quantity"] for k in data}
        assert b"DBZV" not in quantities and b"DBZH" in quantities
    for fmt in ("cfradial2", "zarr"):
        engine = "zarr" if fmt == "zarr" else "netcdf4"
        tree = xr.open_datatree(result.paths[fmt], engine=engine)
        assert tree.attrs["dropped_fields"] == "DBZV", fmt
        assert "DBZV" not in tree["sweep_0"].data_vars and "DBZH" in tree["sweep_0"].data_vars
    cfradial = xr.open_dataset(result.paths["cfradial"])
    assert cfradial.attrs["dropped_fields"] == "DBZV" and "DBZV" not in cfradial
    with pytest.raises(VolumeError, match=f"{bad_name}: cannot decode"):
        convert_volume(files, tmp_path / "fail", options=ConvertOptions(on_bad_field="fail"))


def test_parse_formats_and_config_keys(tmp_path: Path) -> None:
    assert parse_formats("zarr, odim") == ("odim", "zarr")
    with pytest.raises(ConfigError, match="unknown output format 'hdf'"):
        parse_formats("odim,hdf")
    with pytest.raises(ConfigError, match="at least one"):
        parse_formats([])
    data = {
        "paths": {"root": str(tmp_path)},
        "sources": {"main": {"host": "127.0.0.1", "username": "anonymous"}},
        "output": {"formats": ["cfradial", "odim"]},
        "processing": {"max_decoded_mb_per_file": 64},
        "radars": [
            {"code": "RMA1", "start_date": "2025-01-01T00:00:00Z"},
            {
                "code": "RMA2",
                "start_date": "2025-01-01T00:00:00Z",
                "output_formats": ["zarr", "cfradial2"],
            },
        ],
    }
    from datetime import datetime, timezone

    for radar in data["radars"]:
        radar["start_date"] = datetime(2025, 1, 1, tzinfo=timezone.utc)
    config = parse_config(data, env={})
    one, two = config.processing_config("RMA1"), config.processing_config("RMA2")
    assert one.output_formats == ("cfradial", "odim")
    assert two.output_formats == ("cfradial2", "zarr")
    assert one.max_decoded_mb_per_file == 64
    data["radars"][1]["output_formats"] = ["netcdf3"]
    with pytest.raises(ConfigError, match=r"radars\[1\]\.output_formats.*netcdf3"):
        parse_config(data, env={})


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ({"formats": ["cfradial", "gif"]}, "unknown output format 'gif'"),
        ({"formats": 5}, "must be a list of formats"),
        ({"formats": []}, "at least one"),
        ({"format": ["odim"]}, "unknown key"),
    ],
)
def test_output_formats_key_is_checked_by_the_daemon_config(
    tmp_path: Path, output: dict[str, Any], words: str
) -> None:
    """[output] formats is checked by ProcessingDaemonConfig and named by its TOML key."""
    from datetime import datetime, timezone

    data = {
        "paths": {"root": str(tmp_path)},
        "sources": {"main": {"host": "127.0.0.1"}},
        "output": {"compression_level": 12, **output},
        "radars": [{"code": "RMA1", "start_date": datetime(2025, 1, 1, tzinfo=timezone.utc)}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env={})
    keys = {p.key for p in getattr(caught.value, "problems", [caught.value])}
    bad = "output.format" if "format" in output else "output.formats"
    assert keys == {"output.compression_level", bad}  # both problems, each under its key
    assert words in str(caught.value)


def test_cli_convert_format_option(samples_dir: Path, tmp_path: Path) -> None:
    files = sorted((samples_dir / "RMA11").glob("RMA11_0315_02_*.BUFR"))
    cmd = [sys.executable, "-m", "radarlib", "convert", *map(str, files), "-o", str(tmp_path)]
    done = subprocess.run([*cmd, "--format", "odim,cfradial2,zarr"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stem = "RMA11_0315_02_20251020T152429Z"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{stem}.h5", f"{stem}.cfradial2.nc", f"{stem}.zarr"]
    )
    assert f"{stem}.h5" in done.stdout
    tree = xr.open_datatree(tmp_path / f"{stem}.zarr", engine="zarr")
    assert "sweep_4" in tree.children
    bad = subprocess.run([*cmd, "--format", "odim,hdf"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown output format 'hdf'" in bad.stderr


def test_worker_job_and_daemon_config_carry_the_formats(samples_dir: Path, tmp_path: Path) -> None:
    from radarlib.pipeline.processing import ProcessingDaemonConfig
    from radarlib.pipeline.workers import ConversionJob, run_job
    from radarlib.volume_types import DEFAULT_VOLUME_TYPES

    config = ProcessingDaemonConfig(
        local_bufr_dir=tmp_path / "bufr",
        local_netcdf_dir=tmp_path / "nc",
        state_db=tmp_path / "state.db",
        volume_types=DEFAULT_VOLUME_TYPES,
        radar_code="RMA11",
        output_formats=["zarr", "odim"],
        max_decoded_mb_per_file=64,
    )
    assert config.output_formats == ("odim", "zarr")
    with pytest.raises(ConfigError, match="output_formats"):
        ProcessingDaemonConfig(
            local_bufr_dir=tmp_path,
            local_netcdf_dir=tmp_path,
            state_db=tmp_path / "s.db",
            volume_types=DEFAULT_VOLUME_TYPES,
            radar_code="RMA11",
            output_formats=["gif"],
        )
    files = tuple(str(p) for p in sorted((samples_dir / "RMA11").glob("RMA11_0315_02_*.BUFR")))
    job = ConversionJob(
        volume_id="RMA11_0315_02_2025-10-20T15:24:29Z",
        files=files,
        output_dir=str(tmp_path / "nc"),
        output_formats=config.output_formats,
    )
    outcome = run_job(job)
    assert outcome.ok, outcome.error
    stem = "RMA11_0315_02_20251020T152429Z"
    assert outcome.netcdf_path == str(tmp_path / "nc" / f"{stem}.h5")
    assert sorted(p.name for p in (tmp_path / "nc").iterdir()) == [f"{stem}.h5", f"{stem}.zarr"]
    tight = run_job(
        ConversionJob(
            volume_id=job.volume_id,
            files=files,
            output_dir=str(tmp_path / "nc2"),
            max_decoded_mb_per_file=1,
        )
    )
    assert not tight.ok and "allowed per file" in (tight.error or "")


def test_temporaries_of_a_killed_conversion_are_removed_in_every_format(tmp_path: Path) -> None:
    """A worker killed mid-write leaves hidden temporaries (files, Zarr store folders); the
    daemon removes those of dead processes when it opens, and keeps a live writer's."""
    from radarlib.pipeline.processing import ProcessingDaemon, ProcessingDaemonConfig
    from radarlib.volume_types import DEFAULT_VOLUME_TYPES

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "nc"
    out.mkdir()
    stem = "RMA11_0315_02_20251020T152429Z"
    orphans = [
        f".{stem}.nc.{dead.pid}.0a1b2c3d4e5f.tmp",
        f".{stem}.h5.{dead.pid}.0a1b2c3d4e5f.tmp",
        f".{stem}.cfradial2.nc.{dead.pid}.0a1b2c3d4e5f.tmp",
    ]
    for name in orphans:
        (out / name).write_bytes(b"partial")
    for name in (f".{stem}.zarr.{dead.pid}.0a1b2c3d4e5f.tmp", f".{stem}.zarr.{dead.pid}.1.old"):
        (out / name / "sweep_0").mkdir(parents=True)
        (out / name / "sweep_0" / "0.0").write_bytes(b"chunk")
        orphans.append(name)
    live = f".{stem}.zarr.{os.getpid()}.0a1b2c3d4e5f.tmp"
    (out / live).mkdir()
    keep = ["notes.tmp", f"{stem}.h5"]
    for name in keep:
        (out / name).write_bytes(b"x")
    daemon = ProcessingDaemon(
        ProcessingDaemonConfig(
            local_bufr_dir=tmp_path / "bufr",
            local_netcdf_dir=out,
            state_db=tmp_path / "state.db",
            volume_types=DEFAULT_VOLUME_TYPES,
            radar_code="RMA11",
        )
    )
    daemon._open()
    try:
        assert sorted(p.name for p in out.iterdir()) == sorted([live, *keep])
    finally:
        daemon._close()
