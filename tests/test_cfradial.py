"""The NetCDF writer: CF/Radial layout, float32 round trip, sweep chunks, compression, atomicity."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest

import radarlib.cfradial as cfradial
from radarlib.bufr.synthetic import synthetic_volume
from radarlib.cfradial import write_cfradial
from radarlib.radar import volume_to_radar
from radarlib.volume import assemble_volume

os.environ.setdefault("PYART_QUIET", "1")
import pyart

NAME = "RMA1_0315_01_20251118T123000Z.nc"


@pytest.fixture(scope="module")
def radar() -> Any:
    files = synthetic_volume("RMA1", "0315", "01", fields=["DBZH", "KDP"], nsweeps=3, ngates=90)
    return volume_to_radar(assemble_volume(list(files.values())))


@pytest.fixture(params=["direct", "netcdf4"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both write paths: libdeflate + HDF5 direct chunk write, and plain netCDF4 zlib."""
    if request.param == "netcdf4":
        monkeypatch.setattr(cfradial, "_direct_chunk_backend", lambda: None)
    else:
        assert cfradial._direct_chunk_backend() is not None, "h5py and deflate are test deps"
    return str(request.param)


def _read(path: Path, names: list[str]) -> dict[str, Any]:
    with netCDF4.Dataset(path) as ds:
        return {n: (ds[n][:], ds[n].filters(), ds[n].chunking()) for n in names}


def test_round_trip_is_exact_float32_with_fill_and_sweep_chunks(
    radar: Any, tmp_path: Path, backend: str
) -> None:
    path = write_cfradial(radar, tmp_path / NAME)
    assert path == tmp_path / NAME and os.listdir(tmp_path) == [NAME]
    with netCDF4.Dataset(path) as ds:
        assert ds.data_model == "NETCDF4"
        assert dict(ds.dimensions.items()).keys() >= {"time", "range", "sweep", "string_length"}
        for name in ("DBZH", "KDP"):
            var = ds[name]
            assert var.dtype == np.float32 and var._FillValue == np.float32(-9999.0)
            assert var.chunking() == [360, radar.ngates]
            assert var.filters()["zlib"] and var.filters()["complevel"] == 4
            got = var[:]
            want = radar.fields[name]["data"]
            assert np.array_equal(got.mask, want.mask)
            assert np.array_equal(got.compressed(), want.compressed())
            assert np.array_equal(ds[f"{name}_status"][:], radar.fields[f"{name}_status"]["data"])
            assert ds[f"{name}_status"].dtype == np.uint8
        assert np.array_equal(ds["time"][:], radar.time["data"])
        assert ds["time"].dtype == np.float64
        assert np.array_equal(ds["azimuth"][:], radar.azimuth["data"])
        assert ds.history.startswith("20") and ds.ncattrs()[-1] == "history"


def test_both_paths_give_the_same_file_content_edge_chunks_and_shuffle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = synthetic_volume("RMA1", "0315", "02", nsweeps=2, nrays=360, ngates=70)
    b = synthetic_volume("RMA1", "0315", "02", nsweeps=2, nrays=480, ngates=70)
    mixed = [replace(a[n], sweeps=(a[n].sweeps[0], b[n].sweeps[1])) for n in ("VRAD", "WRAD")]
    radar = volume_to_radar(assemble_volume(mixed))  # 840 rays, chunks of 480: an edge chunk
    names = ["VRAD", "VRAD_status", "WRAD", "WRAD_status"]
    for shuffle in (False, True):
        direct = _read(write_cfradial(radar, tmp_path / "d.nc", shuffle=shuffle), names)
        with monkeypatch.context() as m:
            m.setattr(cfradial, "_direct_chunk_backend", lambda: None)
            plain = _read(write_cfradial(radar, tmp_path / "p.nc", shuffle=shuffle), names)
        for n in names:
            assert direct[n][2] == plain[n][2] == [480, radar.ngates]
            assert direct[n][1] == plain[n][1]
            assert direct[n][1]["shuffle"] is shuffle and direct[n][1]["zlib"] is True
            assert np.array_equal(np.ma.getmaskarray(direct[n][0]), np.ma.getmaskarray(plain[n][0]))
            assert np.array_equal(np.ma.filled(direct[n][0], 0), np.ma.filled(plain[n][0], 0))
        want = radar.fields["VRAD"]["data"]
        assert np.array_equal(direct["VRAD"][0].mask, want.mask)
        assert np.array_equal(direct["VRAD"][0].compressed(), want.compressed())


def test_compression_level_is_configurable(radar: Any, tmp_path: Path, backend: str) -> None:
    raw = write_cfradial(radar, tmp_path / "raw.nc", compression_level=0)
    best = write_cfradial(radar, tmp_path / "best.nc", compression_level=9)
    with netCDF4.Dataset(raw) as ds:
        assert not ds["DBZH"].filters()["zlib"]
    with netCDF4.Dataset(best) as ds:
        assert ds["DBZH"].filters()["complevel"] == 9
    assert best.stat().st_size < raw.stat().st_size / 3
    for bad in (-1, 10, 2.5):
        with pytest.raises(ValueError, match="compression_level"):
            write_cfradial(radar, tmp_path / "bad.nc", compression_level=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "bad.nc").exists()


def test_any_pyart_radar_can_be_written_and_read_back(tmp_path: Path) -> None:
    target = pyart.testing.make_target_radar()
    path = write_cfradial(target, tmp_path / "target.nc")
    back = pyart.io.read_cfradial(str(path))
    assert back.fields["reflectivity"]["data"].dtype == np.float32
    assert np.allclose(back.fields["reflectivity"]["data"], target.fields["reflectivity"]["data"])
    assert back.metadata["time_coverage_start"].endswith("Z")


def _boom_on_kdp(real: Any) -> Any:
    def put(ds: Any, name: str, *args: Any, **kwargs: Any) -> None:
        if name == "KDP":
            raise RuntimeError("simulated failure while writing KDP")
        real(ds, name, *args, **kwargs)

    return put


def test_failure_while_storing_chunks_leaves_no_file(
    radar: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cfradial, "_write_chunks", fail)
    with pytest.raises(OSError, match="No space"):
        write_cfradial(radar, tmp_path / NAME)
    assert os.listdir(tmp_path) == []


def test_failure_mid_write_leaves_no_file_and_keeps_the_old_one(
    radar: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setattr(cfradial, "_put", _boom_on_kdp(cfradial._put))
    with pytest.raises(RuntimeError, match="simulated"):
        write_cfradial(radar, tmp_path / NAME)
    assert os.listdir(tmp_path) == []  # neither the final name nor a temporary file
    old = tmp_path / NAME
    old.write_bytes(b"previous complete file")
    with pytest.raises(RuntimeError, match="simulated"):
        write_cfradial(radar, old)
    assert old.read_bytes() == b"previous complete file"
    assert os.listdir(tmp_path) == [NAME]


def _crash_child(radar: Any, path: str) -> None:
    real = cfradial._put

    def put(ds: Any, name: str, *args: Any, **kwargs: Any) -> None:
        if name == "KDP":
            os._exit(17)  # the process dies mid-write: no cleanup, no exception handling
        real(ds, name, *args, **kwargs)

    cfradial._put = put  # type: ignore[assignment]
    write_cfradial(radar, path)


def test_process_killed_mid_write_leaves_nothing_under_the_final_name(
    radar: Any, tmp_path: Path
) -> None:
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_crash_child, args=(radar, str(tmp_path / NAME)))
    child.start()
    child.join(60)
    assert child.exitcode == 17
    names = os.listdir(tmp_path)
    assert NAME not in names
    assert len(names) == 1 and names[0].startswith(f".{NAME}.") and names[0].endswith(".tmp")
    # the next write succeeds and the leftover is only a hidden temporary
    write_cfradial(radar, tmp_path / NAME)
    with netCDF4.Dataset(tmp_path / NAME) as ds:
        assert "KDP" in ds.variables
