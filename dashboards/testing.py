"""The console in headless Chromium, for the browser tests and the benchmark.

Needs the ``dev`` extra (selenium) and Debian's chromium + chromedriver; the console itself never
imports this module.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from dashboards.pages.overview.layout import REFRESH_COUNT, OverviewIds

__all__ = [
    "CHROMIUM_FLAGS",
    "RefreshTimeout",
    "chromium_driver",
    "chromium_paths",
    "overview_refresh_count",
    "refresh_overview",
]

#: Flags without which Chromium hangs on outbound connections on a closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1200",
)


class RefreshTimeout(TimeoutError):
    """The overview did not draw a refresh in time."""


def chromium_paths() -> tuple[str, str] | None:
    """Chromium and chromedriver, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        return None
    return chromium, driver


def chromium_driver(
    *, chromium: str, chromedriver: str, profile: Path, browser_log: bool = False
) -> webdriver.Chrome:
    """A headless Chromium with its own profile folder; ``browser_log`` keeps its console log."""
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    driver.set_page_load_timeout(60)
    return driver


def overview_refresh_count(driver: webdriver.Chrome) -> int:
    """How many refreshes the open overview has drawn (0 before the first)."""
    found = driver.execute_script(
        "const stamp = document.getElementById(arguments[0]);"
        " return stamp ? stamp.getAttribute(arguments[1]) : null;",
        OverviewIds.UPDATED,
        REFRESH_COUNT,
    )
    return int(found or 0)


def refresh_overview(driver: webdriver.Chrome, *, timeout: float = 30) -> None:
    """Click "Refresh now" and return once the overview has drawn that refresh.

    Waits on the refresh count, which every refresh raises: the "updated" stamp shows whole
    seconds and reads the same after a refresh within the same second.
    """
    before = overview_refresh_count(driver)
    driver.find_element(By.ID, OverviewIds.REFRESH_BUTTON).click()
    deadline = time.monotonic() + timeout
    while overview_refresh_count(driver) <= before:
        if time.monotonic() > deadline:
            raise RefreshTimeout(f"the overview drew no refresh within {timeout:g} s")
        time.sleep(0.01)
