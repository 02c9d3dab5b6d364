"""Query text for each SLI kind: PromQL for rules and reports, Elasticsearch count bodies.

Pure string and dict building; the adapters that send these queries live in the control plane.

PromQL error ratio over a window ``w`` (event-weighted: a ratio of increases, never an
average of shorter ratios; ``rate`` is ``increase / w`` so the ratio is the same):

* bad/total:  ``(sum(rate(BAD[w])) or vector(0)) / sum(rate(TOTAL[w]))``
* good/total: ``(sum(rate(TOTAL[w])) - (sum(rate(GOOD[w])) or vector(0))) / sum(rate(TOTAL[w]))``

``or vector(0)`` makes a missing bad (or good) series count as zero events — a counter that
has never been incremented often has no series at all — while a missing *total* leaves the
result empty (no data) and zero traffic gives NaN (``0/0``): neither ever reads as "no errors".

Time slices (``Timeslices``, ``RatioTimeslices``) use a subquery with the slice as its step:
``1 - avg_over_time(GOOD_SLICE[w:slice])`` where ``GOOD_SLICE`` is 1/0 per slice (or the
slice's good ratio for ``RatioTimeslices``); slices without data are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from slo.durations import format_duration
from slo.maths import ComparisonOp
from slo.promql import Selector
from slo.spec import (
    SLO,
    ElasticsearchRatioSLI,
    PrometheusLatencySLI,
    PrometheusRatioSLI,
    PrometheusThresholdSLI,
)

__all__ = [
    "EventCountQueries",
    "absent_expr",
    "budget_literal",
    "burn_rate_expr",
    "elasticsearch_count_body",
    "error_ratio_expr",
    "event_count_queries",
    "events_expr",
    "format_number",
    "newest_sample_expr",
    "slice_value_expr",
]

_SYMBOL: dict[ComparisonOp, str] = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def format_number(value: float) -> str:
    """Shortest exact text for a float in PromQL: ``14.4``, ``6``, ``0.9333333333333333``."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _counter_selectors(
    sli: PrometheusRatioSLI | PrometheusLatencySLI,
) -> tuple[Selector | None, Selector | None, Selector]:
    """(good, bad, total) selectors; exactly one of good and bad is set."""
    if isinstance(sli, PrometheusLatencySLI):
        return sli.good, None, sli.total
    return sli.good, sli.bad, sli.total


def _sum(function: str, selector: Selector, window: timedelta) -> str:
    return f"sum({function}({selector.render()}[{format_duration(window)}]))"


def _ratio_error(sli: PrometheusRatioSLI | PrometheusLatencySLI, window: timedelta) -> str:
    good, bad, total = _counter_selectors(sli)
    total_rate = _sum("rate", total, window)
    if bad is not None:
        return f"({_sum('rate', bad, window)} or vector(0)) / {total_rate}"
    assert good is not None
    return f"({total_rate} - ({_sum('rate', good, window)} or vector(0))) / {total_rate}"


def _prometheus_sli(slo: SLO) -> PrometheusRatioSLI | PrometheusLatencySLI | PrometheusThresholdSLI:
    if isinstance(slo.sli, ElasticsearchRatioSLI):
        raise ValueError(f"{slo.key} is an Elasticsearch SLO: it has no PromQL")
    return slo.sli


def slice_value_expr(slo: SLO) -> str:
    """PromQL whose value at an instant is one slice's good indicator.

    ``Timeslices``: 1 if the slice is good, 0 if bad (NaN slices are dropped).
    ``RatioTimeslices``: the slice's good ratio (zero-traffic slices are dropped).
    """
    sli = _prometheus_sli(slo)
    if slo.time_slice is None:
        raise ValueError(f"{slo.key} does not use time slices")
    if isinstance(sli, PrometheusThresholdSLI):
        value = f"({sli.query})"
        op, threshold = _SYMBOL[sli.op], sli.threshold
    else:
        value = f"(1 - {_ratio_error(sli, slo.time_slice)})"
        op = ">="
        threshold = slo.time_slice_target if slo.time_slice_target is not None else 0.0
    not_nan = f"{value} == {value}"
    if slo.budgeting_method == "RatioTimeslices":
        return f"({not_nan})"
    return f"(({value} {op} bool {format_number(threshold)}) and ({not_nan}))"


def _subquery(slo: SLO, window: timedelta) -> str:
    assert slo.time_slice is not None
    return f"{slice_value_expr(slo)}[{format_duration(window)}:{format_duration(slo.time_slice)}]"


def error_ratio_expr(slo: SLO, window: timedelta) -> str:
    """PromQL for the error ratio of ``slo`` over ``window`` (see the module docstring)."""
    sli = _prometheus_sli(slo)
    if slo.budgeting_method == "Occurrences":
        assert not isinstance(sli, PrometheusThresholdSLI)
        return _ratio_error(sli, window)
    return f"1 - avg_over_time({_subquery(slo, window)})"


def events_expr(slo: SLO, window: timedelta) -> str:
    """PromQL for the number of events (or slices with data) in ``window``."""
    sli = _prometheus_sli(slo)
    if slo.budgeting_method == "Occurrences":
        assert not isinstance(sli, PrometheusThresholdSLI)
        return _sum("increase", _counter_selectors(sli)[2], window)
    return f"count_over_time({_subquery(slo, window)})"


def budget_literal(slo: SLO) -> str:
    """The error budget ``1 - objective`` as written in PromQL: ``0.001`` for ``0.999``."""
    return format(slo.error_budget_decimal.normalize(), "f")


def burn_rate_expr(error_ratio: str, *, budget: str) -> str:
    """PromQL for the burn rate of an error-ratio expression: ``e / (1 - objective)``, the
    budget given as :func:`budget_literal` writes it."""
    return f"{error_ratio} / {budget}"


def newest_sample_expr(slo: SLO) -> str:
    """PromQL for the time (Unix seconds) of the newest raw sample the SLI reads: how fresh a
    value computed from it is. Threshold SLIs have no raw series of their own: their query's
    evaluation time is all there is."""
    sli = _prometheus_sli(slo)
    if isinstance(sli, PrometheusThresholdSLI):
        return f"max(timestamp({sli.query}))"
    return f"max(timestamp({_counter_selectors(sli)[2].render()}))"


def absent_expr(slo: SLO) -> str:
    """PromQL that returns 1 when the series the SLI needs are missing."""
    sli = _prometheus_sli(slo)
    if isinstance(sli, PrometheusThresholdSLI):
        return f"absent({sli.query})"
    return f"absent(sum({_counter_selectors(sli)[2].render()}))"


@dataclass(frozen=True, kw_only=True)
class EventCountQueries:
    """Instant queries for the events of one window (``sum(increase(...[w]))``).

    Exactly one of ``good`` and ``bad`` is set. An empty result of ``total`` means no data;
    an empty result of ``good``/``bad`` means zero such events.
    """

    good: str | None
    bad: str | None
    total: str


def event_count_queries(slo: SLO, *, window: timedelta) -> EventCountQueries:
    """Queries for the good (or bad) and total events of an Occurrences SLO over ``window``."""
    sli = _prometheus_sli(slo)
    if isinstance(sli, PrometheusThresholdSLI) or slo.budgeting_method != "Occurrences":
        raise ValueError(f"{slo.key} is budgeted by time slices: query slice_value_expr instead")
    good, bad, total = _counter_selectors(sli)
    return EventCountQueries(
        good=None if good is None else _sum("increase", good, window),
        bad=None if bad is None else _sum("increase", bad, window),
        total=_sum("increase", total, window),
    )


def elasticsearch_count_body(
    sli: ElasticsearchRatioSLI,
    *,
    which: Literal["good", "bad", "total"],
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    """Body of an ``_count`` request for the events of ``[start, end)`` on the date field."""
    query = {"good": sli.good, "bad": sli.bad, "total": sli.total}[which]
    if query is None:
        raise ValueError(f"this SLI has no {which} query")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    return {
        "query": {
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
    }
