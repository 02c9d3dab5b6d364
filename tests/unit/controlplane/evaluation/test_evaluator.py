"""The evaluator on sources that answer from memory (the real Prometheus / Elasticsearch runs
are in tests/integration/controlplane/evaluation): plans, maths from recorded error ratios,
fallbacks, and "no data" with the reason whenever a source fails."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from controlplane.evaluation.evaluator import (
    BATCHED,
    ELASTICSEARCH,
    RAW,
    SLOEvaluator,
    batched_windows,
    plan_for,
)
from controlplane.sources.base import (
    NoData,
    SourceQueryError,
    SourceUnavailable,
    Vector,
)
from tests.unit.controlplane.evaluation.memory import (
    AT,
    EVERY_WINDOW,
    MemoryLogs,
    MemoryPrometheus,
    recorded,
)
from tests.unit.controlplane.evaluation.specs import ELASTICSEARCH_SLI, native, slos

pytestmark = pytest.mark.unit


def test_plans_batch_what_the_rules_can_answer() -> None:
    rolling, calendar, min_events, logs = slos(
        native("rolling"),
        native("calendar", window="calendar"),
        native("min-events", min_events=50),
        native("logs", sli=ELASTICSEARCH_SLI),
    )
    assert plan_for(rolling) == BATCHED
    assert plan_for(calendar) == RAW  # the exact calendar budget needs counts since its start
    assert plan_for(min_events) == RAW  # ratios alone cannot tell 49 events from 50
    assert plan_for(logs) == ELASTICSEARCH
    assert plan_for(rolling, shared_names=frozenset({"rolling"})) == RAW
    assert [w.total_seconds() / 60 for w in batched_windows(rolling)] == [
        5,
        30,
        60,
        120,
        360,
        1440,
        4320,
        43200,
    ]


def test_two_services_with_one_slo_name_are_not_batched() -> None:
    """The batched read keys series by their ``slo`` label alone."""
    a, b, c = slos(native("latency", service="a"), native("latency", service="b"), native("avail"))
    evaluator = SLOEvaluator(slos=[a, b, c], metrics=MemoryPrometheus(), logs=None)
    assert evaluator.plans == {"a/latency": RAW, "b/latency": RAW, "inventory/avail": BATCHED}
    # Stored under their name, the `slo` label of their series and alerts, unless it is shared.
    assert evaluator.ids == {
        "a/latency": "a:latency",
        "b/latency": "b:latency",
        "inventory/avail": "avail",
    }


def test_recorded_error_ratios_give_sli_budget_burn_per_window_and_alerts() -> None:
    (slo,) = slos(native("availability"))
    ratios = dict.fromkeys(EVERY_WINDOW, 0.0001)
    ratios.update(w30d=0.0005, w1h=0.02, w5m=0.03)
    prometheus = MemoryPrometheus(recorded=recorded("availability", **ratios))
    cycle = SLOEvaluator(slos=[slo], metrics=prometheus, logs=None).evaluate(at=AT)

    (record,) = cycle.records
    assert cycle.failures == ()
    assert cycle.plans == {BATCHED: 1}
    assert cycle.queries == {BATCHED: 9, RAW: 0}  # one per record name, whatever the SLO count
    assert record.state == "ok"
    assert record.sli == pytest.approx(0.9995)
    assert record.budget_remaining == pytest.approx(0.5)
    assert record.burn_rates["1h"] == pytest.approx(20)
    assert record.burn_rates["5m"] == pytest.approx(30)
    assert record.burn_rates["30d"] == pytest.approx(0.5)
    assert record.details["plan"] == BATCHED
    firing = [(a["long"], a["short"]) for a in record.details["alerts"] if a["firing"]]
    assert firing == [("1h", "5m")]
    # Half the budget left, spent at 20x: 0.5 * 30 d / 20 = 0.75 d.
    assert record.details["time_to_exhaustion_s"] == pytest.approx(0.75 * 86400)


def test_missing_and_nan_windows_are_no_data_never_zero() -> None:
    (slo,) = slos(native("availability"))
    ratios = dict.fromkeys(EVERY_WINDOW - {"w5m"}, 0.0001)
    ratios["w30d"] = math.nan  # no traffic in the whole period
    prometheus = MemoryPrometheus(recorded=recorded("availability", **ratios))
    (record,) = SLOEvaluator(slos=[slo], metrics=prometheus, logs=None).evaluate(at=AT).records

    assert record.state == "insufficient_traffic"
    assert record.sli is None
    assert record.budget_remaining is None
    assert record.no_data_reason == "no events in the 30d period"
    assert record.burn_rates["5m"] is None
    assert record.burn_rates["1h"] == pytest.approx(0.1)
    page = next(a for a in record.details["alerts"] if a["short"] == "5m")
    assert (page["state"], page["firing"]) == ("no_data", False)


def test_rules_loaded_but_no_total_series_is_no_data() -> None:
    (slo,) = slos(native("availability"))
    prometheus = MemoryPrometheus(recorded=recorded("availability"))  # objective only
    (record,) = SLOEvaluator(slos=[slo], metrics=prometheus, logs=None).evaluate(at=AT).records
    assert record.state == "no_data"
    assert record.no_data_reason == "no samples of the SLI's total series in the 30d period"
    assert set(record.burn_rates.values()) == {None}


LATENCY_SLI = (
    "    latency:\n"
    '      histogram: http_server_request_duration_seconds{service="inventory"}\n'
    "      buckets: [0.1, 0.25, 0.5]\n"
    "      threshold: 250ms\n"
)


def test_every_evaluation_carries_what_the_console_shows() -> None:
    """Tier, period, the alert windows with their factors, the exhaustion forecast and, for a
    latency SLI, the threshold: present whatever the state, so that a "no data" SLO still
    shows its alert factors and its slow-trace bound."""
    ok, latency = slos(native("availability"), native("read-latency", sli=LATENCY_SLI))
    ratios = dict.fromkeys(EVERY_WINDOW, 0.0001)
    prometheus = MemoryPrometheus(recorded=recorded("availability", **ratios))
    by_id = {
        record.slo_id: record
        for record in SLOEvaluator(slos=[ok, latency], metrics=prometheus, logs=None)
        .evaluate(at=AT)
        .records
    }
    expected_windows = [("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0)]
    expected_windows += [("ticket", "1d", "2h", 3.0), ("ticket", "3d", "6h", 1.0)]
    for record in by_id.values():
        assert record.details["tier"] == "critical"
        assert record.details["period"] == "30d"
        windows = [
            (a["severity"], a["long"], a["short"], pytest.approx(a["factor"]))
            for a in record.details["alerts"]
        ]
        assert windows == expected_windows
        assert "time_to_exhaustion_s" in record.details
    assert by_id["availability"].details["latency_threshold_s"] is None
    # 0.9 of the budget left, burning at 0.1x: 0.9 * 30 d / 0.1 = 270 d.
    exhaustion = by_id["availability"].details["time_to_exhaustion_s"]
    assert exhaustion == pytest.approx(270 * 86400)
    missing = by_id["read-latency"]  # its rules are not loaded and raw counts are absent
    assert missing.state == "no_data"
    assert missing.details["latency_threshold_s"] == pytest.approx(0.25)
    assert missing.details["time_to_exhaustion_s"] is None
    assert not any(alert["firing"] for alert in missing.details["alerts"])


RAW_COUNTS = {
    'increase(requests_total{service="inventory",code=~"5.."}': 10.0,
    'increase(requests_total{service="inventory"}': 1000.0,
}


@pytest.mark.parametrize(
    ("series", "why"),
    [
        ({}, "rules not loaded"),
        (recorded("availability", objective=0.99, **dict.fromkeys(EVERY_WINDOW, 0.5)), "stale"),
    ],
)
def test_without_matching_rules_the_slo_is_counted_with_raw_queries(
    series: dict[tuple[str, str], float], why: str
) -> None:
    (slo,) = slos(native("availability"))
    prometheus = MemoryPrometheus(recorded=series, raw=RAW_COUNTS)
    cycle = SLOEvaluator(slos=[slo], metrics=prometheus, logs=None).evaluate(at=AT)
    (record,) = cycle.records
    assert record.details["plan"] == RAW, why
    assert record.state == "ok"
    assert record.sli == pytest.approx(0.99)
    assert record.burn_rates["1h"] == pytest.approx(10)
    assert cycle.queries[RAW] > 0


def test_prometheus_down_marks_every_prometheus_slo_no_data_and_asks_once() -> None:
    batched, calendar, logs = slos(
        native("availability"),
        native("monthly", window="calendar"),
        native("logs", sli=ELASTICSEARCH_SLI),
    )
    down = SourceUnavailable("prometheus", "http://127.0.0.1:9 unreachable: connection refused")
    prometheus = MemoryPrometheus(error=down)
    cycle = SLOEvaluator(
        slos=[batched, calendar, logs], metrics=prometheus, logs=MemoryLogs()
    ).evaluate(at=AT)

    assert prometheus.calls == 1  # the raw-plan SLO is not asked again in the same cycle
    by_id = {record.slo_id: record for record in cycle.records}
    for slo_id in ("availability", "monthly"):
        record = by_id[slo_id]
        assert record.state == "no_data"
        assert record.sli is None
        assert record.burn_rates == {}
        assert record.no_data_reason == (
            "source unavailable: prometheus: http://127.0.0.1:9 unreachable: connection refused"
        )
        assert record.details["source_error"]["error"] == "SourceUnavailable"
    assert by_id["logs"].state == "ok"  # Elasticsearch still answers
    ((failure),) = cycle.failures
    assert (failure.source, failure.slos) == ("prometheus", 2)


def test_a_refused_query_fails_only_its_slo() -> None:
    monthly, other = slos(
        native("monthly", window="calendar"),
        native(
            "other",
            window="calendar",
            sli='    ratio:\n      bad: other_total{code="500"}\n      total: other_total\n',
        ),
    )

    class Refusing(MemoryPrometheus):
        def instant(self, query: str, *, at: datetime | None = None) -> Vector | NoData:
            if "other_total" in query:
                raise SourceQueryError("prometheus", "400 bad_data: parse error")
            return super().instant(query, at=at)

    cycle = SLOEvaluator(
        slos=[monthly, other], metrics=Refusing(raw=RAW_COUNTS), logs=None
    ).evaluate(at=AT)
    states = {record.slo_id: (record.state, record.no_data_reason) for record in cycle.records}
    assert states["monthly"] == ("ok", None)
    assert states["other"] == (
        "no_data",
        "query refused: prometheus: 400 bad_data: parse error",
    )


def test_log_slos_from_counts_and_no_data_when_elasticsearch_is_down() -> None:
    (slo,) = slos(native("logs", sli=ELASTICSEARCH_SLI, objective=0.99))
    fine = SLOEvaluator(slos=[slo], metrics=MemoryPrometheus(), logs=MemoryLogs(bad=5))
    (record,) = fine.evaluate(at=AT).records
    assert (record.state, record.details["plan"]) == ("ok", ELASTICSEARCH)
    assert record.sli == pytest.approx(0.995)
    assert record.burn_rates["5m"] == pytest.approx(0.5)

    down = MemoryLogs(error=SourceUnavailable("elasticsearch", "connection refused"))
    (record,) = (
        SLOEvaluator(slos=[slo], metrics=MemoryPrometheus(), logs=down).evaluate(at=AT).records
    )
    assert record.state == "no_data"
    assert record.no_data_reason == "source unavailable: elasticsearch: connection refused"


def test_a_log_index_that_does_not_exist_is_no_data_and_says_so() -> None:
    (slo,) = slos(native("logs", sli=ELASTICSEARCH_SLI))
    logs = MemoryLogs(no_index=True)
    (record,) = (
        SLOEvaluator(slos=[slo], metrics=MemoryPrometheus(), logs=logs).evaluate(at=AT).records
    )
    assert record.state == "no_data"
    assert record.no_data_reason == (
        "no samples for the SLI's total series in the period: no index matches 'logs-inventory-*'"
    )


def test_raw_counts_of_many_slos_are_one_batched_read() -> None:
    """Every window of every raw-plan SLO goes to Prometheus together (the source batches
    them), not one query per SLO, window and count."""
    calendar = slos(*(native(f"monthly-{index}", window="calendar") for index in range(20)))
    prometheus = MemoryPrometheus(raw=RAW_COUNTS)
    cycle = SLOEvaluator(slos=calendar, metrics=prometheus, logs=None).evaluate(at=AT)
    assert cycle.plans == {RAW: 20}
    assert {record.state for record in cycle.records} == {"ok"}
    assert cycle.queries[RAW] == 1
    assert prometheus.calls == 1
