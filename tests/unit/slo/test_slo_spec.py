"""Reading SLO specs: the inventory specs, the native format and the OpenSLO v1 subset."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from slo.durations import DurationError, format_duration, parse_duration
from slo.promql import Matcher, SelectorError, le_matcher, parse_selector
from slo.spec import (
    SLO,
    CalendarWindow,
    ElasticsearchRatioSLI,
    PrometheusLatencySLI,
    PrometheusRatioSLI,
    PrometheusThresholdSLI,
    RollingWindow,
    SpecErrors,
    SpecSource,
    parse_slos,
)

pytestmark = pytest.mark.unit

SPECS = Path(__file__).resolve().parents[3] / "slo" / "specs"


def _inventory() -> dict[str, SLO]:
    sources = [SpecSource(name=str(p), text=p.read_text()) for p in sorted(SPECS.glob("*.yaml"))]
    return {slo.name: slo for slo in parse_slos(sources)}


def _parse(text: str, name: str = "spec.yaml") -> tuple[SLO, ...]:
    return parse_slos([SpecSource(name=name, text=text)])


# --- the inventory SLOs -----------------------------------------------------------------------


def test_inventory_specs_define_the_five_slos() -> None:
    slos = _inventory()
    assert sorted(slos) == [
        "api-availability",
        "ingestion-freshness",
        "log-error-events",
        "read-latency",
        "worker-apply-success",
    ]
    assert {s.service for s in slos.values()} == {"inventory"}
    assert {name: s.tier for name, s in slos.items()} == {
        "api-availability": "critical",
        "ingestion-freshness": "critical",
        "log-error-events": "standard",
        "read-latency": "critical",
        "worker-apply-success": "critical",
    }


def test_api_availability_is_non_5xx_over_all() -> None:
    slo = _inventory()["api-availability"]
    assert slo.target == 0.999
    assert slo.window == RollingWindow(duration=timedelta(days=30))
    assert isinstance(slo.sli, PrometheusRatioSLI)
    assert slo.sli.bad is not None
    assert slo.sli.bad.render() == (
        'http_server_request_duration_seconds_count{service="inventory",status_code=~"5.."}'
    )
    total = slo.sli.total.render()
    assert total == 'http_server_request_duration_seconds_count{service="inventory"}'


def test_read_latency_uses_the_250ms_bucket() -> None:
    slo = _inventory()["read-latency"]
    assert slo.target == 0.99
    assert isinstance(slo.sli, PrometheusLatencySLI)
    assert slo.sli.threshold == 0.25
    assert slo.sli.good.render() == (
        'http_server_request_duration_seconds_bucket{service="inventory",method="GET",'
        'status_code!~"5..",le="0.25"}'
    )
    assert slo.sli.total.metric == "http_server_request_duration_seconds_count"


def test_ingestion_freshness_uses_the_5s_bucket_in_both_spellings() -> None:
    slo = _inventory()["ingestion-freshness"]
    assert isinstance(slo.sli, PrometheusLatencySLI)
    assert slo.sli.good.render() == 'inventory_movements_apply_lag_seconds_bucket{le=~"5|5\\\\.0"}'


def test_worker_apply_success_comes_from_openslo_with_the_service_tier() -> None:
    slo = _inventory()["worker-apply-success"]
    assert slo.source.endswith("inventory-worker.openslo.yaml")
    assert slo.tier == "critical"  # from the Service document's labels
    assert isinstance(slo.sli, PrometheusRatioSLI)
    assert slo.sli.good is not None
    assert slo.sli.good.render() == 'inventory_worker_apply_total{outcome="applied"}'
    assert slo.sli.total.render() == "inventory_worker_apply_total"


def test_log_slo_counts_error_events_in_elasticsearch() -> None:
    slo = _inventory()["log-error-events"]
    assert slo.backend == "elasticsearch"
    assert slo.min_events == 100
    assert isinstance(slo.sli, ElasticsearchRatioSLI)
    assert slo.sli.index == "logs-inventory-*"
    assert slo.sli.timestamp_field == "@timestamp"
    assert slo.sli.bad is not None
    assert json.loads(slo.sli.bad) == {"term": {"log.level": "error"}}
    assert json.loads(slo.sli.total) == {"match_all": {}}


def test_models_are_frozen() -> None:
    slo = _inventory()["api-availability"]
    with pytest.raises(ValueError, match="frozen"):
        slo.target = 0.5  # type: ignore[misc]


# --- native format ----------------------------------------------------------------------------

NATIVE = """
apiVersion: controlplane.slo/v1
kind: SLO
metadata:
  name: checkout-latency
spec:
  service: shop
  tier: standard
  objective: 0.95
  window: {calendar: month, timezone: Europe/Paris}
  sli:
    latency:
      histogram: http_duration_seconds{job="shop"}
      buckets: [0.1, 0.5, 1]
      threshold: 500ms
  alerting:
    runbook_url: https://runbooks.example.test/checkout
    no_data_for: 15m
---
apiVersion: controlplane.slo/v1
kind: SLO
metadata:
  name: p99-per-minute
spec:
  service: shop
  tier: batch
  objective: 0.9
  window: 7d
  budgeting: timeslices
  slice: 1m
  sli:
    threshold:
      query: histogram_quantile(0.99, sum by (le) (rate(http_duration_seconds_bucket[1m])))
      op: lte
      threshold: 0.8
"""


def test_native_multi_document_file() -> None:
    latency, slices = _parse(NATIVE)
    assert latency.name == "checkout-latency"
    assert latency.window == CalendarWindow(unit="month", timezone="Europe/Paris")
    assert latency.period == timedelta(days=30)  # nominal length for the rules
    assert isinstance(latency.sli, PrometheusLatencySLI)
    assert latency.sli.threshold == 0.5
    assert latency.alerting.runbook_url == "https://runbooks.example.test/checkout"
    assert latency.alerting.no_data_for == timedelta(minutes=15)
    assert slices.budgeting_method == "Timeslices"
    assert slices.time_slice == timedelta(minutes=1)
    assert isinstance(slices.sli, PrometheusThresholdSLI)
    assert (slices.sli.op, slices.sli.threshold) == ("lte", 0.8)


def test_exact_decimal_objective_and_budget() -> None:
    slo = _inventory()["api-availability"]
    assert str(slo.target_decimal) == "0.999"
    assert str(slo.error_budget_decimal) == "0.001"  # not 0.0010000000000000009


# --- OpenSLO v1 -------------------------------------------------------------------------------

OPENSLO_SLI = """
apiVersion: openslo/v1
kind: SLI
metadata: {name: search-errors}
spec:
  ratioMetric:
    counter: true
    bad:
      metricSource: {type: Prometheus, spec: {query: 'search_requests_total{code=~"5.."}'}}
    total:
      metricSource: {type: Prometheus, spec: {query: search_requests_total}}
"""

OPENSLO_SLO = """
apiVersion: openslo/v1
kind: Service
metadata: {name: search, labels: {tier: standard}}
spec: {description: Search}
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: quick}
spec:
  alertWhenNoData: true
  conditions:
    - kind: AlertCondition
      metadata: {name: quick-burn}
      spec:
        severity: page
        condition: {kind: burnrate, op: gte, threshold: 10, lookbackWindow: 2h, alertAfter: 2m}
  notificationTargets:
    - targetRef: search-oncall
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: search-availability
  displayName: Search availability
  annotations: {dashboard_url: "https://grafana.example.test/d/search"}
spec:
  service: search
  indicatorRef: search-errors
  timeWindow:
    - duration: 1w
      isRolling: false
      calendar: {startTime: "2024-01-07 00:00:00", timeZone: UTC}
  budgetingMethod: Occurrences
  objectives:
    - targetPercent: 99.5
  alertPolicies:
    - alertPolicyRef: quick
"""


def test_openslo_references_resolve_across_files() -> None:
    (slo,) = parse_slos(
        [
            SpecSource(name="sli.yaml", text=OPENSLO_SLI),
            SpecSource(name="slo.yaml", text=OPENSLO_SLO),
        ]
    )
    assert slo.key == "search/search-availability"
    assert slo.display_name == "Search availability"
    assert slo.tier == "standard"  # inherited from the Service
    assert slo.target == 0.995  # targetPercent 99.5
    # startTime 2024-01-07 is a Sunday: weeks start on Sunday (6)
    assert slo.window == CalendarWindow(unit="week", timezone="UTC", week_start=6)
    assert isinstance(slo.sli, PrometheusRatioSLI)
    assert slo.sli.bad == parse_selector('search_requests_total{code=~"5.."}')
    assert slo.alerting.dashboard_url == "https://grafana.example.test/d/search"
    assert slo.alerting.notification_targets == ("search-oncall",)
    (window,) = slo.burn_rate_windows()
    assert (window.severity, window.long, window.short) == (
        "page",
        timedelta(hours=2),
        timedelta(minutes=10),
    )
    assert (window.factor, window.inclusive, window.for_) == (10, True, timedelta(minutes=2))


OPENSLO_INLINE = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: api, labels: {tier: critical}}
spec:
  service: orders
  indicator:
    metadata: {name: api-latency}
    spec:
      thresholdMetric:
        metricSource:
          type: Prometheus
          spec: {query: 'histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))'}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Timeslices
  objectives:
    - name: fast
      op: lt
      value: 0.2
      target: 0.99
      timeSliceWindow: 5m
    - name: ok
      op: lt
      value: 1
      target: 0.999
      timeSliceWindow: 5m
"""


def test_openslo_inline_threshold_metric_with_several_objectives() -> None:
    fast, ok = _parse(OPENSLO_INLINE)
    assert (fast.name, ok.name) == ("api-fast", "api-ok")
    assert fast.budgeting_method == "Timeslices"
    assert fast.time_slice == timedelta(minutes=5)
    assert isinstance(fast.sli, PrometheusThresholdSLI)
    assert (fast.sli.op, fast.sli.threshold) == ("lt", 0.2)
    assert fast.burn_rate_windows()[0].factor == 13.44  # 28-day period


def test_openslo_elasticsearch_ratio() -> None:
    text = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: log-errors, labels: {tier: standard}}
spec:
  service: inventory
  indicator:
    metadata: {name: log-errors}
    spec:
      ratioMetric:
        good:
          metricSource:
            type: Elasticsearch
            spec: {index: logs-*, timestampField: event.created, query: 'NOT log.level:error'}
        total:
          metricSource:
            type: Elasticsearch
            spec: {index: logs-*, timestampField: event.created, query: {match_all: {}}}
  timeWindow: [{duration: 30d}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
"""
    (slo,) = _parse(text)
    assert isinstance(slo.sli, ElasticsearchRatioSLI)
    assert slo.sli.timestamp_field == "event.created"
    assert slo.sli.good is not None
    assert json.loads(slo.sli.good) == {"query_string": {"query": "NOT log.level:error"}}


def test_ratio_timeslices_and_timeslices_over_a_ratio() -> None:
    text = """
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: a}
spec:
  service: s
  tier: batch
  objective: 0.99
  window: 30d
  budgeting: ratio_timeslices
  slice: 5m
  sli: {ratio: {good: 'jobs_total{ok="1"}', total: jobs_total}}
---
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: b}
spec:
  service: s
  tier: batch
  objective: 0.9
  window: 30d
  budgeting: timeslices
  slice: 1m
  slice_target: 0.95
  sli: {ratio: {good: 'jobs_total{ok="1"}', total: jobs_total}}
"""
    a, b = _parse(text)
    assert a.budgeting_method == "RatioTimeslices"
    assert (b.budgeting_method, b.time_slice_target) == ("Timeslices", 0.95)


# --- selectors and durations ------------------------------------------------------------------


def test_selector_round_trip_and_escapes() -> None:
    selector = parse_selector(' up { job = \'api\' , path=~"/a\\"b" , code!="200" } ')
    assert selector.metric == "up"
    assert selector.matchers == (
        Matcher(label="job", op="=", value="api"),
        Matcher(label="path", op="=~", value='/a"b'),
        Matcher(label="code", op="!=", value="200"),
    )
    assert selector.render() == 'up{job="api",path=~"/a\\"b",code!="200"}'
    assert parse_selector(selector.render()) == selector


@pytest.mark.parametrize(
    "text",
    ["rate(x[5m])", "x[5m]", "x{a=b}", 'x{a="b"', "x + y", '{a="b"}', 'x{a="b"} offset 5m'],
)
def test_non_selectors_are_rejected(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)


def test_le_matcher_spellings() -> None:
    assert le_matcher(0.25).render() == 'le="0.25"'
    assert le_matcher(5.0).render() == 'le=~"5|5\\\\.0"'


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("5m", timedelta(minutes=5), "5m"),
        ("1h30m", timedelta(minutes=90), "1h30m"),
        ("28d", timedelta(days=28), "28d"),
        ("1w", timedelta(days=7), "7d"),
        ("250ms", timedelta(milliseconds=250), "250ms"),
        ("24h", timedelta(days=1), "1d"),
    ],
)
def test_durations(text: str, expected: timedelta, canonical: str) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == canonical


@pytest.mark.parametrize("text", ["", "5", "5x", "1M", "0m", "30m1h", "-5m", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_errors_carry_file_document_and_field() -> None:
    with pytest.raises(SpecErrors) as caught:
        _parse(NATIVE.replace("objective: 0.9\n", "objective: 0\n"), name="shop.yaml")
    (error,) = caught.value.errors
    assert (error.file, error.document, error.field) == ("shop.yaml", 2, "spec.objective")
    assert str(error) == (
        "shop.yaml#2: spec.objective: target must be strictly between 0 and 1, got 0.0"
    )
