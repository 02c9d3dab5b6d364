"""The source contract without servers: bounded retries of unavailability only, and "no data"
that never reads as a number."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.sources.base import (
    NoData,
    RecordingRuleSnapshot,
    RetryPolicy,
    Sample,
    SourceQueryError,
    SourceUnavailable,
)

AT = datetime(2025, 11, 20, tzinfo=UTC)


def test_unavailability_is_retried_a_bounded_number_of_times() -> None:
    attempts: list[int] = []

    def always_down() -> None:
        attempts.append(1)
        raise SourceUnavailable("prometheus", "connection refused")

    with pytest.raises(SourceUnavailable):
        RetryPolicy(attempts=3, max_wait=0.01).call(always_down)
    assert len(attempts) == 3


def test_a_recovered_source_answers_and_a_query_error_is_not_retried() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise SourceUnavailable("elasticsearch", "503")
        return "ok"

    assert RetryPolicy(attempts=3, max_wait=0.01).call(flaky) == "ok"
    assert len(attempts) == 2

    refused: list[int] = []

    def bad_query() -> None:
        refused.append(1)
        raise SourceQueryError("prometheus", "parse error")

    with pytest.raises(SourceQueryError):
        RetryPolicy(attempts=3, max_wait=0.01).call(bad_query)
    assert len(refused) == 1


def test_errors_name_their_source() -> None:
    error = SourceUnavailable("jaeger", "timed out")
    assert error.source == "jaeger"
    assert str(error) == "jaeger: timed out"


def test_a_snapshot_tells_absent_and_nan_apart_from_zero() -> None:
    snapshot = RecordingRuleSnapshot(
        at=AT,
        names=("slo:burn_rate:rate1h",),
        samples={
            ("slo:burn_rate:rate1h", "a"): Sample(labels={"slo": "a"}, at=AT, value=0.0),
            ("slo:burn_rate:rate1h", "b"): Sample(labels={"slo": "b"}, at=AT, value=float("nan")),
        },
        queries=1,
    )
    assert snapshot.value(name="slo:burn_rate:rate1h", slo="a") == 0.0
    nan = snapshot.value(name="slo:burn_rate:rate1h", slo="b")
    absent = snapshot.value(name="slo:burn_rate:rate1h", slo="c")
    assert isinstance(nan, NoData)
    assert nan.reason == "not_a_number"
    assert isinstance(absent, NoData)
    assert absent.reason == "empty_result"
    assert snapshot.slos() == {"a", "b"}
