"""An operator with 1,200 SLOs finds the one that burns: the overview shows a page at a time
(worst first), pages forward and back through a refresh, and finds an SLO by search, by status
and by burn rate, in headless Chromium against a real control-plane process.

The SLOs: 60 burning fast enough to page, 30 burning slowly enough for a ticket, one of them
``refunds-eu-latency`` (least budget left among the ticket ones, and the highest burn rate of
them all), the rest calm.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from controlplane.core.security import Role
from controlplane.store.database import Database
from controlplane.store.evaluations import EvaluationRecord, record_evaluations
from controlplane.store.tokens import create_token
from dashboards.pages.overview.layout import OverviewIds
from dashboards.testing import refresh_overview
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.integration.dashboards.browser import Browser, ConsoleProcess, slo_rows
from tests.integration.dashboards.seed import SRE_ALERTS, utc_now

pytestmark = pytest.mark.timeout(300)

TOTAL = 1_200
PAGING = 60
TICKETS = 30
WANTED = "refunds-eu-latency"
PAGE = 50
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def _slo(number: int) -> tuple[str, str, dict[str, float], float]:
    """(id, service, burn rates, budget left) of SLO ``number``."""
    if number < PAGING:
        return f"checkout-{number:02d}-latency", "checkout", dict.fromkeys(WINDOWS, 18.0), 0.2
    if number == PAGING:
        burns = dict.fromkeys(WINDOWS, 0.5) | {"1d": 25.0, "2h": 25.0}
        return WANTED, "payments", burns, 0.45
    if number < PAGING + TICKETS:
        burns = dict.fromkeys(WINDOWS, 0.5) | {"1d": 4.0, "2h": 4.0}
        return f"orders-{number:03d}-availability", "orders", burns, 0.6
    return f"stock-{number:04d}-availability", "inventory", dict.fromkeys(WINDOWS, 0.3), 0.9


def _alerts(burns: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {
            **alert,
            "firing": burns[alert["long"]] > alert["factor"]
            and burns[alert["short"]] > alert["factor"],
            "state": "ok",
        }
        for alert in SRE_ALERTS
    ]


def _seed(database_url: str) -> str:
    now = utc_now()
    database = Database.from_url(database_url)
    database.migrate()
    with database.writer() as session:
        _, token = create_token(session, name="console-many", role=Role.VIEWER, at=now)
        records = []
        for number in range(TOTAL):
            slo_id, service, burns, budget = _slo(number)
            records += [
                EvaluationRecord(
                    slo_id=slo_id,
                    service=service,
                    at=now - timedelta(minutes=minutes),
                    state="ok",
                    sli=0.995,
                    objective=0.99,
                    budget_remaining=budget + minutes / 1000,
                    burn_rates=burns,
                    details={"tier": "critical", "period": "30d", "alerts": _alerts(burns)},
                )
                for minutes in (2, 1, 0)
            ]
        record_evaluations(session, evaluations=records)
    database.dispose()
    return token


@pytest.fixture(scope="module")
def many_console() -> Iterator[ConsoleProcess]:
    with tempfile.TemporaryDirectory(prefix="console-many-") as folder:
        work = Path(folder)
        database_url = f"sqlite:///{work}/controlplane.db"
        token = _seed(database_url)
        control_plane = ControlPlaneProcess(
            settings={
                "database_url": database_url,
                "webhook_token": "console-webhook-token",
                "evaluation_interval_seconds": "3600",
                "leader_election": "false",
            },
            log_path=work / "controlplane.log",
        ).start()
        try:
            console = ConsoleProcess(
                control_plane=control_plane.url, token=token, workdir=work
            ).start()
            try:
                yield console
            finally:
                console.stop()
        finally:
            control_plane.stop()


def _rows(browser: Browser, attribute: str = "data-slo") -> list[str]:
    return slo_rows(browser, attribute)


def _pager(browser: Browser) -> str:
    return browser.text(f"#{OverviewIds.PAGER}")


def _open(browser: Browser, url: str) -> None:
    """The overview with nothing remembered from an earlier test, its first page drawn."""
    browser.open("about:blank")
    browser.open(url)
    browser.driver.execute_script("window.sessionStorage.clear()")
    browser.open(url)
    browser.wait(lambda: len(_rows(browser)) == PAGE, what="the first page of rows")
    browser.wait(lambda: "of 1,200" in _pager(browser), what="the pager")
    browser.wait_idle()


def _choose(browser: Browser, dropdown: str, label: str) -> None:
    """Pick the option ``label`` of a Dash dropdown (a button opening a list), then close it."""
    browser.wait_for(f"#{dropdown}").click()

    def option() -> Any:
        for item in browser.find('[role="option"]'):
            if item.text.strip() == label:
                return item
        return None

    browser.wait(option, what=f"option {label!r}").click()
    browser.driver.switch_to.active_element.send_keys(Keys.ESCAPE)


def test_the_first_page_is_the_worst_and_the_pager_walks_through_a_refresh(
    browser: Browser, many_console: ConsoleProcess
) -> None:
    _open(browser, many_console.url)
    assert _pager(browser) == "SLOs 1–50 of 1,200 · page 1 of 24"
    assert set(_rows(browser, "data-status")) == {"burning_page"}
    assert "1200 of 1200 SLOs" in browser.text(f"#{OverviewIds.SUMMARY}").replace(",", "")
    assert "60 burning · page" in browser.text(f"#{OverviewIds.SUMMARY}")
    assert not browser.find(f"#{OverviewIds.PREVIOUS}")[0].is_enabled()
    first_page = _rows(browser)

    browser.click(f"#{OverviewIds.NEXT}")
    browser.wait(lambda: "SLOs 51–100" in _pager(browser), what="page 2")
    browser.wait(lambda: WANTED in _rows(browser), what="page 2's rows")
    second_page = _rows(browser)
    assert not set(first_page) & set(second_page)
    statuses = _rows(browser, "data-status")
    assert statuses[:10] == ["burning_page"] * 10
    # Among the ticket-burning SLOs the least budget left comes first: the one we look for.
    assert second_page[10] == WANTED
    assert statuses[10] == "burning_ticket"
    browser.wait(
        lambda: len(browser.find("tr[data-slo] svg.sparkline")) == PAGE,
        timeout=60,
        what="the sparklines of page 2",
    )

    refresh_overview(browser.driver)
    assert "SLOs 51–100" in _pager(browser)  # a refresh keeps the page
    assert _rows(browser) == second_page

    browser.click(f"#{OverviewIds.PREVIOUS}")
    browser.wait(lambda: _rows(browser) == first_page, what="page 1 again")
    assert _pager(browser) == "SLOs 1–50 of 1,200 · page 1 of 24"
    assert browser.console_errors() == []


def test_a_search_finds_the_burning_slo_and_its_link_opens_the_detail(
    browser: Browser, many_console: ConsoleProcess
) -> None:
    _open(browser, many_console.url)
    browser.wait_for(f"#{OverviewIds.SEARCH}").send_keys("REFUNDS")
    browser.wait(lambda: _rows(browser) == [WANTED], what="only the searched SLO")
    assert _rows(browser, "data-status") == ["burning_ticket"]
    assert _pager(browser) == "SLOs 1–1 of 1 · page 1 of 1"
    assert "burning · ticket" in browser.text(f'tr[data-slo="{WANTED}"]')
    refresh_overview(browser.driver)
    assert _rows(browser) == [WANTED]  # the search survives the refresh

    browser.click(f'tr[data-slo="{WANTED}"] a.slo-link')
    browser.wait(lambda: browser.driver.current_url.endswith(f"/slo/{WANTED}"), what="detail")
    header = browser.wait(lambda: browser.text("#detail-header dl"), what="the detail header")
    assert "burning · ticket" in header
    assert browser.console_errors() == []


def test_the_burning_slos_ordered_by_burn_rate_put_it_first(
    browser: Browser, many_console: ConsoleProcess
) -> None:
    _open(browser, many_console.url)
    _choose(browser, OverviewIds.STATUS_FILTER, "burning · ticket")
    browser.wait(lambda: "of 30 " in _pager(browser), what="the ticket-burning SLOs only")
    assert set(_rows(browser, "data-status")) == {"burning_ticket"}
    _choose(browser, OverviewIds.SORT, "highest burn rate")
    browser.wait(lambda: _rows(browser)[:1] == [WANTED], what="the highest burn first")
    burn = browser.driver.find_element(By.CSS_SELECTOR, f'tr[data-slo="{WANTED}"]').text
    assert "25.00×" in burn
    assert browser.console_errors() == []
