"""Rule generation: names, expressions, labels, and byte-identical output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from slo.queries import elasticsearch_count_body, event_count_queries
from slo.rules import RuleOptions, generate_rule_files, render_rule_file, rule_groups
from slo.spec import SLO, ElasticsearchRatioSLI, SpecSource, parse_slos

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SPECS = ROOT / "slo" / "specs"
RULES = ROOT / "alerts" / "rules"


def _inventory() -> tuple[SLO, ...]:
    sources = [SpecSource(name=str(p), text=p.read_text()) for p in sorted(SPECS.glob("*.yaml"))]
    return parse_slos(sources)


def _slo(name: str) -> SLO:
    return next(s for s in _inventory() if s.name == name)


def _rules(slo: SLO) -> list[dict[str, Any]]:
    return [r for g in rule_groups(slo) for r in g["rules"]]


def _records(slo: SLO) -> dict[str, str]:
    return {r["record"]: r["expr"] for r in _rules(slo) if "record" in r}


def _alerts(slo: SLO) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in _rules(slo) if "alert" in r}


def test_one_file_per_service_without_elasticsearch_slos() -> None:
    (rule_file,) = generate_rule_files(_inventory())
    assert rule_file.filename == "inventory.rules.yml"
    assert rule_file.slos == (
        "api-availability",
        "ingestion-freshness",
        "read-latency",
        "worker-apply-success",
    )
    # per SLO: 7 + 7 (ratio, burn) + 6 (meta, period ratio, period burn, budget) = 20 records,
    # 4 burn-rate alerts + 1 absent-data alert
    assert (rule_file.records, rule_file.alerts) == (80, 20)
    assert "log-error-events" not in rule_file.content


def test_generation_is_deterministic() -> None:
    slos = _inventory()
    first = generate_rule_files(slos)
    again = generate_rule_files(tuple(reversed(slos)))
    assert [f.content.encode() for f in first] == [f.content.encode() for f in again]


def test_committed_rule_files_are_up_to_date() -> None:
    for rule_file in generate_rule_files(_inventory()):
        committed = (RULES / rule_file.filename).read_text()
        assert committed == rule_file.content, (
            "alerts/rules is stale: run `controlplane slo generate slo/specs --out alerts/rules`"
        )


def test_error_ratio_records_for_every_window_and_the_period() -> None:
    records = _records(_slo("api-availability"))
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
        assert f"slo:sli_error:ratio_rate{window}" in records
        assert f"slo:burn_rate:rate{window}" in records
    assert records["slo:objective:ratio"] == "vector(0.999)"
    assert records["slo:error_budget:ratio"] == "vector(0.001)"
    assert records["slo:period:seconds"] == "vector(2592000)"
    assert records["slo:error_budget_remaining:ratio"] == (
        '1 - slo:sli_error:ratio_rate30d{service="inventory",slo="api-availability"} / 0.001'
    )
    assert records["slo:burn_rate:rate1h"] == (
        'slo:sli_error:ratio_rate1h{service="inventory",slo="api-availability"} / 0.001'
    )


def test_the_period_ratio_is_event_weighted() -> None:
    # A ratio of increases over the whole period, not an average of 5-minute ratios.
    expr = _records(_slo("api-availability"))["slo:sli_error:ratio_rate30d"]
    assert expr == (
        "(sum(rate(http_server_request_duration_seconds_count"
        '{service="inventory",status_code=~"5.."}[30d])) or vector(0))'
        ' / sum(rate(http_server_request_duration_seconds_count{service="inventory"}[30d]))'
    )
    assert "avg_over_time" not in expr


def test_latency_ratio_uses_the_threshold_bucket_and_the_count() -> None:
    expr = _records(_slo("read-latency"))["slo:sli_error:ratio_rate5m"]
    total = (
        "sum(rate(http_server_request_duration_seconds_count"
        '{service="inventory",method="GET",status_code!~"5.."}[5m]))'
    )
    good = (
        "sum(rate(http_server_request_duration_seconds_bucket"
        '{service="inventory",method="GET",status_code!~"5..",le="0.25"}[5m]))'
    )
    assert expr == f"({total} - ({good} or vector(0))) / {total}"


def test_burn_rate_alerts_have_the_sre_workbook_factors_and_labels() -> None:
    alerts = _alerts(_slo("api-availability"))
    assert list(alerts) == [
        "ErrorBudgetBurn1h5m",
        "ErrorBudgetBurn6h30m",
        "ErrorBudgetBurn1d2h",
        "ErrorBudgetBurn3d6h",
        "SLODataAbsent",
    ]
    assert alerts["ErrorBudgetBurn1h5m"]["expr"] == (
        'slo:burn_rate:rate1h{service="inventory",slo="api-availability"} > 14.4\n'
        "and\n"
        'slo:burn_rate:rate5m{service="inventory",slo="api-availability"} > 14.4'
    )
    factors = {name: rule["expr"].split(" > ")[-1] for name, rule in alerts.items()}
    assert [factors[n] for n in list(alerts)[:4]] == ["14.4", "6", "3", "1"]
    severities = [rule["labels"]["severity"] for rule in alerts.values()]
    assert severities == ["page", "page", "ticket", "ticket", "page"]
    for rule in alerts.values():
        assert rule["labels"]["service"] == "inventory"
        assert rule["labels"]["slo"] == "api-availability"
        assert rule["labels"]["tier"] == "critical"
        assert set(rule["annotations"]) == {
            "summary",
            "description",
            "runbook_url",
            "dashboard_url",
        }
        assert rule["annotations"]["dashboard_url"].endswith("/inventory/api-availability")


def test_absent_alert_watches_the_total_series() -> None:
    rule = _alerts(_slo("worker-apply-success"))["SLODataAbsent"]
    assert rule["expr"] == "absent(sum(inventory_worker_apply_total))"
    assert rule["for"] == "10m"


def test_links_from_options_and_spec() -> None:
    options = RuleOptions(
        runbook_url="https://rb.example.test/{service}/{slo}",
        dashboard_url="https://dash.example.test/{slo}",
    )
    (slo,) = parse_slos([SpecSource(name="x.yaml", text=_SMALL)])
    rule = next(r for g in rule_groups(slo, options=options) for r in g["rules"] if "alert" in r)
    assert rule["annotations"]["runbook_url"] == "https://rb.example.test/shop/orders"
    assert rule["annotations"]["dashboard_url"] == "https://grafana.example.test/orders"


_SMALL = """
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: orders}
spec:
  service: shop
  tier: batch
  objective: 0.99
  window: 28d
  min_events: 50
  sli: {ratio: {bad: 'orders_total{ok="false"}', total: orders_total}}
  alerting: {dashboard_url: "https://grafana.example.test/orders", no_data: false}
"""


def test_other_periods_derive_factors_and_guard_low_traffic() -> None:
    (slo,) = parse_slos([SpecSource(name="x.yaml", text=_SMALL)])
    alerts = _alerts(slo)
    assert "SLODataAbsent" not in alerts  # no_data: false
    assert alerts["ErrorBudgetBurn1h5m"]["expr"].splitlines() == [
        'slo:burn_rate:rate1h{service="shop",slo="orders"} > 13.44',
        "and",
        'slo:burn_rate:rate5m{service="shop",slo="orders"} > 13.44',
        "and on() sum(increase(orders_total[1h])) >= 50",
        "and on() sum(increase(orders_total[5m])) >= 50",
    ]
    assert alerts["ErrorBudgetBurn1h5m"]["labels"]["severity"] == "page"
    assert "slo:sli_error:ratio_rate28d" in _records(slo)


def test_time_slice_rules_use_subqueries() -> None:
    text = """
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: p99}
spec:
  service: shop
  tier: standard
  objective: 0.95
  window: 30d
  budgeting: timeslices
  slice: 1m
  sli: {threshold: {query: 'shop:latency:p99', op: lt, threshold: 0.3}}
"""
    (slo,) = parse_slos([SpecSource(name="x.yaml", text=text)])
    assert _records(slo)["slo:sli_error:ratio_rate1h"] == (
        "1 - avg_over_time((((shop:latency:p99) < bool 0.3) and "
        "((shop:latency:p99) == (shop:latency:p99)))[1h:1m])"
    )
    assert _alerts(slo)["SLODataAbsent"]["expr"] == "absent(shop:latency:p99)"


def test_rendered_file_is_valid_yaml_with_a_header() -> None:
    text = render_rule_file([_slo("api-availability")])
    assert text.startswith("# Generated by `controlplane slo generate`")
    document = yaml.safe_load(text)
    assert [g["name"] for g in document["groups"]] == [
        "slo-inventory-api-availability",
        "slo-inventory-api-availability-period",
    ]
    assert document["groups"][1]["interval"] == "5m"


def test_elasticsearch_slos_have_no_rules() -> None:
    with pytest.raises(ValueError, match="not Prometheus-backed"):
        rule_groups(_slo("log-error-events"))


def test_event_count_queries_for_a_report() -> None:
    queries = event_count_queries(_slo("worker-apply-success"), window=timedelta(days=30))
    assert queries.good == 'sum(increase(inventory_worker_apply_total{outcome="applied"}[30d]))'
    assert queries.bad is None
    assert queries.total == "sum(increase(inventory_worker_apply_total[30d]))"


def test_elasticsearch_count_body_filters_the_date_field() -> None:
    sli = _slo("log-error-events").sli
    assert isinstance(sli, ElasticsearchRatioSLI)
    body = elasticsearch_count_body(
        sli,
        which="bad",
        start=datetime(2024, 4, 1, tzinfo=UTC),
        end=datetime(2024, 5, 1, tzinfo=UTC),
    )
    assert body == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"log.level": "error"}},
                    {
                        "range": {
                            "@timestamp": {
                                "gte": "2024-04-01T00:00:00+00:00",
                                "lt": "2024-05-01T00:00:00+00:00",
                                "format": "strict_date_optional_time",
                            }
                        }
                    },
                ]
            }
        }
    }
    with pytest.raises(ValueError, match="no good query"):
        elasticsearch_count_body(sli, which="good", start=datetime.now(UTC), end=datetime.now(UTC))


def test_window_periods_at_an_instant() -> None:
    at = datetime(2024, 4, 11, tzinfo=UTC)
    rolling = _slo("api-availability").window.period_at(at)
    assert (rolling.start, rolling.end) == (at - timedelta(days=30), at)
    text = _SMALL.replace("28d", "{calendar: month}")
    (slo,) = parse_slos([SpecSource(name="x.yaml", text=text)])
    month = slo.window.period_at(at)
    assert (month.start, month.length, month.elapsed) == (
        datetime(2024, 4, 1, tzinfo=UTC),
        timedelta(days=30),
        timedelta(days=10),
    )
