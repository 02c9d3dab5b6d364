"""Event counts for :func:`controlplane.slo_report.build_report` read through the source adapters.

The raw plan: for one SLO and one window, ``sum(increase(...[w]))`` instant queries on
Prometheus, ``_count``-style searches on Elasticsearch. It is what the batched recording-rule
plan falls back to (calendar windows, ``min_events`` above 1, rules not loaded in Prometheus)
and how Elasticsearch-backed SLOs are evaluated. Errors are the sources' typed errors
(:class:`~controlplane.sources.base.SourceError`), raised as they come; "no data" is ``None``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from controlplane.sources.base import LogSource, MetricsSource, NoData
from slo.maths import EventCounts
from slo.queries import error_ratio_expr, event_count_queries, events_expr
from slo.spec import SLO, ElasticsearchRatioSLI

__all__ = ["LogEvents", "MetricsEvents", "clamped_counts"]


def clamped_counts(*, good: float, total: float) -> EventCounts:
    """``increase()`` extrapolates each series on its own, so a good count can come out a hair
    above the total (or below zero); clamp into ``[0, total]``."""
    return EventCounts(good=min(max(good, 0.0), total), total=total)


class MetricsEvents:
    """Raw Prometheus event counts of one SLO window, through a :class:`MetricsSource`."""

    def __init__(self, *, metrics: MetricsSource) -> None:
        self.metrics = metrics
        self.queries = 0
        #: Why the first window of an SLO had no data (by ``slo.key``), for the stored reason.
        self.reasons: dict[str, str] = {}
        self._current = ""

    def _scalar(self, expr: str, at: datetime) -> float | None:
        self.queries += 1
        result = self.metrics.instant(expr, at=at)
        if isinstance(result, NoData):
            self.reasons.setdefault(self._current, result.detail or result.reason)
            return None
        value = result.samples[0].value
        return None if math.isnan(value) else value

    def counts(self, slo: SLO, *, window: timedelta, at: datetime) -> EventCounts | None:
        self._current = slo.key
        if slo.budgeting_method == "Occurrences":
            queries = event_count_queries(slo, window=window)
            total = self._scalar(queries.total, at)
            if total is None:
                return None
            if queries.bad is not None:
                bad = self._scalar(queries.bad, at) or 0.0
                return clamped_counts(good=total - bad, total=total)
            assert queries.good is not None
            good = self._scalar(queries.good, at) or 0.0
            return clamped_counts(good=good, total=total)
        # Time slices: the events are the slices with data, the error ratio their bad share.
        slices = self._scalar(events_expr(slo, window), at)
        if slices is None or slices == 0:
            return None if slices is None else EventCounts(good=0, total=0)
        error_ratio = self._scalar(error_ratio_expr(slo, window), at)
        if error_ratio is None:
            return None
        return clamped_counts(good=slices * (1 - error_ratio), total=slices)


class LogEvents:
    """Elasticsearch event counts of one SLO window ``[at - window, at)``, through a
    :class:`LogSource`. The SLI's own date field bounds the window (the source adds its
    configured one, ``CONTROLPLANE_ELASTICSEARCH_TIMESTAMP_FIELD``, too)."""

    def __init__(self, *, logs: LogSource) -> None:
        self.logs = logs
        self.queries = 0
        #: Why the first window of an SLO had no data (by ``slo.key``), for the stored reason.
        self.reasons: dict[str, str] = {}
        self._current = ""

    def _count(
        self, sli: ElasticsearchRatioSLI, query: str, start: datetime, end: datetime
    ) -> int | None:
        self.queries += 1
        bounded: dict[str, Any] = {
            "bool": {
                "filter": [
                    ElasticsearchRatioSLI.dsl(query),
                    {
                        "range": {
                            sli.timestamp_field: {
                                "gte": start.isoformat(),
                                "lt": end.isoformat(),
                                "format": "strict_date_optional_time",
                            }
                        }
                    },
                ]
            }
        }
        result = self.logs.count(index=sli.index, query=bounded, start=start, end=end)
        if isinstance(result, NoData):
            self.reasons.setdefault(self._current, result.detail or result.reason)
            return None
        return result.total

    def counts(self, slo: SLO, *, window: timedelta, at: datetime) -> EventCounts | None:
        sli = slo.sli
        if not isinstance(sli, ElasticsearchRatioSLI):
            raise ValueError(f"{slo.key} is not an Elasticsearch SLO")
        self._current = slo.key
        start = at - window
        total = self._count(sli, sli.total, start, at)
        if total is None:
            return None
        if sli.bad is not None:
            bad = self._count(sli, sli.bad, start, at)
            return None if bad is None else clamped_counts(good=total - bad, total=total)
        assert sli.good is not None
        good = self._count(sli, sli.good, start, at)
        return None if good is None else clamped_counts(good=good, total=total)
