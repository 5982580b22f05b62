"""The BUFR encoder: round trips through the real decoder, template bytes, and encode errors."""

from __future__ import annotations

import dataclasses
import os
import random
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radarlib.bufr import (
    NODATA,
    UNDETECT,
    BufrFile,
    Quantity,
    StationId,
    Sweep,
    read_bufr,
    write_bufr,
    write_bufr_file,
)
from radarlib.bufr.bitwriter import BitWriter
from radarlib.bufr.writer import CHUNK_SIZE
from radarlib.errors import BufrEncodeError

SAMPLE_NAMES = [
    "AR5_1000_1_DBZH_20240101T000746Z.BUFR",
    "RMA11_0315_01_DBZH_20251020T152828Z.BUFR",
    "RMA11_0315_01_DBZV_20251020T152828Z.BUFR",
    "RMA11_0315_01_KDP_20251020T152828Z.BUFR",
    "RMA11_0315_01_ZDR_20251020T152828Z.BUFR",
    "RMA11_0315_02_VRAD_20251020T152429Z.BUFR",
    "RMA11_0315_02_WRAD_20251020T152429Z.BUFR",
]

#: The zlib of the radar's processor is classic zlib at level 6; zlib-ng deflates differently.
CLASSIC_ZLIB = "ng" not in zlib.ZLIB_RUNTIME_VERSION.lower()


@pytest.fixture(scope="module")
def decoded(sample_paths: dict[str, Path]) -> dict[str, BufrFile]:
    return {name: read_bufr(path) for name, path in sample_paths.items()}


def test_all_samples_are_covered(sample_paths: dict[str, Path], expected: dict[str, Any]) -> None:
    assert sorted(sample_paths) == sorted(expected) == sorted(SAMPLE_NAMES)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_roundtrip_every_sample_bit_for_bit(name: str, decoded: dict[str, BufrFile]) -> None:
    original = decoded[name]
    again = read_bufr(write_bufr(original), name=name)
    assert again.same_as(original)
    # same_as compares payload bytes; check the sentinels and NaN bit patterns survived too
    for a, b in zip(original.sweeps, again.sweeps, strict=True):
        assert a.data.tobytes() == b.data.tobytes()
        assert a.quantities[0].n_chunks == b.quantities[0].n_chunks


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_template_bytes_match_the_sample(
    name: str, sample_paths: dict[str, Path], decoded: dict[str, BufrFile]
) -> None:
    """Sections 0-3 and section 4 up to sweep 0's compression octet are the radar's bytes."""
    raw = sample_paths[name].read_bytes()
    out = write_bufr(decoded[name], level=1)  # level changes only the zlib streams
    assert out[:4] == b"BUFR" and out[7] == 4
    assert int.from_bytes(out[4:7], "big") == len(out)
    assert out[-4:] == b"7777"
    assert out[8:30] == raw[8:30]  # section 1
    assert out[30:44] == raw[30:44]  # section 3: 1 subset, 0x80, 3 21 204 3 01 031 3 21 203
    l4 = int.from_bytes(out[44:47], "big")
    assert l4 % 2 == 0 and 44 + l4 + 4 == len(out)
    # preamble (134 + 152 bits) + sweep-0 header (168) + Q, code, compression (24) = 478 bits
    assert out[47:107] == raw[47:107]


@pytest.mark.skipif(not CLASSIC_ZLIB, reason="needs classic zlib to reproduce the deflate bytes")
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_rewrite_reproduces_the_radar_file(
    name: str, sample_paths: dict[str, Path], decoded: dict[str, BufrFile]
) -> None:
    assert write_bufr(decoded[name]) == sample_paths[name].read_bytes()


def test_two_quantities_per_sweep(decoded: dict[str, BufrFile]) -> None:
    vrad = decoded["RMA11_0315_02_VRAD_20251020T152429Z.BUFR"]
    wrad = decoded["RMA11_0315_02_WRAD_20251020T152429Z.BUFR"]
    sweeps = tuple(
        dataclasses.replace(v, quantities=(v.quantities[0], w.quantities[0]))
        for v, w in zip(vrad.sweeps, wrad.sweeps, strict=True)
    )
    both = dataclasses.replace(vrad, sweeps=sweeps)
    again = read_bufr(write_bufr(both))
    assert again.same_as(both)
    assert [len(s.quantities) for s in again.sweeps] == [2] * 5
    for s, w in zip(again.sweeps, wrad.sweeps, strict=True):
        assert (s.quantities[0].code, s.quantities[1].code) == (40, 60)
        assert s.quantities[1].data.tobytes() == w.data.tobytes()
        assert s.masked(1)[0].count() == w.masked()[0].count()
    assert not again.same_as(vrad)  # the second quantity counts


def _tiny(nsweeps: int = 1, nrays: int = 4, ngates: int = 3, **sweep: Any) -> BufrFile:
    """A small valid file built from the AR5 sample's section 1 and station."""
    from radarlib.bufr import Section1, Station

    t0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    section1 = Section1(0, 41, 0, 0, False, 6, 2, 0, 16, 2, 2025, 1, 2, 3, 4, 5)
    station = Station(
        -31.4413, -64.1919, 476.0, (StationId("RMA", "1"),), 0, 0, 0, t0.replace(second=0)
    )
    data = np.arange(nrays * ngates, dtype=np.float64).reshape(nrays, ngates)
    data[0, 0], data[-1, -1] = UNDETECT, NODATA
    fields: dict[str, Any] = dict(
        start_time=t0,
        end_time=t0 + timedelta(seconds=20),
        elevation=0.5,
        nrays=nrays,
        ngates=ngates,
        range_bin_size=360.0,
        range_offset=1770.0,
        a1gate=3,
        quantities=(Quantity(0, data),),
    )
    fields.update(sweep)
    return BufrFile(section1, station, tuple(Sweep(**fields) for _ in range(nsweeps)))


def test_tiny_file_roundtrips_and_long_streams_split_into_chunks() -> None:
    f = _tiny()
    assert read_bufr(write_bufr(f)).same_as(f)
    noise = np.random.default_rng(0).random((600, 100))  # ~480 kB of incompressible floats
    big = _tiny(nrays=600, ngates=100, quantities=(Quantity(0, noise),))
    again = read_bufr(write_bufr(big, level=0))
    assert again.same_as(big)
    stream = len(zlib.compress(noise.tobytes(), 0))
    assert again.sweeps[0].quantities[0].n_chunks == -(-stream // CHUNK_SIZE) > 1


def test_threaded_deflate_matches_serial_and_reports_errors_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from radarlib.bufr import writer

    noise = np.random.default_rng(1).random((50, 40))
    f = _tiny(nsweeps=6, nrays=50, ngates=40, quantities=(Quantity(0, noise), Quantity(1, noise)))
    serial = write_bufr(f)
    monkeypatch.setattr(writer, "_PARALLEL_BYTES", 0)
    monkeypatch.setattr(writer.os, "cpu_count", lambda: 4)
    assert write_bufr(f) == serial
    bad = dataclasses.replace(
        f, sweeps=(*f.sweeps[:4], dataclasses.replace(f.sweeps[4], ngates=39), f.sweeps[5])
    )
    with pytest.raises(BufrEncodeError, match="sweep 4 quantity 0: data shape"):
        write_bufr(bad)


def test_missing_station_numbers_roundtrip_as_none() -> None:
    f = _tiny()
    f = dataclasses.replace(
        f, station=dataclasses.replace(f.station, wmo_block=None, wmo_station=None)
    )
    again = read_bufr(write_bufr(f))
    assert again.station.wmo_block is None and again.station.wmo_station is None
    assert again.same_as(f)


def test_station_ids_are_nul_padded_ia5() -> None:
    f = _tiny()
    out = write_bufr(f)
    # S at bit 0 of section 4 data (byte 48), then 3 + 16 characters
    assert out[48] == 1
    assert out[49:52] == b"RMA"
    assert out[52:68] == b"1" + b"\0" * 15


def test_level_changes_size_not_content(decoded: dict[str, BufrFile]) -> None:
    f = decoded["RMA11_0315_02_WRAD_20251020T152429Z.BUFR"]
    fast, small = write_bufr(f, level=1), write_bufr(f, level=9)
    assert fast != small
    assert read_bufr(fast).same_as(read_bufr(small))


# --------------------------------------------------------------------------- encode errors


def _station(f: BufrFile, **changes: Any) -> BufrFile:
    return dataclasses.replace(f, station=dataclasses.replace(f.station, **changes))


T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

BAD = {
    "ngates": (
        lambda: _tiny(nrays=2, ngates=5000, quantities=(Quantity(0, np.zeros((2, 5000))),)),
        "ngates",
    ),
    "nrays": (
        lambda: _tiny(nrays=2047, ngates=1, quantities=(Quantity(0, np.zeros((2047, 1))),)),
        "nrays",
    ),
    "negative height": (lambda: _station(_tiny(), height=-500.0), "station height"),
    "too many sweeps": (
        lambda: _tiny(nsweeps=255, nrays=1, ngates=1, quantities=(Quantity(0, np.zeros((1, 1))),)),
        "number of sweeps",
    ),
    "latitude": (lambda: _station(_tiny(), latitude=95.0), "station latitude"),
    "latitude precision": (lambda: _station(_tiny(), latitude=-31.123456), "station latitude"),
    "longitude": (lambda: _station(_tiny(), longitude=-181.0), "station longitude"),
    "id kind too long": (
        lambda: _station(_tiny(), ids=(StationId("RMAX", "1"),)),
        "station identifier 0 type",
    ),
    "id too long": (
        lambda: _station(_tiny(), ids=(StationId("RMA", "x" * 17),)),
        "station identifier 0",
    ),
    "id not ascii": (
        lambda: _station(_tiny(), ids=(StationId("RMA", "Córdoba"),)),
        "station identifier 0",
    ),
    "range offset": (lambda: _tiny(range_offset=1775.0), "range offset"),
    "range offset too far": (lambda: _tiny(range_offset=200_000.0), "range offset"),
    "bin size": (lambda: _tiny(range_bin_size=20_000.0), "range-bin size"),
    "elevation": (lambda: _tiny(elevation=-91.0), "elevation"),
    "a1gate": (lambda: _tiny(a1gate=700), "a1gate"),
    "a1gate negative": (lambda: _tiny(a1gate=-1), "a1gate"),
    "naive time": (lambda: _tiny(start_time=T0.replace(tzinfo=None)), "sweep 0 start"),
    "sub-second": (lambda: _tiny(end_time=T0 + timedelta(microseconds=5)), "sweep 0 end"),
    "year": (lambda: _tiny(start_time=T0.replace(year=5000)), "sweep 0 start year"),
    "nan elevation": (lambda: _tiny(elevation=float("nan")), "elevation"),
    "shape": (lambda: _tiny(quantities=(Quantity(0, np.zeros((4, 2))),)), "data shape"),
    "compression": (
        lambda: _tiny(quantities=(Quantity(0, np.zeros((4, 3)), compression=1),)),
        "compression method 1",
    ),
    "quantity code": (lambda: _tiny(quantities=(Quantity(300, np.zeros((4, 3))),)), "code"),
    "section 2": (
        lambda: dataclasses.replace(
            _tiny(), section1=dataclasses.replace(_tiny().section1, has_section2=True)
        ),
        "has_section2",
    ),
    "centre": (
        lambda: dataclasses.replace(
            _tiny(), section1=dataclasses.replace(_tiny().section1, centre=70000)
        ),
        "section 1 centre",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_values_that_do_not_fit_raise_naming_the_item(case: str) -> None:
    make, label = BAD[case]
    with pytest.raises(BufrEncodeError, match=label):
        write_bufr(make())


@pytest.mark.parametrize("level", [-2, 10, 1.5])
def test_bad_level(level: Any) -> None:
    with pytest.raises(BufrEncodeError, match="level"):
        write_bufr(_tiny(), level=level)


def test_limits_themselves_are_accepted() -> None:
    f = _tiny(
        nrays=1,
        ngates=4094,
        quantities=(Quantity(0, np.zeros((1, 4094))),),
        range_offset=163_820.0,
        range_bin_size=16_382.0,
        a1gate=655,
        elevation=-90.0,
    )
    f = _station(f, latitude=90.0, longitude=-180.0, height=-400.0)
    assert read_bufr(write_bufr(f)).same_as(f)
    assert (
        len(
            read_bufr(
                write_bufr(
                    _tiny(
                        nsweeps=254, nrays=1, ngates=1, quantities=(Quantity(0, np.zeros((1, 1))),)
                    )
                )
            ).sweeps
        )
        == 254
    )


# --------------------------------------------------------------------------- file writing


def test_write_bufr_file_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "RMA1_0315_01_DBZH_20250102T030405Z.BUFR"
    f = _tiny()
    assert write_bufr_file(f, target) == target
    assert read_bufr(target).same_as(f)
    assert read_bufr(target).field == "DBZH"
    before = target.read_bytes()
    with pytest.raises(BufrEncodeError):
        write_bufr_file(_station(f, latitude=99.0), target)
    assert target.read_bytes() == before  # a failed write leaves the old file intact
    write_bufr_file(_tiny(elevation=1.5), target)  # overwrite
    assert read_bufr(target).sweeps[0].elevation == 1.5
    assert os.listdir(tmp_path) == [target.name]


# --------------------------------------------------------------------------- bit writer


def _reference(ops: list[tuple[str, Any]]) -> bytes:
    value, nbits = 0, 0
    for kind, arg in ops:
        if kind == "uint":
            v, width = arg
            value, nbits = (value << width) | v, nbits + width
        else:
            value, nbits = (
                (value << (8 * len(arg))) | int.from_bytes(arg, "big"),
                nbits + 8 * len(arg),
            )
    pad = -nbits % 8
    return (value << pad).to_bytes((nbits + pad) // 8, "big")


_op = st.one_of(
    st.integers(1, 40).flatmap(
        lambda w: st.tuples(st.just("uint"), st.tuples(st.integers(0, 2**w - 1), st.just(w)))
    ),
    st.tuples(st.just("bytes"), st.binary(max_size=40)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=25))
def test_bitwriter_matches_a_big_int_reference(ops: list[tuple[str, Any]]) -> None:
    w = BitWriter()
    for kind, arg in ops:
        if kind == "uint":
            w.write_uint(*arg)
        else:
            w.write_bytes(arg)
    w.pad_to_octet()
    assert w.getvalue() == _reference(ops)


def test_bitwriter_long_run_at_every_phase() -> None:
    run = bytes(random.Random(5).randrange(256) for _ in range(70_000))
    for phase in range(8):
        w = BitWriter()
        if phase:
            w.write_uint(1, phase)
        w.write_bytes(run)
        w.pad_to_octet()
        assert w.getvalue() == _reference([("uint", (1, phase))] * bool(phase) + [("bytes", run)])


def test_bitwriter_rejects_overflow_and_unaligned_end() -> None:
    w = BitWriter()
    with pytest.raises(ValueError):
        w.write_uint(8, 3)
    w.write_uint(1, 3)
    with pytest.raises(ValueError):
        w.getvalue()
