"""Shared fixtures: the real sample BUFR files in ../shared/data/bufr."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpserver import ftp_server  # noqa: F401  (fixture: a pyftpdlib server on 127.0.0.1)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = (ROOT.parent / "shared" / "data" / "bufr").resolve()


def _require_samples() -> Path:
    if not (SAMPLES_DIR / "EXPECTED.json").is_file():
        message = f"sample BUFR files not found at {SAMPLES_DIR}"
        if os.environ.get("CI"):
            pytest.fail(message + " (required when CI is set)")
        pytest.skip(message)
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Folder of the real sample files (fails, not skips, under CI when missing)."""
    return _require_samples()


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    """EXPECTED.json's ``files`` mapping: file name -> decode facts."""
    return json.loads((_require_samples() / "EXPECTED.json").read_text())["files"]


@pytest.fixture(scope="session")
def sample_paths(samples_dir: Path) -> dict[str, Path]:
    """File name -> path of every sample BUFR file."""
    return {p.name: p for p in sorted(samples_dir.rglob("*.BUFR"))}


@pytest.fixture(scope="session")
def rma11_dir(samples_dir: Path) -> Path:
    """The RMA11 sample folder (volumes 0315/01 and 0315/02)."""
    return samples_dir / "RMA11"


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path, str], None]]:
    """``small_disk(folder, "600k")``: a real, small file system (tmpfs) at ``folder``, so a
    test can fill it up; call again with a larger size to make room (it is remounted).
    Skips where mounting is not allowed (not root, no CAP_SYS_ADMIN), saying so."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        options = f"remount,size={size}" if folder in mounted else f"size={size}"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
        if folder not in mounted:
            mounted.append(folder)

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
