"""What an evaluation means: status, worst-first order, alert windows, forecasts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboards.status import (
    alert_windows,
    burning_window,
    classify,
    exhaustion_forecast,
    worst_first,
)
from tests.unit.dashboards.data import NOW, status


def test_no_data_is_never_ok() -> None:
    assert classify(status(state="no_data", sli=None, budget_remaining=None)) == "no_data"
    assert classify(status(state="error", sli=None)) == "no_data"
    assert classify(status(sli=None)) == "no_data"


def test_burning_needs_both_windows_of_an_alert_above_its_factor() -> None:
    assert classify(status()) == "ok"
    # 1h above 14.4 but 5m not: no page.
    assert classify(status(burn_rates={"1h": 20.0, "5m": 10.0})) == "ok"
    assert classify(status(burn_rates={"1h": 20.0, "5m": 15.0})) == "burning_page"
    assert classify(status(burn_rates={"1d": 3.5, "2h": 4.0})) == "burning_ticket"
    assert classify(status(burn_rates={"1h": 20.0, "5m": None})) == "ok"  # no data, no fire


def test_the_console_reads_the_verdicts_and_never_derives_them_again() -> None:
    """Burn rates above every factor, but the control plane evaluated no alert firing (e.g.
    its windows had too little traffic): the console says ok."""
    burning = {"5m": 50.0, "30m": 50.0, "1h": 50.0, "2h": 50.0, "6h": 50.0, "1d": 50.0}
    quiet = [
        {
            "severity": "page",
            "long": "1h",
            "short": "5m",
            "factor": 14.4,
            "firing": False,
            "state": "insufficient_traffic",
        },
    ]
    assert classify(status(burn_rates=burning, details={"alerts": quiet})) == "ok"
    assert classify(status(burn_rates=burning, details={"alerts": []})) == "ok"


def test_the_reports_alerts_win_over_the_burn_rates() -> None:
    report_alerts = [
        {
            "severity": "ticket",
            "long": "1d",
            "short": "2h",
            "factor": 3.0,
            "firing": True,
            "state": "ok",
        },
        {
            "severity": "page",
            "long": "1h",
            "short": "5m",
            "factor": 14.4,
            "firing": False,
            "state": "ok",
        },
    ]
    found = status(burn_rates={"1h": 0.1}, details={"alerts": report_alerts})
    assert classify(found) == "burning_ticket"
    windows = alert_windows(found)
    assert [(w.severity, w.long, w.firing) for w in windows] == [
        ("ticket", timedelta(days=1), True),
        ("page", timedelta(hours=1), False),
    ]
    assert windows[1].long_burn == 0.1


def test_factors_follow_the_period() -> None:
    windows = alert_windows(status(details={"period": "28d"}))
    assert windows[0].factor == pytest.approx(13.44)
    assert [w.factor for w in alert_windows(status())] == [14.4, 6.0, 3.0, 1.0]


def test_worst_first_orders_by_status_then_budget_then_burn() -> None:
    statuses = [
        status("ok-high", budget_remaining=0.9),
        status("no-data", state="no_data", sli=None, budget_remaining=None),
        status("ticket", burn_rates={"1d": 3.5, "2h": 4.0}, budget_remaining=0.7),
        status("page-b", burn_rates={"1h": 20.0, "5m": 20.0}, budget_remaining=0.5),
        status("ok-low", budget_remaining=0.2),
        status("page-a", burn_rates={"1h": 30.0, "5m": 30.0}, budget_remaining=0.5),
    ]
    assert [s.slo_id for s, _ in worst_first(statuses)] == [
        "page-a",  # same budget as page-b, burns faster
        "page-b",
        "ticket",
        "no-data",
        "ok-low",
        "ok-high",
    ]


def test_exhaustion_forecast() -> None:
    period = timedelta(days=30)
    # Burning at 1x, the whole budget lasts the whole period.
    assert exhaustion_forecast(budget_remaining=1.0, burn_rate=1.0, period=period, now=NOW) == (
        NOW + period
    )
    half = exhaustion_forecast(budget_remaining=0.5, burn_rate=10.0, period=period, now=NOW)
    assert half == NOW + timedelta(days=1.5)
    assert exhaustion_forecast(budget_remaining=0.5, burn_rate=0.0, period=period, now=NOW) is None
    assert exhaustion_forecast(budget_remaining=None, burn_rate=2.0, period=period, now=NOW) is None
    assert exhaustion_forecast(budget_remaining=-0.1, burn_rate=2.0, period=period, now=NOW) == NOW


def test_burning_window_is_the_most_acute_firing_alert_or_the_last_hour() -> None:
    both = status(burn_rates={"1h": 20.0, "5m": 20.0, "6h": 7.0, "30m": 7.0})
    start, end, label = burning_window(both, now=NOW)
    assert (start, end) == (NOW - timedelta(hours=1), NOW)
    assert "page" in label
    six = status(burn_rates={"1h": 1.0, "5m": 1.0, "6h": 7.0, "30m": 7.0})
    assert burning_window(six, now=NOW)[0] == NOW - timedelta(hours=6)
    calm = burning_window(status(), now=NOW)
    assert calm[0] == NOW - timedelta(hours=1)
    assert "no burn-rate alert" in calm[2]
