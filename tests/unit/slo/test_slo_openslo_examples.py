"""OpenSLO v1 as written in the wild: the OpenSLO project's Prometheus examples (test data in
``data/openslo``), specs without a tier, and alert policies by reference."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from slo.promql import parse_selector
from slo.rules import rule_groups
from slo.spec import (
    SLO,
    PrometheusRatioSLI,
    PrometheusThresholdSLI,
    SpecErrors,
    SpecSource,
    TierPolicy,
    parse_slos,
    parse_specs,
)

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).parent / "data" / "openslo"


def _source(name: str) -> SpecSource:
    path = EXAMPLES / name
    return SpecSource(name=path.name, text=path.read_text())


def _errors(*sources: SpecSource) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        parse_slos(sources)
    return [str(e) for e in caught.value.errors]


# --- the OpenSLO project's examples -----------------------------------------------------------


def test_readme_ratio_metric_with_its_datasource_validates() -> None:
    parsed = parse_specs([_source("readme-ratio-metric.yaml")])
    (slo,) = parsed.slos
    assert slo.key == "localhost/localhost-availability"
    assert isinstance(slo.sli, PrometheusRatioSLI)
    # `sum(<selector>)` is read as the selector: the rules sum each window's rate anyway.
    assert slo.sli.good == parse_selector(
        'localhost_server_requests{code=~"2xx|3xx",host="*",instance="127.0.0.1:9090"}'
    )
    assert slo.sli.total.render() == (
        'localhost_server_requests{code="total",host="*",instance="127.0.0.1:9090"}'
    )
    assert slo.target == 0.98
    # The DataSource's connection details are reported as not used, never silently ignored.
    assert [str(n) for n in parsed.notes] == [
        "readme-ratio-metric.yaml#1: spec.connectionDetails: not used: the control plane "
        "queries the Prometheus or Elasticsearch of its own settings"
    ]


def test_sdk_threshold_sli_validates_and_serves_an_slo() -> None:
    slo_text = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: annotator-lag}
spec:
  service: annotator
  indicatorRef: annotator-throughput
  timeWindow: [{duration: 7d, isRolling: true}]
  budgetingMethod: Timeslices
  objectives: [{op: lt, value: 100, target: 0.99, timeSliceWindow: 1m}]
"""
    # The raw-ratio SLI of the same file is an error: keep only the threshold one here.
    text = (EXAMPLES / "slis.yaml").read_text()
    threshold_only = text[
        text.index("- apiVersion: openslo/v1\n  kind: SLI\n  metadata:\n    name: annotator") :
    ]
    (slo,) = parse_slos(
        [
            SpecSource(name="slis.yaml", text=threshold_only),
            SpecSource(name="slo.yaml", text=slo_text),
        ]
    )
    assert isinstance(slo.sli, PrometheusThresholdSLI)
    assert slo.sli.query.startswith("sum(min_over_time(kafka_consumergroup_lag{")
    assert (slo.sli.op, slo.sli.threshold) == ("lt", 100)


def test_sdk_raw_ratio_sli_fails_with_its_reason() -> None:
    assert _errors(_source("slis.yaml")) == [
        "slis.yaml#1: spec.ratioMetric: a raw ratio (rawType, raw) is not supported: give "
        "counters as good or bad, and total"
    ]


def test_sdk_slo_fails_on_its_noon_calendar_start() -> None:
    assert _errors(_source("slos.yaml")) == [
        "slos.yaml: spec.timeWindow[0].calendar.startTime: calendar windows start at midnight "
        "in their time zone, not at 12:00:00"
    ]


def test_sdk_slo_at_midnight_validates_and_notes_the_unused_op() -> None:
    text = (EXAMPLES / "slos.yaml").read_text().replace("12:00:00", "00:00:00")
    parsed = parse_specs([SpecSource(name="slos.yaml", text=text)])
    (slo,) = parsed.slos
    assert slo.key == "web/web-availability"
    assert slo.budgeting_method == "Timeslices"
    assert slo.time_slice_target == 0.95
    assert [str(n) for n in parsed.notes] == [
        "slos.yaml: spec.objectives[0].op: not used: only a thresholdMetric compares values with "
        "op and value (a ratio's time slice is good when its ratio reaches timeSliceTarget)"
    ]


def test_sdk_datasource_validates() -> None:
    parsed = parse_specs([_source("data-sources.yaml")])
    assert parsed.slos == ()
    assert [n.field for n in parsed.notes] == ["spec.connectionDetails"]


def test_sdk_alert_examples_fail_where_a_condition_cannot_be_a_burn_rate_alert() -> None:
    assert _errors(_source("alerting.yaml")) == [
        "alerting.yaml#4: spec.condition.op: a burn-rate alert fires when the burn rate exceeds "
        "the threshold: op must be gt or gte, got 'lte'",
        "alerting.yaml#5: spec.severity: severity 'warning' is not supported: use page or ticket "
        "(the severities of the generated alerts and of the Alertmanager routes)",
    ]


def test_unsupported_source_keeps_its_one_line_error() -> None:
    text = (EXAMPLES / "readme-ratio-metric.yaml").read_text()
    text = text.replace(
        "  type: Prometheus\n  connectionDetails", "  type: Datadog\n  connectionDetails"
    )
    assert _errors(SpecSource(name="x.yaml", text=text)) == [
        "x.yaml#1: spec.type: unsupported metric source type 'Datadog': expected Prometheus or "
        "Elasticsearch"
    ]


# --- the tier ---------------------------------------------------------------------------------

NO_TIER = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: {service}
  indicator:
    metadata: {name: checkout-errors}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{code=~"5.."}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: http_requests_total}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
"""

POLICY = TierPolicy(services={"checkout": ("critical", "capacity policy: services[checkout]")})


def _no_tier(service: str) -> SLO:
    (slo,) = parse_slos(
        [SpecSource(name="s.yaml", text=NO_TIER.replace("{service}", service))], tiers=POLICY
    )
    return slo


def test_spec_without_a_tier_gets_the_policy_tier_of_its_service() -> None:
    slo = _no_tier("checkout")
    assert (slo.tier, slo.tier_origin) == ("critical", "capacity policy: services[checkout]")
    # ... and the rules carry it.
    labels = rule_groups(slo)[0]["rules"][0]["labels"]
    assert labels == {"service": "checkout", "slo": "checkout-availability", "tier": "critical"}


def test_service_unknown_to_the_policy_gets_the_documented_default() -> None:
    slo = _no_tier("search")
    assert (slo.tier, slo.tier_origin) == ("standard", "default (standard)")


def test_a_tier_in_the_spec_wins_over_the_policy() -> None:
    text = NO_TIER.replace("{service}", "checkout").replace(
        "metadata: {name: checkout-availability}",
        "metadata: {name: checkout-availability, labels: {tier: batch}}",
    )
    (slo,) = parse_slos([SpecSource(name="s.yaml", text=text)], tiers=POLICY)
    assert (slo.tier, slo.tier_origin) == ("batch", "metadata.labels.tier")


def test_native_spec_without_a_tier_gets_the_policy_tier() -> None:
    text = """
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: availability}
spec:
  service: checkout
  objective: 0.99
  window: 28d
  sli: {ratio: {bad: 'x_total{ok="0"}', total: x_total}}
"""
    (slo,) = parse_slos([SpecSource(name="n.yaml", text=text)], tiers=POLICY)
    assert (slo.tier, slo.tier_origin) == ("critical", "capacity policy: services[checkout]")


# --- alert policies ---------------------------------------------------------------------------

POLICIES = """
- apiVersion: openslo/v1
  kind: AlertNotificationTarget
  metadata: {name: checkout-pager}
  spec: {target: pagerduty, description: The checkout on-call}
- apiVersion: openslo/v1
  kind: AlertCondition
  metadata: {name: fast-burn}
  spec:
    severity: page
    condition: {kind: burnrate, op: gt, threshold: 14.4, lookbackWindow: 1h, alertAfter: 2m}
- apiVersion: openslo/v1
  kind: AlertPolicy
  metadata: {name: checkout-fast}
  spec:
    alertWhenBreaching: true
    conditions: [{conditionRef: fast-burn}]
    notificationTargets: [{targetRef: checkout-pager}]
"""


def _with_policies(alert_policies: str) -> SLO:
    text = NO_TIER.replace("{service}", "checkout") + alert_policies
    (slo,) = parse_slos(
        [SpecSource(name="policies.yaml", text=POLICIES), SpecSource(name="slo.yaml", text=text)]
    )
    return slo


def _alerts(slo: SLO) -> dict[str, dict[str, object]]:
    return {r["alert"]: r for g in rule_groups(slo) for r in g["rules"] if "alert" in r}


def test_policy_by_reference_with_a_referenced_condition_replaces_the_defaults() -> None:
    slo = _with_policies("  alertPolicies: [{alertPolicyRef: checkout-fast}]\n")
    (window,) = slo.burn_rate_windows()
    assert (window.long, window.short, window.factor, window.for_) == (
        timedelta(hours=1),
        timedelta(minutes=5),
        14.4,
        timedelta(minutes=2),
    )
    alerts = _alerts(slo)
    # alertWhenNoData is false in the policy: no absent-data alert.
    assert sorted(alerts) == ["ErrorBudgetBurn1h5m"]
    burn = alerts["ErrorBudgetBurn1h5m"]
    assert burn["for"] == "2m"
    assert burn["labels"] == {
        "service": "checkout",
        "slo": "checkout-availability",
        "tier": "standard",
        "severity": "page",
        "alert_policy": "checkout-fast",
        "notify": "checkout-pager",
    }


def test_inline_policy_with_inline_target() -> None:
    slo = _with_policies(
        """  alertPolicies:
    - kind: AlertPolicy
      metadata: {name: slow}
      spec:
        alertWhenNoData: true
        conditions:
          - kind: AlertCondition
            metadata: {name: slow-burn}
            spec:
              severity: ticket
              condition: {kind: burnrate, op: gte, threshold: 1, lookbackWindow: 3d}
        notificationTargets:
          - kind: AlertNotificationTarget
            metadata: {name: checkout-tickets}
            spec: {target: email}
"""
    )
    alerts = _alerts(slo)
    assert sorted(alerts) == ["ErrorBudgetBurn3d6h", "SLODataAbsent"]
    rule = alerts["ErrorBudgetBurn3d6h"]
    assert ">= 1" in str(rule["expr"])
    assert rule["labels"]["notify"] == "checkout-tickets"  # type: ignore[index]


@pytest.mark.parametrize("empty", ["  alertPolicies: []\n", "  alertPolicies:\n"])
def test_empty_alert_policies_mean_no_alerts(empty: str) -> None:
    slo = _with_policies(empty)
    assert slo.burn_rate_windows() == ()
    assert _alerts(slo) == {}
    # ... while the recording rules are all there.
    records = [r for g in rule_groups(slo) for r in g["rules"] if "record" in r]
    assert len(records) == 20  # 7 windows x (ratio, burn) + 6 period and meta series


def test_no_alert_policies_key_keeps_the_default_windows() -> None:
    slo = _with_policies("")
    assert sorted(_alerts(slo)) == [
        "ErrorBudgetBurn1d2h",
        "ErrorBudgetBurn1h5m",
        "ErrorBudgetBurn3d6h",
        "ErrorBudgetBurn6h30m",
        "SLODataAbsent",
    ]


def test_dangling_condition_ref_names_its_field() -> None:
    policies = POLICIES.replace("conditionRef: fast-burn", "conditionRef: nope")
    text = NO_TIER.replace("{service}", "checkout") + (
        "  alertPolicies: [{alertPolicyRef: checkout-fast}]\n"
    )
    with pytest.raises(SpecErrors) as caught:
        parse_slos([SpecSource(name="p.yaml", text=policies), SpecSource(name="s.yaml", text=text)])
    assert [str(e) for e in caught.value.errors] == [
        "s.yaml: spec.conditions[0].conditionRef: no AlertCondition named 'nope' in the given files"
    ]
