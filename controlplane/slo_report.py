"""SLO report at one instant: event counts from Prometheus or Elasticsearch, maths from ``slo``.

The instant is explicit (``at``), never "now" by default, so a report can be checked against
history. Prometheus is asked for ``sum(increase(...[w]))`` evaluated at ``at`` for each window
(the period and every burn-rate window); Elasticsearch for ``_count`` over ``[at - w, at)``.
"No data" (a missing total series, an unreachable index) stays distinct from zero events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import requests
from elasticsearch import ApiError
from elasticsearch import Elasticsearch as ElasticsearchClient
from elasticsearch import TransportError as ESTransportError
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException

from slo.durations import format_duration
from slo.maths import EventCounts, SLIState, SLOStatus, evaluate_slo
from slo.queries import (
    elasticsearch_count_body,
    error_ratio_expr,
    event_count_queries,
    events_expr,
)
from slo.spec import SLO, CalendarWindow, ElasticsearchRatioSLI

__all__ = [
    "ElasticsearchEvents",
    "EventSource",
    "PrometheusEvents",
    "ReportError",
    "SLOReport",
    "build_report",
]


class ReportError(Exception):
    """A backend needed for the report could not answer."""


class EventSource(Protocol):
    def counts(self, slo: SLO, *, window: timedelta, at: datetime) -> EventCounts | None:
        """Good and total events of ``slo`` in ``(at - window, at]``; ``None`` when no data."""


def _clamped(*, good: float, total: float) -> EventCounts:
    """``increase()`` extrapolates each series on its own, so a threshold bucket can come out a
    hair above ``_count``; clamp into ``[0, total]`` (a real excess would be a broken SLI)."""
    return EventCounts(good=min(max(good, 0.0), total), total=total)


class PrometheusEvents:
    """Event counts from instant queries evaluated at the report instant."""

    def __init__(self, *, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = PrometheusConnect(url=self.url, disable_ssl=True)
        self.queries_sent = 0

    def _scalar(self, expr: str, at: datetime) -> float | None:
        self.queries_sent += 1
        try:
            result: list[dict[str, Any]] = self._client.custom_query(
                query=expr,
                params={"time": at.timestamp(), "timeout": f"{int(self.timeout * 1000)}ms"},
            )
        except PrometheusApiClientException as exc:
            raise ReportError(f"Prometheus at {self.url} refused {expr!r}: {exc}") from exc
        except requests.RequestException as exc:
            raise ReportError(f"Prometheus at {self.url} is unreachable: {exc}") from exc
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def counts(self, slo: SLO, *, window: timedelta, at: datetime) -> EventCounts | None:
        if slo.budgeting_method == "Occurrences":
            queries = event_count_queries(slo, window=window)
            total = self._scalar(queries.total, at)
            if total is None:
                return None
            if queries.bad is not None:
                bad = self._scalar(queries.bad, at) or 0.0
                return _clamped(good=total - bad, total=total)
            assert queries.good is not None
            good = self._scalar(queries.good, at) or 0.0
            return _clamped(good=good, total=total)
        # Time slices: the events are the slices with data, the error ratio their bad share.
        slices = self._scalar(events_expr(slo, window), at)
        if slices is None or slices == 0:
            return None if slices is None else EventCounts(good=0, total=0)
        error_ratio = self._scalar(error_ratio_expr(slo, window), at)
        if error_ratio is None:
            return None
        return _clamped(good=slices * (1 - error_ratio), total=slices)


class ElasticsearchEvents:
    """Event counts from ``_count`` requests over ``[at - window, at)`` on the date field."""

    def __init__(self, *, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self._client = ElasticsearchClient(url, request_timeout=timeout)

    def _count(
        self,
        sli: ElasticsearchRatioSLI,
        which: Literal["good", "bad", "total"],
        start: datetime,
        end: datetime,
    ) -> int:
        body = elasticsearch_count_body(sli, which=which, start=start, end=end)
        try:
            response = self._client.count(index=sli.index, query=body["query"])
        except (ApiError, ESTransportError) as exc:
            raise ReportError(f"Elasticsearch at {self.url} could not count: {exc}") from exc
        return int(response["count"])

    def counts(self, slo: SLO, *, window: timedelta, at: datetime) -> EventCounts | None:
        sli = slo.sli
        if not isinstance(sli, ElasticsearchRatioSLI):
            raise ReportError(f"{slo.key} is not an Elasticsearch SLO")
        start = at - window
        total = self._count(sli, "total", start, at)
        if sli.bad is not None:
            return _clamped(good=total - self._count(sli, "bad", start, at), total=total)
        return _clamped(good=self._count(sli, "good", start, at), total=total)


@dataclass(frozen=True, kw_only=True)
class SLOReport:
    slo: SLO
    at: datetime
    period_start: datetime
    status: SLOStatus
    burn_rates: Mapping[timedelta, float | None]

    def as_dict(self) -> dict[str, Any]:
        """Full-precision, JSON-ready view (the table rounds; this does not)."""
        status = self.status
        budget = status.budget
        return {
            "slo": self.slo.key,
            "service": self.slo.service,
            "tier": self.slo.tier,
            "at": self.at.isoformat(),
            "period_start": self.period_start.isoformat(),
            "objective": self.slo.target,
            "state": str(status.state),
            "sli": status.sli.sli,
            "error_ratio": status.sli.error_ratio,
            "events": None if status.sli.counts is None else status.sli.counts.total,
            "bad_events": None if status.sli.counts is None else status.sli.counts.bad,
            "budget_remaining_ratio": None if budget is None else budget.remaining_ratio,
            "budget_remaining_minutes": None if budget is None else budget.remaining_minutes,
            "budget_consumed_ratio": None if budget is None else budget.consumed_ratio,
            "current_burn_1h": status.current_burn,
            "time_to_exhaustion_s": (
                None if status.exhaustion is None else status.exhaustion.total_seconds()
            ),
            "burn_rates": {
                format_duration(window): burn for window, burn in sorted(self.burn_rates.items())
            },
            "alerts": [
                {
                    "severity": alert.window.severity,
                    "long": format_duration(alert.window.long),
                    "short": format_duration(alert.window.short),
                    "factor": alert.window.factor,
                    "firing": alert.firing,
                    "state": str(alert.state),
                }
                for alert in status.alerts
            ],
        }


def build_report(slo: SLO, *, source: EventSource, at: datetime) -> SLOReport:
    """Evaluate ``slo`` at ``at`` from the counts ``source`` returns for each window."""
    if at.tzinfo is None:
        raise ValueError("the report instant must be timezone-aware")
    period = slo.window.period_at(at)
    calendar = isinstance(slo.window, CalendarWindow)
    elapsed = period.elapsed if calendar else None
    period_window = period.elapsed if calendar else slo.period
    period_counts = (
        source.counts(slo, window=period_window, at=at) if period_window > timedelta(0) else None
    )
    windows = slo.burn_rate_windows()
    needed = sorted({w.long for w in windows} | {w.short for w in windows} | {timedelta(hours=1)})
    window_counts = {window: source.counts(slo, window=window, at=at) for window in needed}
    status = evaluate_slo(
        target=slo.target,
        period=period.length if calendar else slo.period,
        elapsed=elapsed,
        period_counts=period_counts,
        window_counts=window_counts,
        windows=windows,
        min_events=slo.min_events,
    )
    burn_rates: dict[timedelta, float | None] = {}
    for window, counts in window_counts.items():
        if counts is None or counts.total == 0 or counts.total < slo.min_events:
            burn_rates[window] = None
        else:
            burn_rates[window] = (counts.bad / counts.total) / (1 - slo.target)
    return SLOReport(
        slo=slo, at=at, period_start=period.start, status=status, burn_rates=burn_rates
    )


def no_data_reason(report: SLOReport) -> str | None:
    state = report.status.state
    if state == SLIState.NO_DATA:
        return "no samples for the SLI's total series in the period"
    if state == SLIState.INSUFFICIENT_TRAFFIC:
        return f"fewer than {report.slo.min_events} events in the period"
    return None
