"""Elasticsearch through the official client: event counts, good/bad histograms, trace logs.

* :meth:`ElasticsearchSource.count`: exact counts (``size: 0``, ``track_total_hits: true``).
* :meth:`ElasticsearchSource.good_bad_histogram`: one search with a ``date_histogram`` and a
  ``filter`` sub-aggregation for the good and/or bad events of every bucket.
* :meth:`ElasticsearchSource.logs_for_trace`: the log lines carrying one trace id (ECS
  ``trace.id``), oldest first.

A pattern that matches no index is :class:`~controlplane.sources.base.NoData` (``no_index``); an
existing index without matching events is a real zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from elasticsearch import ApiError, Elasticsearch, TransportError, UnsupportedProductError

from controlplane.core.config import ControlPlaneSettings
from controlplane.sources.base import (
    EventCount,
    EventHistogram,
    HistogramBucket,
    LogLine,
    NoData,
    RetryPolicy,
    SourceQueryError,
    SourceUnavailable,
)

__all__ = ["ElasticsearchSource"]

T = TypeVar("T")
SOURCE = "elasticsearch"


def _field(document: Mapping[str, Any], path: str) -> Any:
    """A field of an ECS document, whether sent nested (``{"log": {"level": ..}}``) or dotted."""
    if path in document:
        return document[path]
    head, dot, rest = path.partition(".")
    while dot:
        value = document.get(head)
        if isinstance(value, Mapping):
            found = _field(value, rest)
            if found is not None:
                return found
        next_head, dot, rest = rest.partition(".")
        head = f"{head}.{next_head}"
    return None


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware times")
    return value.astimezone(UTC).isoformat()


class ElasticsearchSource:
    """:class:`~controlplane.sources.base.LogSource` over the Elasticsearch search API."""

    name = SOURCE

    def __init__(
        self,
        *,
        url: str,
        timeout: float,
        retry: RetryPolicy | None = None,
        log_index: str = "logs-*",
        timestamp_field: str = "@timestamp",
        trace_id_field: str = "trace.id",
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.log_index = log_index
        self.timestamp_field = timestamp_field
        self.trace_id_field = trace_id_field
        # Retries are ours (tenacity, bounded); the client's are off.
        self._client = Elasticsearch(
            self.url, request_timeout=timeout, max_retries=0, retry_on_timeout=False
        )

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> ElasticsearchSource:
        return cls(
            url=settings.sources.elasticsearch_url,
            timeout=settings.sources.source_timeout_seconds,
            retry=RetryPolicy(
                attempts=settings.sources.source_retry_attempts,
                max_wait=settings.sources.source_retry_max_wait_seconds,
            ),
            log_index=settings.sources.elasticsearch_log_index,
            timestamp_field=settings.sources.elasticsearch_timestamp_field,
            trace_id_field=settings.sources.elasticsearch_trace_id_field,
        )

    def close(self) -> None:
        self._client.close()

    # -- reads -----------------------------------------------------------------------------------
    def count(
        self, *, index: str, query: Mapping[str, Any], start: datetime, end: datetime
    ) -> EventCount | NoData:
        body = self._search(
            index=index,
            size=0,
            track_total_hits=True,
            query=self._in_range(query, start=start, end=end),
        )
        if self._no_index(body):
            return NoData("no_index", f"no index matches {index!r}")
        return EventCount(total=self._total(body))

    def good_bad_histogram(
        self,
        *,
        index: str,
        start: datetime,
        end: datetime,
        interval: timedelta,
        total: Mapping[str, Any],
        good: Mapping[str, Any] | None = None,
        bad: Mapping[str, Any] | None = None,
    ) -> EventHistogram | NoData:
        if good is None and bad is None:
            raise ValueError("give the good or the bad events' query (or both)")
        seconds = interval.total_seconds()
        if seconds < 1 or not seconds.is_integer():
            raise ValueError("interval must be a whole number of seconds")
        sub_aggregations: dict[str, Any] = {}
        if good is not None:
            sub_aggregations["good"] = {"filter": dict(good)}
        if bad is not None:
            sub_aggregations["bad"] = {"filter": dict(bad)}
        start_ms = int(start.timestamp() * 1000)
        end_ms = int(end.timestamp() * 1000)
        body = self._search(
            index=index,
            size=0,
            track_total_hits=True,
            query=self._in_range(total, start=start, end=end),
            aggregations={
                "over_time": {
                    "date_histogram": {
                        "field": self.timestamp_field,
                        "fixed_interval": f"{int(seconds)}s",
                        "min_doc_count": 0,
                        "extended_bounds": {"min": start_ms, "max": max(start_ms, end_ms - 1)},
                    },
                    "aggregations": sub_aggregations,
                }
            },
        )
        if self._no_index(body):
            return NoData("no_index", f"no index matches {index!r}")
        try:
            raw_buckets = body["aggregations"]["over_time"]["buckets"]
            buckets = []
            for raw in raw_buckets:
                count = int(raw["doc_count"])
                good_count = int(raw["good"]["doc_count"]) if good is not None else None
                bad_count = int(raw["bad"]["doc_count"]) if bad is not None else None
                if good_count is None and bad_count is not None:
                    good_count = count - bad_count
                if bad_count is None and good_count is not None:
                    bad_count = count - good_count
                buckets.append(
                    HistogramBucket(
                        start=datetime.fromtimestamp(raw["key"] / 1000, tz=UTC),
                        total=count,
                        good=good_count,
                        bad=bad_count,
                    )
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceQueryError(SOURCE, f"unreadable aggregation answer: {exc!r}") from exc
        return EventHistogram(interval=interval, buckets=tuple(buckets))

    def logs_for_trace(
        self,
        trace_id: str,
        *,
        index: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> tuple[LogLine, ...] | NoData:
        pattern = index or self.log_index
        filters: list[dict[str, Any]] = [
            {"match": {self.trace_id_field: {"query": trace_id, "operator": "and"}}}
        ]
        if start is not None or end is not None:
            bounds: dict[str, str] = {"format": "strict_date_optional_time"}
            if start is not None:
                bounds["gte"] = _iso(start)
            if end is not None:
                bounds["lt"] = _iso(end)
            filters.append({"range": {self.timestamp_field: bounds}})
        body = self._search(
            index=pattern,
            size=limit,
            query={"bool": {"filter": filters}},
            sort=[{self.timestamp_field: {"order": "asc", "unmapped_type": "date"}}],
        )
        if self._no_index(body):
            return NoData("no_index", f"no index matches {pattern!r}")
        try:
            return tuple(self._log_line(hit) for hit in body["hits"]["hits"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceQueryError(SOURCE, f"unreadable log document: {exc!r}") from exc

    # -- internals -------------------------------------------------------------------------------
    def _in_range(
        self, query: Mapping[str, Any], *, start: datetime, end: datetime
    ) -> dict[str, Any]:
        time_range = {
            "range": {
                self.timestamp_field: {
                    "gte": _iso(start),
                    "lt": _iso(end),
                    "format": "strict_date_optional_time",
                }
            }
        }
        return {"bool": {"filter": [time_range, dict(query)]}}

    def _log_line(self, hit: Mapping[str, Any]) -> LogLine:
        document = hit.get("_source") or {}
        raw_time = _field(document, self.timestamp_field)
        at = datetime.fromisoformat(str(raw_time).replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return LogLine(
            at=at,
            message=str(_field(document, "message") or ""),
            level=_optional_str(_field(document, "log.level")),
            service=_optional_str(_field(document, "service.name")),
            trace_id=_optional_str(_field(document, self.trace_id_field)),
            span_id=_optional_str(_field(document, "span.id")),
            index=str(hit.get("_index", "")),
            document=document,
        )

    @staticmethod
    def _no_index(body: Mapping[str, Any]) -> bool:
        return int(body.get("_shards", {}).get("total", 0)) == 0

    @staticmethod
    def _total(body: Mapping[str, Any]) -> int:
        try:
            total = body["hits"]["total"]
            if total.get("relation", "eq") != "eq":
                raise SourceQueryError(SOURCE, "count is a lower bound (track_total_hits off?)")
            return int(total["value"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise SourceQueryError(SOURCE, f"unreadable count answer: {exc!r}") from exc

    def _search(self, **kwargs: Any) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            response = self._client.search(ignore_unavailable=True, allow_no_indices=True, **kwargs)
            body = dict(response.body)
            shards = body.get("_shards", {})
            failed = int(shards.get("failed", 0))
            if failed:
                raise SourceUnavailable(
                    SOURCE, f"partial answer: {failed} of {shards.get('total')} shards failed"
                )
            return body

        return self.retry.call(lambda: self._translate(call))

    def _translate(self, function: Callable[[], T]) -> T:
        try:
            return function()
        except UnsupportedProductError as exc:
            raise SourceQueryError(SOURCE, f"{self.url} is not Elasticsearch: {exc}") from exc
        except ApiError as exc:
            status = exc.meta.status
            if status >= 500 or status == 429:
                raise SourceUnavailable(SOURCE, f"{self.url} answered {status}") from exc
            raise SourceQueryError(SOURCE, f"{status} {exc.message}: {exc.info!r:.300}") from exc
        except TransportError as exc:
            raise SourceUnavailable(SOURCE, f"{self.url} unreachable: {exc}") from exc
