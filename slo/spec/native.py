"""The native format (``apiVersion: controlplane.slo/v1``): input documents and their
conversion to :class:`~slo.spec.model.SLO`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from slo.durations import parse_duration
from slo.maths import ComparisonOp
from slo.spec.model import (
    SLI,
    SLO,
    Alerting,
    BudgetingMethod,
    CalendarWindow,
    ElasticsearchRatioSLI,
    PrometheusLatencySLI,
    PrometheusRatioSLI,
    PrometheusThresholdSLI,
    RollingWindow,
    Tier,
    TierPolicy,
    _BudgetFields,
    _check_budgeting,
)
from slo.spec.validators import (
    Name,
    _check_bucket,
    _check_target,
    _check_zone,
    _duration,
    _es_query,
    _exactly_one,
    _Input,
    _name,
    _selector,
    _threshold_seconds,
)

NATIVE_API_VERSION = "controlplane.slo/v1"


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
        _exactly_one(self, "good", "bad")
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
        _exactly_one(self, "good", "bad")
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
    tier: Tier | None = None
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


def _native_to_slo(doc: _NativeDocument, *, source: str, tiers: TierPolicy) -> SLO:
    spec = doc.spec
    if spec.tier is not None:
        tier, tier_origin = spec.tier, "spec.tier"
    else:
        tier, tier_origin = tiers.tier_for(spec.service)
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
        tier=tier,
        tier_origin=tier_origin,
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


_NATIVE_FIELDS = _BudgetFields(
    method="spec.budgeting", slice="spec.slice", slice_target="spec.slice_target", sli="spec.sli"
)
