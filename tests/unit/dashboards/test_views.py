"""The overview fragment and the detail helpers from fixed data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dash import html

from controlplane.client.models import DatabaseDR, ServiceCapacity
from dashboards.history import Point
from dashboards.pages.capacity.views import (
    capacity_table,
    orchestrator_line,
    workloads_section,
    workloads_table,
)
from dashboards.pages.dr.views import databases_table, failover_text
from dashboards.pages.overview.views import (
    View,
    filter_statuses,
    overview_table_html,
    page_of,
    pager_text,
    select,
)
from dashboards.pages.slo_detail.views import (
    actions_for,
    alerts_for,
    current_exhaustion,
    exhaustion_text,
    header,
)
from dashboards.status import worst_first
from tests.unit.dashboards.data import (
    KUBERNETES,
    NOW,
    alert,
    audit,
    capacity,
    capacity_service,
    status,
    workload,
)


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


def _many() -> list[Any]:
    """Twelve calm SLOs, one paging, one ticket-burning harder than the pager (``1d`` burns
    most), one without data."""
    calm = [
        status(f"calm-{n:02d}", service="analytics" if n % 2 else "inventory") for n in range(12)
    ]
    page = status("checkout-page", burn_rates={"1h": 20.0, "5m": 16.0}, budget_remaining=0.4)
    ticket = status(
        "refunds-ticket",
        service="payments",
        burn_rates={"1d": 30.0, "2h": 30.0, "5m": 0.1, "1h": 0.1},
        budget_remaining=0.7,
    )
    empty = status("no-data", state="no_data", sli=None, budget_remaining=None, burn_rates={})
    return [*calm, ticket, empty, page]


def test_select_searches_filters_and_orders_every_slo() -> None:
    statuses = _many()
    ids = [s.slo_id for s, _ in select(statuses, View())]
    assert ids[:4] == ["checkout-page", "refunds-ticket", "no-data", "calm-00"]
    found = select(statuses, View(search="  REFUND "))
    assert [(s.slo_id, kind) for s, kind in found] == [("refunds-ticket", "burning_ticket")]
    assert [s.slo_id for s, _ in select(statuses, View(search="payments"))] == ["refunds-ticket"]
    burning = View(statuses=("burning_page", "burning_ticket"), sort="burn")
    assert [s.slo_id for s, _ in select(statuses, burning)] == ["refunds-ticket", "checkout-page"]
    by_budget = [s.slo_id for s, _ in select(statuses, View(sort="budget"))]
    assert by_budget[0] == "checkout-page"
    assert by_budget[-1] == "no-data"  # unknown budget last
    by_id = [s.slo_id for s, _ in select(statuses, View(sort="id"))]
    assert by_id == sorted(by_id)
    assert [s.slo_id for s, _ in select(statuses, View(services=("analytics",)))] == [
        f"calm-{n:02d}" for n in range(1, 12, 2)
    ]
    assert select(statuses, View(search="nothing like it")) == []


def test_pages_cut_every_slo_and_the_last_page_is_kept_in_range() -> None:
    items = select(_many(), View())
    first = page_of(items, page=1, size=4)
    assert [s.slo_id for s, _ in first.items] == [
        "checkout-page",
        "refunds-ticket",
        "no-data",
        "calm-00",
    ]
    assert (first.number, first.pages, first.first, first.last, first.total) == (1, 4, 1, 4, 15)
    assert pager_text(first) == "SLOs 1–4 of 15 · page 1 of 4"
    last = page_of(items, page=99, size=4)  # fewer pages than asked for: the last
    assert (last.number, last.first, last.last) == (4, 13, 15)
    assert [s.slo_id for s, _ in last.items] == ["calm-09", "calm-10", "calm-11"]
    nothing = page_of([], page=3, size=4)
    assert (nothing.number, nothing.pages, nothing.first, nothing.last) == (1, 1, 0, 0)
    assert pager_text(nothing) == "no SLO"


@pytest.mark.parametrize(
    "data",
    [None, "x", {"page": "2"}, {"page": -1, "sort": "drop table"}, {"services": "inventory"}],
)
def test_a_view_from_the_browser_that_cannot_be_read_is_the_default(data: object) -> None:
    assert View.from_data(data) == View()


def test_a_view_from_the_browser() -> None:
    view = View.from_data(
        {"search": " pay ", "services": ["payments", 3], "sort": "burn", "page": 4}
    )
    assert view == View(search="pay", services=("payments",), sort="burn", page=4)


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


def _cells(table: html.Table) -> dict[str, list[Any]]:
    """Workload name -> its row's cells (text, or the component where it is one)."""
    return {
        row.children[0].children: [cell.children for cell in row.children]
        for row in table.children[1].children
    }


def test_the_header_line_names_the_cluster_or_says_it_is_local() -> None:
    on_kubernetes = capacity(orchestrator=KUBERNETES, workloads=[])
    assert (
        orchestrator_line(on_kubernetes.orchestrator)
        == "Kubernetes v1.36.3 · namespace inventory · https://127.0.0.1:6443"
    )
    unknown = capacity(orchestrator={**KUBERNETES, "version": None}, workloads=[])
    assert orchestrator_line(unknown.orchestrator).startswith("Kubernetes (version unknown) · ")
    local = capacity(
        orchestrator={
            "kind": "local",
            "location": "/run/gunicorn.pid",
            "namespace": None,
            "version": None,
        },
        workloads=[workload()],
    )
    assert orchestrator_line(local.orchestrator) == (
        "Local gunicorn master (no Kubernetes) · pidfile /run/gunicorn.pid"
    )
    none = {"kind": None, "location": None, "namespace": None, "version": None}
    assert "No orchestrator configured" in orchestrator_line(
        capacity(orchestrator=none, workloads=None).orchestrator
    )


def test_the_deployments_table_shows_hpas_and_marks_what_the_policy_does_not_cover() -> None:
    worker = workload(
        "inventory-worker",
        in_policy=False,
        desired_replicas=4,
        current_replicas=4,
        ready_replicas=3,
        cpu_percent=None,
        autoscaler=None,
        resources={
            "cpu_request": "100m",
            "memory_request": None,
            "cpu_limit": None,
            "memory_limit": "256Mi",
        },
    )
    section = workloads_section(capacity(orchestrator=KUBERNETES, workloads=[workload(), worker]))
    assert section is not None
    title, summary, table = section.children
    assert title.children == "Deployments in namespace inventory"
    assert summary.children.startswith("2 Deployments, 1 outside the capacity policy")
    rows = _cells(table)
    inventory = rows["inventory"]
    assert inventory[1] == "covered"
    assert inventory[2] == "5/5"
    assert inventory[4] == "inventory: 3–20"
    assert (inventory[5].children, inventory[5].className) == ("85 % / 70 %", "burn-over")
    assert inventory[6] == "6"
    assert inventory[7] == "200m/512Mi · 1/2Gi"
    worker_row = rows["inventory-worker"]
    assert (worker_row[1].children, worker_row[1].className) == (
        "outside the policy",
        "outside-policy",
    )
    assert (worker_row[2].children, worker_row[2].className) == ("3/4", "drift")
    assert worker_row[4].children == "no HPA"
    assert worker_row[5] == "—"  # no HPA, no CPU: unknown, not 0
    assert worker_row[7] == "100m/— · —/256Mi"
    marks = [getattr(row, "data-in-policy") for row in table.children[1].children]
    assert marks == ["true", "false"]


def test_an_hpa_without_cpu_readings_says_no_data() -> None:
    table = workloads_table(
        capacity(
            orchestrator=KUBERNETES,
            workloads=[workload(cpu_percent=None)],
        ).workloads
        or []
    )
    cpu = _cells(table)["inventory"][5]
    assert (cpu.children, cpu.className) == ("no data / 70 %", "")


def test_no_deployments_table_locally_and_a_note_when_the_cluster_is_unreadable() -> None:
    local = {"kind": "local", "location": "/run/g.pid", "namespace": None, "version": None}
    assert workloads_section(capacity(orchestrator=local, workloads=[workload()])) is None
    assert workloads_section(capacity(orchestrator=None, workloads=None)) is None
    unreadable = workloads_section(capacity(orchestrator=KUBERNETES, workloads=None))
    assert unreadable is not None
    _, note = unreadable.children
    assert note.className == "state state-no-data"
    assert "could not be read" in note.children


def _text(component: Any) -> str:
    if isinstance(component, str):
        return component
    children = getattr(component, "children", None)
    if children is None:
        return ""
    if isinstance(children, list | tuple):
        return "".join(_text(child) for child in children)
    return _text(children)


def test_the_dr_table_names_the_primary_and_who_fails_it_over() -> None:
    assert failover_text("patroni", "controlled") == "Patroni, controlled"
    assert failover_text("local", "controlled") == "control plane"
    assert failover_text(None, None) == ""  # a control plane that does not say
    database = DatabaseDR(
        database="inventory",
        tier="critical",
        rto_s=900,
        rpo_s=300,
        primary="member-2",
        replicas=[],
        error=None,
        drills=[],
        last_restore_validation=None,
    )
    text = _text(databases_table([database], now=NOW, failover="Patroni, auto"))
    assert "member-2 (Patroni, auto)" in text
    assert "no replica streaming" in text
