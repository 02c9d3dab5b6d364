"""What the control plane reads from its signal sources, behind one Protocol per kind of signal.

Adapters (one module per backend: ``prometheus``, ``elasticsearch``, ``jaeger``) implement these
Protocols. Their contract:

* Errors are typed and chain the backend's own exception: :class:`SourceUnavailable` when the
  backend cannot be reached, times out or answers 5xx/429 (retried a bounded number of times
  first), :class:`SourceQueryError` when it answers but refuses the request or returns
  something unreadable (never retried).
* "No data" is a value of its own, :class:`NoData` with a reason, never an empty list or a zero.
  A zero count means the backend looked and found zero events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from controlplane.core.errors import ControlPlaneError

__all__ = [
    "EventCount",
    "EventHistogram",
    "HistogramBucket",
    "InstantAnswers",
    "LogLine",
    "LogSource",
    "MetricsSource",
    "NoData",
    "RangeSeries",
    "RecordingRuleSnapshot",
    "RetryPolicy",
    "Sample",
    "SourceError",
    "SourceQueryError",
    "SourceUnavailable",
    "Span",
    "Trace",
    "TraceSource",
    "TraceSummary",
    "Vector",
]

T = TypeVar("T")

NoDataReason = Literal["empty_result", "not_a_number", "no_index", "unknown_service", "not_found"]


# -- errors ------------------------------------------------------------------------------------


class SourceError(ControlPlaneError):
    """A signal source failed; ``source`` names it (``prometheus``, ``elasticsearch``, ...)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class SourceUnavailable(SourceError):
    """The backend could not be reached, timed out, or answered 5xx/429."""


class SourceQueryError(SourceError):
    """The backend answered but refused the request (4xx) or returned something unreadable."""


# -- "no data" ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoData:
    """The source had nothing to say: not zero, not an error.

    ``reason`` is one of ``empty_result`` (no series / no matching documents exist),
    ``not_a_number`` (0/0: a ratio over a window without traffic), ``no_index`` (no Elasticsearch
    index matches), ``unknown_service`` (Jaeger never saw the service), ``not_found`` (no trace
    with that id).
    """

    reason: NoDataReason
    detail: str = ""


# -- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One series' value at one instant; ``value`` may be NaN or ±Inf as Prometheus sent it."""

    labels: Mapping[str, str]
    at: datetime
    value: float


@dataclass(frozen=True)
class Vector:
    """A non-empty instant-query result."""

    samples: tuple[Sample, ...]

    def single(self) -> Sample:
        if len(self.samples) != 1:
            raise ValueError(f"expected one series, got {len(self.samples)}")
        return self.samples[0]


@dataclass(frozen=True)
class InstantAnswers:
    """The answers to many instant queries (one per query, in order) and the requests sent."""

    answers: tuple[Vector | NoData, ...]
    queries: int


@dataclass(frozen=True)
class RangeSeries:
    labels: Mapping[str, str]
    points: tuple[tuple[datetime, float], ...]


@dataclass(frozen=True)
class RecordingRuleSnapshot:
    """Recording-rule series of many SLOs read at one instant, keyed by (record name, slo id).

    Built from a few batched queries (one per record name); :meth:`value` answers per SLO.
    """

    at: datetime
    names: tuple[str, ...]
    samples: Mapping[tuple[str, str], Sample] = field(default_factory=dict)
    queries: int = 0

    def value(self, *, name: str, slo: str) -> float | NoData:
        """The series ``name`` of SLO ``slo``; NoData when absent or NaN (never 0)."""
        sample = self.samples.get((name, slo))
        if sample is None:
            return NoData("empty_result", f"no series {name}{{slo={slo!r}}} at {self.at}")
        if math.isnan(sample.value):
            return NoData("not_a_number", f"{name}{{slo={slo!r}}} is NaN (no traffic)")
        return sample.value

    def slos(self) -> set[str]:
        return {slo for _, slo in self.samples}


class MetricsSource(Protocol):
    def instant(self, query: str, *, at: datetime | None = None) -> Vector | NoData:
        """Instant query; NoData when the result is empty."""
        ...

    def instant_many(self, queries: Sequence[str], *, at: datetime | None = None) -> InstantAnswers:
        """Many instant queries at one instant, in as few requests as the backend allows; one
        answer per query, in order. A query the backend refuses fails the whole call."""
        ...

    def range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> tuple[RangeSeries, ...] | NoData:
        """Range query; NoData when no series has a point in the range."""
        ...

    def recording_rules(
        self,
        *,
        names: Sequence[str],
        slos: Sequence[str] | None = None,
        at: datetime | None = None,
    ) -> RecordingRuleSnapshot:
        """Read recording-rule series of many SLOs with one query per record name."""
        ...


# -- logs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventCount:
    """Documents matching a query in a time range (exact: ``track_total_hits``)."""

    total: int


@dataclass(frozen=True)
class HistogramBucket:
    start: datetime
    total: int
    good: int | None
    bad: int | None


@dataclass(frozen=True)
class EventHistogram:
    interval: timedelta
    buckets: tuple[HistogramBucket, ...]

    @property
    def total(self) -> int:
        return sum(bucket.total for bucket in self.buckets)


@dataclass(frozen=True)
class LogLine:
    at: datetime
    message: str
    level: str | None
    service: str | None
    trace_id: str | None
    span_id: str | None
    index: str
    document: Mapping[str, Any]


class LogSource(Protocol):
    def count(
        self, *, index: str, query: Mapping[str, Any], start: datetime, end: datetime
    ) -> EventCount | NoData:
        """Count events in [start, end); NoData when no index matches ``index``."""
        ...

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
        """One ``date_histogram`` request with ``filter`` sub-aggregations for good/bad."""
        ...

    def logs_for_trace(
        self,
        trace_id: str,
        *,
        index: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> tuple[LogLine, ...] | NoData:
        """Log lines of one trace, oldest first; NoData when no index matches."""
        ...


# -- traces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start: datetime
    duration: timedelta
    tags: Mapping[str, Any]
    error: bool


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: tuple[Span, ...]

    @property
    def root(self) -> Span:
        roots = [span for span in self.spans if span.parent_id is None]
        return min(roots or self.spans, key=lambda span: span.start)

    @property
    def duration(self) -> timedelta:
        start = min(span.start for span in self.spans)
        end = max(span.start + span.duration for span in self.spans)
        return end - start

    @property
    def has_error(self) -> bool:
        return any(span.error for span in self.spans)


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    service: str
    operation: str
    start: datetime
    duration: timedelta
    span_count: int
    error: bool


class TraceSource(Protocol):
    def slowest_traces(
        self,
        *,
        service: str,
        start: datetime,
        end: datetime,
        min_duration: timedelta,
        operation: str | None = None,
        limit: int = 20,
    ) -> tuple[TraceSummary, ...] | NoData:
        """Traces at least ``min_duration`` long, slowest first; NoData for an unknown service."""
        ...

    def error_traces(
        self,
        *,
        service: str,
        start: datetime,
        end: datetime,
        operation: str | None = None,
        limit: int = 20,
    ) -> tuple[TraceSummary, ...] | NoData:
        """Traces with a span tagged ``error=true``, newest first."""
        ...

    def trace(self, trace_id: str) -> Trace | NoData:
        """One trace by id; NoData (``not_found``) when the backend does not have it."""
        ...


# -- retries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of :class:`SourceUnavailable`: attempts, exponential wait, total deadline."""

    attempts: int = 3
    max_wait: float = 2.0
    deadline: float = 30.0

    def call(self, function: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline),
            wait=wait_exponential(multiplier=0.1, max=self.max_wait),
            retry=retry_if_exception_type(SourceUnavailable),
            reraise=True,
        )
        return retrying(function)
