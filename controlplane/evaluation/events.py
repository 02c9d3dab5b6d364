"""The one reader of window event counts: good and total events of many SLOs' windows at one
instant, through the source adapters (their retries, timeouts and :class:`NoData`).

Prometheus: every window of every SLO is a few ``sum(increase(...[w]))`` expressions
(``slo.queries``); all of them go to :meth:`MetricsSource.instant_many`, which sends them as
a handful of batched instant queries evaluated at the instant asked for. Identical expressions
(SLOs sharing a total series) are asked once. If Prometheus refuses a batch, each expression is
asked on its own so that only the SLOs whose queries are refused fail.

Elasticsearch: one count per window and good/bad/total query (``slo.queries`` builds the body).

"No data" is ``None`` (with the source's reason kept per SLO); a source that cannot be reached
raises :class:`SourceUnavailable`; a refused query fails only its SLO
(:attr:`WindowCounts.refused`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from controlplane.sources.base import (
    LogSource,
    MetricsSource,
    NoData,
    SourceError,
    SourceQueryError,
    Vector,
)
from slo.maths import EventCounts
from slo.queries import (
    elasticsearch_count_body,
    error_ratio_expr,
    event_count_queries,
    events_expr,
)
from slo.spec import SLO, ElasticsearchRatioSLI

__all__ = [
    "WindowCounts",
    "WindowRequest",
    "clamped_counts",
    "read_log_counts",
    "read_metrics_counts",
]

logger = logging.getLogger(__name__)


def clamped_counts(*, good: float, total: float) -> EventCounts:
    """``increase()`` extrapolates each series on its own, so a good count can come out a hair
    above the total (or below zero); clamp into ``[0, total]``."""
    return EventCounts(good=min(max(good, 0.0), total), total=total)


@dataclass(frozen=True)
class WindowRequest:
    """The windows of one SLO to count, all ending at the same instant."""

    slo: SLO
    windows: tuple[timedelta, ...]


@dataclass
class WindowCounts:
    """What one read returned: counts per SLO (by ``slo.key``) and window, the first reason a
    window of an SLO had no data, the SLOs whose queries were refused, the requests sent."""

    counts: dict[str, dict[timedelta, EventCounts | None]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    refused: dict[str, SourceError] = field(default_factory=dict)
    queries: int = 0

    def _value(self, slo: SLO, answer: Vector | NoData) -> float | None:
        if isinstance(answer, NoData):
            self.missing.setdefault(slo.key, answer.detail or answer.reason)
            return None
        value = answer.samples[0].value
        return None if math.isnan(value) else value


# -- Prometheus ----------------------------------------------------------------------------------


Part = Literal["good", "bad", "error_ratio"]


@dataclass(frozen=True)
class _Expressions:
    """The two expressions of one window: its events and its good or bad events (Occurrences)
    or its error ratio (time slices: the events are the slices with data)."""

    total: str
    part: str
    kind: Part

    @classmethod
    def of(cls, slo: SLO, window: timedelta) -> _Expressions:
        if slo.budgeting_method != "Occurrences":
            return cls(events_expr(slo, window), error_ratio_expr(slo, window), "error_ratio")
        queries = event_count_queries(slo, window=window)
        if queries.bad is not None:
            return cls(queries.total, queries.bad, "bad")
        assert queries.good is not None
        return cls(queries.total, queries.good, "good")

    def counts(self, total: float | None, part: float | None) -> EventCounts | None:
        """A missing total is no data; a missing good or bad series zero such events."""
        if total is None:
            return None
        if self.kind == "bad":
            return clamped_counts(good=total - (part or 0.0), total=total)
        if self.kind == "good":
            return clamped_counts(good=part or 0.0, total=total)
        if total == 0:
            return EventCounts(good=0, total=0)
        if part is None:
            return None
        return clamped_counts(good=total * (1 - part), total=total)


def read_metrics_counts(
    requests: Sequence[WindowRequest], *, metrics: MetricsSource, at: datetime
) -> WindowCounts:
    """Event counts of every requested window at ``at`` from Prometheus, batched (see the module
    docstring). Raises :class:`SourceUnavailable` when Prometheus cannot be reached."""
    read = WindowCounts()
    plans = {
        (request.slo.key, window): _Expressions.of(request.slo, window)
        for request in requests
        for window in request.windows
    }
    unique = list(dict.fromkeys(e for plan in plans.values() for e in (plan.total, plan.part)))
    if not unique:
        return read
    answers: dict[str, Vector | NoData] = {}
    try:
        batch = metrics.instant_many(unique, at=at)
    except SourceQueryError as exc:
        logger.warning("batched window counts refused, asking query by query: %s", exc)
        read.queries += 1
        refused: dict[str, SourceQueryError] = {}
        for expr in unique:
            try:
                answers[expr] = metrics.instant(expr, at=at)
            except SourceQueryError as refusal:
                refused[expr] = refusal
            read.queries += 1
        for (key, _), plan in plans.items():
            for expr in (plan.total, plan.part):
                if expr in refused:
                    read.refused.setdefault(key, refused[expr])
    else:
        read.queries += batch.queries
        answers = dict(zip(unique, batch.answers, strict=True))
    for request in requests:
        slo = request.slo
        if slo.key in read.refused:
            continue
        counts = read.counts.setdefault(slo.key, {})
        for window in request.windows:
            plan = plans[(slo.key, window)]
            total = read._value(slo, answers[plan.total])
            part = None if total is None else read._value(slo, answers[plan.part])
            counts[window] = plan.counts(total, part)
    return read


# -- Elasticsearch -------------------------------------------------------------------------------


def read_log_counts(
    requests: Sequence[WindowRequest], *, logs: LogSource, at: datetime
) -> WindowCounts:
    """Event counts of every requested window ``[at - w, at)`` from Elasticsearch: the SLI's own
    date field bounds the window (the source adds its configured one too). Raises
    :class:`SourceUnavailable` when Elasticsearch cannot be reached."""
    read = WindowCounts()
    for request in requests:
        slo, sli = request.slo, request.slo.sli
        if not isinstance(sli, ElasticsearchRatioSLI):
            raise ValueError(f"{slo.key} is not an Elasticsearch SLO")
        part: Literal["good", "bad"] = "bad" if sli.bad is not None else "good"
        counts: dict[timedelta, EventCounts | None] = {}
        try:
            for window in request.windows:
                start = at - window
                found: dict[str, int | None] = {}
                which: Literal["good", "bad", "total"]
                for which in ("total", part):
                    body = elasticsearch_count_body(sli, which=which, start=start, end=at)
                    read.queries += 1
                    result = logs.count(index=sli.index, query=body["query"], start=start, end=at)
                    if isinstance(result, NoData):
                        read.missing.setdefault(slo.key, result.detail or result.reason)
                        found[which] = None
                        break
                    found[which] = result.total
                counts[window] = _log_counts(part, found)
        except SourceQueryError as exc:
            read.refused[slo.key] = exc
            continue
        read.counts[slo.key] = counts
    return read


def _log_counts(part: str, found: Mapping[str, int | None]) -> EventCounts | None:
    total, value = found.get("total"), found.get(part)
    if total is None or value is None:
        return None
    good = total - value if part == "bad" else value
    return clamped_counts(good=good, total=total)
