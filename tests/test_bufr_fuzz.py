"""Fuzzing the decoder with mutated real files: only BufrDecodeError or a sound decode comes out.

A seeded loop makes 2,400 mutants of the two small samples (AR5 77 KB, RMA11 KDP 110 KB):
byte and bit flips (half of them in the headers), truncations, insertions, deletions, and
edits of the length fields and replication counts; a Hypothesis test adds arbitrary
overwrites of the first octets. Any other exception, a hang (pytest-timeout) or a decode
with arrays of the wrong shape fails the test.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radarlib.bufr import read_bufr
from radarlib.errors import BufrDecodeError

AR5 = "AR5_1000_1_DBZH_20240101T000746Z.BUFR"
KDP = "RMA11_0315_01_KDP_20251020T152828Z.BUFR"
DATA = 48 * 8
#: section-4 bit fields of the samples: (bit, width) of S, N, K of sweep 0, M of chunk 1
COUNT_FIELDS = [(DATA, 8), (DATA + 278, 8), (DATA + 478, 16), (DATA + 494, 16)]
LENGTH_FIELDS = [4, 8, 30, 44]  # section 0 total length, sections 1, 3, 4 lengths
HEADER = 48 + 100  # sections 0-3 and the start of section 4


def check(data: bytes, outcome: Counter[str]) -> None:
    """Decode; accept BufrDecodeError or a decode whose arrays have the declared shapes."""
    try:
        bufr = read_bufr(data, name="mutant.BUFR")
    except BufrDecodeError as exc:
        assert str(exc).startswith("mutant.BUFR: ")
        outcome["error"] += 1
        return
    outcome["decoded"] += 1
    assert bufr.sweeps
    for sweep in bufr.sweeps:
        assert sweep.quantities
        for q in sweep.quantities:
            assert q.data.dtype == np.float64
            assert q.data.shape == (sweep.nrays, sweep.ngates)


def _flip_byte(raw: bytearray, rng: random.Random) -> None:
    at = rng.randrange(HEADER) if rng.random() < 0.5 else rng.randrange(len(raw))
    raw[at] = rng.randrange(256)


def _flip_bit(raw: bytearray, rng: random.Random) -> None:
    bit = rng.randrange(HEADER * 8) if rng.random() < 0.5 else rng.randrange(len(raw) * 8)
    raw[bit // 8] ^= 0x80 >> (bit % 8)


def _truncate(raw: bytearray, rng: random.Random) -> None:
    del raw[rng.randrange(len(raw)) :]


def _insert(raw: bytearray, rng: random.Random) -> None:
    at = rng.randrange(HEADER) if rng.random() < 0.5 else rng.randrange(len(raw))
    raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))


def _delete(raw: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(raw))
    del raw[at : at + rng.randint(1, 64)]


def _length_edit(raw: bytearray, rng: random.Random) -> None:
    at = rng.choice(LENGTH_FIELDS)
    old = int.from_bytes(raw[at : at + 3], "big")
    new = rng.choice([0, 1, old - 1, old + 1, old + rng.randint(-64, 64), rng.randrange(1 << 24)])
    raw[at : at + 3] = (new % (1 << 24)).to_bytes(3, "big")


def _count_edit(raw: bytearray, rng: random.Random) -> None:
    bit, width = rng.choice(COUNT_FIELDS)
    value = rng.choice([0, 1, 2, (1 << width) - 1, (1 << width) - 2, rng.randrange(1 << width)])
    first, last = bit // 8, (bit + width + 7) // 8
    chunk = int.from_bytes(raw[first:last], "big")
    shift = (last - first) * 8 - (bit - first * 8) - width
    chunk = (chunk & ~(((1 << width) - 1) << shift)) | (value << shift)
    raw[first:last] = chunk.to_bytes(last - first, "big")


MUTATIONS: list[Callable[[bytearray, random.Random], None]] = [
    _flip_byte,
    _flip_bit,
    _truncate,
    _insert,
    _delete,
    _length_edit,
    _count_edit,
]


def test_seeded_mutants_of_the_small_samples(sample_paths):
    originals = [sample_paths[AR5].read_bytes(), sample_paths[KDP].read_bytes()]
    rng = random.Random(20251020)
    outcome: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for _ in range(2400):
        raw = bytearray(rng.choice(originals))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutate = rng.choice(MUTATIONS)
            kinds[mutate.__name__] += 1
            mutate(raw, rng)
        check(bytes(raw), outcome)
    assert sum(outcome.values()) == 2400
    assert set(kinds) == {m.__name__ for m in MUTATIONS}
    # both outcomes occur: the fuzzer reaches past the framing checks
    assert outcome["error"] > 1000 and outcome["decoded"] > 50, outcome


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    which=st.sampled_from([AR5, KDP]),
    at=st.integers(min_value=0, max_value=HEADER + 40),
    patch=st.binary(min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=120_000)),
)
def test_hypothesis_overwrites_and_cuts(sample_bytes, which, at, patch, cut):
    raw = bytearray(sample_bytes[which])
    raw[at : at + len(patch)] = patch
    if cut is not None:
        del raw[cut:]
    check(bytes(raw), Counter())


@pytest.fixture(scope="module")
def sample_bytes(sample_paths) -> dict[str, bytes]:
    return {name: sample_paths[name].read_bytes() for name in (AR5, KDP)}
