"""SLO specifications: frozen models and loaders for OpenSLO v1 and the native format.

Both formats are read into the same normalized :class:`SLO` model, which the maths, the rule
generator and the control plane use. Loading is pure: callers pass ``(name, text)`` pairs
(:class:`SpecSource`) and get models back, or a :class:`SpecErrors` with one
:class:`SpecError` per problem, each naming the file, the field path and what is wrong.

Supported OpenSLO v1 subset (anything else is an error, never silently ignored):

* ``kind: SLO`` with inline ``indicator`` or ``indicatorRef``; one ``timeWindow`` (rolling, or
  calendar ``1w``/``1M``); ``budgetingMethod`` Occurrences, Timeslices or RatioTimeslices;
  one or more ``objectives``; ``alertPolicies`` inline or by ``alertPolicyRef``.
* ``kind: SLI`` with ``ratioMetric`` (good/total or bad/total, counters) or ``thresholdMetric``;
  metric sources of ``type`` Prometheus (``spec.query``: a series selector for ratio metrics,
  any PromQL expression for threshold metrics) or Elasticsearch (``spec.index``,
  ``spec.timestampField``, ``spec.query``).
* ``kind: Service`` (its ``metadata.labels.tier`` is the default tier of its SLOs).
* ``kind: AlertPolicy`` with inline ``burnrate`` conditions of severity page or ticket.

Our own labels on OpenSLO documents: ``metadata.labels.tier`` (critical, standard, batch,
reporting) and annotations ``runbook_url``, ``dashboard_url`` and ``min_events``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from slo.durations import CalendarUnit, DurationError, parse_calendar_unit, parse_duration
from slo.maths import (
    BurnRateWindow,
    CalendarPeriod,
    ComparisonOp,
    Severity,
    calendar_period,
    default_burn_rate_windows,
    rolling_period,
)
from slo.promql import Matcher, Selector, SelectorError, le_matcher, parse_selector

__all__ = [
    "NATIVE_API_VERSION",
    "OPENSLO_API_VERSION",
    "SLI",
    "SLO",
    "Alerting",
    "BudgetingMethod",
    "CalendarWindow",
    "ElasticsearchRatioSLI",
    "PrometheusLatencySLI",
    "PrometheusRatioSLI",
    "PrometheusThresholdSLI",
    "RollingWindow",
    "SpecError",
    "SpecErrors",
    "SpecSource",
    "Tier",
    "TimeWindow",
    "parse_slos",
]

OPENSLO_API_VERSION = "openslo/v1"
NATIVE_API_VERSION = "controlplane.slo/v1"

Tier = Literal["critical", "standard", "batch", "reporting"]
TIERS: tuple[Tier, ...] = ("critical", "standard", "batch", "reporting")
BudgetingMethod = Literal["Occurrences", "Timeslices", "RatioTimeslices"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DEFAULT_NO_DATA_FOR = timedelta(minutes=10)


# --- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SpecError:
    """One problem in one spec document: ``file[#document]: field.path: message``."""

    file: str
    field: str
    message: str
    document: int | None = None

    def __str__(self) -> str:
        where = self.file if self.document is None else f"{self.file}#{self.document}"
        return f"{where}: {self.field}: {self.message}"


class SpecErrors(Exception):
    """Raised by the loaders with every problem found (one :class:`SpecError` each)."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True, kw_only=True)
class SpecSource:
    """The text of one spec file and the name to report it by (usually its path)."""

    name: str
    text: str


class _FieldProblem(Exception):
    """A problem found while normalizing, located relative to the current document."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- normalized models ------------------------------------------------------------------------


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
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good and bad")
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
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good and bad")
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


# --- shared validators ------------------------------------------------------------------------


def _check_target(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"target must be strictly between 0 and 1, got {value}")
    return value


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected a string such as 5m, 1h or 28d")
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from exc


def _threshold_seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid threshold {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration(value).total_seconds()
    else:
        raise ValueError(f"invalid threshold {value!r}: give seconds (0.25) or a duration (250ms)")
    if seconds <= 0:
        raise ValueError(f"threshold must be positive, got {value!r}")
    return seconds


def _fmt_bound(value: float) -> str:
    return repr(float(value))


def _check_bucket(threshold: float, buckets: Sequence[float] | None, metric: str) -> None:
    """A latency threshold must equal one bucket bound exactly (no silent rounding)."""
    if buckets is None or threshold in buckets:
        return
    listed = ", ".join(_fmt_bound(b) for b in sorted(buckets))
    raise ValueError(
        f"no histogram bucket with le={_fmt_bound(threshold)} in {metric}; buckets are {listed}"
    )


def _selector(value: str, *, forbid_le: bool = False) -> Selector:
    try:
        selector = parse_selector(value)
    except SelectorError as exc:
        raise ValueError(str(exc)) from exc
    if forbid_le and any(m.label == "le" for m in selector.matchers):
        raise ValueError("do not set le: it is chosen from the threshold")
    return selector


def _es_query(value: str | Mapping[str, Any]) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("query must not be empty")
        return json.dumps({"query_string": {"query": value}}, sort_keys=True)
    if len(value) != 1:
        raise ValueError("a query DSL object has exactly one top-level key, e.g. {match: {...}}")
    return json.dumps(value, sort_keys=True, default=str)


def _name(value: str) -> str:
    if not _NAME.fullmatch(value) or len(value) > 63:
        raise ValueError(
            f"invalid name {value!r}: use lower-case letters, digits and '-', at most 63 characters"
        )
    return value


Name = Annotated[str, Field(min_length=1)]


# --- native format ----------------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _NativeMetadata(_Input):
    name: Name
    display_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)


class _NativeRatio(_Input):
    good: str | None = None
    bad: str | None = None
    total: str

    @field_validator("good", "bad", "total")
    @classmethod
    def _selectors(cls, value: str | None) -> str | None:
        if value is not None:
            _selector(value)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> _NativeRatio:
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good and bad")
        return self


class _NativeLatency(_Input):
    histogram: str
    buckets: list[float] | None = None
    threshold: float | str

    @field_validator("histogram")
    @classmethod
    def _histogram(cls, value: str) -> str:
        selector = _selector(value, forbid_le=True)
        if selector.metric.endswith(("_bucket", "_count", "_sum")):
            raise ValueError(
                f"give the histogram's base name, not {selector.metric!r} "
                "(the _bucket and _count series are derived from it)"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: object, info: ValidationInfo) -> float:
        seconds = _threshold_seconds(value)
        buckets = info.data.get("buckets")
        histogram = info.data.get("histogram", "the histogram")
        _check_bucket(seconds, buckets, str(histogram).split("{")[0])
        return seconds


class _NativeElasticsearch(_Input):
    index: Name
    timestamp_field: Name = "@timestamp"
    good: str | dict[str, Any] | None = None
    bad: str | dict[str, Any] | None = None
    total: str | dict[str, Any]

    @field_validator("good", "bad", "total")
    @classmethod
    def _queries(cls, value: str | dict[str, Any] | None) -> str | None:
        return None if value is None else _es_query(value)

    @model_validator(mode="after")
    def _one_of(self) -> _NativeElasticsearch:
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good and bad")
        return self


class _NativeThreshold(_Input):
    query: Name
    op: ComparisonOp
    threshold: float


class _NativeSLI(_Input):
    ratio: _NativeRatio | None = None
    latency: _NativeLatency | None = None
    elasticsearch: _NativeElasticsearch | None = None
    threshold: _NativeThreshold | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _NativeSLI:
        given = [k for k in ("ratio", "latency", "elasticsearch", "threshold") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one SLI kind: ratio, latency, elasticsearch or threshold"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class _NativeCalendar(_Input):
    calendar: Literal["week", "month"]
    timezone: str = "UTC"
    week_start: int = Field(default=0, ge=0, le=6)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class _NativeAlerting(_Input):
    runbook_url: str | None = None
    dashboard_url: str | None = None
    no_data: bool = True
    no_data_for: str = "10m"

    @field_validator("no_data_for")
    @classmethod
    def _for(cls, value: str) -> str:
        _duration(value)
        return value


class _NativeSpec(_Input):
    service: Name
    tier: Tier
    description: str = ""
    objective: float
    window: str | _NativeCalendar
    budgeting: Literal["occurrences", "timeslices", "ratio_timeslices"] = "occurrences"
    slice: str | None = None
    slice_target: float | None = None
    min_events: int = Field(default=1, ge=1)
    sli: _NativeSLI
    alerting: _NativeAlerting = _NativeAlerting()

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return _name(value)

    @field_validator("objective", "slice_target")
    @classmethod
    def _objective(cls, value: float | None) -> float | None:
        return None if value is None else _check_target(value)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | _NativeCalendar) -> str | _NativeCalendar:
        if isinstance(value, str):
            _duration(value)
        return value

    @field_validator("slice")
    @classmethod
    def _slice(cls, value: str | None) -> str | None:
        if value is not None:
            _duration(value)
        return value


class _NativeDocument(_Input):
    apiVersion: Literal["controlplane.slo/v1"]
    kind: Literal["SLO"]
    metadata: _NativeMetadata
    spec: _NativeSpec


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


_BUDGETING: dict[str, BudgetingMethod] = {
    "occurrences": "Occurrences",
    "timeslices": "Timeslices",
    "ratio_timeslices": "RatioTimeslices",
}


def _native_sli(sli: _NativeSLI) -> SLI:
    if sli.ratio is not None:
        return PrometheusRatioSLI(
            good=None if sli.ratio.good is None else _selector(sli.ratio.good),
            bad=None if sli.ratio.bad is None else _selector(sli.ratio.bad),
            total=_selector(sli.ratio.total),
        )
    if sli.latency is not None:
        histogram = _selector(sli.latency.histogram)
        return PrometheusLatencySLI(
            metric=histogram.metric,
            matchers=histogram.matchers,
            buckets=None if sli.latency.buckets is None else tuple(sli.latency.buckets),
            threshold=_threshold_seconds(sli.latency.threshold),
        )
    if sli.elasticsearch is not None:
        es = sli.elasticsearch
        return ElasticsearchRatioSLI(
            index=es.index,
            timestamp_field=es.timestamp_field,
            good=None if es.good is None else str(es.good),
            bad=None if es.bad is None else str(es.bad),
            total=str(es.total),
        )
    assert sli.threshold is not None  # guaranteed by _NativeSLI._exactly_one
    return PrometheusThresholdSLI(
        query=sli.threshold.query, op=sli.threshold.op, threshold=sli.threshold.threshold
    )


def _native_to_slo(doc: _NativeDocument, *, source: str) -> SLO:
    spec = doc.spec
    window: RollingWindow | CalendarWindow
    if isinstance(spec.window, str):
        window = RollingWindow(duration=parse_duration(spec.window))
    else:
        window = CalendarWindow(
            unit=spec.window.calendar,
            timezone=spec.window.timezone,
            week_start=spec.window.week_start,
        )
    method = _BUDGETING[spec.budgeting]
    sli = _native_sli(spec.sli)
    time_slice = None if spec.slice is None else parse_duration(spec.slice)
    _check_budgeting(
        method=method,
        sli=sli,
        time_slice=time_slice,
        slice_target=spec.slice_target,
        fields=_NATIVE_FIELDS,
    )
    return SLO(
        name=doc.metadata.name,
        service=spec.service,
        display_name=doc.metadata.display_name,
        description=spec.description,
        tier=spec.tier,
        target=spec.objective,
        window=window,
        budgeting_method=method,
        time_slice=time_slice,
        time_slice_target=spec.slice_target,
        sli=sli,
        min_events=spec.min_events,
        alerting=Alerting(
            runbook_url=spec.alerting.runbook_url,
            dashboard_url=spec.alerting.dashboard_url,
            no_data_alert=spec.alerting.no_data,
            no_data_for=parse_duration(spec.alerting.no_data_for),
        ),
        source=source,
    )


@dataclass(frozen=True)
class _BudgetFields:
    method: str
    slice: str
    slice_target: str
    sli: str


_NATIVE_FIELDS = _BudgetFields(
    method="spec.budgeting", slice="spec.slice", slice_target="spec.slice_target", sli="spec.sli"
)


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


# --- OpenSLO v1 -------------------------------------------------------------------------------


class _OMetadata(_Input):
    name: Name
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)


class _OMetricSource(_Input):
    type: str
    spec: dict[str, Any]
    metricSourceRef: str | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value.lower() not in ("prometheus", "elasticsearch"):
            raise ValueError(
                f"unsupported metric source type {value!r}: expected Prometheus or Elasticsearch"
            )
        return value.lower()

    @field_validator("metricSourceRef")
    @classmethod
    def _no_ref(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("DataSource references are not supported; give type and spec inline")
        return value


class _OPrometheusSource(_Input):
    query: Name


class _OElasticsearchSource(_Input):
    index: Name
    timestampField: Name = "@timestamp"
    query: str | dict[str, Any]

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | dict[str, Any]) -> str:
        return _es_query(value)


class _OMetric(_Input):
    metricSource: _OMetricSource


class _ORatioMetric(_Input):
    counter: bool = True
    good: _OMetric | None = None
    bad: _OMetric | None = None
    total: _OMetric

    @field_validator("counter")
    @classmethod
    def _counter(cls, value: bool) -> bool:
        if not value:
            raise ValueError("only counters are supported (counter: true)")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> _ORatioMetric:
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good and bad")
        return self


class _OSLISpec(_Input):
    description: str = ""
    ratioMetric: _ORatioMetric | None = None
    thresholdMetric: _OMetric | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _OSLISpec:
        if (self.ratioMetric is None) == (self.thresholdMetric is None):
            raise ValueError("give exactly one of ratioMetric and thresholdMetric")
        return self


class _OSLIInline(_Input):
    metadata: _OMetadata
    spec: _OSLISpec


class _OSLIDocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLI"]
    metadata: _OMetadata
    spec: _OSLISpec


class _OServiceSpec(_Input):
    description: str = ""


class _OServiceDocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["Service"]
    metadata: _OMetadata
    spec: _OServiceSpec = _OServiceSpec()


class _OBurnRate(_Input):
    kind: Literal["burnrate"]
    op: Literal["gt", "gte"]
    threshold: float = Field(gt=0)
    lookbackWindow: str
    alertAfter: str | None = None

    @field_validator("lookbackWindow", "alertAfter")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None:
            _duration(value)
        return value


class _OConditionSpec(_Input):
    description: str = ""
    severity: Severity
    condition: _OBurnRate


class _OCondition(_Input):
    kind: Literal["AlertCondition"] | None = None
    metadata: _OMetadata | None = None
    spec: _OConditionSpec | None = None
    conditionRef: str | None = None

    @field_validator("conditionRef")
    @classmethod
    def _no_ref(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "AlertCondition documents are not supported; write the condition inline"
            )
        return value

    @model_validator(mode="after")
    def _inline(self) -> _OCondition:
        if self.spec is None:
            raise ValueError("an inline condition needs kind: AlertCondition, metadata and spec")
        return self


class _OTargetRef(_Input):
    targetRef: Name


class _OAlertPolicySpec(_Input):
    description: str = ""
    alertWhenNoData: bool = False
    alertWhenResolved: bool = True
    alertWhenBreaching: bool = True
    conditions: list[_OCondition] = Field(min_length=1)
    notificationTargets: list[_OTargetRef] = Field(default_factory=list)

    @field_validator("alertWhenBreaching")
    @classmethod
    def _breaching(cls, value: bool) -> bool:
        if not value:
            raise ValueError("only alertWhenBreaching: true is supported")
        return value


class _OAlertPolicyDocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["AlertPolicy"]
    metadata: _OMetadata
    spec: _OAlertPolicySpec


class _OAlertPolicyItem(_Input):
    kind: Literal["AlertPolicy"] | None = None
    metadata: _OMetadata | None = None
    spec: _OAlertPolicySpec | None = None
    alertPolicyRef: Name | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _OAlertPolicyItem:
        if self.alertPolicyRef is None and self.spec is None:
            raise ValueError("give alertPolicyRef or an inline AlertPolicy (kind, metadata, spec)")
        if self.alertPolicyRef is not None and self.spec is not None:
            raise ValueError("give either alertPolicyRef or an inline AlertPolicy, not both")
        return self


class _OCalendar(_Input):
    startTime: str | datetime | None = None
    timeZone: str = "UTC"

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class _OTimeWindow(_Input):
    duration: str
    isRolling: bool | None = None
    calendar: _OCalendar | None = None


class _OObjective(_Input):
    displayName: str | None = None
    name: Name | None = None
    op: ComparisonOp | None = None
    value: float | None = None
    target: float | None = None
    targetPercent: float | None = None
    timeSliceTarget: float | None = None
    timeSliceWindow: str | None = None

    @field_validator("name")
    @classmethod
    def _objective_name(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)

    @field_validator("target", "timeSliceTarget")
    @classmethod
    def _fraction(cls, value: float | None) -> float | None:
        return None if value is None else _check_target(value)

    @field_validator("targetPercent")
    @classmethod
    def _percent(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < 100:
            raise ValueError(f"targetPercent must be strictly between 0 and 100, got {value}")
        return value

    @field_validator("timeSliceWindow")
    @classmethod
    def _slice(cls, value: str | None) -> str | None:
        if value is not None:
            _duration(value)
        return value

    @model_validator(mode="after")
    def _one_target(self) -> _OObjective:
        if (self.target is None) == (self.targetPercent is None):
            raise ValueError("give exactly one of target and targetPercent")
        return self

    @property
    def fraction(self) -> float:
        if self.target is not None:
            return self.target
        assert self.targetPercent is not None  # guaranteed by _one_target
        return float(Decimal(repr(self.targetPercent)) / 100)


class _OSLOSpec(_Input):
    description: str = ""
    service: Name
    indicator: _OSLIInline | None = None
    indicatorRef: Name | None = None
    timeWindow: list[_OTimeWindow] = Field(min_length=1, max_length=1)
    budgetingMethod: BudgetingMethod
    objectives: list[_OObjective] = Field(min_length=1)
    alertPolicies: list[_OAlertPolicyItem] = Field(default_factory=list)

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return _name(value)

    @model_validator(mode="after")
    def _one_indicator(self) -> _OSLOSpec:
        if (self.indicator is None) == (self.indicatorRef is None):
            raise ValueError("give exactly one of indicator and indicatorRef")
        return self


class _OSLODocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLO"]
    metadata: _OMetadata
    spec: _OSLOSpec


# --- loading ----------------------------------------------------------------------------------

_OPENSLO_KINDS: dict[str, type[_Input]] = {
    "SLO": _OSLODocument,
    "SLI": _OSLIDocument,
    "Service": _OServiceDocument,
    "AlertPolicy": _OAlertPolicyDocument,
}
_NATIVE_KINDS: dict[str, type[_Input]] = {"SLO": _NativeDocument}

_M = TypeVar("_M", bound=_Input)


@dataclass(frozen=True, kw_only=True)
class _Where:
    file: str
    document: int | None

    def error(self, field: str, message: str) -> SpecError:
        return SpecError(file=self.file, document=self.document, field=field, message=message)


@dataclass(frozen=True, kw_only=True)
class _Parsed:
    where: _Where
    model: _Input


def _loc(parts: Iterable[int | str]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(document)"


def _message(error: Mapping[str, Any], *, openslo: bool) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return (
            "unsupported field (not in the supported OpenSLO v1 subset)"
            if openslo
            else "unknown field"
        )
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return " ".join(message.split())


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _is_union_tag(part: str) -> bool:
    """Pydantic adds the union member (``str``, ``_NativeCalendar``...) to error locations."""
    return part in _TYPE_TAGS or "[" in part or part[:1] == "_" or part[:1].isupper()


def _strip_union_tags(loc: Sequence[int | str], data: object) -> tuple[tuple[int | str, ...], bool]:
    """Drop the union-member parts of an error location, walking the input alongside it."""
    kept: list[int | str] = []
    stripped = False
    current = data
    for part in loc:
        if isinstance(part, int):
            kept.append(part)
            current = current[part] if isinstance(current, list) and part < len(current) else None
            continue
        if isinstance(current, dict) and part in current:
            kept.append(part)
            current = current[part]
            continue
        if _is_union_tag(part):
            stripped = True
            continue
        kept.append(part)
        current = None
    return tuple(kept), stripped


def _validation_errors(
    exc: ValidationError,
    *,
    where: _Where,
    data: object = None,
    prefix: tuple[str, ...] = (),
    openslo: bool,
) -> list[SpecError]:
    """One :class:`SpecError` per field, located by the field path of the input document."""
    found: list[tuple[str, str, bool]] = []
    for error in exc.errors():
        loc, stripped = _strip_union_tags(error["loc"], data)
        found.append((_loc((*prefix, *loc)), _message(error, openslo=openslo), stripped))
    errors: list[SpecError] = []
    seen: set[str] = set()
    for field, text, stripped in found:
        deeper = any(
            other.startswith((field + ".", field + "[")) for other, _, _ in found if other != field
        )
        if field in seen or (stripped and deeper):
            continue  # one line per field: the most specific problem is the one to fix
        seen.add(field)
        errors.append(where.error(field, text))
    return errors


def _validate(
    model: type[_M], data: object, *, where: _Where, prefix: tuple[str, ...] = (), openslo: bool
) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors(
            _validation_errors(exc, where=where, data=data, prefix=prefix, openslo=openslo)
        ) from exc


def _yaml_documents(source: SpecSource) -> list[tuple[_Where, object]]:
    try:
        documents = [d for d in yaml.safe_load_all(source.text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        field = "(yaml)" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecErrors(
            [SpecError(file=source.name, field=field, message=f"invalid YAML: {problem}")]
        ) from exc
    if not documents:
        raise SpecErrors([SpecError(file=source.name, field="(file)", message="no documents")])
    multi = len(documents) > 1
    return [
        (_Where(file=source.name, document=i + 1 if multi else None), doc)
        for i, doc in enumerate(documents)
    ]


def _parse_document(where: _Where, data: object) -> _Parsed:
    if not isinstance(data, dict):
        raise SpecErrors([where.error("(document)", "expected a mapping with apiVersion and kind")])
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    if api_version is None:
        raise SpecErrors([where.error("apiVersion", "required field is missing")])
    if api_version == OPENSLO_API_VERSION:
        kinds, openslo = _OPENSLO_KINDS, True
    elif api_version == NATIVE_API_VERSION:
        kinds, openslo = _NATIVE_KINDS, False
    else:
        raise SpecErrors(
            [
                where.error(
                    "apiVersion",
                    f"unknown apiVersion {api_version!r}: expected {OPENSLO_API_VERSION} "
                    f"or {NATIVE_API_VERSION}",
                )
            ]
        )
    if kind is None:
        raise SpecErrors([where.error("kind", "required field is missing")])
    if not isinstance(kind, str) or kind not in kinds:
        expected = ", ".join(kinds)
        raise SpecErrors(
            [where.error("kind", f"unknown kind {kind!r} for {api_version}: expected {expected}")]
        )
    return _Parsed(where=where, model=_validate(kinds[kind], data, where=where, openslo=openslo))


def _label(metadata: _OMetadata, key: str) -> str | None:
    value = metadata.labels.get(key)
    if isinstance(value, list):
        return value[0] if len(value) == 1 else None
    return value


@dataclass
class _Registry:
    slis: dict[str, tuple[_Where, _OSLIDocument]]
    services: dict[str, tuple[_Where, _OServiceDocument]]
    policies: dict[str, tuple[_Where, _OAlertPolicyDocument]]


def _prometheus_selector(source: _OMetricSource, *, field: str) -> Selector:
    if source.type != "prometheus":
        raise _FieldProblem(field + ".type", "all metrics of one SLI must use the same source type")
    query = source.spec.get("query")
    if not isinstance(query, str):
        raise _FieldProblem(field + ".spec.query", "required: a Prometheus series selector")
    extra = sorted(set(source.spec) - {"query"})
    if extra:
        raise _FieldProblem(field + f".spec.{extra[0]}", "unsupported field")
    try:
        return parse_selector(query)
    except SelectorError as exc:
        raise _FieldProblem(field + ".spec.query", str(exc)) from exc


def _elasticsearch_source(
    source: _OMetricSource, *, field: str, where: _Where
) -> _OElasticsearchSource:
    if source.type != "elasticsearch":
        raise _FieldProblem(field + ".type", "all metrics of one SLI must use the same source type")
    prefix = (*field.split("."), "spec")
    return _validate(_OElasticsearchSource, source.spec, where=where, prefix=prefix, openslo=True)


def _openslo_sli(
    sli: _OSLISpec,
    *,
    field: str,
    where: _Where,
    objective: _OObjective,
    objective_field: str,
) -> SLI:
    if sli.thresholdMetric is not None:
        source = sli.thresholdMetric.metricSource
        metric_field = f"{field}.thresholdMetric.metricSource"
        if source.type != "prometheus":
            raise _FieldProblem(metric_field + ".type", "thresholdMetric supports Prometheus only")
        prom = _validate(
            _OPrometheusSource,
            source.spec,
            where=where,
            prefix=(*metric_field.split("."), "spec"),
            openslo=True,
        )
        if objective.op is None or objective.value is None:
            missing = "op" if objective.op is None else "value"
            raise _FieldProblem(
                f"{objective_field}.{missing}", "required for a thresholdMetric objective"
            )
        return PrometheusThresholdSLI(query=prom.query, op=objective.op, threshold=objective.value)
    ratio = sli.ratioMetric
    assert ratio is not None  # guaranteed by _OSLISpec._one_of
    if objective.op is not None or objective.value is not None:
        name = "op" if objective.op is not None else "value"
        raise _FieldProblem(f"{objective_field}.{name}", "only used with a thresholdMetric")
    base = f"{field}.ratioMetric"
    kind = ratio.total.metricSource.type
    good_bad = "good" if ratio.good is not None else "bad"
    chosen = ratio.good if ratio.good is not None else ratio.bad
    assert chosen is not None  # guaranteed by _ORatioMetric._one_of
    if kind == "prometheus":
        total = _prometheus_selector(ratio.total.metricSource, field=f"{base}.total.metricSource")
        part = _prometheus_selector(chosen.metricSource, field=f"{base}.{good_bad}.metricSource")
        return PrometheusRatioSLI(
            good=part if good_bad == "good" else None,
            bad=part if good_bad == "bad" else None,
            total=total,
        )
    total_es = _elasticsearch_source(
        ratio.total.metricSource, field=f"{base}.total.metricSource", where=where
    )
    part_es = _elasticsearch_source(
        chosen.metricSource, field=f"{base}.{good_bad}.metricSource", where=where
    )
    if (part_es.index, part_es.timestampField) != (total_es.index, total_es.timestampField):
        raise _FieldProblem(
            f"{base}.{good_bad}.metricSource.spec.index",
            "good/bad and total must query the same index and timestamp field",
        )
    return ElasticsearchRatioSLI(
        index=total_es.index,
        timestamp_field=total_es.timestampField,
        good=str(part_es.query) if good_bad == "good" else None,
        bad=str(part_es.query) if good_bad == "bad" else None,
        total=str(total_es.query),
    )


def _openslo_window(window: _OTimeWindow) -> RollingWindow | CalendarWindow:
    field = "spec.timeWindow[0]"
    rolling = window.isRolling if window.isRolling is not None else window.calendar is None
    if rolling:
        if window.calendar is not None:
            raise _FieldProblem(f"{field}.calendar", "only used with isRolling: false")
        try:
            return RollingWindow(duration=parse_duration(window.duration))
        except DurationError as exc:
            raise _FieldProblem(f"{field}.duration", str(exc)) from exc
    try:
        unit = parse_calendar_unit(window.duration)
    except DurationError as exc:
        raise _FieldProblem(f"{field}.duration", str(exc)) from exc
    calendar = window.calendar or _OCalendar()
    week_start = 0
    if calendar.startTime is not None:
        start = calendar.startTime
        if isinstance(start, str):
            try:
                start = datetime.fromisoformat(start)
            except ValueError as exc:
                raise _FieldProblem(
                    f"{field}.calendar.startTime",
                    f"invalid time {start!r}: use 2024-01-01 00:00:00",
                ) from exc
        if (start.hour, start.minute, start.second, start.microsecond) != (0, 0, 0, 0):
            raise _FieldProblem(f"{field}.calendar.startTime", "calendar windows start at midnight")
        if unit == "month" and start.day != 1:
            raise _FieldProblem(
                f"{field}.calendar.startTime", "calendar months start on the first day"
            )
        week_start = start.weekday()
    return CalendarWindow(unit=unit, timezone=calendar.timeZone, week_start=week_start)


def _policy_windows(
    policies: Sequence[tuple[str, _OAlertPolicySpec]],
) -> tuple[tuple[BurnRateWindow, ...] | None, bool, tuple[str, ...]]:
    windows: list[BurnRateWindow] = []
    no_data: bool | None = None
    targets: list[str] = []
    for field, policy in policies:
        no_data = policy.alertWhenNoData if no_data is None else no_data or policy.alertWhenNoData
        targets.extend(t.targetRef for t in policy.notificationTargets)
        for index, condition in enumerate(policy.conditions):
            assert condition.spec is not None  # guaranteed by _OCondition._inline
            burn = condition.spec.condition
            long = parse_duration(burn.lookbackWindow)
            short = long / 12
            if short < timedelta(minutes=1):
                raise _FieldProblem(
                    f"{field}.conditions[{index}].spec.condition.lookbackWindow",
                    "must be at least 12m (the short window is a twelfth of it)",
                )
            windows.append(
                BurnRateWindow(
                    severity=condition.spec.severity,
                    long=long,
                    short=timedelta(seconds=round(short.total_seconds())),
                    factor=burn.threshold,
                    inclusive=burn.op == "gte",
                    for_=None if burn.alertAfter is None else parse_duration(burn.alertAfter),
                )
            )
    if not policies:
        return None, True, ()
    return tuple(windows), bool(no_data), tuple(dict.fromkeys(targets))


def _openslo_to_slos(doc: _OSLODocument, *, where: _Where, registry: _Registry) -> list[SLO]:
    spec = doc.spec
    if spec.indicator is not None:
        sli_spec, sli_field, sli_where = spec.indicator.spec, "spec.indicator.spec", where
    else:
        assert spec.indicatorRef is not None  # guaranteed by _OSLOSpec._one_indicator
        found = registry.slis.get(spec.indicatorRef)
        if found is None:
            raise _FieldProblem(
                "spec.indicatorRef", f"no SLI named {spec.indicatorRef!r} in the given files"
            )
        sli_where, sli_doc = found
        sli_spec, sli_field = sli_doc.spec, "spec"
    tier = _label(doc.metadata, "tier")
    service = registry.services.get(spec.service)
    if tier is None and service is not None:
        tier = _label(service[1].metadata, "tier")
    if tier is None:
        raise _FieldProblem(
            "metadata.labels.tier",
            f"required (here or on Service {spec.service!r}): one of {', '.join(TIERS)}",
        )
    tier_value = next((t for t in TIERS if t == tier), None)
    if tier_value is None:
        raise _FieldProblem("metadata.labels.tier", f"must be one of {', '.join(TIERS)}")
    window = _openslo_window(spec.timeWindow[0])
    policies: list[tuple[str, _OAlertPolicySpec]] = []
    for index, item in enumerate(spec.alertPolicies):
        if item.alertPolicyRef is not None:
            ref = registry.policies.get(item.alertPolicyRef)
            if ref is None:
                raise _FieldProblem(
                    f"spec.alertPolicies[{index}].alertPolicyRef",
                    f"no AlertPolicy named {item.alertPolicyRef!r} in the given files",
                )
            policies.append(("spec", ref[1].spec))
        else:
            assert item.spec is not None  # guaranteed by _OAlertPolicyItem._one_of
            policies.append((f"spec.alertPolicies[{index}].spec", item.spec))
    burn_windows, no_data, targets = _policy_windows(policies)
    annotations = doc.metadata.annotations
    min_events_text = annotations.get("min_events", "1")
    if not min_events_text.isdigit() or int(min_events_text) < 1:
        raise _FieldProblem("metadata.annotations.min_events", "must be a positive integer")
    if len(spec.objectives) > 1:
        for index, objective in enumerate(spec.objectives):
            if objective.name is None:
                raise _FieldProblem(
                    f"spec.objectives[{index}].name", "required when there are several objectives"
                )
    slos: list[SLO] = []
    for index, objective in enumerate(spec.objectives):
        objective_field = f"spec.objectives[{index}]"
        try:
            sli = _openslo_sli(
                sli_spec,
                field=sli_field,
                where=sli_where,
                objective=objective,
                objective_field=objective_field,
            )
        except _FieldProblem as problem:
            if sli_where is where or not problem.field.startswith(sli_field):
                raise
            raise SpecErrors([sli_where.error(problem.field, problem.message)]) from problem
        time_slice = (
            None if objective.timeSliceWindow is None else parse_duration(objective.timeSliceWindow)
        )
        _check_budgeting(
            method=spec.budgetingMethod,
            sli=sli,
            time_slice=time_slice,
            slice_target=objective.timeSliceTarget,
            fields=_BudgetFields(
                method="spec.budgetingMethod",
                slice=f"{objective_field}.timeSliceWindow",
                slice_target=f"{objective_field}.timeSliceTarget",
                sli=sli_field,
            ),
        )
        name = doc.metadata.name
        if len(spec.objectives) > 1:
            assert objective.name is not None
            name = _name(f"{name}-{objective.name}")
        slos.append(
            SLO(
                name=name,
                service=spec.service,
                display_name=objective.displayName or doc.metadata.displayName,
                description=spec.description,
                tier=tier_value,
                target=objective.fraction,
                window=window,
                budgeting_method=spec.budgetingMethod,
                time_slice=time_slice,
                time_slice_target=objective.timeSliceTarget,
                sli=sli,
                min_events=int(min_events_text),
                alerting=Alerting(
                    runbook_url=annotations.get("runbook_url"),
                    dashboard_url=annotations.get("dashboard_url"),
                    no_data_alert=no_data,
                    burn_rate_windows=burn_windows,
                    notification_targets=targets,
                ),
                source=where.file,
            )
        )
    return slos


_D = TypeVar("_D", _OSLIDocument, _OServiceDocument, _OAlertPolicyDocument)


def _add(
    table: dict[str, tuple[_Where, _D]],
    *,
    model: _D,
    where: _Where,
    kind: str,
    errors: list[SpecError],
) -> None:
    name = model.metadata.name
    if name in table:
        first = table[name][0]
        message = f"duplicate {kind} {name!r} (first defined in {first.file})"
        errors.append(where.error("metadata.name", message))
        return
    table[name] = (where, model)


def _register(parsed: _Parsed, registry: _Registry, errors: list[SpecError]) -> None:
    model, where = parsed.model, parsed.where
    if isinstance(model, _OSLIDocument):
        _add(registry.slis, model=model, where=where, kind="SLI", errors=errors)
    elif isinstance(model, _OServiceDocument):
        _add(registry.services, model=model, where=where, kind="Service", errors=errors)
    elif isinstance(model, _OAlertPolicyDocument):
        _add(registry.policies, model=model, where=where, kind="AlertPolicy", errors=errors)


def parse_slos(sources: Iterable[SpecSource]) -> tuple[SLO, ...]:
    """Parse spec files (multi-document YAML, OpenSLO v1 and native) into SLOs.

    References (``indicatorRef``, ``alertPolicyRef``, services) resolve across all sources.
    The result is sorted by service and name. Raises :class:`SpecErrors` listing every
    problem found, one per field.
    """
    errors: list[SpecError] = []
    parsed: list[_Parsed] = []
    for source in sources:
        try:
            documents = _yaml_documents(source)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        for where, data in documents:
            try:
                parsed.append(_parse_document(where, data))
            except SpecErrors as exc:
                errors.extend(exc.errors)
    registry = _Registry(slis={}, services={}, policies={})
    for item in parsed:
        _register(item, registry, errors)
    slos: list[SLO] = []
    seen: dict[str, str] = {}
    for item in parsed:
        model, where = item.model, item.where
        try:
            if isinstance(model, _NativeDocument):
                found = [_native_to_slo(model, source=where.file)]
            elif isinstance(model, _OSLODocument):
                found = _openslo_to_slos(model, where=where, registry=registry)
            else:
                continue
        except _FieldProblem as problem:
            errors.append(where.error(problem.field, problem.message))
            continue
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        except ValidationError as exc:
            errors.extend(_validation_errors(exc, where=where, openslo=True))
            continue
        for slo in found:
            if slo.key in seen:
                errors.append(
                    where.error(
                        "metadata.name",
                        f"duplicate SLO {slo.key!r} (first defined in {seen[slo.key]})",
                    )
                )
                continue
            seen[slo.key] = where.file
            slos.append(slo)
    if errors:
        raise SpecErrors(errors)
    return tuple(sorted(slos, key=lambda s: (s.service, s.name)))
