"""Inputs of scaling decisions read from Prometheus, with the time each sample was taken.

The burn of an SLO over a window is the recording rule ``slo:burn_rate:rate<window>`` the SLO
engine generates. The sample's own timestamp (``timestamp(...)``) is its age — an instant query
alone would happily return a five-minute-old value from the lookback.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from controlplane.actions.engine import BurnReader
from controlplane.actions.gate import InputValue
from controlplane.sources.base import MetricsSource, NoData, SourceError


def prometheus_burn_reader(source: MetricsSource) -> BurnReader:
    def read(service: str, slo: str, window: str) -> InputValue:
        selector = f'slo:burn_rate:rate{window}{{service="{service}",slo="{slo}"}}'
        try:
            value = source.instant(f"max({selector})")
            stamp = source.instant(f"max(timestamp({selector}))")
        except SourceError:
            return InputValue(value=None, observed_at=None)
        if isinstance(value, NoData) or isinstance(stamp, NoData):
            return InputValue(value=None, observed_at=None)
        number = value.single().value
        when = stamp.single().value
        if not (math.isfinite(number) and math.isfinite(when)):
            return InputValue(value=None, observed_at=None)
        return InputValue(value=number, observed_at=datetime.fromtimestamp(when, tz=UTC))

    return read
