"""What an SLO's latest evaluation means for an operator (pure: no I/O, no Dash).

* :func:`classify`: ``burning_page`` / ``burning_ticket`` / ``no_data`` / ``ok``.
* :func:`worst_first`: the overview's order.
* :func:`alert_windows`: the multi-window alerts with their factors and whether they fire.
* :func:`exhaustion_forecast`: when the error budget runs out at the current burn rate.
* :func:`burning_window`: the time range to pull example traces from.

The verdicts are the control plane's: the evaluation's typed ``details``
(:class:`~controlplane.evaluation.details.EvaluationDetails`) carry every alert with its factor
and whether it fires, the period and the forecast of exhaustion. Nothing here decides again
whether an alert fires; an evaluation without alerts has none firing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal

from controlplane.client.models import SLOStatus
from controlplane.evaluation.details import EvaluationDetails
from slo.durations import DurationError
from slo.durations import format_duration as _format_duration
from slo.durations import parse_duration as _parse_duration
from slo.maths import time_to_exhaustion

# The same few window labels come back for every SLO (thousands per overview refresh).
parse_duration = lru_cache(maxsize=1024)(_parse_duration)
format_duration = lru_cache(maxsize=1024)(_format_duration)

__all__ = [
    "DEFAULT_PERIOD",
    "STATUS_LABELS",
    "AlertWindow",
    "Status",
    "alert_windows",
    "burning_window",
    "classify",
    "exhaustion_forecast",
    "max_burn_rate",
    "period_of",
    "window_seconds",
    "worst_first",
]

Status = Literal["burning_page", "burning_ticket", "no_data", "ok"]
STATUS_LABELS: Mapping[Status, str] = {
    "burning_page": "burning · page",
    "burning_ticket": "burning · ticket",
    "no_data": "no data",
    "ok": "ok",
}
_RANK: Mapping[Status, int] = {"burning_page": 0, "burning_ticket": 1, "no_data": 2, "ok": 3}
DEFAULT_PERIOD = timedelta(days=30)
DEFAULT_BURNING_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class AlertWindow:
    """One multi-window burn-rate alert: fires when both windows burn above ``factor``."""

    severity: str
    long: timedelta
    short: timedelta
    factor: float
    long_burn: float | None
    short_burn: float | None
    firing: bool


def alert_label(window: AlertWindow) -> str:
    """``page 14.4× (1h & 5m)``: severity, factor and the two windows of an alert."""
    pair = f"{format_duration(window.long)} & {format_duration(window.short)}"
    return f"{window.severity} {window.factor:g}× ({pair})"


def window_seconds(window: str) -> float:
    """Seconds of a window label such as ``5m`` or ``1d`` (infinity when unreadable, so that
    unknown labels sort last)."""
    try:
        return parse_duration(window).total_seconds()
    except DurationError:
        return math.inf


def period_of(details: EvaluationDetails) -> timedelta:
    if details.period is not None:
        try:
            return parse_duration(details.period)
        except DurationError:
            return DEFAULT_PERIOD
    return DEFAULT_PERIOD


def _burn(burn_rates: Mapping[str, float | None], window: timedelta) -> float | None:
    return burn_rates.get(format_duration(window))


def alert_windows(status: SLOStatus) -> tuple[AlertWindow, ...]:
    """The SLO's burn-rate alerts as the control plane evaluated them (``details.alerts``),
    with the burn rates of their two windows; alerts whose windows cannot be read are left
    out."""
    windows = []
    for alert in status.details.alerts:
        try:
            long, short = parse_duration(alert.long), parse_duration(alert.short)
        except DurationError:
            continue
        windows.append(
            AlertWindow(
                severity=alert.severity,
                long=long,
                short=short,
                factor=alert.factor,
                long_burn=_burn(status.burn_rates, long),
                short_burn=_burn(status.burn_rates, short),
                firing=alert.firing,
            )
        )
    return tuple(windows)


def classify(status: SLOStatus) -> Status:
    """No data first (an SLI without data is never "ok"), then the most severe firing alert."""
    if status.state != "ok" or status.sli is None:
        return "no_data"
    firing = {window.severity for window in alert_windows(status) if window.firing}
    if "page" in firing:
        return "burning_page"
    if firing:
        return "burning_ticket"
    return "ok"


def max_burn_rate(status: SLOStatus) -> float | None:
    rates = [rate for rate in status.burn_rates.values() if rate is not None]
    return max(rates) if rates else None


def worst_first(statuses: Iterable[SLOStatus]) -> list[tuple[SLOStatus, Status]]:
    """Page-burning first, then ticket-burning, no data, ok; within a status the least budget
    left first (unknown last), then the highest burn rate, then the id."""

    def key(item: tuple[SLOStatus, Status]) -> tuple[int, float, float, str]:
        status, kind = item
        budget = status.budget_remaining
        burn = max_burn_rate(status)
        return (
            _RANK[kind],
            budget if budget is not None else math.inf,
            -(burn if burn is not None else 0.0),
            status.slo_id,
        )

    return sorted(((status, classify(status)) for status in statuses), key=key)


def exhaustion_forecast(
    *,
    budget_remaining: float | None,
    burn_rate: float | None,
    period: timedelta,
    now: datetime,
) -> datetime | None:
    """When the budget runs out if it keeps burning at ``burn_rate`` (1 = exactly the budget
    over the period): ``now + remaining · period / burn``. None when nothing burns or there is
    no data; ``now`` when the budget is already spent."""
    if budget_remaining is None or burn_rate is None:
        return None
    left = time_to_exhaustion(remaining_ratio=budget_remaining, burn=burn_rate, period=period)
    return None if left is None else now + left


def burning_window(status: SLOStatus, *, now: datetime) -> tuple[datetime, datetime, str]:
    """The window to take example traces from: the long window of the most acute firing alert
    (the shortest), else the last hour. Returns (start, end, label)."""
    firing = [window for window in alert_windows(status) if window.firing]
    if firing:
        acute = min(firing, key=lambda window: window.long)
        label = f"{format_duration(acute.long)} window of the firing {acute.severity} alert"
        return now - acute.long, now, label
    return now - DEFAULT_BURNING_WINDOW, now, "last 1h (no burn-rate alert is firing)"
