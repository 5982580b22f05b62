"""The quicklook PNG is a real picture of the data: decodes, right size, many colours."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYART_QUIET", "1")

from radarlib.bufr import read_bufr
from radarlib.bufr.synthetic import write_synthetic_volume
from radarlib.convert import convert_volume
from radarlib.errors import VolumeError
from radarlib.quicklook import quicklook, read_ppi


@pytest.fixture(scope="module")
def rma11_netcdf(rma11_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    return convert_volume(files, tmp_path_factory.mktemp("nc")).path


def _image(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)


def _plot_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels of the axes area (left 75 % of the width: the colour bar is on the right)."""
    height, width = image.shape[:2]
    return image[int(0.12 * height) : int(0.88 * height), int(0.1 * width) : int(0.75 * width), :3]


def test_real_volume_quicklook_is_a_picture_of_the_data(rma11_netcdf: Path, tmp_path: Path) -> None:
    png = quicklook(rma11_netcdf, tmp_path / "q.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = _image(png)
    assert image.shape[:2] == (700, 800)
    plot = _plot_pixels(image)
    colours = {tuple(p) for p in (plot * 255).astype(np.uint8).reshape(-1, 3)}
    assert len(colours) > 100, len(colours)
    coloured = np.mean(np.ptp(plot, axis=2) > 0.15)  # saturated pixels = data, not white/grey
    assert coloured > 0.03, coloured


def test_lowest_sweep_and_data_match_the_bufr(
    rma11_netcdf: Path, rma11_dir: Path, expected: dict[str, object]
) -> None:
    ppi = read_ppi(rma11_netcdf, "DBZH")
    source = read_bufr(rma11_dir / "RMA11_0315_01_DBZH_20251020T152828Z.BUFR")
    lowest = min(source.sweeps, key=lambda s: s.elevation)
    assert ppi.elevation == pytest.approx(lowest.elevation, abs=0.01)
    assert ppi.radar == "RMA11"
    assert ppi.time is not None and ppi.time.strftime("%Y%m%dT%H%M%S") == "20251020T152828"
    assert ppi.units == "dBZ"
    assert np.all(np.diff(ppi.azimuth) > 0)  # sorted for drawing
    # same number of valid gates as the decoded sweep
    values = lowest.quantities[0].data
    valid = np.isfinite(values) & (np.abs(values) < 1e300)
    assert ppi.data.count() == int(valid.sum())
    assert float(ppi.data.max()) == pytest.approx(float(values[valid].max()), abs=0.01)


def test_synthetic_volume_and_other_fields(tmp_path: Path) -> None:
    files = write_synthetic_volume(tmp_path / "bufr", "RMA2", "0315", "02", nsweeps=2)
    nc = convert_volume(files, tmp_path / "nc").path
    png = quicklook(nc, tmp_path / "v.png", field="VRAD", size_px=(640, 480))
    assert _image(png).shape[:2] == (480, 640)
    with pytest.raises(VolumeError, match="DBZH") as info:
        quicklook(nc, tmp_path / "no.png")
    assert nc.name in str(info.value) and "VRAD" in str(info.value)
    with pytest.raises(VolumeError, match="no sweep 7"):
        read_ppi(nc, "VRAD", sweep=7)


def test_not_a_netcdf_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"not a netcdf")
    with pytest.raises(VolumeError, match=r"broken\.nc"):
        quicklook(bad, tmp_path / "x.png")
