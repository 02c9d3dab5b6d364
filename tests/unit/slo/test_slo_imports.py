"""Sloth ``prometheus/v1`` files and Pyrra ``ServiceLevelObjective`` objects: read as OpenSLO,
converted to OpenSLO, with every field either mapped or reported by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controlplane.commands.slo import app
from slo.rules import generate_rule_files, render_rule_file
from slo.spec import (
    SLO,
    SpecErrors,
    SpecSource,
    convert_to_openslo,
    parse_slos,
    parse_specs,
)

pytestmark = pytest.mark.unit

SLOTH = """\
version: "prometheus/v1"
service: "inventory"
labels:
  owner: "inventory-team"
slos:
  - name: "api-availability"
    objective: 99.9
    description: "Non-5xx answers over all answers."
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="inventory",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="inventory"}[{{.window}}]))
    alerting:
      name: InventoryHighErrorRate
      labels:
        category: "availability"
      annotations:
        runbook: "https://runbooks.example.test/inventory/availability"
        summary: "High error rate on inventory"
      page_alert:
        labels:
          severity: critical
      ticket_alert:
        labels:
          severity: warning
  - name: "read-latency"
    objective: 99
    sli:
      events:
        error_query: |
          (
            sum(rate(http_request_duration_seconds_count{job="inventory"}[{{ .window }}]))
            -
            sum(rate(http_request_duration_seconds_bucket{job="inventory",le="0.25"}[{{.window}}]))
          )
        total_query: sum(rate(http_request_duration_seconds_count{job="inventory"}[{{ .window }}]))
    alerting:
      page_alert:
        disable: true
"""

# What a person would write in OpenSLO for the same two SLOs (the alerts of read-latency: the
# ticket pair of the default set, as Sloth's `page_alert: disable` leaves them).
SLOTH_AS_OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-availability
  annotations: {runbook_url: "https://runbooks.example.test/inventory/availability"}
spec:
  service: inventory
  indicator:
    metadata: {name: api-availability}
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{job="inventory",code=~"5.."}'}
        total:
          metricSource: {type: Prometheus, spec: {query: 'http_requests_total{job="inventory"}'}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: read-latency}
spec:
  service: inventory
  indicator:
    metadata: {name: read-latency}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec: {query: 'http_request_duration_seconds_bucket{job="inventory",le="0.25"}'}
        total:
          metricSource:
            type: Prometheus
            spec: {query: 'http_request_duration_seconds_count{job="inventory"}'}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
  alertPolicies:
    - kind: AlertPolicy
      metadata: {name: read-latency-ticket-1d}
      spec:
        alertWhenNoData: true
        conditions:
          - kind: AlertCondition
            metadata: {name: read-latency-ticket-1d}
            spec:
              severity: ticket
              condition: {kind: burnrate, op: gt, threshold: 3, lookbackWindow: 1d}
    - kind: AlertPolicy
      metadata: {name: read-latency-ticket-3d}
      spec:
        alertWhenNoData: true
        conditions:
          - kind: AlertCondition
            metadata: {name: read-latency-ticket-3d}
            spec:
              severity: ticket
              condition: {kind: burnrate, op: gt, threshold: 1, lookbackWindow: 3d}
"""

PYRRA = """\
apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: api-errors
  namespace: inventory
  labels:
    prometheus: k8s
    role: alert-rules
spec:
  target: "99.5"
  window: 4w
  description: Inventory API answers without a 5xx.
  indicator:
    ratio:
      errors:
        metric: http_requests_total{job="inventory",code=~"5.."}
      total:
        metric: http_requests_total{job="inventory"}
---
apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: api-latency
  namespace: inventory
spec:
  target: "99"
  window: 2w
  indicator:
    latency:
      success:
        metric: http_request_duration_seconds_bucket{job="inventory",le="0.25"}
      total:
        metric: http_request_duration_seconds_count{job="inventory"}
  alerting:
    absent: false
"""

PYRRA_AS_OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-errors}
spec:
  description: Inventory API answers without a 5xx.
  service: inventory
  indicator:
    metadata: {name: api-errors}
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{job="inventory",code=~"5.."}'}
        total:
          metricSource: {type: Prometheus, spec: {query: 'http_requests_total{job="inventory"}'}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{targetPercent: 99.5}]
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: no-absent-alert-fast}
spec:
  alertWhenNoData: false
  conditions:
    - kind: AlertCondition
      metadata: {name: fast}
      spec:
        severity: page
        condition: {kind: burnrate, op: gt, threshold: 6.72, lookbackWindow: 1h}
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: no-absent-alert-slow}
spec:
  conditions:
    - kind: AlertCondition
      metadata: {name: slow}
      spec:
        severity: page
        condition: {kind: burnrate, op: gt, threshold: 2.8, lookbackWindow: 6h}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-latency}
spec:
  service: inventory
  indicator:
    metadata: {name: api-latency}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec: {query: 'http_request_duration_seconds_bucket{job="inventory",le="0.25"}'}
        total:
          metricSource:
            type: Prometheus
            spec: {query: 'http_request_duration_seconds_count{job="inventory"}'}
  timeWindow: [{duration: 14d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
  alertPolicies:
    - {alertPolicyRef: no-absent-alert-fast}
    - {alertPolicyRef: no-absent-alert-slow}
    - kind: AlertPolicy
      metadata: {name: no-absent-alert-1d}
      spec:
        conditions:
          - kind: AlertCondition
            metadata: {name: 1d}
            spec:
              severity: ticket
              condition: {kind: burnrate, op: gt, threshold: 1.4, lookbackWindow: 1d}
    - kind: AlertPolicy
      metadata: {name: no-absent-alert-3d}
      spec:
        conditions:
          - kind: AlertCondition
            metadata: {name: 3d}
            spec:
              severity: ticket
              condition: {kind: burnrate, op: gt, threshold: 0.4666666666666667, lookbackWindow: 3d}
"""


def _parse(text: str, name: str = "in.yaml") -> tuple[SLO, ...]:
    return parse_slos([SpecSource(name=name, text=text)])


def _without_policy_labels(rules: str) -> str:
    """Alert policy names are free: the rules are compared without their label."""
    return "\n".join(line for line in rules.splitlines() if "alert_policy:" not in line)


def _rules(slos: tuple[SLO, ...]) -> str:
    return _without_policy_labels(render_rule_file(slos))


def test_sloth_file_generates_the_rules_of_its_openslo_equivalent() -> None:
    sloth = _parse(SLOTH)
    written = _parse(SLOTH_AS_OPENSLO)
    assert [s.key for s in sloth] == ["inventory/api-availability", "inventory/read-latency"]
    assert _rules(sloth) == _rules(written)
    latency = next(s for s in sloth if s.name == "read-latency")
    assert [w.severity for w in latency.burn_rate_windows()] == ["ticket", "ticket"]


def test_sloth_converts_to_openslo_that_generates_the_same_rules() -> None:
    (conversion,) = convert_to_openslo([SpecSource(name="sloth.yml", text=SLOTH)])
    converted = _parse(conversion.render(), name="sloth.openslo.yaml")
    assert render_rule_file(converted) == render_rule_file(_parse(SLOTH))
    assert _rules(converted) == _rules(_parse(SLOTH_AS_OPENSLO))


def test_sloth_fields_not_carried_over_are_reported_by_path() -> None:
    parsed = parse_specs([SpecSource(name="sloth.yml", text=SLOTH)])
    assert [n.field for n in parsed.notes] == [
        "slos[0].alerting.name",
        "slos[0].alerting.labels.category",
        "slos[0].alerting.annotations.summary",
        "slos[0].alerting.page_alert.labels.severity",
        "slos[0].alerting.ticket_alert.labels.severity",
    ]
    # runbook maps to the runbook_url the alerts carry; the owner label to metadata.labels.
    availability = parsed.slos[0]
    assert (
        availability.alerting.runbook_url == "https://runbooks.example.test/inventory/availability"
    )


def test_pyrra_objects_generate_the_rules_of_their_openslo_equivalent() -> None:
    pyrra = _parse(PYRRA)
    written = _parse(PYRRA_AS_OPENSLO)
    assert [s.key for s in pyrra] == ["inventory/api-errors", "inventory/api-latency"]
    assert _rules(pyrra) == _rules(written)
    # absent: false keeps the burn-rate alerts and drops the absent-data one
    latency_alerts = [
        r["alert"]
        for f in generate_rule_files(p for p in pyrra if p.name == "api-latency")
        for r in yaml.safe_load(f.content)["groups"][0]["rules"]
        if "alert" in r
    ]
    assert latency_alerts == [
        "ErrorBudgetBurn1h5m",
        "ErrorBudgetBurn6h30m",
        "ErrorBudgetBurn1d2h",
        "ErrorBudgetBurn3d6h",
    ]


def test_pyrra_converts_to_openslo_that_generates_the_same_rules() -> None:
    (conversion,) = convert_to_openslo([SpecSource(name="pyrra.yaml", text=PYRRA)])
    assert conversion.notes == ()
    converted = _parse(conversion.render(), name="pyrra.openslo.yaml")
    assert render_rule_file(converted) == render_rule_file(_parse(PYRRA))


def test_pyrra_object_without_namespace_is_in_the_default_namespace() -> None:
    text = PYRRA.split("---")[0].replace("  namespace: inventory\n", "")
    (slo,) = _parse(text)
    assert slo.service == "default"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            SLOTH.replace(
                "      events:\n        error_query: sum(rate(http_requests_total",
                "      raw:\n        error_ratio_query: x\n      events_:\n        error_query: s",
                1,
            ),
            "in.yaml: slos[0].sli.events_: unknown field",
        ),
        (
            SLOTH.replace(
                '        error_query: sum(rate(http_requests_total{job="inventory",code=~"5.."}'
                "[{{.window}}]))\n        total_query: sum(rate(http_requests_total"
                '{job="inventory"}[{{.window}}]))\n',
                "        error_query: x\n        total_query: y\n",
            ).replace(
                "      events:\n        error_query: x\n        total_query: y\n",
                "      plugin: {id: sloth-common/availability}\n",
            ),
            "in.yaml: slos[0].sli.plugin: not supported: give sli.events (error_query and "
            "total_query) so that the control plane writes the ratio itself",
        ),
        (
            SLOTH.replace("[{{.window}}]))\n        total_query", "[5m]))\n        total_query"),
            "in.yaml: slos[0].sli.events.error_query: not supported: write it as "
            "sum(rate(<series selector>[{{.window}}])), or for error_query the total minus "
            "such a sum",
        ),
        (
            SLOTH.replace("objective: 99.9", "objective: 100"),
            "in.yaml: slos[0].objective: must be a percentage strictly between 0 and 100, "
            "got 100.0",
        ),
        (
            PYRRA.replace(
                "      total:\n        metric: http_requests_total",
                "      grouping: [route]\n      total:\n        metric: http_requests_total",
            ),
            "in.yaml#1: spec.indicator.ratio.grouping: not supported: one SLO per label value; "
            "write one SLO per group, or none",
        ),
        (
            PYRRA.replace('le="0.25"', 'le=~"0.25"'),
            "in.yaml#2: spec.indicator.latency.success.metric: must select one histogram bucket "
            'with le="<seconds>"',
        ),
        (
            PYRRA.replace('target: "99"', 'target: "ninety-nine"'),
            "in.yaml#2: spec.target: not a number: 'ninety-nine'",
        ),
    ],
    ids=[
        "sloth unknown field",
        "sloth plugin sli",
        "sloth fixed window",
        "sloth 100 %",
        "pyrra grouping",
        "pyrra latency without le",
        "pyrra target",
    ],
)
def test_what_cannot_be_imported_is_a_one_line_error(text: str, error: str) -> None:
    with pytest.raises(SpecErrors) as caught:
        _parse(text)
    assert [str(e) for e in caught.value.errors] == [error]


def test_pyrra_alerting_fields_are_reported_or_mapped() -> None:
    text = PYRRA.split("---")[0] + (
        "  alerting:\n    burnrates: false\n    name: InventoryBurn\n"
        "  performanceOverAccuracy: true\nstatus: {type: PrometheusRule}\n"
    )
    parsed = parse_specs([SpecSource(name="p.yaml", text=text)])
    (slo,) = parsed.slos
    assert slo.burn_rate_windows() == ()
    assert not slo.alerting.no_data_alert
    assert [n.field for n in parsed.notes] == [
        "status",
        "spec.performanceOverAccuracy",
        "spec.alerting.name",
        "spec.alerting.absent",
    ]


# --- the command line -------------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_convert_writes_openslo_and_lists_what_is_not_carried_over(tmp_path: Path) -> None:
    (tmp_path / "sloth.yml").write_text(SLOTH)
    (tmp_path / "pyrra.yaml").write_text(PYRRA)
    out = tmp_path / "openslo"
    code, stdout, stderr = _run(
        "convert",
        str(tmp_path / "sloth.yml"),
        str(tmp_path / "pyrra.yaml"),
        "--to",
        "openslo",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["pyrra.openslo.yaml", "sloth.openslo.yaml"]
    assert (
        f"wrote {out / 'sloth.openslo.yaml'}: 2 SLO(s) from Sloth prometheus/v1, "
        "5 field(s) not carried over" in stdout
    )
    assert f"note: {tmp_path / 'sloth.yml'}: slos[0].alerting.name: not carried over" in stderr
    written = (out / "sloth.openslo.yaml").read_text()
    assert written.startswith("# OpenSLO v1, converted from Sloth prometheus/v1")
    # The written files validate, and generate what the originals generate.
    code, _, stderr = _run("validate", str(out))
    assert code == 0, stderr
    from_openslo = parse_slos(
        [SpecSource(name=str(p), text=p.read_text()) for p in sorted(out.iterdir())]
    )
    originals = parse_slos([SpecSource(name="a", text=SLOTH), SpecSource(name="b", text=PYRRA)])
    assert [f.content for f in generate_rule_files(from_openslo)] == [
        f.content for f in generate_rule_files(originals)
    ]


def test_convert_to_stdout_and_refusing_other_formats(tmp_path: Path) -> None:
    (tmp_path / "pyrra.yaml").write_text(PYRRA)
    code, stdout, _ = _run("convert", str(tmp_path / "pyrra.yaml"))
    assert code == 0
    assert stdout.count("kind: SLO") == 2
    code, _, stderr = _run(
        "convert", str(Path(__file__).parents[3] / "slo" / "specs" / "inventory-api.yaml")
    )
    assert code == 2
    assert "(document): not a Sloth or Pyrra spec: nothing to convert" in stderr
    code, _, stderr = _run("convert", str(tmp_path / "pyrra.yaml"), "--to", "sloth")
    assert code == 2
    assert "the only target format is openslo" in stderr


def test_validate_prints_where_each_tier_comes_from(tmp_path: Path) -> None:
    (tmp_path / "sloth.yml").write_text(SLOTH.replace('service: "inventory"', 'service: "search"'))
    (tmp_path / "pyrra.yaml").write_text(PYRRA)
    result = CliRunner().invoke(app, ["validate", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "critical" in rows["inventory/api-errors"]
    assert "capacity policy capacity.yaml: services[inventory].tier" in rows["inventory/api-errors"]
    assert "default (standard)" in rows["search/api-availability"]


def test_validate_reads_the_tier_from_the_given_policy_files(tmp_path: Path) -> None:
    policies = Path(__file__).parents[3] / "controlplane" / "policies"
    capacity = tmp_path / "capacity.yaml"
    capacity.write_text(
        (policies / "capacity.yaml").read_text().replace("- name: analytics", "- name: search")
    )
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "sloth.yml").write_text(
        SLOTH.replace('service: "inventory"', 'service: "search"')
    )
    result = CliRunner().invoke(
        app,
        ["validate", str(tmp_path / "specs"), "--capacity-policy", str(capacity)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.stderr
    assert "reporting" in result.stdout
    assert "capacity policy capacity.yaml: services[search].tier" in result.stdout
    capacity.write_text("apiVersion: controlplane/v1\nkind: CapacityPolicy\n")
    result = CliRunner().invoke(
        app, ["validate", str(tmp_path / "specs"), "--capacity-policy", str(capacity)]
    )
    assert result.exit_code == 2
    assert f"{capacity}: metadata: Field required" in result.stderr
