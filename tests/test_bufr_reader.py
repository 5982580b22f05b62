"""The decoder on the real sample files: every fact EXPECTED.json lists, bit for bit; tables."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radarlib.bufr import BufrFile, GateStatus, classify, read_bufr
from radarlib.bufr import inflate as inflate_mod
from radarlib.bufr.bits import BitReader, BitsExhausted
from radarlib.bufr.tables import Element, Replication, Sequence, TableError, Tables, fxy_str
from radarlib.errors import BufrDecodeError

_EXPECTED_JSON = Path(__file__).resolve().parents[1].parent / "shared/data/bufr/EXPECTED.json"
NAMES = sorted(json.loads(_EXPECTED_JSON.read_text())["files"]) if _EXPECTED_JSON.is_file() else []
AR5 = "AR5_1000_1_DBZH_20240101T000746Z.BUFR"
KDP = "RMA11_0315_01_KDP_20251020T152828Z.BUFR"
DBZH = "RMA11_0315_01_DBZH_20251020T152828Z.BUFR"


def _iso(moment: datetime) -> str:
    assert moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fingerprint(bufr: BufrFile) -> list[str]:
    return [hashlib.sha256(q.data.tobytes()).hexdigest() for s in bufr.sweeps for q in s.quantities]


def test_every_expected_file_is_present(expected: dict[str, Any], sample_paths: dict[str, Path]):
    assert set(expected) == set(sample_paths) and len(expected) == len(NAMES) >= 7


@pytest.mark.parametrize("name", NAMES)
def test_sample_decodes_to_expected(name: str, expected: dict[str, Any], sample_paths):
    exp = expected[name]
    path = sample_paths[name]
    raw = path.read_bytes()
    assert len(raw) == exp["size"] and hashlib.sha256(raw).hexdigest() == exp["file_sha256"]
    bufr = read_bufr(path)

    s1 = bufr.section1
    assert {k: getattr(s1, k) for k in exp["section1"]} == exp["section1"]
    assert bufr.edition == 4
    st = bufr.station
    assert [[i.kind, i.value] for i in st.ids] == exp["station_ids"]
    es = exp["station"]
    assert (st.latitude, st.longitude, st.height) == (es["lat"], es["lon"], es["height"])
    assert st.time == datetime(
        es["year"], es["month"], es["day"], es["hour"], es["minute"], tzinfo=timezone.utc
    )
    assert len(bufr.sweeps) == exp["nsweeps"]
    for sweep, ew in zip(bufr.sweeps, exp["sweeps"], strict=True):
        got = {
            "start": _iso(sweep.start_time),
            "end": _iso(sweep.end_time),
            "object_type": sweep.object_type,
            "quantity_code": sweep.quantity_code,
            "elevation": sweep.elevation,
            "nrays": sweep.nrays,
            "ngates": sweep.ngates,
            "range_size": sweep.range_bin_size,
            "range_offset": sweep.range_offset,
            "a1gate": sweep.a1gate,
            "n_chunks": sweep.quantities[0].n_chunks,
            "payload_sha256": hashlib.sha256(sweep.data.tobytes()).hexdigest(),
        }
        assert got == ew
        assert len(sweep.quantities) == 1
        assert sweep.data.dtype == np.dtype("<f8") and sweep.data.shape == (
            ew["nrays"],
            ew["ngates"],
        )
        assert not sweep.data.flags.writeable
    status = np.concatenate([classify(s.data).ravel() for s in bufr.sweeps])
    tally = np.bincount(status, minlength=5)
    counts = {
        "valid": int(tally[GateStatus.VALID]),
        "undetect": int(tally[GateStatus.UNDETECT]),
        "nodata": int(tally[GateStatus.NODATA]),
        "nan": int(tally[GateStatus.NAN]),
    }
    assert counts == exp["counts"]
    valid = np.concatenate([s.data[classify(s.data) == GateStatus.VALID] for s in bufr.sweeps])
    assert (valid.min(), valid.max()) == (exp["valid_min"], exp["valid_max"])

    # the name comes from the path; the same bytes with a name decode identically
    assert bufr.filename is not None and bufr.filename.name == name
    assert bufr.field == name.split("_")[3] and bufr.radar == name.split("_")[0]
    again = read_bufr(raw, name=name)
    assert again.same_as(bufr) and again.filename == bufr.filename
    anonymous = read_bufr(memoryview(raw))
    assert anonymous.filename is None and anonymous.field is None and anonymous.same_as(bufr)


def test_exact_numeric_conversion(sample_paths):
    bufr = read_bufr(sample_paths[DBZH])
    # (11509425 - 18000000) / 10**5, one correctly rounded division (not * 1e-5)
    assert bufr.station.longitude == -64.90575 == (11509425 - 18000000) / 10**5
    assert (11509425 - 18000000) * 1e-5 != -64.90575
    offsets = {s.range_offset for s in read_bufr(sample_paths[KDP]).sweeps}
    assert offsets == {4770.0, 1770.0}  # scale -1: raw * 10, exact


def test_sweeps_ending_before_start_warn_not_fail(sample_paths, caplog):
    with caplog.at_level(logging.WARNING, logger="radarlib.bufr.reader"):
        bufr = read_bufr(sample_paths[DBZH])
    late = [i for i, s in enumerate(bufr.sweeps) if s.end_time < s.start_time]
    assert late == [13, 14]
    assert (
        sum(
            "ends" in r.getMessage() and "before it starts" in r.getMessage()
            for r in caplog.records
        )
        == 2
    )
    assert all(np.all(bufr.sweeps[i].data == np.finfo(np.float64).max) for i in late)


def test_byte_runs_are_sliced_not_looped(sample_paths, monkeypatch):
    """1.7 M payload bytes, yet only a few hundred field reads: the byte runs are sliced."""
    calls = {"read": 0, "bytes": 0}
    real_read, real_bytes = BitReader.read, BitReader.read_bytes

    def read(self: BitReader, width: int) -> int:
        calls["read"] += 1
        return real_read(self, width)

    def read_bytes(self: BitReader, count: int) -> memoryview:
        calls["bytes"] += 1
        return real_bytes(self, count)

    monkeypatch.setattr(BitReader, "read", read)
    monkeypatch.setattr(BitReader, "read_bytes", read_bytes)
    bufr = read_bufr(sample_paths[DBZH])
    chunks = sum(q.n_chunks for s in bufr.sweeps for q in s.quantities)
    assert chunks >= 15
    assert calls["read"] < 1000
    assert calls["bytes"] == chunks + 2  # the chunks plus the two station-id strings


@pytest.mark.skipif(inflate_mod._deflate is None, reason="libdeflate (deflate package) absent")
def test_libdeflate_and_zlib_give_identical_payloads(sample_paths, monkeypatch):
    fast = read_bufr(sample_paths[KDP])
    monkeypatch.setattr(inflate_mod, "BACKEND", "zlib")
    slow = read_bufr(sample_paths[KDP])
    assert fast.same_as(slow) and _fingerprint(fast) == _fingerprint(slow)


def test_threads_give_the_same_results_as_sequential(sample_paths):
    names = [
        AR5,
        KDP,
        "RMA11_0315_02_VRAD_20251020T152429Z.BUFR",
        "RMA11_0315_02_WRAD_20251020T152429Z.BUFR",
        DBZH,
    ]
    sequential = {n: _fingerprint(read_bufr(sample_paths[n])) for n in names}
    jobs = names * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: (n, _fingerprint(read_bufr(sample_paths[n]))), jobs))
    assert len(results) == len(jobs)
    for name, prints in results:
        assert prints == sequential[name]


def test_repeated_calls_are_identical(sample_paths):
    first = read_bufr(sample_paths[AR5])
    assert all(read_bufr(sample_paths[AR5]).same_as(first) for _ in range(3))


# ---------------------------------------------------------------- local tables, root_resources


def _with_byte(raw: bytes, offset: int, value: int) -> bytes:
    out = bytearray(raw)
    out[offset] = value
    return bytes(out)


def test_ar5_uses_local_table_version_1(sample_paths):
    bufr = read_bufr(sample_paths[AR5])
    assert bufr.section1.local_version == 1 and bufr.section1.intl_subcategory == 0


def test_unknown_local_version_decodes_when_descriptors_are_known(sample_paths):
    raw = sample_paths[AR5].read_bytes()
    renamed = _with_byte(raw, 8 + 14, 7)  # section 1 octet 15: local table version 7
    bufr = read_bufr(renamed, name=AR5)
    assert bufr.section1.local_version == 7
    assert _fingerprint(bufr) == _fingerprint(read_bufr(raw))


def _set_descriptor(raw: bytes, index: int, fxy: int) -> bytes:
    """Replace the index-th section-3 descriptor of a sample (section 3 at byte 30)."""
    f, x, y = fxy // 100000, fxy // 1000 % 100, fxy % 1000
    out = bytearray(raw)
    at = 30 + 7 + 2 * index
    out[at], out[at + 1] = (f << 6) | x, y
    return bytes(out)


def test_unknown_local_version_with_unknown_descriptor_fails_clearly(sample_paths):
    raw = _with_byte(sample_paths[AR5].read_bytes(), 8 + 14, 7)
    bad = _set_descriptor(raw, 2, 321250)
    with pytest.raises(BufrDecodeError) as info:
        read_bufr(bad, name="odd.BUFR")
    text = str(info.value)
    assert text.startswith("odd.BUFR: ") and "3 21 250" in text and "table D" in text
    assert "local table version 7" in text and "root_resources" in text


def test_root_resources_adds_a_sequence(sample_paths, tmp_path: Path):
    raw = sample_paths[AR5].read_bytes()
    bad = _set_descriptor(raw, 2, 321250)
    with pytest.raises(BufrDecodeError, match="3 21 250"):
        read_bufr(bad)
    tables = Tables.load()
    members = " ".join(f"{d:06d}" for d in tables.sequence(321203))
    (tmp_path / "table_d_mine.csv").write_text(f"# my centre\nfxy,descriptors\n321250,{members}\n")
    bufr = read_bufr(bad, root_resources=tmp_path)
    assert _fingerprint(bufr) == _fingerprint(read_bufr(raw))


def test_root_resources_overrides_an_element(sample_paths, tmp_path: Path):
    # Same width, different scale: 0 02 135 read as 1/1000 degree shows the override is used.
    (tmp_path / "table_b_mine.csv").write_text(
        'fxy,name,unit,scale,reference,width\n002135,"Antenna elevation, milli",deg,3,-9000,15\n'
    )
    bufr = read_bufr(sample_paths[AR5], root_resources=tmp_path)
    assert bufr.sweeps[0].elevation == (9030 - 9000) / 1000
    assert Tables.load(tmp_path).element(2135).name == "Antenna elevation, milli"
    assert Tables.load().element(2135).scale == 2  # packaged tables untouched


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("fxy,name,unit,scale,reference,width\n02135,x,deg,2,0,15\n", "not a descriptor"),
        ("fxy,name,unit,scale,reference,width\n302135,x,deg,2,0,15\n", "F = 0"),
        ("fxy,name,unit,scale,reference,width\n002135,x,deg,two,0,15\n", "line 2"),
        ("fxy,name,unit,scale,reference,width\n002135,x,deg,2,0,99\n", "width 99"),
        ("fxy,name,unit,scale,reference,width\n001193,x,CCITT IA5,0,0,12\n", "string width"),
    ],
)
def test_malformed_root_table_is_a_decode_error(sample_paths, tmp_path, content, reason):
    (tmp_path / "table_b_bad.csv").write_text(content)
    with pytest.raises(BufrDecodeError, match=reason):
        read_bufr(sample_paths[AR5], root_resources=tmp_path)


def test_root_resources_must_be_a_directory(sample_paths, tmp_path):
    with pytest.raises(BufrDecodeError, match="not a directory"):
        read_bufr(sample_paths[AR5], root_resources=tmp_path / "nope")


# ---------------------------------------------------------------- tables API


def test_tables_api():
    tables = Tables.load()
    assert Tables.load() is tables  # packaged tables loaded once
    e = tables.element(21203)
    assert (e.name, e.unit, e.scale, e.reference, e.width) == ("Range-bin offset", "m", -1, 0, 14)
    assert e.convert(177) == 1770 and isinstance(e.convert(177), int)
    assert e.convert(2**14 - 1) is None  # all ones: missing
    byte = tables.element(30198)
    assert byte.is_byte and not byte.has_missing and byte.convert(255) == 255
    assert tables.element(5001).convert(0) == -90.0
    assert tables.element(1193).is_string and tables.element(1193).width == 128
    assert tables.sequence(301031) == (301001, 2001, 301011, 301012, 301022)
    # local table D of centre 41: the compressed-array sequence
    (compression, chunks) = tables.expand([321206])[0].body
    assert isinstance(compression, Element) and compression.fxy == 30197
    assert isinstance(chunks, Replication) and chunks.delayed and chunks.factor.fxy == 31002
    (run,) = chunks.body
    assert isinstance(run, Replication) and run.byte_run and run.factor.width == 16
    assert fxy_str(321204) == "3 21 204"


def test_expansion_of_the_radar_template():
    nodes = Tables.load().expand([321204, 301031, 321203])
    assert [n.fxy for n in nodes] == [321204, 301031, 321203]
    assert all(isinstance(n, Sequence) for n in nodes)
    (sweeps,) = nodes[2].body
    assert isinstance(sweeps, Replication) and sweeps.factor.fxy == 31001
    # 3 21 205, seven elements, then the quantity replication (its factor is part of the node)
    assert [n.fxy for n in sweeps.body] == [
        321205,
        30196,
        2135,
        30194,
        21201,
        21203,
        30195,
        2134,
        102000,
    ]
    stamps = sweeps.body[0]
    assert isinstance(stamps, Sequence) and stamps.fxy == 321205
    (twice,) = stamps.body
    assert isinstance(twice, Replication) and not twice.delayed and twice.count == 2
    assert sweeps.body_min_bits == 39 * 2 + 8 + 15 + 12 + 14 + 14 + 11 + 16 + 8


@pytest.mark.parametrize(
    ("descriptors", "reason"),
    [
        ([321299], "3 21 299 is not in table D"),
        ([1250], "0 01 250 is not in table B"),
        ([201129, 2135], "operator descriptor 2 01 129"),
        ([102000, 2135, 2134], "not followed by a class-31"),
        ([103000, 31001, 2135], "needs 3 descriptors"),
    ],
)
def test_expansion_errors_name_the_descriptor(descriptors, reason):
    with pytest.raises(TableError, match=reason):
        Tables.load().expand(descriptors)


def test_sequence_cycle_is_an_error(tmp_path):
    (tmp_path / "table_d_cycle.csv").write_text("321250,321251\n321251,321250\n")
    with pytest.raises(TableError, match="deeper than"):
        Tables.load(tmp_path).expand([321250])


# ---------------------------------------------------------------- bit reader


def test_bit_reader_matches_a_big_int_reference():
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(600))
    whole = int.from_bytes(data, "big")
    total = len(data) * 8
    reader = BitReader(data)
    pos = 0
    while True:
        if rng.random() < 0.2:
            count = rng.choice([0, 1, 3, 70, 100])
            if pos + 8 * count > total:
                break
            got = bytes(reader.read_bytes(count))
            want = ((whole >> (total - pos - 8 * count)) & ((1 << (8 * count)) - 1)).to_bytes(
                count, "big"
            )
            assert got == want, (pos, count)
            pos += 8 * count
        else:
            width = rng.randint(1, 64)
            if pos + width > total:
                break
            assert reader.read(width) == (whole >> (total - pos - width)) & ((1 << width) - 1)
            pos += width
        assert reader.pos == pos
    with pytest.raises(BitsExhausted):
        reader.read(total - pos + 1)
    with pytest.raises(BitsExhausted):
        reader.read_bytes((total - pos) // 8 + 1)
    assert reader.pos == pos  # a failed read does not move
