r"""SLO maths: pure functions over event counts. No I/O.

Notation used in the formulas below (all windows are half-open ``[start, end)``):

* ``good(W)``, ``total(W)``: events counted in window ``W``; ``bad(W) = total(W) - good(W)``.
* ``T``: the objective (target), ``0 < T < 1``; ``B = 1 - T``: the allowed error ratio (budget).
* ``P``: the SLO period (30 days, 28 days, a calendar month...); ``E``: time elapsed in it.

Definitions:

* SLI over a window: ``sli(W) = good(W) / total(W)``; error ratio ``e(W) = bad(W) / total(W)``.
* Long windows are **event-weighted**: for sub-windows ``W1..Wn`` of ``W``,
  ``e(W) = Σ bad(Wi) / Σ total(Wi)`` — never ``mean(e(Wi))``, which over-weights quiet periods.
* Burn rate over ``W``: ``burn(W) = e(W) / B``. Burn 1 spends exactly the budget over ``P``.
* Error budget: total ``B·P`` (as minutes: ``B·P/1min``); consumed share
  ``c = e(window) / B · E / P`` (for rolling windows ``E = P`` so ``c = e / B``); remaining share
  ``1 - c`` (negative once overspent); consumed minutes ``e·E``; remaining minutes ``B·P - e·E``.
  For calendar windows this reports the budget since the window's start and assumes the
  remaining part of the period carries the same traffic per unit of time as the elapsed part.
* Time to exhaustion at burn ``b > 0``: ``remaining_share · P / b`` (the budget drains at
  ``b / P`` of its total per unit of time).
* Multi-window multi-burn-rate (SRE Workbook): an alert with long window ``L``, short window
  ``S`` and budget share ``s`` fires when ``burn(L) > f`` and ``burn(S) > f`` with
  ``f = s · P / L``. With ``P = 30d``: 14.4 (1h/5m, 2 %), 6 (6h/30m, 5 %), 3 (1d/2h, 10 %),
  1 (3d/6h, 10 %); with ``P = 28d`` the 1 h factor is 13.44.

States: a window whose series are missing is ``no_data``; one with fewer than ``min_events``
events (zero traffic included) is ``insufficient_traffic``. Neither is ever read as "no errors".
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "SEVERITIES",
    "SRE_WORKBOOK_WINDOWS",
    "AlertEvaluation",
    "BurnRateWindow",
    "CalendarPeriod",
    "ComparisonOp",
    "ErrorBudget",
    "EventCounts",
    "SLIResult",
    "SLIState",
    "SLOStatus",
    "Severity",
    "both_windows_burning",
    "burn_rate",
    "burn_rate_factor",
    "calendar_period",
    "compare",
    "counter_increase",
    "default_burn_rate_windows",
    "error_budget",
    "evaluate_burn_rate_alert",
    "evaluate_burn_rate_alerts",
    "evaluate_slo",
    "event_weighted",
    "ratio_timeslice_counts",
    "rolling_period",
    "sli_result",
    "time_to_exhaustion",
    "timeslice_counts",
    "window_burn",
]

Severity = Literal["page", "ticket"]
SEVERITIES: tuple[Severity, ...] = ("page", "ticket")
ComparisonOp = Literal["lt", "lte", "gt", "gte"]


class SLIState(StrEnum):
    """Whether a value could be computed, and if not, why."""

    OK = "ok"
    NO_DATA = "no_data"
    INSUFFICIENT_TRAFFIC = "insufficient_traffic"


@dataclass(frozen=True, kw_only=True)
class EventCounts:
    """Good and total events in one window (floats: Prometheus increases are not integers)."""

    good: float
    total: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.good) and math.isfinite(self.total)):
            raise ValueError(
                f"event counts must be finite, got good={self.good} total={self.total}"
            )
        if self.good < 0 or self.total < 0:
            raise ValueError(
                f"event counts must be non-negative, got good={self.good} total={self.total}"
            )
        if self.good > self.total:
            raise ValueError(f"good events ({self.good}) exceed total events ({self.total})")

    @classmethod
    def from_bad(cls, *, bad: float, total: float) -> EventCounts:
        """Counts from a bad/total pair: ``good = total - bad``."""
        if bad < 0:
            raise ValueError(f"bad events must be non-negative, got {bad}")
        return cls(good=total - bad, total=total)

    @property
    def bad(self) -> float:
        return self.total - self.good


@dataclass(frozen=True, kw_only=True)
class SLIResult:
    """The SLI of one window. ``sli`` and ``error_ratio`` are ``None`` unless state is ok."""

    state: SLIState
    counts: EventCounts | None
    sli: float | None
    error_ratio: float | None


def counter_increase(values: Sequence[float]) -> float | None:
    """Increase of a counter from consecutive raw samples, counting resets.

    ``increase = Σ max-aware deltas`` where each step adds ``v[i] - v[i-1]`` if the counter
    did not go down, else ``v[i]`` (the counter restarted from zero). Unlike PromQL
    ``increase()`` this does not extrapolate to the window edges: it is the exact increase
    between the first and the last sample. Fewer than two samples give ``None`` (no data).
    """
    if len(values) < 2:
        return None
    parts: list[float] = []
    for previous, current in itertools.pairwise(values):
        parts.append(current - previous if current >= previous else current)
    return math.fsum(parts)


def event_weighted(windows: Iterable[EventCounts | None]) -> EventCounts | None:
    """Combine sub-windows by summing their events: ``Σ good(Wi)`` over ``Σ total(Wi)``.

    Sub-windows without data are skipped; if none has data the result is ``None``.
    """
    present = [w for w in windows if w is not None]
    if not present:
        return None
    return EventCounts(
        good=math.fsum(w.good for w in present), total=math.fsum(w.total for w in present)
    )


def sli_result(counts: EventCounts | None, *, min_events: float = 1) -> SLIResult:
    """``sli = good / total``; ``no_data`` without counts, ``insufficient_traffic`` below
    ``min_events`` (zero traffic is always insufficient: ``0 / 0`` has no value)."""
    if counts is None:
        return SLIResult(state=SLIState.NO_DATA, counts=None, sli=None, error_ratio=None)
    if counts.total == 0 or counts.total < min_events:
        return SLIResult(
            state=SLIState.INSUFFICIENT_TRAFFIC, counts=counts, sli=None, error_ratio=None
        )
    return SLIResult(
        state=SLIState.OK,
        counts=counts,
        sli=counts.good / counts.total,
        error_ratio=counts.bad / counts.total,
    )


def _check_target(target: float) -> float:
    """The allowed error ratio ``1 - T`` as written (``0.001`` for ``0.999``, not the binary
    ``1 - 0.999``): the same divisor as the generated rules' ``/ 0.001``."""
    if not 0 < target < 1:
        raise ValueError(f"target must be strictly between 0 and 1, got {target}")
    return float(Decimal(1) - Decimal(repr(target)))


def burn_rate(*, error_ratio: float, target: float) -> float:
    """``burn = e / (1 - T)``."""
    return error_ratio / _check_target(target)


def _burn_or_none(result: SLIResult, *, target: float) -> float | None:
    if result.error_ratio is None:
        return None
    return burn_rate(error_ratio=result.error_ratio, target=target)


def window_burn(
    counts: EventCounts | None, *, target: float, min_events: float = 1
) -> float | None:
    """The burn rate of one window's events; ``None`` without data or below ``min_events``."""
    return _burn_or_none(sli_result(counts, min_events=min_events), target=target)


@dataclass(frozen=True, kw_only=True)
class ErrorBudget:
    """Error budget of one SLO period (see the module docstring for the formulas)."""

    target: float
    period: timedelta
    elapsed: timedelta
    error_ratio: float
    allowed_ratio: float
    consumed_ratio: float
    remaining_ratio: float
    total_minutes: float
    consumed_minutes: float
    remaining_minutes: float


def error_budget(
    *, target: float, error_ratio: float, period: timedelta, elapsed: timedelta | None = None
) -> ErrorBudget:
    """Budget of a period ``P`` after ``E`` (= ``elapsed``, default ``P``) at error ratio ``e``.

    ``allowed = 1 - T``; ``consumed = e/(1-T) · E/P``; ``remaining = 1 - consumed``;
    ``total_minutes = (1-T)·P``; ``consumed_minutes = e·E``;
    ``remaining_minutes = total_minutes - consumed_minutes``.
    """
    allowed = _check_target(target)
    if not 0 <= error_ratio <= 1:
        raise ValueError(f"error ratio must be within [0, 1], got {error_ratio}")
    if period <= timedelta(0):
        raise ValueError(f"period must be positive, got {period}")
    spent = period if elapsed is None else elapsed
    if not timedelta(0) < spent <= period:
        raise ValueError(f"elapsed time must be within (0, {period}], got {spent}")
    share = Fraction(round(spent.total_seconds() * 1000), round(period.total_seconds() * 1000))
    consumed = error_ratio / allowed * float(share)
    period_minutes = period.total_seconds() / 60
    total_minutes = allowed * period_minutes
    consumed_minutes = error_ratio * spent.total_seconds() / 60
    return ErrorBudget(
        target=target,
        period=period,
        elapsed=spent,
        error_ratio=error_ratio,
        allowed_ratio=allowed,
        consumed_ratio=consumed,
        remaining_ratio=1 - consumed,
        total_minutes=total_minutes,
        consumed_minutes=consumed_minutes,
        remaining_minutes=total_minutes - consumed_minutes,
    )


def time_to_exhaustion(
    *, remaining_ratio: float, burn: float, period: timedelta
) -> timedelta | None:
    """``remaining · P / burn``; ``None`` when the budget is not being spent (``burn <= 0``);
    zero when the budget is already gone."""
    if remaining_ratio <= 0:
        return timedelta(0)
    if burn <= 0:
        return None
    return timedelta(seconds=remaining_ratio * period.total_seconds() / burn)


# --- multi-window multi-burn-rate ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BurnRateWindow:
    """One alert of the multi-window scheme: fires when both windows burn above ``factor``.

    ``inclusive`` makes the comparison ``>=`` instead of ``>`` (OpenSLO ``op: gte``);
    ``for_`` is how long the condition must hold before the alert fires (``None``: at once).
    ``policy`` and ``notify`` name the alert policy the window comes from and its notification
    targets (OpenSLO ``AlertPolicy``); they label the alert, the maths ignore them.
    """

    severity: Severity
    long: timedelta
    short: timedelta
    factor: float
    budget_share: Fraction | None = None
    inclusive: bool = False
    for_: timedelta | None = None
    policy: str | None = None
    notify: tuple[str, ...] = ()

    def exceeded(self, burn: float) -> bool:
        return burn >= self.factor if self.inclusive else burn > self.factor


SRE_WORKBOOK_WINDOWS: tuple[tuple[Severity, timedelta, timedelta, Fraction], ...] = (
    ("page", timedelta(hours=1), timedelta(minutes=5), Fraction(2, 100)),
    ("page", timedelta(hours=6), timedelta(minutes=30), Fraction(5, 100)),
    ("ticket", timedelta(days=1), timedelta(hours=2), Fraction(10, 100)),
    ("ticket", timedelta(days=3), timedelta(hours=6), Fraction(10, 100)),
)
"""(severity, long window, short window, share of the budget the long window may consume)."""


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


def burn_rate_factor(*, budget_share: Fraction, period: timedelta, long_window: timedelta) -> float:
    """``f = share · P / L``, computed exactly, e.g. ``2 % · 30d / 1h = 14.4``."""
    return float(budget_share * Fraction(_ms(period), _ms(long_window)))


@functools.lru_cache(maxsize=64)
def default_burn_rate_windows(period: timedelta) -> tuple[BurnRateWindow, ...]:
    """The SRE Workbook's four alerts with factors derived from ``period``.

    Pairs whose long window is longer than the period are left out. Cached: SLOs of one period
    share the same (frozen) windows instead of holding a copy each.
    """
    return tuple(
        BurnRateWindow(
            severity=severity,
            long=long,
            short=short,
            budget_share=share,
            factor=burn_rate_factor(budget_share=share, period=period, long_window=long),
        )
        for severity, long, short, share in SRE_WORKBOOK_WINDOWS
        if long <= period
    )


@dataclass(frozen=True, kw_only=True)
class AlertEvaluation:
    """The outcome of one burn-rate alert at one instant."""

    window: BurnRateWindow
    state: SLIState
    long_burn: float | None
    short_burn: float | None
    firing: bool


def evaluate_burn_rate_alerts(
    *,
    target: float,
    windows: Sequence[BurnRateWindow],
    counts: Mapping[timedelta, EventCounts | None],
    min_events: float = 1,
) -> tuple[AlertEvaluation, ...]:
    """Evaluate each alert from the events of its long and short windows.

    An alert fires only when both windows are ``ok`` and both burn above the factor. If either
    window has no data the state is ``no_data``; if either has too little traffic it is
    ``insufficient_traffic``; in both cases the alert does not fire (the absent-data alert and
    the states themselves are what report it).
    """
    results: list[AlertEvaluation] = []
    for window in windows:
        long = sli_result(counts.get(window.long), min_events=min_events)
        short = sli_result(counts.get(window.short), min_events=min_events)
        results.append(
            evaluate_burn_rate_alert(
                window,
                long_state=long.state,
                short_state=short.state,
                long_burn=_burn_or_none(long, target=target),
                short_burn=_burn_or_none(short, target=target),
            )
        )
    return tuple(results)


def both_windows_burning(
    window: BurnRateWindow, *, long_burn: float | None, short_burn: float | None
) -> bool:
    """The multi-window rule: the alert fires when both of its windows burn above the factor.
    An unknown burn (``None``) never fires."""
    return (
        long_burn is not None
        and short_burn is not None
        and window.exceeded(long_burn)
        and window.exceeded(short_burn)
    )


def evaluate_burn_rate_alert(
    window: BurnRateWindow,
    *,
    long_state: SLIState,
    short_state: SLIState,
    long_burn: float | None,
    short_burn: float | None,
) -> AlertEvaluation:
    """One alert from the states and burns of its two windows: ``no_data`` if either window
    has no data, else ``insufficient_traffic`` if either has too little, else ``ok``; it fires
    only when ``ok`` and :func:`both_windows_burning`."""
    states = {long_state, short_state}
    if SLIState.NO_DATA in states:
        state = SLIState.NO_DATA
    elif SLIState.INSUFFICIENT_TRAFFIC in states:
        state = SLIState.INSUFFICIENT_TRAFFIC
    else:
        state = SLIState.OK
    firing = state is SLIState.OK and both_windows_burning(
        window, long_burn=long_burn, short_burn=short_burn
    )
    return AlertEvaluation(
        window=window, state=state, long_burn=long_burn, short_burn=short_burn, firing=firing
    )


# --- time slices ------------------------------------------------------------------------------


def compare(value: float, op: ComparisonOp, threshold: float) -> bool:
    """``value <op> threshold`` for OpenSLO's ``lt``, ``lte``, ``gt``, ``gte``."""
    if op == "lt":
        return value < threshold
    if op == "lte":
        return value <= threshold
    if op == "gt":
        return value > threshold
    return value >= threshold


def timeslice_counts(
    values: Sequence[float | None], *, op: ComparisonOp, threshold: float
) -> EventCounts | None:
    """Timeslices budgeting: each slice with data is one event, good when ``value op threshold``.

    Slices without data (``None`` or NaN) count neither as good nor as bad; when no slice has
    data the result is ``None`` (no data).
    """
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None
    good = sum(1 for v in present if compare(v, op, threshold))
    return EventCounts(good=good, total=len(present))


def ratio_timeslice_counts(slices: Sequence[EventCounts | None]) -> EventCounts | None:
    """RatioTimeslices budgeting: the SLI is the mean of the per-slice ratios.

    Returned as ``good = Σ sli(slice)``, ``total = number of slices with traffic`` so that
    ``good / total`` is that mean and the budget maths apply unchanged. Slices without data or
    without traffic are skipped; ``None`` when none is left.
    """
    ratios = [s.good / s.total for s in slices if s is not None and s.total > 0]
    if not ratios:
        return None
    return EventCounts(good=min(math.fsum(ratios), float(len(ratios))), total=len(ratios))


# --- windows ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CalendarPeriod:
    """One occurrence of a window: ``[start, end)`` in UTC, evaluated at ``at``."""

    start: datetime
    end: datetime
    at: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def elapsed(self) -> timedelta:
        return self.at - self.start


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, got {at.isoformat()}")
    return at.astimezone(UTC)


def rolling_period(*, at: datetime, duration: timedelta) -> CalendarPeriod:
    """A rolling window ends at ``at``: ``[at - duration, at)``."""
    end = _require_aware(at)
    return CalendarPeriod(start=end - duration, end=end, at=end)


def calendar_period(
    *,
    at: datetime,
    unit: Literal["week", "month"],
    timezone: str = "UTC",
    week_start: int = 0,
) -> CalendarPeriod:
    """The calendar week or month containing ``at``, with boundaries at local midnight.

    Months start on day 1; weeks on ``week_start`` (0 = Monday). ``at`` exactly on a boundary
    belongs to the window that starts there. Lengths follow the calendar (28-31 days, and DST
    changes in ``timezone`` make a local day 23 or 25 hours long).
    """
    instant = _require_aware(at)
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    local = instant.astimezone(zone)
    if unit == "month":
        start_local = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if start_local.month == 12:
            end_local = start_local.replace(year=start_local.year + 1, month=1)
        else:
            end_local = start_local.replace(month=start_local.month + 1)
    else:
        if not 0 <= week_start <= 6:
            raise ValueError(f"week_start must be 0 (Monday) to 6 (Sunday), got {week_start}")
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        days_back = (local.weekday() - week_start) % 7
        start_date = midnight.date() - timedelta(days=days_back)
        start_local = datetime(start_date.year, start_date.month, start_date.day, tzinfo=zone)
        end_date = start_date + timedelta(days=7)
        end_local = datetime(end_date.year, end_date.month, end_date.day, tzinfo=zone)
    return CalendarPeriod(
        start=start_local.astimezone(UTC), end=end_local.astimezone(UTC), at=instant
    )


# --- everything at one instant ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SLOStatus:
    """The SLO at one instant: SLI and budget over the period, current burn, alerts."""

    state: SLIState
    sli: SLIResult
    budget: ErrorBudget | None
    current_burn: float | None
    exhaustion: timedelta | None
    alerts: tuple[AlertEvaluation, ...]


def evaluate_slo(
    *,
    target: float,
    period: timedelta,
    elapsed: timedelta | None,
    period_counts: EventCounts | None,
    window_counts: Mapping[timedelta, EventCounts | None],
    windows: Sequence[BurnRateWindow],
    current_window: timedelta = timedelta(hours=1),
    min_events: float = 1,
) -> SLOStatus:
    """SLI and budget over the period (or since the calendar window's start when ``elapsed`` is
    given), burn over ``current_window``, time to exhaustion at that burn, and the alerts."""
    sli = sli_result(period_counts, min_events=min_events)
    alerts = evaluate_burn_rate_alerts(
        target=target, windows=windows, counts=window_counts, min_events=min_events
    )
    current = sli_result(window_counts.get(current_window), min_events=min_events)
    current_burn = _burn_or_none(current, target=target)
    if sli.error_ratio is None or (elapsed is not None and elapsed <= timedelta(0)):
        return SLOStatus(
            state=sli.state if sli.error_ratio is None else SLIState.NO_DATA,
            sli=sli,
            budget=None,
            current_burn=current_burn,
            exhaustion=None,
            alerts=alerts,
        )
    budget = error_budget(
        target=target, error_ratio=sli.error_ratio, period=period, elapsed=elapsed
    )
    exhaustion = (
        None
        if current_burn is None
        else time_to_exhaustion(
            remaining_ratio=budget.remaining_ratio, burn=current_burn, period=period
        )
    )
    return SLOStatus(
        state=SLIState.OK,
        sli=sli,
        budget=budget,
        current_burn=current_burn,
        exhaustion=exhaustion,
        alerts=alerts,
    )
