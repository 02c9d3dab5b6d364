"""The console in headless Chromium against a seeded control plane (real API process, Jaeger,
Elasticsearch): every page renders without console errors, the overview is worst first, an SLO's
detail has trace rows and log lines, and without sign-in the console only reads (the operator
controls, for signed-in people, are in ``test_sign_in.py``).

Screenshots of every page go to ``test-output/screenshots/``; ``make screenshots`` also copies
one per page to ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from controlplane.core.security import Role
from dashboards.testing import refresh_overview
from tests.integration.dashboards.browser import Browser, ConsoleProcess, slo_rows
from tests.integration.dashboards.conftest import SeededControlPlane
from tests.integration.dashboards.seed import SLOS, WORST_FIRST

pytestmark = pytest.mark.timeout(300)


def _no_console_errors(browser: Browser) -> None:
    errors = browser.console_errors()
    assert errors == [], f"browser console errors: {errors}"


def _open(browser: Browser, url: str) -> None:
    """Open ``url`` with no filter remembered from an earlier test (session persistence)."""
    browser.driver.execute_script("window.sessionStorage.clear()")
    browser.open(url)
    browser.wait_for("main .page")
    browser.wait_idle()


def _graphs_drawn(browser: Browser, count: int) -> None:
    def drawn() -> bool:
        plots = browser.find(".js-plotly-plot .main-svg")
        return len(plots) >= count and not browser.find(".dash-graph--pending")

    browser.wait(drawn, what=f"{count} drawn graphs")


def _settled(browser: Browser) -> None:
    """Every graph on the page drawn (Plotly loads and draws asynchronously)."""

    def drawn() -> bool:
        graphs = len(browser.find(".dash-graph"))
        plots = len(browser.find(".dash-graph .main-svg"))
        return plots >= graphs and not browser.find(".dash-graph--pending")

    browser.wait(drawn, what="every graph drawn")
    browser.wait_idle()


def _rows(browser: Browser, attribute: str = "data-slo") -> list[str]:
    return slo_rows(browser, attribute)


def require_route(seeded: SeededControlPlane, path: str) -> None:
    """Skip, naming the route, while the control plane does not serve ``GET path`` yet (the
    actions, capacity and DR routes are being added in parallel)."""
    token = seeded.store.tokens[Role.VIEWER]
    answer = httpx.get(
        f"{seeded.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    if answer.status_code == 404 and answer.json().get("detail") == "Not Found":
        pytest.skip(f"the control plane does not serve GET /api/v1{path} yet")


def test_overview_shows_the_seeded_slos_worst_first(
    browser: Browser, operator_console: ConsoleProcess
) -> None:
    _open(browser, operator_console.url)
    browser.wait(lambda: len(_rows(browser)) == len(SLOS), what="one row per seeded SLO")
    assert _rows(browser) == WORST_FIRST
    browser.wait(  # drawn from the histories right after the rows
        lambda: len(browser.find("tr[data-slo] svg.sparkline")) == len(SLOS),
        timeout=60,
        what="sparklines",
    )
    assert _rows(browser) == WORST_FIRST
    statuses = _rows(browser, "data-status")
    assert statuses == ["burning_page", "burning_ticket", "no_data", "ok", "ok"]
    no_data_row = browser.text('tr[data-slo="log-error-events"]')
    assert "no data: no index matches" in no_data_row
    assert "UTC" in browser.text("#overview-updated")
    assert "all times UTC" in browser.text(".shell-header")
    _no_console_errors(browser)
    _settled(browser)
    browser.screenshot("overview", publish=True)


def test_overview_filters_survive_the_refresh(
    browser: Browser, operator_console: ConsoleProcess
) -> None:
    _open(browser, operator_console.url)
    browser.wait(lambda: len(_rows(browser)) == len(SLOS), what="all rows")
    browser.wait_for("#overview-tier-filter").click()  # Dash 4: a button opening a list
    option = browser.wait_for('[role="option"]:has(input[value="standard"])')
    option.click()
    browser.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    browser.wait(
        lambda: _rows(browser) == ["log-error-events", "ingestion-freshness"],
        what="only the standard tier",
    )
    refresh_overview(browser.driver)
    browser.wait_idle()
    assert _rows(browser) == ["log-error-events", "ingestion-freshness"]
    assert "standard" in browser.text("#overview-tier-filter")
    _no_console_errors(browser)


def test_clicking_an_slo_opens_its_detail_with_traces_and_logs(
    browser: Browser, operator_console: ConsoleProcess, seeded: SeededControlPlane
) -> None:
    _open(browser, operator_console.url)
    browser.click('tr[data-slo="read-latency"] a.slo-link')
    browser.wait(lambda: browser.driver.current_url.endswith("/slo/read-latency"), what="detail")
    slow = browser.wait(
        lambda: browser.find('tr[data-kind="slow"]'), timeout=60, what="slow trace rows"
    )
    slow_ids = [row.get_attribute("data-trace") for row in slow]
    assert slow_ids[:3] == [
        seeded.traces["slowest"],
        seeded.traces["slow"],
        seeded.traces["slow_error"],
    ]
    assert seeded.traces["fast"] not in slow_ids  # below the 250 ms threshold
    first = browser.text(f'tr[data-kind="slow"][data-trace="{seeded.traces["slowest"]}"]')
    assert "2400.0 ms" in first
    assert "GET /api/v1/stock/{sku}" in first
    jaeger_link = slow[0].find_element(By.CSS_SELECTOR, "a.trace-link")
    assert jaeger_link.get_attribute("href").endswith(f"/trace/{seeded.traces['slowest']}")
    errors = [row.get_attribute("data-trace") for row in browser.find('tr[data-kind="error"]')]
    assert seeded.traces["slow_error"] in errors
    assert seeded.traces["fast_error"] in errors
    assert seeded.traces["slowest"] not in errors

    slow[0].find_element(By.TAG_NAME, "button").click()
    browser.wait(
        lambda: "statement timeout" in browser.text("#detail-logs"), timeout=30, what="log lines"
    )
    logs = browser.text("#detail-logs")
    assert "3 log lines of trace" in logs
    assert "stock cache miss" in logs
    _graphs_drawn(browser, 4)
    header = browser.text("#detail-header")
    assert "burning · page" in header
    assert "Exhaustion forecast" in header
    events = browser.text("#detail-events-table")
    assert "SLOBurnRateHigh (page)" in events
    assert "scale_out deployment/inventory" in events
    assert "Latency threshold" in header  # the evaluation's details.latency_threshold_s
    assert "250 ms" in header
    _no_console_errors(browser)
    _settled(browser)
    browser.screenshot("slo-detail", publish=True)
    # Back to the overview inside the page (the first page came with the layout; a later
    # visit of its path is drawn by the routing callback).
    browser.click("a.back")
    browser.wait(lambda: len(_rows(browser)) == len(SLOS), what="the overview again")


def test_an_slo_without_traces_in_jaeger_says_why(
    browser: Browser, operator_console: ConsoleProcess
) -> None:
    _open(browser, f"{operator_console.url}/slo/planning-availability")
    message = browser.wait(
        lambda: browser.text("#detail-slow-traces .state"), timeout=60, what="no data state"
    )
    assert "no data: jaeger unknown_service" in message
    _no_console_errors(browser)


def test_an_unknown_slo_is_an_explicit_error(
    browser: Browser, operator_console: ConsoleProcess
) -> None:
    _open(browser, f"{operator_console.url}/slo/never-evaluated")
    message = browser.wait(lambda: browser.text("#detail-header .state-error"), what="error")
    assert "no evaluation of SLO 'never-evaluated'" in message


def test_capacity_page_renders(browser: Browser, operator_console: ConsoleProcess) -> None:
    _open(browser, f"{operator_console.url}/capacity")
    browser.wait(
        lambda: browser.find("#capacity-status .state, .capacity-table"), what="capacity state"
    )
    text = browser.text("main")
    assert "Capacity" in text
    _no_console_errors(browser)
    _settled(browser)
    browser.screenshot("capacity", publish=True)


def test_capacity_page_shows_the_policy_per_service(
    browser: Browser, operator_console: ConsoleProcess, seeded: SeededControlPlane
) -> None:
    require_route(seeded, "/capacity")
    _open(browser, f"{operator_console.url}/capacity")
    rows = browser.wait(lambda: browser.find("tr[data-service]"), what="service rows")
    services = [row.get_attribute("data-service") for row in rows]
    assert "inventory" in services
    inventory = browser.text('tr[data-service="inventory"]')
    assert "3–20 @ 70 %" in inventory  # the policy of seed 001
    _graphs_drawn(browser, 3)
    _no_console_errors(browser)


def test_dr_page_renders_with_open_findings(
    browser: Browser, operator_console: ConsoleProcess
) -> None:
    _open(browser, f"{operator_console.url}/dr")
    finding = browser.wait(lambda: browser.find('tr[data-finding="dr.drill_stale"]'), what="row")
    assert "no failover drill in 35 days" in finding[0].text
    assert not browser.find('tr[data-finding="capacity.hpa_drift"]')  # DR findings only
    _no_console_errors(browser)
    _settled(browser)
    browser.screenshot("dr", publish=True)


def test_dr_page_shows_each_database_against_its_tier(
    browser: Browser, operator_console: ConsoleProcess, seeded: SeededControlPlane
) -> None:
    require_route(seeded, "/dr")
    _open(browser, f"{operator_console.url}/dr")
    row = browser.wait(lambda: browser.find('tr[data-database="inventory"]'), what="database")
    text = row[0].text
    assert "critical" in text
    assert "15 min" in text  # RTO of the critical tier
    assert "5 min" in text  # RPO
    _graphs_drawn(browser, 2)
    _no_console_errors(browser)


def test_alerts_page_shows_live_alerts_and_the_audit_evidence(
    browser: Browser, operator_console: ConsoleProcess, seeded: SeededControlPlane
) -> None:
    _open(browser, f"{operator_console.url}/alerts")
    alerts = browser.wait(lambda: browser.find("tr[data-alert]"), what="live alerts")
    assert len(alerts) == 2
    assert "read latency burns 20x its budget" in browser.text(".alerts-table")
    entry = browser.wait_for(f'.audit-table tr[data-decision="{seeded.store.scale_decision}"]')
    evidence = entry.find_element(By.CSS_SELECTOR, "details.evidence")
    assert not evidence.find_element(By.TAG_NAME, "pre").is_displayed()
    evidence.find_element(By.TAG_NAME, "summary").click()
    pre = evidence.find_element(By.TAG_NAME, "pre")
    assert pre.is_displayed()
    assert '"burn_rate_1h": 20.0' in pre.text
    _no_console_errors(browser)
    _settled(browser)
    browser.screenshot("alerts-actions", publish=True)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_without_sign_in_the_console_is_read_only_whatever_its_token(
    browser: Browser,
    viewer_console: ConsoleProcess,
    operator_console: ConsoleProcess,
    role: Role,
) -> None:
    """The console's own token only reads: the kill switch and approvals need a signed-in
    operator (tests/integration/dashboards/test_sign_in.py), even when the token is an
    operator's."""
    console = operator_console if role is Role.OPERATOR else viewer_console
    _open(browser, f"{console.url}/alerts")
    browser.wait(lambda: "read-only console" in browser.text("#alerts-role-note"), what="note")
    browser.wait_for(".pending-table tr[data-decision]")  # the seeded pending action
    controls = browser.driver.find_element(By.ID, "alerts-kill-controls")
    assert not controls.is_displayed()
    assert browser.find(".pending-table button") == []
    assert "read-only" in browser.text(".shell-header .who")
    _no_console_errors(browser)
