"""Invalid specs: one clear line per problem naming the file and the field; exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlplane.commands.slo import app
from slo.spec import SpecErrors, SpecSource, parse_slos

pytestmark = pytest.mark.unit

NATIVE = """\
apiVersion: controlplane.slo/v1
kind: SLO
metadata:
  name: availability
spec:
  service: inventory
  tier: critical
  objective: 0.999
  window: 30d
  sli:
    ratio:
      bad: http_requests_total{code=~"5.."}
      total: http_requests_total
"""

LATENCY = """\
apiVersion: controlplane.slo/v1
kind: SLO
metadata:
  name: latency
spec:
  service: inventory
  tier: critical
  objective: 0.99
  window: 30d
  sli:
    latency:
      histogram: http_request_duration_seconds{route="/items"}
      buckets: [0.1, 0.25, 0.5]
      threshold: 300ms
"""

OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
  labels: {tier: critical}
spec:
  service: inventory
  indicator:
    metadata: {name: availability}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{code=~"5.."}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: http_requests_total}}}
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.999
"""

# (case id, file text, field path, part of the message)
CASES = [
    ("unknown kind", OPENSLO.replace("kind: SLO", "kind: Dashboard"), "kind", "unknown kind"),
    (
        "unknown native kind",
        NATIVE.replace("kind: SLO", "kind: SLI"),
        "kind",
        "unknown kind 'SLI'",
    ),
    (
        "unknown apiVersion",
        NATIVE.replace("controlplane.slo/v1", "sloth.slok.dev/v1"),
        "apiVersion",
        "unknown apiVersion",
    ),
    (
        "missing objective",
        NATIVE.replace("  objective: 0.999\n", ""),
        "spec.objective",
        "required field is missing",
    ),
    (
        "missing openslo objectives",
        OPENSLO.replace("  objectives:\n    - target: 0.999\n", ""),
        "spec.objectives",
        "required field is missing",
    ),
    (
        "target above 1",
        NATIVE.replace("0.999", "1.5"),
        "spec.objective",
        "strictly between 0 and 1, got 1.5",
    ),
    ("target of 1", NATIVE.replace("0.999", "1"), "spec.objective", "strictly between 0 and 1"),
    ("target of 0", NATIVE.replace("0.999", "0"), "spec.objective", "strictly between 0 and 1"),
    (
        "openslo target outside (0,1)",
        OPENSLO.replace("target: 0.999", "target: 99.9"),
        "spec.objectives[0].target",
        "strictly between 0 and 1",
    ),
    (
        "latency threshold without a bucket",
        LATENCY,
        "spec.sli.latency.threshold",
        "no histogram bucket with le=0.3 in http_request_duration_seconds; "
        "buckets are 0.1, 0.25, 0.5",
    ),
    ("bad duration", NATIVE.replace("30d", "30x"), "spec.window", "invalid duration '30x'"),
    (
        "bad openslo duration",
        OPENSLO.replace("duration: 30d", "duration: 30 days"),
        "spec.timeWindow[0].duration",
        "invalid duration '30 days'",
    ),
    (
        "unknown native field",
        NATIVE.replace("  window: 30d\n", "  window: 30d\n  windw: 28d\n"),
        "spec.windw",
        "unknown field",
    ),
    (
        "unsupported openslo field",
        OPENSLO.replace("counter: true", "counter: true\n        weight: 2"),
        "spec.indicator.spec.ratioMetric.weight",
        "unsupported field",
    ),
    (
        "raw ratio",
        OPENSLO.replace("counter: true", "counter: true\n        rawType: success"),
        "spec.indicator.spec.ratioMetric",
        "a raw ratio (rawType, raw) is not supported",
    ),
    (
        "unsupported metric source",
        OPENSLO.replace(
            "total: {metricSource: {type: Prometheus", "total: {metricSource: {type: Datadog"
        ),
        "spec.indicator.spec.ratioMetric.total.metricSource.type",
        "unsupported metric source type 'Datadog': expected Prometheus or Elasticsearch",
    ),
    (
        "not a selector",
        NATIVE.replace("total: http_requests_total", "total: sum(rate(http_requests_total[5m]))"),
        "spec.sli.ratio.total",
        "not a Prometheus series selector",
    ),
    (
        "not a tier",
        OPENSLO.replace("{tier: critical}", "{tier: gold}"),
        "metadata.labels.tier",
        "'gold' is not a tier: one of critical, standard, batch, reporting",
    ),
    (
        "unsupported openslo spec field",
        OPENSLO.replace("  indicator:\n", "  indicatorRef: nope\n  x-indicator:\n"),
        "spec.x-indicator",
        "unsupported field",
    ),
    (
        "invalid yaml",
        NATIVE.replace("  tier: critical", "  tier: [critical"),
        "line 8, column 12",
        "invalid YAML",
    ),
    (
        "threshold SLI counted as occurrences",
        NATIVE[: NATIVE.index("    ratio:")] + "    threshold: {query: up, op: gte, threshold: 1}",
        "spec.budgeting",
        "use Timeslices",
    ),
]


@pytest.mark.parametrize(
    ("text", "field", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_invalid_spec_gives_one_line_naming_file_and_field(
    text: str, field: str, message: str
) -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_slos([SpecSource(name="specs/bad.yaml", text=text)])
    assert len(caught.value.errors) == 1, [str(e) for e in caught.value.errors]
    (error,) = caught.value.errors
    assert error.file == "specs/bad.yaml"
    assert error.field == field
    assert message in error.message
    line = str(error)
    assert line.startswith(f"specs/bad.yaml: {field}: ")
    assert "\n" not in line


DANGLING = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: availability, labels: {tier: critical}}
spec:
  service: inventory
  indicatorRef: nope
  timeWindow: [{duration: 30d}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
"""


def test_dangling_references_name_the_referencing_field() -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_slos([SpecSource(name="a.yaml", text=DANGLING)])
    assert [str(e) for e in caught.value.errors] == [
        "a.yaml: spec.indicatorRef: no SLI named 'nope' in the given files"
    ]


def test_duplicate_slos_are_rejected() -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_slos([SpecSource(name="a.yaml", text=NATIVE), SpecSource(name="b.yaml", text=NATIVE)])
    assert [str(e) for e in caught.value.errors] == [
        "b.yaml: metadata.name: duplicate SLO 'inventory/availability' (first defined in a.yaml)"
    ]


def test_problems_in_several_files_are_all_reported() -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_slos(
            [
                SpecSource(name="a.yaml", text=LATENCY),
                SpecSource(name="b.yaml", text=NATIVE.replace("30d", "month")),
            ]
        )
    assert [(e.file, e.field) for e in caught.value.errors] == [
        ("a.yaml", "spec.sli.latency.threshold"),
        ("b.yaml", "spec.window"),
    ]


@pytest.mark.parametrize(
    ("text", "field"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_cli_validate_exits_2_with_one_line(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}: {field}: ")
    assert lines[1:] == ["1 problem(s) found"]
