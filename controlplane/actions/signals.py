"""Inputs of scaling decisions read from Prometheus, with the time each sample was taken.

Two ways to read the burn of an SLO over a window:

* the SLO's spec is known (the control plane loads ``slo/specs``): the error ratio over *any*
  window is computed from the raw SLI series (``slo.queries.error_ratio_expr``) and divided by
  the error budget (1 − objective). Its age is the age of the newest raw sample, so a target
  Prometheus can no longer scrape reads as stale within one scrape, not after the window;
* otherwise: the recording rule ``slo:burn_rate:rate<window>`` the SLO engine generates, aged
  by the sample's own timestamp (``timestamp(...)``) — an instant query alone would happily
  return a five-minute-old value from the lookback.

Anything missing, non-finite or unreadable is an input without a value: the gate holds. So is a
window with fewer than ``min_events`` events (50, or the SLO's ``min_events`` if higher): the
first seconds of a service are not a burn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from controlplane.actions.engine import BurnReader
from controlplane.actions.gate import InputValue
from controlplane.sources.base import MetricsSource, NoData, SourceError
from slo.durations import DurationError, parse_duration
from slo.queries import (
    budget_literal,
    burn_rate_expr,
    error_ratio_expr,
    events_expr,
    newest_sample_expr,
)
from slo.rules import BURN_RATE
from slo.spec import SLO

MISSING = InputValue(value=None, observed_at=None)


def _scalar(source: MetricsSource, query: str) -> float | None:
    try:
        answer = source.instant(query)
    except SourceError:
        return None
    if isinstance(answer, NoData):
        return None
    value = answer.single().value
    return value if math.isfinite(value) else None


def _read(source: MetricsSource, value_query: str, stamp_query: str) -> InputValue:
    value = _scalar(source, value_query)
    stamp = None if value is None else _scalar(source, stamp_query)
    if value is None or stamp is None:
        return MISSING
    return InputValue(value=value, observed_at=datetime.fromtimestamp(stamp, tz=UTC))


#: Fewest events a window needs before its burn counts (the SLO's own ``min_events`` if higher).
MIN_BURN_EVENTS = 50


def prometheus_burn_reader(
    source: MetricsSource, slos: Iterable[SLO] = (), *, min_events: float = MIN_BURN_EVENTS
) -> BurnReader:
    known = {(slo.service, slo.name): slo for slo in slos}

    def read(service: str, slo_name: str, window: str) -> InputValue:
        slo = known.get((service, slo_name))
        if slo is not None:
            try:
                span = parse_duration(window)
                ratio = error_ratio_expr(slo, span)
                events = events_expr(slo, span)
            except (DurationError, ValueError):
                return MISSING
            # A burn from a handful of requests (a service just starting) is noise, not a signal.
            if (_scalar(source, events) or 0.0) < max(slo.min_events, min_events):
                return MISSING
            burn = burn_rate_expr(f"({ratio})", budget=budget_literal(slo))
            return _read(source, burn, newest_sample_expr(slo))
        selector = BURN_RATE.format(window=window) + f'{{service="{service}",slo="{slo_name}"}}'
        return _read(source, f"max({selector})", f"max(timestamp({selector}))")

    return read
