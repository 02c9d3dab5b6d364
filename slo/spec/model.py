"""The normalized models: :class:`SLO` and its parts, whatever format a spec was written in;
and the budgeting rules both formats check."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slo.durations import CalendarUnit
from slo.maths import (
    BurnRateWindow,
    CalendarPeriod,
    ComparisonOp,
    calendar_period,
    default_burn_rate_windows,
    rolling_period,
)
from slo.promql import Matcher, Selector, le_matcher
from slo.spec.errors import _FieldProblem
from slo.spec.validators import _check_target, _exactly_one

Tier = Literal["critical", "standard", "batch", "reporting"]
TIERS: tuple[Tier, ...] = ("critical", "standard", "batch", "reporting")
BudgetingMethod = Literal["Occurrences", "Timeslices", "RatioTimeslices"]

#: The tier of an SLO whose spec gives none and whose service no policy names.
DEFAULT_TIER: Tier = "standard"

_DEFAULT_NO_DATA_FOR = timedelta(minutes=10)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RollingWindow(_Frozen):
    """A rolling window of fixed length ending at the evaluation instant."""

    kind: Literal["rolling"] = "rolling"
    duration: timedelta

    @property
    def nominal(self) -> timedelta:
        return self.duration

    def period_at(self, at: datetime) -> CalendarPeriod:
        return rolling_period(at=at, duration=self.duration)


class CalendarWindow(_Frozen):
    """A calendar week or month in a time zone; budgets are reported since its start.

    Prometheus rules cannot follow calendar boundaries, so alert factors and the period
    recording rule use the nominal length (7 days for a week, 30 days for a month).
    """

    kind: Literal["calendar"] = "calendar"
    unit: CalendarUnit
    timezone: str = "UTC"
    week_start: int = Field(default=0, ge=0, le=6)

    @property
    def nominal(self) -> timedelta:
        return timedelta(days=7) if self.unit == "week" else timedelta(days=30)

    def period_at(self, at: datetime) -> CalendarPeriod:
        return calendar_period(
            at=at, unit=self.unit, timezone=self.timezone, week_start=self.week_start
        )


TimeWindow = Annotated[RollingWindow | CalendarWindow, Field(discriminator="kind")]


class PrometheusRatioSLI(_Frozen):
    """Ratio of Prometheus counters: ``good/total`` or ``bad/total`` (exactly one of them)."""

    kind: Literal["prometheus_ratio"] = "prometheus_ratio"
    good: Selector | None = None
    bad: Selector | None = None
    total: Selector

    @model_validator(mode="after")
    def _one_of(self) -> PrometheusRatioSLI:
        _exactly_one(self, "good", "bad")
        return self


class PrometheusLatencySLI(_Frozen):
    """Share of requests faster than ``threshold`` seconds, from a classic histogram.

    Good events are the ``<metric>_bucket`` series whose ``le`` equals the threshold; total
    events are ``<metric>_count``. ``buckets`` lists the bucket bounds when they are known.
    """

    kind: Literal["prometheus_latency"] = "prometheus_latency"
    metric: str
    matchers: tuple[Matcher, ...] = ()
    buckets: tuple[float, ...] | None = None
    threshold: float = Field(gt=0)

    @property
    def good(self) -> Selector:
        base = Selector(metric=f"{self.metric}_bucket", matchers=self.matchers)
        return base.with_matcher(le_matcher(self.threshold))

    @property
    def total(self) -> Selector:
        return Selector(metric=f"{self.metric}_count", matchers=self.matchers)


class ElasticsearchRatioSLI(_Frozen):
    """Ratio of log events counted in Elasticsearch on a date field.

    Queries are stored as canonical JSON of the Elasticsearch query DSL; a query written as a
    string in the spec becomes ``{"query_string": {"query": ...}}``.
    """

    kind: Literal["elasticsearch_ratio"] = "elasticsearch_ratio"
    index: str
    timestamp_field: str = "@timestamp"
    good: str | None = None
    bad: str | None = None
    total: str

    @model_validator(mode="after")
    def _one_of(self) -> ElasticsearchRatioSLI:
        _exactly_one(self, "good", "bad")
        return self

    @staticmethod
    def dsl(query: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(query)
        return loaded


class PrometheusThresholdSLI(_Frozen):
    """A PromQL expression evaluated once per time slice; the slice is good when
    ``value <op> threshold`` (OpenSLO ``thresholdMetric``)."""

    kind: Literal["prometheus_threshold"] = "prometheus_threshold"
    query: str
    op: ComparisonOp
    threshold: float


SLI = Annotated[
    PrometheusRatioSLI | PrometheusLatencySLI | ElasticsearchRatioSLI | PrometheusThresholdSLI,
    Field(discriminator="kind"),
]


class Alerting(_Frozen):
    """How alerts are generated for an SLO."""

    runbook_url: str | None = None
    dashboard_url: str | None = None
    no_data_alert: bool = True
    no_data_for: timedelta = _DEFAULT_NO_DATA_FOR
    burn_rate_windows: tuple[BurnRateWindow, ...] | None = None
    notification_targets: tuple[str, ...] = ()


class SLO(_Frozen):
    """One service level objective, whatever format it was written in."""

    name: str
    service: str
    display_name: str | None = None
    description: str = ""
    tier: Tier
    tier_origin: str = "spec"
    target: float
    window: TimeWindow
    budgeting_method: BudgetingMethod = "Occurrences"
    time_slice: timedelta | None = None
    time_slice_target: float | None = None
    sli: SLI
    min_events: int = Field(default=1, ge=1)
    alerting: Alerting = Alerting()
    source: str = ""

    @field_validator("target")
    @classmethod
    def _target_in_range(cls, value: float) -> float:
        return _check_target(value)

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"

    @property
    def target_decimal(self) -> Decimal:
        """The target exactly as written (``0.999``, not its binary approximation)."""
        return Decimal(repr(self.target))

    @property
    def error_budget_decimal(self) -> Decimal:
        """``1 - target`` exactly as written, e.g. ``0.001``."""
        return Decimal(1) - self.target_decimal

    @property
    def period(self) -> timedelta:
        """The rolling period, or the nominal length of a calendar window."""
        return self.window.nominal

    @property
    def backend(self) -> Literal["prometheus", "elasticsearch"]:
        return "elasticsearch" if isinstance(self.sli, ElasticsearchRatioSLI) else "prometheus"

    def burn_rate_windows(self) -> tuple[BurnRateWindow, ...]:
        """The alert windows: from the alert policies if any, else the SRE Workbook defaults."""
        if self.alerting.burn_rate_windows is not None:
            return self.alerting.burn_rate_windows
        return default_burn_rate_windows(self.period)


@dataclass(frozen=True, kw_only=True)
class TierPolicy:
    """Where the tier of an SLO whose spec gives none comes from: a tier per service (with the
    place it was read from, e.g. ``capacity policy: services[inventory].tier``), else
    ``default``. Plain data: the control plane fills it from its policy files."""

    services: Mapping[str, tuple[Tier, str]] = field(default_factory=dict)
    default: Tier = DEFAULT_TIER
    default_origin: str = f"default ({DEFAULT_TIER})"

    def tier_for(self, service: str) -> tuple[Tier, str]:
        """``(tier, origin)`` for ``service``."""
        return self.services.get(service, (self.default, self.default_origin))


@dataclass(frozen=True)
class _BudgetFields:
    method: str
    slice: str
    slice_target: str
    sli: str


def _check_budgeting(
    *,
    method: BudgetingMethod,
    sli: SLI,
    time_slice: timedelta | None,
    slice_target: float | None,
    fields: _BudgetFields,
) -> None:
    if method == "Occurrences":
        if isinstance(sli, PrometheusThresholdSLI):
            raise _FieldProblem(
                fields.method, "a threshold SLI is evaluated per time slice: use Timeslices"
            )
        if time_slice is not None:
            raise _FieldProblem(fields.slice, "only used with Timeslices or RatioTimeslices")
        if slice_target is not None:
            raise _FieldProblem(fields.slice_target, "only used with Timeslices")
        return
    if isinstance(sli, ElasticsearchRatioSLI):
        raise _FieldProblem(fields.method, "Elasticsearch SLIs support Occurrences only")
    if time_slice is None:
        raise _FieldProblem(fields.slice, f"required with {method}")
    if method == "Timeslices":
        if isinstance(sli, PrometheusThresholdSLI):
            if slice_target is not None:
                raise _FieldProblem(
                    fields.slice_target,
                    "a threshold SLI judges each slice by its own op and threshold",
                )
        elif slice_target is None:
            raise _FieldProblem(
                fields.slice_target,
                "required with Timeslices on a ratio: a slice is good when its ratio reaches it",
            )
        return
    if isinstance(sli, PrometheusThresholdSLI):
        raise _FieldProblem(fields.method, "RatioTimeslices needs a ratio SLI")
    if slice_target is not None:
        raise _FieldProblem(fields.slice_target, "only used with Timeslices")
