"""Every kind of bad input raises BufrDecodeError naming the file and the reason, never more.

Bad files are made by editing the real samples' bytes at the offsets the format doc gives
(section 4's bit stream starts at file byte 48; N at bit 278; sweep 0 at bit 286 with its
compression method at +184, K at +192 and the first M at +208), or built from scratch with
a tiny bit writer when a zlib stream of the wrong size is needed.
"""

from __future__ import annotations

import random
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from radarlib.bufr import inflate as inflate_mod
from radarlib.bufr import read_bufr
from radarlib.errors import BufrDecodeError

AR5 = "AR5_1000_1_DBZH_20240101T000746Z.BUFR"
KDP = "RMA11_0315_01_KDP_20251020T152828Z.BUFR"
DATA = 48 * 8  # file bit of section 4's first data bit in the samples
N_BIT, SWEEP0 = 278, 286
COMPRESSION, K_BIT, M_BIT = SWEEP0 + 184, SWEEP0 + 192, SWEEP0 + 208

BACKENDS = ["zlib"] + (["libdeflate"] if inflate_mod._deflate is not None else [])


@pytest.fixture(scope="module")
def ar5(sample_paths) -> bytes:
    return sample_paths[AR5].read_bytes()


@pytest.fixture(scope="module")
def kdp(sample_paths) -> bytes:
    return sample_paths[KDP].read_bytes()


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch) -> str:
    monkeypatch.setattr(inflate_mod, "BACKEND", request.param)
    return request.param


def bad(data: bytes | bytearray, match: str, name: str = "bad.BUFR") -> BufrDecodeError:
    """Decode ``data`` expecting a BufrDecodeError that names ``name`` and matches ``match``."""
    with pytest.raises(BufrDecodeError, match=match) as info:
        read_bufr(bytes(data), name=name)
    assert str(info.value).startswith(f"{name}: ") and info.value.source == name
    assert isinstance(info.value, ValueError)
    return info.value


def get_bits(raw: bytes, bit: int, width: int) -> int:
    whole = int.from_bytes(raw, "big")
    return (whole >> (len(raw) * 8 - bit - width)) & ((1 << width) - 1)


def set_bits(raw: bytes, bit: int, width: int, value: int) -> bytes:
    """Overwrite ``width`` bits at file bit ``bit`` (MSB first)."""
    first, last = bit // 8, (bit + width + 7) // 8
    chunk = int.from_bytes(raw[first:last], "big")
    shift = (last - first) * 8 - (bit - first * 8) - width
    mask = ((1 << width) - 1) << shift
    chunk = (chunk & ~mask) | (value << shift)
    return raw[:first] + chunk.to_bytes(last - first, "big") + raw[last:]


def set_u24(raw: bytes, at: int, value: int) -> bytes:
    return raw[:at] + value.to_bytes(3, "big") + raw[at + 3 :]


# ---------------------------------------------------------------- a minimal message builder


class Bits:
    """Tiny MSB-first bit writer for test messages."""

    def __init__(self) -> None:
        self.value, self.n = 0, 0

    def put(self, value: int, width: int) -> None:
        assert 0 <= value < (1 << width)
        self.value, self.n = (self.value << width) | value, self.n + width

    def put_bytes(self, data: bytes) -> None:
        if data:
            self.put(int.from_bytes(data, "big"), 8 * len(data))

    def octets(self) -> bytes:
        pad = (-self.n) % 16  # section 4 = 4 + data octets, an even count
        return (self.value << pad).to_bytes((self.n + pad) // 8, "big")


def chunked(stream: bytes, size: int = 65534) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)] or [b""]


def build(
    sweeps: list[tuple[int, int, list[tuple[int, int, list[bytes]]]]],
    *,
    local_version: int = 2,
    sec4_extra: bytes = b"",
) -> bytes:
    """An RMA-template message; sweep = (nrays, ngates, [(code, method, chunks)])."""
    b = Bits()
    b.put(1, 8)
    b.put_bytes(b"RMA")
    b.put_bytes(b"99".ljust(16, b"\0"))
    for value, width in ((0, 7), (0, 10), (0, 2), (2025, 12), (1, 4), (2, 6), (3, 5), (4, 6)):
        b.put(value, width)
    b.put(-31_5 * 100000 // 10 + 9_000_000, 25)  # -31.5 deg
    b.put(-64_25 * 1000 + 18_000_000, 26)  # -64.25 deg
    b.put(100 + 400, 15)
    b.put(len(sweeps), 8)
    for i, (nrays, ngates, quantities) in enumerate(sweeps):
        for second in (i, i + 30):
            for value, width in ((2025, 12), (1, 4), (2, 6), (3, 5), (4, 6), (second, 6)):
                b.put(value, width)
        b.put(90, 8)
        b.put(50 + 9000, 15)
        b.put(ngates, 12)
        b.put(250, 14)
        b.put(12, 14)
        b.put(nrays, 11)
        b.put(7 * 100, 16)
        b.put(len(quantities), 8)
        for code, method, chunks in quantities:
            b.put(code, 8)
            b.put(method, 8)
            b.put(len(chunks), 16)
            for chunk in chunks:
                b.put(len(chunk), 16)
                b.put_bytes(chunk)
    data = b.octets() + sec4_extra
    sec1 = bytes([0, 0, 22, 0, 0, 41, 0, 0, 0, 0, 6, 2, 0, 16, local_version])
    sec1 += (2025).to_bytes(2, "big") + bytes([1, 2, 3, 4, 0])
    sec3 = bytes([0, 0, 14, 0, 0, 1, 0x80, 0xD5, 204, 0xC1, 31, 0xD5, 203, 0])
    sec4 = (4 + len(data)).to_bytes(3, "big") + b"\0" + data
    total = 8 + len(sec1) + len(sec3) + len(sec4) + 4
    return b"BUFR" + total.to_bytes(3, "big") + b"\x04" + sec1 + sec3 + sec4 + b"7777"


def payload(nrays: int, ngates: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).normal(size=(nrays, ngates)).astype("<f8").tobytes()


def test_builder_makes_valid_messages_with_several_quantities_and_chunks():
    a, c = payload(4, 5, 1), payload(4, 5, 2)
    stream = zlib.compress(c)
    msg = build(
        [
            (4, 5, [(0, 0, [zlib.compress(a)]), (80, 0, [stream[:7], stream[7:], b""])]),
            (3, 2, [(40, 0, [zlib.compress(payload(3, 2))])]),
        ]
    )
    f = read_bufr(msg, name="built.BUFR")
    assert [len(s.quantities) for s in f.sweeps] == [2, 1]
    q0, q1 = f.sweeps[0].quantities
    assert (q0.code, q1.code, q1.n_chunks) == (0, 80, 3)
    assert q0.data.tobytes() == a and q1.data.tobytes() == c
    assert f.sweeps[1].data.shape == (3, 2)
    s = f.sweeps[0]
    assert (s.elevation, s.range_bin_size, s.range_offset, s.a1gate) == (0.5, 250.0, 120.0, 7)
    assert (f.station.latitude, f.station.longitude, f.station.height) == (-31.5, -64.25, 100.0)
    assert [(i.kind, i.value) for i in f.station.ids] == [("RMA", "99")]
    assert (s.end_time - s.start_time).total_seconds() == 30


# ---------------------------------------------------------------- framing


def test_empty_input(tmp_path: Path):
    bad(b"", "empty file")
    empty = tmp_path / "RMA1_0315_01_DBZH_20251118T123000Z.BUFR"
    empty.write_bytes(b"")
    with pytest.raises(BufrDecodeError, match="empty file") as info:
        read_bufr(empty)
    assert str(empty) in str(info.value)


def test_missing_file_is_a_decode_error(tmp_path: Path):
    path = tmp_path / "nowhere.BUFR"
    with pytest.raises(BufrDecodeError, match="cannot read") as info:
        read_bufr(path)
    assert str(path) in str(info.value)


def _boundaries(raw: bytes) -> list[int]:
    n1 = int.from_bytes(raw[8:11], "big")
    n3 = int.from_bytes(raw[8 + n1 : 11 + n1], "big")
    s4 = 8 + n1 + n3
    return [1, 4, 7, 8, 9, 8 + n1, 8 + n1 + 3, s4, s4 + 4, len(raw) - 4, len(raw) - 1]


@pytest.mark.parametrize("name", [AR5, KDP])
def test_truncation_at_every_section_boundary_and_random_offsets(sample_paths, name):
    raw = sample_paths[name].read_bytes()
    rng = random.Random(name)
    cuts = _boundaries(raw) + [rng.randrange(1, len(raw)) for _ in range(40)]
    for cut in cuts:
        err = bad(raw[:cut], "truncated|too short", name=name)
        assert str(cut) in str(err) or cut < 8


@pytest.mark.parametrize("name", [AR5, KDP])
def test_truncation_with_patched_length_and_end_marker(sample_paths, name):
    """A cut file whose section 0 and end marker were made consistent again still fails."""
    raw = sample_paths[name].read_bytes()
    rng = random.Random(f"{name}-patched")
    cuts = _boundaries(raw)[4:-2] + [rng.randrange(12, len(raw) - 8) for _ in range(30)]
    for cut in cuts:
        short = set_u24(raw[:cut] + b"7777", 4, cut + 4)
        bad(short, "section|7777")


def test_wrong_magic_edition_and_end_marker(ar5):
    bad(b"GRIB" + ar5[4:], "no 'BUFR' magic")
    bad(b"\0" + ar5, "no 'BUFR' magic")
    for edition in (0, 1, 5, 255):
        bad(ar5[:7] + bytes([edition]) + ar5[8:], f"edition {edition} is not supported")
    bad(ar5[:-4] + b"7778", "no '7777' end marker")
    bad(ar5[:-4] + b"\0\0\0\0", "no '7777' end marker")


def test_bytes_after_the_message(ar5):
    bad(ar5 + b"\0", "1 bytes after the end of the message")
    bad(ar5 + ar5, "bytes after the end of the message")


def test_section_lengths_past_the_end(ar5):
    bad(set_u24(ar5, 4, len(ar5) + 1), "truncated")
    bad(set_u24(ar5, 4, len(ar5) - 10), "bytes after the end")
    bad(set_u24(ar5, 8, 0xFFFFFF), "section 1 length 16777215 .* runs past")
    bad(set_u24(ar5, 8, 21), "section 1 length 21 is below its minimum 22")
    bad(set_u24(ar5, 30, 0xFFFFFF), "section 3 length .* runs past")
    bad(set_u24(ar5, 44, 0xFFFFFF), "section 4 length .* runs past")
    bad(set_u24(ar5, 44, len(ar5) - 48 - 2), "section 5 at byte")  # 2 octets short
    bad(set_u24(ar5, 30, 16), "section|bits|descriptor")  # section 3 eats section 4's start


def test_section2_flag_without_section2_fails_and_real_section2_is_skipped(ar5):
    flagged = ar5[:17] + bytes([0x80]) + ar5[18:]
    bad(flagged, "section")
    sec2 = b"\0\0\x06\0hi"
    with_sec2 = flagged[:30] + sec2 + flagged[30:]
    with_sec2 = set_u24(with_sec2, 4, len(with_sec2))
    f = read_bufr(with_sec2, name="s2.BUFR")
    assert f.section1.has_section2
    assert f.sweeps[0].data.tobytes() == read_bufr(ar5).sweeps[0].data.tobytes()


def test_edition_3_section_1_layout_is_accepted(ar5):
    s1 = ar5[8:30]
    ed3 = bytes([0, 0, 18, s1[3], s1[7], s1[5], s1[8], s1[9], s1[10], s1[12], s1[13], s1[14]])
    ed3 += bytes([24, s1[17], s1[18], s1[19], s1[20], 0])
    msg = b"BUFR" + (len(ar5) - 4).to_bytes(3, "big") + b"\x03" + ed3 + ar5[30:]
    f = read_bufr(msg, name="ed3.BUFR")
    assert f.edition == 3
    assert (f.section1.centre, f.section1.local_version, f.section1.year) == (41, 1, 2024)
    assert f.sweeps[0].data.tobytes() == read_bufr(ar5).sweeps[0].data.tobytes()


def test_unsupported_section3_contents(ar5):
    bad(ar5[:34] + b"\0\2" + ar5[36:], "2 subsets")
    bad(ar5[:36] + b"\xc0" + ar5[37:], "BUFR-compressed data")
    bad(ar5[:37] + bytes([0x81, 0x81]) + ar5[39:], "operator descriptor 2 01 129")
    bad(ar5[:37] + bytes([0x00, 0xFA]) + ar5[39:], "0 00 250 is not in table B")


# ---------------------------------------------------------------- section 4


def test_replication_counts_past_the_end_of_section_4(ar5, kdp):
    # 200 sweeps pass the up-front bound (200 x 176 bits fit) and then run out of data
    bad(set_bits(ar5, DATA + N_BIT, 8, 200), r"needs at least \d+ bits .* section 4 has only")
    bad(set_bits(ar5, DATA + N_BIT, 8, 255), "0 31 001 of 1 12 000 is missing")
    bad(set_bits(ar5, DATA + K_BIT, 16, 60000), r"x 60000 needs at least")
    bad(set_bits(ar5, DATA + K_BIT, 16, 0xFFFF), "0 31 002 of 1 03 000 is missing")
    m1 = get_bits(ar5, DATA + M_BIT, 16)
    assert m1 == 65534
    m2_bit = DATA + M_BIT + 16 + 8 * m1
    m2 = get_bits(ar5, m2_bit, 16)
    assert 0 < m2 < 65534
    bad(set_bits(ar5, m2_bit, 16, 60000), r"1 01 000 x 60000 needs at least 480000 bits")
    bad(set_bits(ar5, DATA + 0, 8, 250), "needs at least|section 4 ends")  # S station ids
    bad(set_bits(kdp, DATA + N_BIT, 8, 16), "section 4 ends|needs at least")  # 16th sweep


def test_shorter_byte_run_leaves_unread_bits_or_misparses(ar5):
    m1 = get_bits(ar5, DATA + M_BIT, 16)
    bad(set_bits(ar5, DATA + M_BIT, 16, m1 - 1), r"\S")


def test_extra_bits_after_the_data(ar5):
    longer = ar5[:-4] + b"\0\0" + ar5[-4:]
    longer = set_u24(set_u24(longer, 4, len(longer)), 44, len(ar5) - 48 + 2)
    bad(longer, "26 bits left in section 4 after the last descriptor")


@pytest.mark.parametrize("method", [1, 2, 254, 255])
def test_unknown_compression_code(ar5, method):
    bad(set_bits(ar5, DATA + COMPRESSION, 8, method), "compression method .* not supported")


@pytest.mark.parametrize("name", [AR5, KDP])
def test_bit_flips_in_the_compressed_data_fail(sample_paths, name):
    raw = sample_paths[name].read_bytes()
    rng = random.Random(f"flip-{name}")
    first = DATA + M_BIT + 16  # first byte of sweep 0's stream
    last = (len(raw) - 4 - 2) * 8  # keep clear of the padding bits
    for _ in range(60):
        bit = rng.randrange(first, last)
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        bad(flipped, r"\S", name=name)


def test_bit_flips_in_the_headers_give_an_error_or_a_sound_decode(ar5):
    decoded = 0
    for bit in range(0, (48 + 70) * 8):  # sections 0-3 and the section-4 preamble
        flipped = bytearray(ar5)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        try:
            f = read_bufr(bytes(flipped), name="flip.BUFR")
        except BufrDecodeError as exc:
            assert str(exc).startswith("flip.BUFR: ")
            continue
        decoded += 1
        for s in f.sweeps:
            assert all(q.data.shape == (s.nrays, s.ngates) for q in s.quantities)
    assert 0 < decoded < (48 + 70) * 8  # flips in ids and station fields decode; others fail


# ---------------------------------------------------------------- zlib stream sizes and bombs


def test_stream_inflating_to_more_than_declared(backend):
    data = payload(4, 5)
    msg = build([(4, 5, [(0, 0, [zlib.compress(data + b"\0" * 8)])])])
    bad(msg, "inflates to more than the expected 160 bytes")
    msg = build([(4, 5, [(0, 0, [zlib.compress(data * 100)])])])
    bad(msg, "more than the expected 160 bytes")


def test_stream_inflating_to_less_than_declared(backend):
    data = payload(4, 5)
    msg = build([(4, 5, [(0, 0, [zlib.compress(data[:-8])])])])
    bad(msg, "inflates to 152 bytes, expected 160")
    msg = build([(4, 5, [(0, 0, chunked(zlib.compress(data)[:-6]))])])
    bad(msg, "ends early|corrupt")


def test_trailing_and_corrupt_streams(backend):
    data = payload(4, 5)
    good = zlib.compress(data)
    bad(build([(4, 5, [(0, 0, [good + b"\0\0\0\0\0"])])]), "bytes after the end of the zlib stream")
    other = zlib.compress(payload(4, 5, 9))
    bad(build([(4, 5, [(0, 0, [good, other])])]), "bytes after the end of the zlib stream")
    bad(build([(4, 5, [(0, 0, [good[:1] + b"\x00" + good[2:]])])]), "corrupt zlib stream")
    bad(build([(4, 5, [(0, 0, [])])]), "cannot inflate|corrupt|ends early")  # K = 0
    bad(build([(4, 5, [(0, 0, [b"junk"])])]), "corrupt zlib")


def test_declared_size_impossible_for_the_stream_length(backend):
    msg = build([(2046, 4094, [(0, 0, [zlib.compress(b"\0" * 100)])])])
    bad(msg, "cannot inflate to the declared 67010592 bytes")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A valid zlib stream of 1 GiB of zeros: a header segment, 63 repeats, an empty last block.

    After a full flush, deflate refers to nothing before, so a flushed 16 MiB segment can be
    repeated; each piece is checked to inflate to 16 MiB on its own.
    """
    block = b"\0" * (16 << 20)
    c = zlib.compressobj(9)
    head = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    segment = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    assert zlib.decompressobj().decompress(head) == block
    assert zlib.decompressobj(-15).decompress(segment) == block
    total = 64 * len(block)
    adler = (total % 65521) << 16 | 1  # Adler-32 of `total` zero bytes
    stream = head + segment * 63 + b"\x03\x00" + adler.to_bytes(4, "big")
    check = zlib.decompressobj()
    assert check.decompress(stream, 1 << 20) == block[: 1 << 20] and not check.eof
    return stream


@pytest.mark.parametrize(("nrays", "ngates"), [(360, 400), (2046, 4094)])
def test_zlib_bomb_raises_without_allocating_it(bomb, backend, nrays, ngates):
    msg = build([(nrays, ngates, [(0, 0, chunked(bomb))])])
    declared = nrays * ngates * 8
    tracemalloc.start()
    try:
        bad(msg, f"inflates to more than the expected {declared} bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # at most the declared output plus a few pieces, far below the 1 GiB the stream holds
    assert peak < declared + (32 << 20), peak
