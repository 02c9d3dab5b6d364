"""The generated Prometheus rules, checked and unit-tested by the real ``promtool``.

* ``promtool check rules`` accepts every committed file in ``alerts/rules/`` and every file
  generated from the specs (inventory SLOs plus time-slice and alert-policy variants).
* ``promtool test rules`` proves, for each burn-rate alert of each inventory SLO, that it fires
  when both of its windows burn above the factor and stays silent when only the long or only the
  short window does; and that the absent-data alert fires once the SLI's series disappear.

The promtool test files are generated here from the same SLO models, so a new window pair or a
new SLO is covered without writing YAML by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from slo.durations import format_duration
from slo.maths import BurnRateWindow
from slo.queries import format_number
from slo.rules import (
    BURN_RATE,
    absent_alert_name,
    burn_alert_name,
    generate_rule_files,
    render_rule_file,
    rule_groups,
)
from slo.spec import SLO, SpecSource, parse_slos

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "slo" / "specs"
RULES = REPO / "alerts" / "rules"
STEP = timedelta(minutes=1)
TRAFFIC = 10_000  # events per step in every scenario: whole numbers of bad events below

Role = Literal["good", "bad", "total"]

# Concrete series as the inventory app exports them, and which events each counter counts.
# Every Prometheus-backed SLO in slo/specs must have an entry (checked below).
SERIES: dict[str, tuple[tuple[str, Role], ...]] = {
    "api-availability": (
        (
            'http_server_request_duration_seconds_count{service="inventory",route="/items",'
            'method="GET",status_code="200"}',
            "good",
        ),
        (
            'http_server_request_duration_seconds_count{service="inventory",route="/items",'
            'method="POST",status_code="503"}',
            "bad",
        ),
    ),
    "read-latency": (
        (
            'http_server_request_duration_seconds_bucket{service="inventory",route="/items",'
            'method="GET",status_code="200",le="0.25"}',
            "good",
        ),
        (
            'http_server_request_duration_seconds_count{service="inventory",route="/items",'
            'method="GET",status_code="200"}',
            "total",
        ),
    ),
    "ingestion-freshness": (
        ('inventory_movements_apply_lag_seconds_bucket{le="5.0"}', "good"),
        ("inventory_movements_apply_lag_seconds_count", "total"),
    ),
    "worker-apply-success": (
        ('inventory_worker_apply_total{outcome="applied"}', "good"),
        ('inventory_worker_apply_total{outcome="failed"}', "bad"),
    ),
}


def _required() -> bool:
    def flag(name: str) -> bool:
        return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}

    return flag("CI") or flag("REQUIRE_BACKENDS")


def _promtool() -> str:
    """Path of promtool. Missing, it fails the test in CI or with REQUIRE_BACKENDS=1, else skips."""
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not on PATH (Debian package prometheus; `make bootstrap` installs it)"
        if _required():
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _run(*args: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run(
        [_promtool(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(map(str, args))}:\n{result.stdout}\n{result.stderr}"
    )


def _load(*sources: SpecSource) -> tuple[SLO, ...]:
    files = [SpecSource(name=str(p), text=p.read_text()) for p in sorted(SPECS.glob("*.yaml"))]
    return parse_slos(sources or files)


INVENTORY = tuple(s for s in _load() if s.backend == "prometheus")


# --- promtool check rules -------------------------------------------------------------------


def test_committed_rule_files_pass_promtool_check() -> None:
    files = sorted(RULES.glob("*.rules.yml"))
    assert files, "no generated rule files in alerts/rules/"
    for path in files:
        _run("check", "rules", path)


VARIANTS = """
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: p99-under-300ms}
spec:
  service: variants
  tier: standard
  objective: 0.95
  window: 28d
  budgeting: timeslices
  slice: 1m
  min_events: 60
  sli:
    threshold:
      query: >-
        histogram_quantile(0.99,
        sum by (le) (rate(http_server_request_duration_seconds_bucket[1m])))
      op: lt
      threshold: 0.3
---
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: availability-by-minute}
spec:
  service: variants
  tier: batch
  objective: 0.99
  window: {calendar: month, timezone: Europe/Paris}
  budgeting: ratio_timeslices
  slice: 5m
  sli:
    ratio:
      good: jobs_total{outcome="ok"}
      total: jobs_total
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: good-minutes
  labels: {tier: reporting}
  annotations: {runbook_url: "https://runbooks.example.test/good-minutes"}
spec:
  service: variants
  indicator:
    metadata: {name: good-minutes}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'reports_total{status="failed"}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: reports_total}}}
  timeWindow: [{duration: 1w, isRolling: false}]
  budgetingMethod: Timeslices
  objectives: [{target: 0.9, timeSliceTarget: 0.95, timeSliceWindow: 10m}]
  alertPolicies:
    - kind: AlertPolicy
      metadata: {name: fast}
      spec:
        alertWhenNoData: true
        conditions:
          - kind: AlertCondition
            metadata: {name: fast-burn}
            spec:
              severity: ticket
              condition: {kind: burnrate, op: gte, threshold: 4, lookbackWindow: 4h, alertAfter: 5m}
"""


def test_rules_for_every_sli_kind_pass_promtool_check(tmp_path: Path) -> None:
    slos = [*INVENTORY, *_load(SpecSource(name="variants.yaml", text=VARIANTS))]
    files = generate_rule_files(slos)
    assert {f.service for f in files} == {"inventory", "variants"}
    for rule_file in files:
        path = tmp_path / rule_file.filename
        path.write_text(rule_file.content)
        _run("check", "rules", path)


# --- promtool test rules --------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """``steps`` steps of constant traffic with ``bad`` bad events per step."""

    steps: int
    bad: int


def _bad_per_step(slo: SLO, window: BurnRateWindow, multiple: float) -> int:
    """Bad events per step whose error ratio is ``multiple`` times the alert threshold."""
    ratio = float(slo.error_budget_decimal) * window.factor * multiple
    assert ratio <= 1, f"{slo.key}: factor {window.factor} cannot be exceeded"
    return round(ratio * TRAFFIC)


def _values(segments: list[Segment], role: Role) -> str:
    """promtool series notation for a counter counting ``role`` events."""
    tokens = ["0"]
    value = 0
    for segment in segments:
        per_step = {"good": TRAFFIC - segment.bad, "bad": segment.bad, "total": TRAFFIC}[role]
        tokens.append(f"{value + per_step}+{per_step}x{segment.steps - 1}")
        value += per_step * segment.steps
    return " ".join(tokens)


def _input_series(slo: SLO, segments: list[Segment]) -> list[dict[str, str]]:
    return [{"series": name, "values": _values(segments, role)} for name, role in SERIES[slo.name]]


def _alert_rules(slo: SLO) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule_groups(slo) for r in g["rules"] if "alert" in r}


def _expected(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]


def _burn_check(slo: SLO, window: timedelta, factor: float, at: str, above: bool) -> dict[str, Any]:
    labels = f'{{service="{slo.service}", slo="{slo.name}", tier="{slo.tier}"}}'
    name = BURN_RATE.format(window=format_duration(window))
    return {
        "expr": f'{name}{{slo="{slo.name}"}} > bool {format_number(factor)}',
        "eval_time": at,
        "exp_samples": [{"labels": labels, "value": 1 if above else 0}],
    }


def _step(window: BurnRateWindow) -> timedelta:
    """Sample and evaluation step for one pair: six steps per short window, at least 1m."""
    return max(STEP, (window.short / 6) // STEP * STEP)


def _burn_tests(slo: SLO, window: BurnRateWindow) -> dict[str, Any]:
    """A promtool test file for one alert: three scenarios evaluated at the same instant."""
    rule = _alert_rules(slo)[burn_alert_name(window)]
    step = _step(window)
    long, short = int(window.long / step), int(window.short / step)
    end = long + 10  # the long window is full of data at the evaluation instant
    at = format_duration(end * step)
    hot = _bad_per_step(slo, window, 2)
    scenarios: list[tuple[str, list[Segment], bool, bool]] = [
        ("both windows burn", [Segment(end, hot)], True, True),
        (
            "only the long window burns",
            [Segment(end - short - 2, TRAFFIC), Segment(short + 2, 0)],
            True,
            False,
        ),
        (
            "only the short window burns",
            [Segment(end - short - 1, 0), Segment(short + 1, hot)],
            False,
            True,
        ),
    ]
    tests: list[dict[str, Any]] = []
    for title, segments, long_hot, short_hot in scenarios:
        fires = long_hot and short_hot
        tests.append(
            {
                "name": f"{slo.name} {rule['alert']}: {title}",
                "interval": format_duration(step),
                "input_series": _input_series(slo, segments),
                "promql_expr_test": [
                    _burn_check(slo, window.long, window.factor, at, long_hot),
                    _burn_check(slo, window.short, window.factor, at, short_hot),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": rule["alert"],
                        "exp_alerts": _expected(rule) if fires else [],
                    }
                ],
            }
        )
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": format_duration(step),
        "tests": tests,
    }


def _absent_test(slo: SLO) -> dict[str, Any]:
    rule = _alert_rules(slo)[absent_alert_name()]
    return {
        "name": f"{slo.name} {rule['alert']}: series disappear after 60m",
        "interval": "1m",
        "input_series": _input_series(slo, [Segment(60, 0)]),
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": rule["alert"], "exp_alerts": []},
            {"eval_time": "70m", "alertname": rule["alert"], "exp_alerts": []},
            {"eval_time": "90m", "alertname": rule["alert"], "exp_alerts": _expected(rule)},
        ],
    }


def test_every_prometheus_slo_has_test_series() -> None:
    assert {s.name for s in INVENTORY} == set(SERIES), "add the SLO's series to SERIES"


@pytest.mark.parametrize("slo", INVENTORY, ids=[s.name for s in INVENTORY])
def test_alerts_fire_only_when_both_windows_burn(tmp_path: Path, slo: SLO) -> None:
    windows = slo.burn_rate_windows()
    assert [burn_alert_name(w) for w in windows] == [
        "ErrorBudgetBurn1h5m",
        "ErrorBudgetBurn6h30m",
        "ErrorBudgetBurn1d2h",
        "ErrorBudgetBurn3d6h",
    ]
    (tmp_path / "rules.yml").write_text(render_rule_file([slo]))
    for window in windows:
        path = tmp_path / f"test-{burn_alert_name(window)}.yml"
        path.write_text(yaml.safe_dump(_burn_tests(slo, window), sort_keys=False, width=1000))
        _run("test", "rules", path.name, cwd=tmp_path)


@pytest.mark.parametrize("slo", INVENTORY, ids=[s.name for s in INVENTORY])
def test_absent_data_alert_fires_when_series_disappear(tmp_path: Path, slo: SLO) -> None:
    (tmp_path / "rules.yml").write_text(render_rule_file([slo]))
    document = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [_absent_test(slo)],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
    _run("test", "rules", "test.yml", cwd=tmp_path)


# --- OpenSLO alert policies -----------------------------------------------------------------

POLICY_SPECS = """
- apiVersion: openslo/v1
  kind: AlertNotificationTarget
  metadata: {name: checkout-pager}
  spec: {target: pagerduty}
- apiVersion: openslo/v1
  kind: AlertCondition
  metadata: {name: fast-burn}
  spec:
    severity: page
    condition: {kind: burnrate, op: gt, threshold: 14.4, lookbackWindow: 1h, alertAfter: 5m}
- apiVersion: openslo/v1
  kind: AlertPolicy
  metadata: {name: checkout-fast}
  spec:
    conditions: [{conditionRef: fast-burn}]
    notificationTargets: [{targetRef: checkout-pager}]
- apiVersion: openslo/v1
  kind: SLO
  metadata: {name: checkout-availability}
  spec:
    service: checkout
    indicator:
      metadata: {name: checkout-errors}
      spec:
        ratioMetric:
          counter: true
          bad:
            metricSource: {type: Prometheus, spec: {query: 'checkout_requests_total{code="500"}'}}
          total: {metricSource: {type: Prometheus, spec: {query: sum(checkout_requests_total)}}}
    timeWindow: [{duration: 30d, isRolling: true}]
    budgetingMethod: Occurrences
    objectives: [{target: 0.999}]
    alertPolicies:
      - alertPolicyRef: checkout-fast
      - kind: AlertPolicy
        metadata: {name: checkout-slow}
        spec:
          alertWhenNoData: true
          conditions:
            - kind: AlertCondition
              metadata: {name: slow-burn}
              spec:
                severity: ticket
                condition: {kind: burnrate, op: gte, threshold: 1, lookbackWindow: 3d}
"""


def test_alert_policy_conditions_pass_promtool_check(tmp_path: Path) -> None:
    (slo,) = _load(SpecSource(name="policies.yaml", text=POLICY_SPECS))
    path = tmp_path / "checkout.rules.yml"
    path.write_text(render_rule_file([slo]))
    _run("check", "rules", path)
    assert [burn_alert_name(w) for w in slo.burn_rate_windows()] == [
        "ErrorBudgetBurn1h5m",
        "ErrorBudgetBurn3d6h",
    ]


def test_alert_policy_condition_fires_after_its_alert_after(tmp_path: Path) -> None:
    """From minute 120, 5 % of the requests fail (burn 50 against a factor of 14.4): the 5 m
    window burns from minute 122, the 1 h window from minute 138 (18 bad minutes out of 60:
    1.5 % > 1.44 %); ``alertAfter: 5m`` keeps the alert pending until minute 143."""
    (slo,) = _load(SpecSource(name="policies.yaml", text=POLICY_SPECS))
    (tmp_path / "rules.yml").write_text(render_rule_file([slo]))
    rule = _alert_rules(slo)["ErrorBudgetBurn1h5m"]
    assert rule["labels"]["alert_policy"] == "checkout-fast"
    assert rule["labels"]["notify"] == "checkout-pager"
    fired = [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]
    document = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "fast burn from minute 120, alertAfter 5m",
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'checkout_requests_total{code="200"}',
                        "values": "0+10000x120 1209500+9500x179",
                    },
                    {
                        "series": 'checkout_requests_total{code="500"}',
                        "values": "0x120 500+500x179",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "137m", "alertname": rule["alert"], "exp_alerts": []},
                    {"eval_time": "142m", "alertname": rule["alert"], "exp_alerts": []},
                    {"eval_time": "144m", "alertname": rule["alert"], "exp_alerts": fired},
                    {"eval_time": "170m", "alertname": rule["alert"], "exp_alerts": fired},
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
    _run("test", "rules", "test.yml", cwd=tmp_path)
