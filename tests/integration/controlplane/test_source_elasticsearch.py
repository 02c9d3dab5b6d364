"""The Elasticsearch source against a real Elasticsearch with ECS log documents."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import ApiError, TransportError
from elasticsearch import Elasticsearch as ElasticsearchClient

from controlplane.sources.base import (
    EventCount,
    EventHistogram,
    NoData,
    RetryPolicy,
    SourceQueryError,
    SourceUnavailable,
)
from controlplane.sources.elasticsearch import ElasticsearchSource
from controlplane.stack.backends import Elasticsearch

#: Start of the test window: a whole minute, well in the past.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
TRACE = uuid.uuid4().hex
ERROR = {"match": {"log.level": "error"}}
INFO = {"match": {"log.level": "info"}}
EVERYTHING: dict[str, Any] = {"match_all": {}}


def _doc(minute: int, second: int, level: str, *, trace: str | None = None) -> dict[str, Any]:
    at = T0 + timedelta(minutes=minute, seconds=second)
    document: dict[str, Any] = {
        "@timestamp": at.isoformat().replace("+00:00", "Z"),
        "log": {"level": level},
        "message": f"{level} at {minute}:{second:02d}",
        "service": {"name": "inventory"},
    }
    if trace is not None:
        document["trace"] = {"id": trace}
        document["span"] = {"id": f"{minute:02d}{second:02d}" * 4}
    return document


#: Minute 0: 3 info + 1 error; minute 1: 2 info; minute 2: nothing; minute 3: 1 error.
DOCUMENTS = [
    _doc(0, 1, "info", trace=TRACE),
    _doc(0, 5, "info"),
    _doc(0, 9, "info"),
    _doc(0, 30, "error", trace=TRACE),
    _doc(1, 10, "info"),
    _doc(1, 20, "info"),
    _doc(3, 0, "error"),
]


@pytest.fixture(scope="module")
def log_index(elasticsearch: Elasticsearch) -> Iterator[str]:
    client = ElasticsearchClient(elasticsearch.url, request_timeout=30)
    index = f"logs-cptest-{uuid.uuid4().hex[:8]}"
    operations: list[dict[str, Any]] = []
    for document in DOCUMENTS:
        operations += [{"index": {"_index": index}}, document]
    # One document written with dotted keys, as some ECS loggers do.
    operations += [
        {"index": {"_index": index}},
        {
            "@timestamp": (T0 + timedelta(minutes=0, seconds=45)).isoformat(),
            "log.level": "warn",
            "message": "dotted keys",
            "trace.id": TRACE,
        },
    ]
    response = client.bulk(operations=operations, refresh="wait_for")
    assert not response["errors"]
    yield index
    client.indices.delete(index=index, ignore_unavailable=True)
    client.close()


@pytest.fixture
def source(elasticsearch: Elasticsearch) -> Iterator[ElasticsearchSource]:
    found = ElasticsearchSource(url=elasticsearch.url, timeout=10)
    yield found
    found.close()


def test_counts_are_exact_and_zero_is_zero(source: ElasticsearchSource, log_index: str) -> None:
    window = {"start": T0, "end": T0 + timedelta(minutes=4)}
    assert source.count(index=log_index, query=EVERYTHING, **window) == EventCount(8)
    assert source.count(index="logs-cptest-*", query=ERROR, **window) == EventCount(2)
    empty = source.count(index=log_index, query=EVERYTHING, start=T0 - timedelta(days=1), end=T0)
    assert empty == EventCount(0)


def test_no_matching_index_is_no_data(source: ElasticsearchSource) -> None:
    window = {"start": T0, "end": T0 + timedelta(minutes=4)}
    for index in ("logs-nothing-here-*", "logs-missing-index"):
        result = source.count(index=index, query=EVERYTHING, **window)
        assert isinstance(result, NoData)
        assert result.reason == "no_index"


def test_one_histogram_request_gives_good_and_bad_per_bucket(
    source: ElasticsearchSource, log_index: str
) -> None:
    histogram = source.good_bad_histogram(
        index=log_index,
        start=T0,
        end=T0 + timedelta(minutes=4),
        interval=timedelta(minutes=1),
        total=EVERYTHING,
        bad=ERROR,
    )
    assert isinstance(histogram, EventHistogram)
    assert [bucket.start for bucket in histogram.buckets] == [
        T0 + timedelta(minutes=minute) for minute in range(4)
    ]
    assert [bucket.total for bucket in histogram.buckets] == [5, 2, 0, 1]
    assert [bucket.bad for bucket in histogram.buckets] == [1, 0, 0, 1]
    assert [bucket.good for bucket in histogram.buckets] == [4, 2, 0, 0]
    assert histogram.total == 8

    good_only = source.good_bad_histogram(
        index=log_index,
        start=T0,
        end=T0 + timedelta(minutes=2),
        interval=timedelta(minutes=1),
        total=EVERYTHING,
        good=INFO,
    )
    assert isinstance(good_only, EventHistogram)
    assert [(b.good, b.bad) for b in good_only.buckets] == [(3, 2), (2, 0)]

    nothing = source.good_bad_histogram(
        index="logs-nothing-here-*",
        start=T0,
        end=T0 + timedelta(minutes=2),
        interval=timedelta(minutes=1),
        total=EVERYTHING,
        bad=ERROR,
    )
    assert isinstance(nothing, NoData)


def test_log_lines_of_a_trace_oldest_first(source: ElasticsearchSource, log_index: str) -> None:
    lines = source.logs_for_trace(TRACE, index=log_index)
    assert not isinstance(lines, NoData)
    assert [line.message for line in lines] == ["info at 0:01", "error at 0:30", "dotted keys"]
    first = lines[0]
    assert first.level == "info"
    assert first.service == "inventory"
    assert first.trace_id == TRACE
    assert first.span_id == "00010001" * 2
    assert first.index == log_index
    assert first.at == T0 + timedelta(seconds=1)
    assert lines[2].level == "warn"
    assert lines[2].trace_id == TRACE

    windowed = source.logs_for_trace(
        TRACE, index=log_index, start=T0 + timedelta(seconds=10), end=T0 + timedelta(seconds=40)
    )
    assert not isinstance(windowed, NoData)
    assert [line.message for line in windowed] == ["error at 0:30"]
    assert source.logs_for_trace(uuid.uuid4().hex, index=log_index) == ()
    assert isinstance(source.logs_for_trace(TRACE, index="logs-nothing-here-*"), NoData)


def test_a_bad_query_is_a_query_error(source: ElasticsearchSource, log_index: str) -> None:
    with pytest.raises(SourceQueryError) as caught:
        source.count(
            index=log_index,
            query={"no_such_query": {}},
            start=T0,
            end=T0 + timedelta(minutes=1),
        )
    assert caught.value.source == "elasticsearch"
    assert isinstance(caught.value.__cause__, ApiError)


def test_a_stopped_elasticsearch_is_unavailable(elasticsearch: Elasticsearch) -> None:
    """Stops the session's Elasticsearch and starts it again (same port and data)."""
    source = ElasticsearchSource(
        url=elasticsearch.url, timeout=3, retry=RetryPolicy(attempts=2, max_wait=0.2)
    )
    elasticsearch.stop()
    try:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable) as caught:
            source.count(index="logs-*", query=EVERYTHING, start=T0, end=T0 + timedelta(minutes=1))
        assert time.monotonic() - started < 15
        assert isinstance(caught.value.__cause__, TransportError)
    finally:
        source.close()
        elasticsearch.start()
