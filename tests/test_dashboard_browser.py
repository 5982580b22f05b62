"""The dashboard in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven
by Selenium): a real state database, the real processing daemon converting a real sample
volume and failing a corrupt one while the page is open; the page must update without a
reload, show the failure and the quicklook, and log no console error."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PYART_QUIET", "1")

import daemon_helpers
from radarlib.dashboard import Dashboard, DashboardSettings
from radarlib.io.ftp import ProcessingDaemon, ProcessingDaemonConfig, SQLiteStateTracker

pytestmark = pytest.mark.timeout(300)

TYPES = {"0315": {"02": ["VRAD", "WRAD"]}}
GOOD_ID = "RMA11_0315_02_2025-10-20T15:24:29Z"
BAD_ID = "RMA11_0315_02_2025-10-20T15:34:29Z"
SAMPLE_TIME = datetime(2025, 10, 20, 15, 24, 29, tzinfo=timezone.utc)
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        message = "chromium and chromium-driver are not installed (apt-get install them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Any, timeout: float = 60) -> Any:
    """Wait until ``condition(driver)`` is true. The page swaps its content when new data
    comes, so an element read meanwhile may be stale: that check is simply tried again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition)


def _read(driver: Any, read: Any) -> Any:
    """``read(driver)`` on the page as it is now (read again if the page swapped meanwhile)."""
    return _wait(driver, lambda d: (read(d),))[0]


def _counts(driver: Any, radar: str) -> list[str]:
    """The overview numbers of a radar: files, then pending processing completed failed expired."""
    from selenium.webdriver.common.by import By

    for row in driver.find_elements(By.CSS_SELECTOR, "table.overview tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if cells and cells[0].text == radar:
            return [c.text for c in row.find_elements(By.CSS_SELECTOR, "td.n")]
    return []


def test_page_follows_the_pipeline_without_reload(
    tmp_path: Path, rma11_dir: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    # the dashboard's clock one hour after the samples, so they fall in its 24 h timeline
    import radarlib.dashboard

    monkeypatch.setattr(radarlib.dashboard, "_now", lambda: SAMPLE_TIME + timedelta(hours=1))

    db = tmp_path / "state.db"
    bufr = tmp_path / "bufr"
    bufr.mkdir()
    with SQLiteStateTracker(db) as tracker:
        for path in sorted(rma11_dir.glob("RMA11_0315_02_*.BUFR")):
            copy = shutil.copy(path, bufr / path.name)
            daemon_helpers.record_download(tracker, Path(copy), TYPES)
        for field in ("VRAD", "WRAD"):  # a corrupt volume ten minutes later
            bad = bufr / f"RMA11_0315_02_{field}_20251020T153429Z.BUFR"
            bad.write_bytes(b"BUFR" + b"\x00\x00\x20\x04" + b"garbage" * 10)
            daemon_helpers.record_download(tracker, bad, TYPES)

    dashboard = Dashboard(DashboardSettings(targets=((db, None),), port=0, refresh_seconds=1))
    dashboard.start()
    try:
        browser.get(dashboard.url)
        _wait(browser, lambda d: _counts(d, "RMA11") != [])
        assert _counts(browser, "RMA11") == ["4", "2", "0", "0", "0", "0"]
        age = _read(browser, lambda d: d.find_element(By.CSS_SELECTOR, "td.age").text)
        assert age in ("50 min", "51 min")  # the corrupt volume is the newest observation
        browser.execute_script("window.__notReloaded = true;")

        config = ProcessingDaemonConfig(
            local_bufr_dir=bufr,
            local_netcdf_dir=tmp_path / "netcdf",
            state_db=db,
            volume_types=TYPES,
            radar_code="RMA11",
            poll_interval=0.2,
            max_attempts=1,
        )

        def done() -> bool:
            with SQLiteStateTracker(db) as tracker:
                counts = tracker.count_volumes_by_status("RMA11")
            return counts["completed"] == 1 and counts["failed"] == 1

        run = functools.partial(daemon_helpers.run_until, timeout=180)
        asyncio.run(run(ProcessingDaemon(config), done))

        _wait(browser, lambda d: _counts(d, "RMA11") == ["4", "0", "0", "1", "1", "0"])
        time.sleep(1.5)  # ages have ticked, from the server's clock
        age = _read(browser, lambda d: d.find_element(By.CSS_SELECTOR, "td.age").text)
        assert age in ("50 min", "51 min")
        assert browser.execute_script("return window.__notReloaded === true;")
        failures = _read(browser, lambda d: d.find_element(By.CSS_SELECTOR, "table.failures").text)
        assert BAD_ID in failures and "Error" in failures
        states = _read(
            browser,
            lambda d: [
                e.get_attribute("class")
                for e in d.find_elements(By.CSS_SELECTOR, ".timeline rect.v")
            ],
        )
        assert sorted(states) == ["v complete", "v failed"]
        _wait(
            browser,
            lambda d: d.execute_script(
                "var i = arguments[0]; return i.complete && i.naturalWidth > 0;",
                d.find_element(By.CSS_SELECTOR, "img.quicklook"),
            ),
        )
        alt = _read(
            browser, lambda d: d.find_element(By.CSS_SELECTOR, "img.quicklook").get_attribute("alt")
        )
        assert GOOD_ID in alt
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        dashboard.stop()
