"""BufrFileName: the one parser of radar file names, used on every name a listing returns."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath, PureWindowsPath

import pytest

from radarlib.errors import FileNameError
from radarlib.filename import BufrFileName

NAME = "RMA1_0315_01_DBZH_20251118T123000Z.BUFR"
TIME = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)


def test_a_name_parses_into_its_parts_and_formats_back_unchanged() -> None:
    parsed = BufrFileName.parse(NAME)
    assert (parsed.radar, parsed.strategy, parsed.volume_number, parsed.field) == (
        "RMA1",
        "0315",
        "01",
        "DBZH",
    )
    assert parsed.time == TIME
    assert str(parsed) == parsed.name == NAME


@pytest.mark.parametrize(
    "path",
    [
        f"/L2/RMA1/2025/11/18/12/3000/{NAME}",
        PurePosixPath("/L2") / NAME,
        PureWindowsPath("C:\\x") / NAME,
        f"x\\{NAME}",
    ],
)
def test_folders_are_ignored(path: object) -> None:
    assert BufrFileName.parse(path) == BufrFileName.parse(NAME)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stamp", "reason"),
    [
        ("20251318T123000Z", "month"),
        ("20251132T123000Z", "day"),
        ("20251118T243000Z", "hour"),
        ("20251118T126000Z", "minute"),
        ("20251118T123060Z", "second"),
        ("00001118T123000Z", "year"),
    ],
)
def test_an_impossible_time_is_refused_naming_the_file(stamp: str, reason: str) -> None:
    name = f"RMA1_0315_01_DBZH_{stamp}.BUFR"
    with pytest.raises(FileNameError, match=rf"{name}.*invalid timestamp.*{reason}"):
        BufrFileName.parse(name)
    assert BufrFileName.try_parse(name) is None


@pytest.mark.parametrize(
    "name",
    [NAME.lower(), NAME + ".part", "." + NAME, NAME.replace("_01_", "_001_"), "notes.txt", ""],
)
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(FileNameError, match="does not match"):
        BufrFileName.parse(name)


def test_equal_names_are_equal_hash_alike_and_survive_pickling() -> None:
    a, b = BufrFileName.parse(NAME), BufrFileName("RMA1", "0315", "01", "DBZH", TIME)
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert pickle.loads(pickle.dumps(a)) == a
    assert str(pickle.loads(pickle.dumps(a))) == NAME


def test_a_changed_copy_formats_its_own_name() -> None:
    other = dataclasses.replace(
        BufrFileName.parse(NAME), field="ZDR", time=TIME + timedelta(minutes=5)
    )
    assert str(other) == "RMA1_0315_01_ZDR_20251118T123500Z.BUFR"


def test_times_are_named_in_utc_and_naive_times_refused() -> None:
    buenos_aires = timezone(timedelta(hours=-3))
    local = BufrFileName("RMA1", "0315", "01", "DBZH", TIME.astimezone(buenos_aires))
    assert local.name == NAME
    with pytest.raises(FileNameError, match="naive"):
        BufrFileName("RMA1", "0315", "01", "DBZH", TIME.replace(tzinfo=None))
    with pytest.raises(FileNameError, match="does not match"):
        BufrFileName("RMA1", "0315", "01", "dbzh", TIME)
