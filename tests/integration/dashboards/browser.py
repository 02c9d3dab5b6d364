"""The console as a real process (``python -m dashboards``) and headless Chromium driven by
Selenium (Debian's chromium + chromedriver)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from controlplane.core.processes import free_ports, tail
from dashboards.testing import chromium_driver, chromium_paths
from tests.support.backends import backends_required

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "test-output" / "screenshots"
DOC_SCREENSHOTS = REPO / "docs" / "screenshots"


class ConsoleProcess:
    """``python -m dashboards`` on a free port with one token file."""

    def __init__(
        self,
        *,
        control_plane: str,
        token: str,
        workdir: Path,
        extra_args: tuple[str, ...] = (),
        port: int | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.control_plane = control_plane
        #: ``DASHBOARDS_*`` settings besides the token and the address (sign-in).
        self.environment = dict(environment or {})
        self.workdir = workdir
        self.port = port or free_ports(1)[0]
        self.token_file = workdir / "console.token"
        self.token_file.write_text(token + "\n", encoding="utf-8")
        self.token_file.chmod(0o600)
        self.log_path = workdir / "console.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ConsoleProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DASHBOARDS_")}
        env.update(self.environment)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dashboards",
                    "--control-plane",
                    self.control_plane,
                    "--token-file",
                    str(self.token_file),
                    "--port",
                    str(self.port),
                    *self.extra_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"console exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"console not answering after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


class Browser:
    """One headless Chromium with a fresh profile, its console log kept."""

    def __init__(self, *, chromium: str, chromedriver: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.driver = chromium_driver(
            chromium=chromium, chromedriver=chromedriver, profile=self.profile, browser_log=True
        )

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def console_errors(self) -> list[dict[str, Any]]:
        """SEVERE entries of the browser console since the last call (drains the log)."""
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def wait(self, condition: Callable[[], T | None], *, timeout: float = 30, what: str = "") -> T:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = condition()
            except (StaleElementReferenceException, WebDriverException) as exc:
                last, value = exc, None
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}: {last}")

    def find(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, css: str, *, timeout: float = 30) -> WebElement:
        return self.wait(lambda: next(iter(self.find(css)), None), timeout=timeout, what=css)

    def text(self, css: str) -> str:
        """The visible text of every match, read in one go in the page (parts of it are
        replaced whole by refreshes, so element handles can go stale)."""
        found = self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]))"
            ".map(element => element.innerText).join(' ')",
            css,
        )
        return str(found)

    def click(self, css: str, *, timeout: float = 30) -> None:
        """Click the first match, again if a refresh replaced it in between."""

        def clicked() -> bool:
            self.driver.find_element(By.CSS_SELECTOR, css).click()
            return True

        self.wait(clicked, timeout=timeout, what=f"a click on {css}")

    def wait_idle(self, *, timeout: float = 30) -> None:
        """Until no Dash callback is pending (Dash marks the loading state on its elements)."""

        def idle() -> bool:
            pending = self.driver.execute_script(
                "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length"
            )
            return int(pending) == 0

        self.wait(idle, timeout=timeout, what="idle callbacks")

    def screenshot(self, name: str, *, publish: bool = False) -> Path:
        """Save under test-output/screenshots; with ``publish`` and ``PUBLISH_SCREENSHOTS=1``
        (``make screenshots``) also copy to docs/screenshots, the README's pictures."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        height = self.driver.execute_script("return document.body.scrollHeight")
        self.driver.set_window_size(1600, max(1200, min(int(height) + 100, 5000)))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1600, 1200)
        if publish and os.environ.get("PUBLISH_SCREENSHOTS") == "1":
            DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SCREENSHOTS / path.name)
        return path


def slo_rows(browser: Browser, attribute: str = "data-slo") -> list[str]:
    """``attribute`` of every overview row, read in one go in the page (the table is replaced
    whole by refreshes and when sparklines arrive)."""
    found = browser.driver.execute_script(
        "return Array.from(document.querySelectorAll('tr[data-slo]'))"
        ".map(row => row.getAttribute(arguments[0]))",
        attribute,
    )
    return [str(value) for value in found]


@contextmanager
def headless_browser() -> Iterator[Browser]:
    """A :class:`Browser`; without Chromium installed a failure in CI mode, else a skip."""
    paths = chromium_paths()
    if paths is None:
        message = "chromium and chromedriver are not installed (run `make bootstrap`)"
        if backends_required():
            pytest.fail(f"{message} (CI mode: a missing tool is a failure)", pytrace=False)
        pytest.skip(message)
    found = Browser(chromium=paths[0], chromedriver=paths[1])
    try:
        yield found
    finally:
        found.quit()
