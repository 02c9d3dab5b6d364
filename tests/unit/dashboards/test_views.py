"""The overview fragment and the detail helpers from fixed data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dash import html

from controlplane.client.models import ServiceCapacity
from dashboards.history import Point
from dashboards.pages.capacity.views import capacity_table
from dashboards.pages.overview.views import filter_statuses, overview_table_html
from dashboards.pages.slo_detail.views import (
    actions_for,
    alerts_for,
    current_exhaustion,
    exhaustion_text,
    header,
)
from dashboards.status import worst_first
from tests.unit.dashboards.data import NOW, alert, audit, capacity_service, status


def test_the_overview_fragment_escapes_everything_from_the_api() -> None:
    hostile = status("<script>alert(1)</script>", service="a'b", details={"tier": "<b>"})
    html = overview_table_html(
        worst_first([hostile]), series={}, windows=["5m"], sparkline_label="spark"
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&#x27;b" in html
    assert "<b>" not in html
    assert "href='/slo/%3Cscript%3Ealert%281%29%3C%2Fscript%3E'" in html


def test_rows_keep_the_worst_first_order_and_mark_hot_windows() -> None:
    items = worst_first(
        [status("calm"), status("hot", burn_rates={"1h": 20.0, "5m": 16.0}, budget_remaining=0.2)]
    )
    series = {
        "hot": [
            Point(at=NOW - timedelta(minutes=m), sli=0.9, budget_remaining=0.3 - m / 100)
            for m in (2, 1, 0)
        ]
    }
    html = overview_table_html(items, series=series, windows=["5m", "1h"], sparkline_label="s")
    assert html.index("data-slo='hot'") < html.index("data-slo='calm'")
    assert "<span class='burn-over'>20.00×</span>" in html
    assert "class='sparkline'" in html
    assert "loading the history" in html  # "calm" has no series yet
    only_calm = filter_statuses(items, services=None, tiers=["critical"])
    assert [s.slo_id for s, _ in only_calm] == ["hot", "calm"]
    assert filter_statuses(items, services=["other"], tiers=None) == []


def test_alerts_and_actions_of_an_slo() -> None:
    mine = alert()
    other = alert(id=2, labels={"slo": "other"})
    old = alert(id=3, status="resolved", closed_at=NOW - timedelta(days=3))
    assert alerts_for([mine, other, old], slo_id="read-latency", start=NOW - timedelta(days=1)) == [
        mine
    ]
    by_target = audit()
    by_slo = audit(id=2, decision_id="d2", target="x", evidence={"slo": "read-latency"})
    unrelated = audit(id=3, decision_id="d3", target="deployment/analytics", evidence={})
    found = actions_for([by_target, by_slo, unrelated], slo_id="read-latency", service="inventory")
    assert found == [by_target, by_slo]


def test_the_exhaustion_forecast_prefers_the_evaluation_own() -> None:
    own = status(details={"time_to_exhaustion_s": 3600})
    assert current_exhaustion(own, now=NOW) == NOW + timedelta(hours=1)
    # The control plane says "not burning" (null): not second-guessed from a burn rate.
    quiet = status(
        budget_remaining=0.5, burn_rates={"1h": 10.0}, details={"time_to_exhaustion_s": None}
    )
    assert current_exhaustion(quiet, now=NOW) is None
    # An evaluation without the field: derived from the 1 h burn.
    derived = status(budget_remaining=0.5, burn_rates={"1h": 10.0})
    assert current_exhaustion(derived, now=NOW) == NOW + timedelta(days=1.5)
    assert exhaustion_text(NOW + timedelta(hours=18), now=NOW) == "in 18 h · 2026-11-22 06:00 UTC"
    assert exhaustion_text(None, now=NOW) == "not burning"
    assert exhaustion_text(NOW, now=NOW) == "exhausted"


def test_the_detail_header_shows_the_evaluation_details() -> None:
    latency = status(
        burn_rates={"5m": 20.0, "1h": 16.0},
        details={
            "tier": "critical",
            "period": "30d",
            "latency_threshold_s": 0.25,
            "time_to_exhaustion_s": 7200,
            "alerts": [
                {
                    "severity": "page",
                    "long": "1h",
                    "short": "5m",
                    "factor": 14.4,
                    "firing": True,
                    "state": "ok",
                },
                {
                    "severity": "ticket",
                    "long": "1d",
                    "short": "2h",
                    "factor": 3,
                    "firing": False,
                    "state": "ok",
                },
            ],
        },
    )
    facts = _facts(header(latency, now=NOW))
    assert facts["Tier"] == "critical"
    assert facts["Period"] == "30d"
    assert facts["Latency threshold"] == "250 ms"
    assert facts["Exhaustion forecast"] == "in 2 h · 2026-11-21 14:00 UTC"
    assert facts["Firing alerts"] == "page 14.4× (1h & 5m)"
    availability = _facts(header(status(details={}), now=NOW))
    assert "Latency threshold" not in availability
    assert availability["Period"] == "—"
    assert availability["Firing alerts"] == "none"


def _facts(component: Any) -> dict[str, Any]:
    """Term -> definition of the header's ``<dl>`` (text where the definition is text)."""
    (definitions,) = [child for child in component.children if isinstance(child, html.Dl)]
    items = definitions.children
    return {
        str(term.children): definition.children
        for term, definition in zip(items[::2], items[1::2], strict=True)
    }


def _hpa_cell(service: ServiceCapacity) -> html.Span:
    row = capacity_table([service]).children[1].children[0]
    cell = row.children[6].children
    assert isinstance(cell, html.Span)
    return cell


def test_a_missing_hpa_is_drift_only_where_the_orchestrator_has_autoscalers() -> None:
    on_kubernetes = _hpa_cell(capacity_service(autoscaler=None))
    assert (on_kubernetes.children, on_kubernetes.className) == ("no HPA", "drift")
    local = _hpa_cell(capacity_service(autoscaler=None, has_autoscalers=False))
    assert local.className != "drift"
    assert "no HPA locally" in str(local.children)
