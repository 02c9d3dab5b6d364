"""The Prometheus source against a real Prometheus evaluating SLO-style recording rules."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import yaml
from prometheus_api_client.exceptions import PrometheusApiClientException

from controlplane.sources.base import (
    NoData,
    RetryPolicy,
    SourceQueryError,
    SourceUnavailable,
    Vector,
)
from controlplane.sources.prometheus import BATCH_LABEL, PrometheusSource, label_regex
from controlplane.stack.backends import Prometheus
from tests.support.backends import PrometheusFactory

BURN_1H = "slo:burn_rate:rate1h"
BURN_5M = "slo:burn_rate:rate5m"
BUDGET = "slo:error_budget_remaining:ratio"


def _rule(record: str, expr: str, slo: str) -> dict[str, object]:
    return {"record": record, "expr": expr, "labels": {"service": "inventory", "slo": slo}}


RULES = {
    "groups": [
        {
            "name": "slo-test",
            "interval": "1s",
            "rules": [
                _rule(BURN_1H, "vector(2.5)", "api-availability"),
                _rule(BURN_5M, "vector(3)", "api-availability"),
                _rule(BUDGET, "vector(0.25)", "api-availability"),
                # No errors at all: a real zero.
                _rule(BURN_1H, "vector(0)", "read-latency"),
                _rule(BURN_5M, "vector(0)", "read-latency"),
                # No traffic: 0/0 is NaN, which is not "no errors".
                _rule(BURN_1H, "vector(0) / vector(0)", "worker-apply-success"),
                # A regex metacharacter in an SLO name must match literally.
                _rule(BURN_1H, "vector(1)", "odd.name+x"),
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def prometheus(prometheus_factory: PrometheusFactory) -> Prometheus:
    server = prometheus_factory(
        config={"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}},
        rules={"slo.yml": yaml.safe_dump(RULES)},
    )
    source = PrometheusSource(url=server.url, timeout=5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for three rule evaluations
        found = source.range(
            f'{BURN_1H}{{slo="api-availability"}}',
            start=datetime.now(UTC) - timedelta(seconds=30),
            end=datetime.now(UTC),
            step=timedelta(seconds=1),
        )
        if not isinstance(found, NoData) and len(found[0].points) >= 3:
            break
        time.sleep(0.5)
    source.close()
    return server


@pytest.fixture
def source(prometheus: Prometheus) -> PrometheusSource:
    return PrometheusSource(url=prometheus.url, timeout=5)


def test_instant_query_reads_a_value(source: PrometheusSource) -> None:
    result = source.instant(f'{BURN_1H}{{slo="api-availability"}}')
    assert isinstance(result, Vector)
    sample = result.single()
    assert sample.value == 2.5
    assert sample.labels["__name__"] == BURN_1H
    assert abs(sample.at - datetime.now(UTC)) < timedelta(seconds=30)


def test_zero_is_a_value_and_an_absent_series_is_no_data(source: PrometheusSource) -> None:
    zero = source.instant(f'{BURN_1H}{{slo="read-latency"}}')
    assert isinstance(zero, Vector)
    assert zero.single().value == 0.0
    absent = source.instant(f'{BURN_1H}{{slo="does-not-exist"}}')
    assert isinstance(absent, NoData)
    assert absent.reason == "empty_result"


def test_scalar_results_and_instants_in_the_past(source: PrometheusSource) -> None:
    result = source.instant("scalar(vector(40)) + 2")
    assert isinstance(result, Vector)
    assert result.single().value == 42
    long_ago = source.instant(BURN_1H, at=datetime.now(UTC) - timedelta(days=1))
    assert isinstance(long_ago, NoData)  # Prometheus was not running yesterday


def test_range_query_returns_points_and_no_data_outside_them(source: PrometheusSource) -> None:
    now = datetime.now(UTC)
    series = source.range(
        f'{BURN_5M}{{slo="api-availability"}}',
        start=now - timedelta(seconds=20),
        end=now,
        step=timedelta(seconds=2),
    )
    assert not isinstance(series, NoData)
    (only,) = series
    assert len(only.points) >= 2
    assert {value for _, value in only.points} == {3.0}
    before = source.range(
        BURN_5M, start=now - timedelta(days=2), end=now - timedelta(days=1), step=timedelta(hours=1)
    )
    assert isinstance(before, NoData)


def test_recording_rules_for_many_slos_cost_one_query_per_name(source: PrometheusSource) -> None:
    slos = ["api-availability", "read-latency", "worker-apply-success", "odd.name+x", "unknown"]
    snapshot = source.recording_rules(names=[BURN_1H, BURN_5M, BUDGET], slos=slos)
    assert snapshot.queries == 3
    assert snapshot.value(name=BURN_1H, slo="api-availability") == 2.5
    assert snapshot.value(name=BURN_5M, slo="api-availability") == 3.0
    assert snapshot.value(name=BUDGET, slo="api-availability") == 0.25
    assert snapshot.value(name=BURN_1H, slo="read-latency") == 0.0
    assert snapshot.value(name=BURN_1H, slo="odd.name+x") == 1.0
    nan = snapshot.value(name=BURN_1H, slo="worker-apply-success")
    assert isinstance(nan, NoData)
    assert nan.reason == "not_a_number"
    missing = snapshot.value(name=BUDGET, slo="read-latency")
    assert isinstance(missing, NoData)
    assert missing.reason == "empty_result"
    assert isinstance(snapshot.value(name=BURN_1H, slo="unknown"), NoData)

    everything = source.recording_rules(names=[BURN_1H])
    assert everything.slos() == {
        "api-availability",
        "read-latency",
        "worker-apply-success",
        "odd.name+x",
    }
    # The raw NaN sample is still visible to whoever asks for the vector.
    raw = source.instant(f'{BURN_1H}{{slo="worker-apply-success"}}')
    assert isinstance(raw, Vector)
    assert math.isnan(raw.single().value)


def test_recording_rules_of_more_slos_than_a_query_holds_are_filtered_here(
    prometheus: Prometheus,
) -> None:
    # A regular expression of the names would exceed batch_chars: each name is read whole and
    # only the asked SLOs are kept (as with thousands of SLOs).
    source = PrometheusSource(url=prometheus.url, timeout=5, batch_chars=20)
    snapshot = source.recording_rules(
        names=[BURN_1H, BUDGET], slos=["api-availability", "read-latency", "unknown"]
    )
    assert snapshot.queries == 2
    assert snapshot.slos() == {"api-availability", "read-latency"}
    assert snapshot.value(name=BURN_1H, slo="api-availability") == 2.5
    assert snapshot.value(name=BUDGET, slo="api-availability") == 0.25
    assert snapshot.value(name=BURN_1H, slo="read-latency") == 0.0
    assert isinstance(snapshot.value(name=BURN_1H, slo="worker-apply-success"), NoData)


def test_label_regex_escapes_metacharacters() -> None:
    assert label_regex(["a.b", 'q"x', "c|d"]) == r'"a\\.b|q\"x|c\\|d"'


def test_a_bad_query_is_a_query_error(source: PrometheusSource) -> None:
    with pytest.raises(SourceQueryError) as caught:
        source.instant("sum(rate(")
    assert caught.value.source == "prometheus"
    assert isinstance(caught.value.__cause__, PrometheusApiClientException)


def test_a_stopped_prometheus_is_unavailable(prometheus_factory: PrometheusFactory) -> None:
    server = prometheus_factory(config={"global": {"scrape_interval": "1s"}})
    source = PrometheusSource(
        url=server.url, timeout=2, retry=RetryPolicy(attempts=2, max_wait=0.2)
    )
    assert not isinstance(source.instant("vector(1)"), NoData)
    server.stop()
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        source.instant("vector(1)")
    assert time.monotonic() - started < 10  # bounded: two attempts, short waits
    assert caught.value.source == "prometheus"
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    with pytest.raises(SourceUnavailable):
        source.recording_rules(names=[BURN_1H], slos=["api-availability"])


def test_many_instant_queries_answer_as_one_each_in_few_requests(prometheus: Prometheus) -> None:
    queries = [
        "vector(1)",
        "vector(2)",  # the same (empty) labels as the first: kept apart, not dropped by `or`
        f'sum({BURN_1H}{{slo="api-availability"}})',
        f'{BURN_1H}{{slo="worker-apply-success"}}',  # NaN
        f'{BURN_1H}{{slo="does-not-exist"}}',
        f'{BURN_1H}{{slo=~"api-availability|read-latency"}}',  # two series
    ]
    batched = PrometheusSource(url=prometheus.url, timeout=5)
    one_each = PrometheusSource(url=prometheus.url, timeout=5, batch_chars=0)
    small = PrometheusSource(url=prometheus.url, timeout=5, batch_chars=200)

    answers = batched.instant_many(queries)
    assert answers.queries == 1
    assert one_each.instant_many(queries).queries == len(queries)
    assert 1 < small.instant_many(queries).queries < len(queries)

    def readable(answer: Vector | NoData) -> object:
        if isinstance(answer, NoData):
            return answer.reason
        return sorted(
            (dict(sample.labels).get("slo"), "NaN" if math.isnan(sample.value) else sample.value)
            for sample in answer.samples
        )

    expected = [readable(batched.instant(query)) for query in queries]
    assert [readable(answer) for answer in answers.answers] == expected
    assert expected[:2] == [[(None, 1.0)], [(None, 2.0)]]
    assert expected[4] == "empty_result"
    assert len(expected[5]) == 2  # type: ignore[arg-type]
    for answer in answers.answers:
        if isinstance(answer, Vector):
            assert all(BATCH_LABEL not in sample.labels for sample in answer.samples)
    # At an instant in the past, as `slo report --at` asks.
    long_ago = batched.instant_many(queries[2:], at=datetime.now(UTC) - timedelta(days=1))
    assert all(isinstance(answer, NoData) for answer in long_ago.answers)
    for source in (batched, one_each, small):
        source.close()
