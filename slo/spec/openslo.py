"""The supported OpenSLO v1 subset (``apiVersion: openslo/v1``): input documents, references
across files, and their conversion to :class:`~slo.spec.model.SLO`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from slo.durations import DurationError, format_duration, parse_calendar_unit, parse_duration
from slo.maths import SEVERITIES, BurnRateWindow, ComparisonOp
from slo.promql import Selector, SelectorError, parse_selector
from slo.spec.errors import SpecErrors, SpecNote, _FieldProblem, _validate, _Where
from slo.spec.model import (
    SLI,
    SLO,
    TIERS,
    Alerting,
    BudgetingMethod,
    CalendarWindow,
    ElasticsearchRatioSLI,
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
    _check_target,
    _check_zone,
    _duration,
    _es_query,
    _exactly_one,
    _Input,
    _name,
)

OPENSLO_API_VERSION = "openslo/v1"


class _OMetadata(_Input):
    name: Name
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)


_SOURCE_TYPES = ("prometheus", "elasticsearch")


def _source_type(value: str) -> str:
    if value.lower() not in _SOURCE_TYPES:
        raise ValueError(
            f"unsupported metric source type {value!r}: expected Prometheus or Elasticsearch"
        )
    return value.lower()


class _OMetricSource(_Input):
    metricSourceRef: Name | None = None
    type: str | None = None
    spec: dict[str, Any]

    @field_validator("type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        return None if value is None else _source_type(value)

    @model_validator(mode="after")
    def _type_or_ref(self) -> _OMetricSource:
        if self.type is None and self.metricSourceRef is None:
            raise ValueError(
                "give type (Prometheus or Elasticsearch) or a metricSourceRef naming a DataSource"
            )
        return self


class _ODataSourceSpec(_Input):
    description: str = ""
    type: str
    connectionDetails: dict[str, Any] | list[Any] | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return _source_type(value)


class _ODataSourceDocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["DataSource"]
    metadata: _OMetadata
    spec: _ODataSourceSpec


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

    @model_validator(mode="before")
    @classmethod
    def _no_raw(cls, data: object) -> object:
        if isinstance(data, dict) and ("raw" in data or "rawType" in data):
            raise ValueError(
                "a raw ratio (rawType, raw) is not supported: give counters as good or bad, "
                "and total"
            )
        return data

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
        _exactly_one(self, "good", "bad")
        return self


class _OSLISpec(_Input):
    description: str = ""
    ratioMetric: _ORatioMetric | None = None
    thresholdMetric: _OMetric | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _OSLISpec:
        _exactly_one(self, "ratioMetric", "thresholdMetric")
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
    kind: str = "burnrate"
    op: str
    threshold: float = Field(gt=0)
    lookbackWindow: str
    alertAfter: str | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value != "burnrate":
            raise ValueError(f"only burnrate conditions are supported, got {value!r}")
        return value

    @field_validator("op")
    @classmethod
    def _op(cls, value: str) -> str:
        if value not in ("gt", "gte"):
            raise ValueError(
                "a burn-rate alert fires when the burn rate exceeds the threshold: "
                f"op must be gt or gte, got {value!r}"
            )
        return value

    @field_validator("lookbackWindow", "alertAfter")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None:
            _duration(value)
        return value


class _OConditionSpec(_Input):
    description: str = ""
    severity: str
    condition: _OBurnRate

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        if value not in SEVERITIES:
            raise ValueError(
                f"severity {value!r} is not supported: use page or ticket "
                "(the severities of the generated alerts and of the Alertmanager routes)"
            )
        return value


class _OConditionDocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["AlertCondition"]
    metadata: _OMetadata
    spec: _OConditionSpec


class _OCondition(_Input):
    kind: Literal["AlertCondition"] | None = None
    metadata: _OMetadata | None = None
    spec: _OConditionSpec | None = None
    conditionRef: Name | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _OCondition:
        if (self.conditionRef is None) == (self.spec is None):
            raise ValueError(
                "give either conditionRef or an inline condition (kind: AlertCondition, "
                "metadata, spec)"
            )
        return self


class _OTargetSpec(_Input):
    description: str = ""
    target: Name


class _OTargetDocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["AlertNotificationTarget"]
    metadata: _OMetadata
    spec: _OTargetSpec


class _OTargetItem(_Input):
    targetRef: Name | None = None
    kind: Literal["AlertNotificationTarget"] | None = None
    metadata: _OMetadata | None = None
    spec: _OTargetSpec | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _OTargetItem:
        if (self.targetRef is None) == (self.spec is None):
            raise ValueError(
                "give either targetRef or an inline AlertNotificationTarget (kind, metadata, spec)"
            )
        return self

    @property
    def name(self) -> str:
        if self.targetRef is not None:
            return self.targetRef
        assert self.spec is not None  # guaranteed by _one_of
        return self.metadata.name if self.metadata is not None else self.spec.target


class _OAlertPolicySpec(_Input):
    description: str = ""
    alertWhenNoData: bool = False
    alertWhenResolved: bool = True
    alertWhenBreaching: bool = True
    conditions: list[_OCondition] = Field(min_length=1)
    notificationTargets: list[_OTargetItem] = Field(default_factory=list)

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
        _exactly_one(self, "target", "targetPercent")
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
    alertPolicies: list[_OAlertPolicyItem] | None = None

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return _name(value)

    @model_validator(mode="after")
    def _one_indicator(self) -> _OSLOSpec:
        _exactly_one(self, "indicator", "indicatorRef")
        return self


class _OSLODocument(_Input):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLO"]
    metadata: _OMetadata
    spec: _OSLOSpec


def _label(metadata: _OMetadata, key: str) -> str | None:
    value = metadata.labels.get(key)
    if isinstance(value, list):
        return value[0] if len(value) == 1 else None
    return value


@dataclass
class _Registry:
    """The named documents of every file given, for references between them."""

    @classmethod
    def empty(cls) -> _Registry:
        return cls(slis={}, services={}, policies={}, conditions={}, targets={}, sources={})

    slis: dict[str, tuple[_Where, _OSLIDocument]]
    services: dict[str, tuple[_Where, _OServiceDocument]]
    policies: dict[str, tuple[_Where, _OAlertPolicyDocument]]
    conditions: dict[str, tuple[_Where, _OConditionDocument]]
    targets: dict[str, tuple[_Where, _OTargetDocument]]
    sources: dict[str, tuple[_Where, _ODataSourceDocument]]


def _source_kind(source: _OMetricSource, *, field: str, registry: _Registry) -> str:
    """``prometheus`` or ``elasticsearch``: the inline type, else the referenced DataSource's."""
    if source.metricSourceRef is None:
        assert source.type is not None  # guaranteed by _OMetricSource._type_or_ref
        return source.type
    found = registry.sources.get(source.metricSourceRef)
    if found is None:
        if source.type is None:
            raise _FieldProblem(
                f"{field}.metricSourceRef",
                f"no DataSource named {source.metricSourceRef!r} in the given files: "
                "give it, or the type (Prometheus or Elasticsearch)",
            )
        return source.type
    declared = found[1].spec.type
    if source.type is not None and source.type != declared:
        raise _FieldProblem(
            f"{field}.type",
            f"{source.type} differs from the type of DataSource "
            f"{source.metricSourceRef!r} ({declared})",
        )
    return declared


#: ``sum(<selector>)``: how OpenSLO examples often write a counter; the rules sum anyway.
_SUM = re.compile(r"\s*sum\s*\((?P<inner>.*)\)\s*", re.DOTALL)


def _prometheus_selector(source: _OMetricSource, *, field: str, registry: _Registry) -> Selector:
    if _source_kind(source, field=field, registry=registry) != "prometheus":
        raise _FieldProblem(field + ".type", "all metrics of one SLI must use the same source type")
    query = source.spec.get("query")
    if not isinstance(query, str):
        raise _FieldProblem(field + ".spec.query", "required: a Prometheus series selector")
    extra = sorted(set(source.spec) - {"query"})
    if extra:
        raise _FieldProblem(field + f".spec.{extra[0]}", "unsupported field")
    summed = _SUM.fullmatch(query)
    try:
        return parse_selector(summed.group("inner") if summed else query)
    except SelectorError as exc:
        raise _FieldProblem(
            field + ".spec.query",
            f"{exc}; a ratio metric's query is a counter's series selector, or sum(<selector>): "
            "the rules take its rate over each window",
        ) from exc


def _elasticsearch_source(
    source: _OMetricSource, *, field: str, where: _Where, registry: _Registry
) -> _OElasticsearchSource:
    if _source_kind(source, field=field, registry=registry) != "elasticsearch":
        raise _FieldProblem(field + ".type", "all metrics of one SLI must use the same source type")
    prefix = (*field.split("."), "spec")
    return _validate(_OElasticsearchSource, source.spec, where=where, prefix=prefix, openslo=True)


@dataclass(frozen=True, kw_only=True)
class _SLIContext:
    """Where the SLI is written (inline or in an SLI document) and the references it may use."""

    field: str
    where: _Where
    registry: _Registry


def _openslo_sli(
    sli: _OSLISpec, *, context: _SLIContext, objective: _OObjective, objective_field: str
) -> SLI:
    field, where, registry = context.field, context.where, context.registry
    if sli.thresholdMetric is not None:
        source = sli.thresholdMetric.metricSource
        metric_field = f"{field}.thresholdMetric.metricSource"
        if _source_kind(source, field=metric_field, registry=registry) != "prometheus":
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
    base = f"{field}.ratioMetric"
    total_field = f"{base}.total.metricSource"
    kind = _source_kind(ratio.total.metricSource, field=total_field, registry=registry)
    good_bad = "good" if ratio.good is not None else "bad"
    chosen = ratio.good if ratio.good is not None else ratio.bad
    assert chosen is not None  # guaranteed by _ORatioMetric._one_of
    part_field = f"{base}.{good_bad}.metricSource"
    if kind == "prometheus":
        total = _prometheus_selector(ratio.total.metricSource, field=total_field, registry=registry)
        part = _prometheus_selector(chosen.metricSource, field=part_field, registry=registry)
        return PrometheusRatioSLI(
            good=part if good_bad == "good" else None,
            bad=part if good_bad == "bad" else None,
            total=total,
        )
    total_es = _elasticsearch_source(
        ratio.total.metricSource, field=total_field, where=where, registry=registry
    )
    part_es = _elasticsearch_source(
        chosen.metricSource, field=part_field, where=where, registry=registry
    )
    if (part_es.index, part_es.timestampField) != (total_es.index, total_es.timestampField):
        raise _FieldProblem(
            f"{part_field}.spec.index",
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
            raise _FieldProblem(
                f"{field}.calendar.startTime",
                f"calendar windows start at midnight in their time zone, not at {start.time()}",
            )
        if unit == "month" and start.day != 1:
            raise _FieldProblem(
                f"{field}.calendar.startTime", "calendar months start on the first day"
            )
        week_start = start.weekday()
    return CalendarWindow(unit=unit, timezone=calendar.timeZone, week_start=week_start)


@dataclass(frozen=True, kw_only=True)
class _Policy:
    """One alert policy of an SLO: inline (its field path) or referenced (its document)."""

    field: str
    where: _Where
    name: str | None
    spec: _OAlertPolicySpec


@dataclass(frozen=True, kw_only=True)
class _Alerts:
    windows: tuple[BurnRateWindow, ...] | None
    no_data: bool
    targets: tuple[str, ...]


def _condition(
    condition: _OCondition, *, field: str, policy: _Policy, registry: _Registry
) -> tuple[_OConditionSpec, str, _Where]:
    """The condition's spec, the field path it is written at and the file it is in."""
    if condition.spec is not None:
        return condition.spec, field, policy.where
    assert condition.conditionRef is not None  # guaranteed by _OCondition._one_of
    found = registry.conditions.get(condition.conditionRef)
    if found is None:
        raise _FieldProblem(
            f"{field}.conditionRef",
            f"no AlertCondition named {condition.conditionRef!r} in the given files",
        )
    return found[1].spec, "spec", found[0]


def _burn_window(
    spec: _OConditionSpec, *, field: str, policy: _Policy, targets: tuple[str, ...]
) -> BurnRateWindow:
    burn = spec.condition
    long = parse_duration(burn.lookbackWindow)
    short = long / 12
    if short < timedelta(minutes=1):
        raise _FieldProblem(
            f"{field}.condition.lookbackWindow",
            "must be at least 12m (the short window is a twelfth of it)",
        )
    return BurnRateWindow(
        severity=next(s for s in SEVERITIES if s == spec.severity),
        long=long,
        short=timedelta(seconds=round(short.total_seconds())),
        factor=burn.threshold,
        inclusive=burn.op == "gte",
        for_=None if burn.alertAfter is None else parse_duration(burn.alertAfter),
        policy=policy.name,
        notify=targets,
    )


def _policy_alerts(policies: Sequence[_Policy], *, where: _Where, registry: _Registry) -> _Alerts:
    """Burn-rate windows, the no-data alert and notification targets of the SLO's policies."""
    windows: list[BurnRateWindow] = []
    all_targets: list[str] = []
    for policy in policies:
        targets = tuple(dict.fromkeys(t.name for t in policy.spec.notificationTargets))
        all_targets.extend(targets)
        for index, condition in enumerate(policy.spec.conditions):
            field = f"{policy.field}.conditions[{index}]"
            spec, spec_field, spec_where = _condition(
                condition, field=field, policy=policy, registry=registry
            )
            try:
                windows.append(_burn_window(spec, field=spec_field, policy=policy, targets=targets))
            except _FieldProblem as problem:
                if spec_where is where:
                    raise
                raise SpecErrors([spec_where.error(problem.field, problem.message)]) from problem
    return _Alerts(
        windows=tuple(windows),
        no_data=any(p.spec.alertWhenNoData for p in policies),
        targets=tuple(dict.fromkeys(all_targets)),
    )


_DEFAULT_ALERTS = _Alerts(windows=None, no_data=True, targets=())


def _slo_policies(doc: _OSLODocument, *, where: _Where, registry: _Registry) -> list[_Policy]:
    policies: list[_Policy] = []
    for index, item in enumerate(doc.spec.alertPolicies or ()):
        field = f"spec.alertPolicies[{index}]"
        if item.alertPolicyRef is not None:
            ref = registry.policies.get(item.alertPolicyRef)
            if ref is None:
                raise _FieldProblem(
                    f"{field}.alertPolicyRef",
                    f"no AlertPolicy named {item.alertPolicyRef!r} in the given files",
                )
            policies.append(
                _Policy(field="spec", where=ref[0], name=item.alertPolicyRef, spec=ref[1].spec)
            )
        else:
            assert item.spec is not None  # guaranteed by _OAlertPolicyItem._one_of
            name = None if item.metadata is None else item.metadata.name
            policies.append(_Policy(field=f"{field}.spec", where=where, name=name, spec=item.spec))
    return policies


def _tier(doc: _OSLODocument, *, registry: _Registry, tiers: TierPolicy) -> tuple[Tier, str]:
    """The SLO's tier and where it comes from: its own label, its Service's, else the policy."""
    tier = _label(doc.metadata, "tier")
    origin = "metadata.labels.tier"
    service = registry.services.get(doc.spec.service)
    if tier is None and service is not None:
        tier = _label(service[1].metadata, "tier")
        origin = f"Service {doc.spec.service} (metadata.labels.tier)"
    if tier is None:
        return tiers.tier_for(doc.spec.service)
    value = next((t for t in TIERS if t == tier), None)
    if value is None:
        raise _FieldProblem(
            "metadata.labels.tier",
            f"{tier!r} is not a tier: one of {', '.join(TIERS)} "
            "(or leave it out: the control plane's policy gives the service's tier)",
        )
    return value, origin


def _openslo_to_slos(
    doc: _OSLODocument,
    *,
    where: _Where,
    registry: _Registry,
    tiers: TierPolicy,
    notes: list[SpecNote],
) -> list[SLO]:
    """The SLOs of one OpenSLO ``SLO`` document (one per objective); fields read but not
    used are added to ``notes``."""
    spec = doc.spec
    if spec.indicator is not None:
        context = _SLIContext(field="spec.indicator.spec", where=where, registry=registry)
        sli_spec = spec.indicator.spec
    else:
        assert spec.indicatorRef is not None  # guaranteed by _OSLOSpec._one_indicator
        found = registry.slis.get(spec.indicatorRef)
        if found is None:
            raise _FieldProblem(
                "spec.indicatorRef", f"no SLI named {spec.indicatorRef!r} in the given files"
            )
        context = _SLIContext(field="spec", where=found[0], registry=registry)
        sli_spec = found[1].spec
    tier, tier_origin = _tier(doc, registry=registry, tiers=tiers)
    window = _openslo_window(spec.timeWindow[0])
    if spec.alertPolicies is None and "alertPolicies" not in spec.model_fields_set:
        alerts = _DEFAULT_ALERTS  # no alertPolicies key: the default multi-window alerts
    else:
        policies = _slo_policies(doc, where=where, registry=registry)
        alerts = _policy_alerts(policies, where=where, registry=registry)
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
                sli_spec, context=context, objective=objective, objective_field=objective_field
            )
        except _FieldProblem as problem:
            if context.where is where or not problem.field.startswith(context.field):
                raise
            raise SpecErrors([context.where.error(problem.field, problem.message)]) from problem
        if not isinstance(sli, PrometheusThresholdSLI):
            for unused in ("op", "value"):
                if getattr(objective, unused) is not None:
                    notes.append(
                        where.note(
                            f"{objective_field}.{unused}",
                            "not used: only a thresholdMetric compares values with op and value "
                            "(a ratio's time slice is good when its ratio reaches "
                            "timeSliceTarget)",
                        )
                    )
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
                sli=context.field,
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
                tier=tier,
                tier_origin=tier_origin,
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
                    no_data_alert=alerts.no_data,
                    burn_rate_windows=alerts.windows,
                    notification_targets=alerts.targets,
                ),
                source=where.file,
            )
        )
    return slos


# --- writing OpenSLO: what the importers (Sloth, Pyrra) convert to ----------------------------


@dataclass(frozen=True, kw_only=True)
class _Condition:
    """A burn-rate condition to write: severity, factor and long window (short = long / 12)."""

    severity: str
    factor: float
    long: timedelta


@dataclass(frozen=True, kw_only=True)
class _SLOToWrite:
    """An SLO read from another format, in the terms of OpenSLO v1.

    ``conditions`` ``None`` keeps the default multi-window alerts (no ``alertPolicies``);
    a tuple writes one inline AlertPolicy per condition (empty: ``alertPolicies: []``, no
    alerts at all); ``no_data`` is their ``alertWhenNoData``.
    """

    name: str
    service: str
    description: str = ""
    labels: dict[str, str]
    annotations: dict[str, str]
    target_percent: float
    window: timedelta
    good: Selector | None
    bad: Selector | None
    total: Selector
    conditions: tuple[_Condition, ...] | None = None
    no_data: bool = True

    def document(self) -> dict[str, Any]:
        """The OpenSLO v1 ``SLO`` document (plain data, ready for YAML)."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.labels:
            metadata["labels"] = dict(sorted(self.labels.items()))
        if self.annotations:
            metadata["annotations"] = dict(sorted(self.annotations.items()))
        ratio: dict[str, Any] = {"counter": True}
        for role, selector in (("good", self.good), ("bad", self.bad), ("total", self.total)):
            if selector is not None:
                ratio[role] = _prometheus_metric(selector)
        spec: dict[str, Any] = {}
        if self.description:
            spec["description"] = self.description
        spec.update(
            {
                "service": self.service,
                "indicator": {"metadata": {"name": self.name}, "spec": {"ratioMetric": ratio}},
                "timeWindow": [{"duration": format_duration(self.window), "isRolling": True}],
                "budgetingMethod": "Occurrences",
                "objectives": [{"targetPercent": self.target_percent}],
            }
        )
        if self.conditions is not None:
            spec["alertPolicies"] = self._policies()
        return {
            "apiVersion": OPENSLO_API_VERSION,
            "kind": "SLO",
            "metadata": metadata,
            "spec": spec,
        }

    def _policies(self) -> list[dict[str, Any]]:
        """One AlertPolicy per condition: OpenSLO v1 allows a single condition per policy."""
        assert self.conditions is not None
        policies: list[dict[str, Any]] = []
        for condition in self.conditions:
            long = format_duration(condition.long)
            name = f"{self.name}-{condition.severity}-{long}"
            policies.append(
                {
                    "kind": "AlertPolicy",
                    "metadata": {"name": name},
                    "spec": {
                        "alertWhenNoData": self.no_data,
                        "conditions": [
                            {
                                "kind": "AlertCondition",
                                "metadata": {"name": name},
                                "spec": {
                                    "severity": condition.severity,
                                    "condition": {
                                        "kind": "burnrate",
                                        "op": "gt",
                                        "threshold": condition.factor,
                                        "lookbackWindow": long,
                                    },
                                },
                            }
                        ],
                    },
                }
            )
        return policies


@dataclass
class _ImportNotes:
    """Fields of an imported spec that are not carried over, as notes by field path."""

    where: _Where
    items: list[SpecNote]

    def add(self, field: str, message: str) -> None:
        self.items.append(self.where.note(field, message))

    def fields(self, prefix: str, values: dict[str, str], message: str) -> None:
        for key in sorted(values):
            self.add(f"{prefix}.{key}", message)


_RULE_LABELS = (
    "not carried over: the generated rules carry the labels service, slo and tier, and the "
    "alerts severity (page or ticket)"
)


def _tier_label(labels: dict[str, str], *, field: str, notes: _ImportNotes) -> dict[str, str]:
    """Labels as metadata labels; a ``tier`` that is not one of ours is reported, not kept."""
    tier = labels.get("tier")
    if tier is None or tier in TIERS:
        return dict(labels)
    notes.add(
        f"{field}.tier",
        f"not carried over: {tier!r} is not a tier ({', '.join(TIERS)}); the control plane's "
        "policy gives the service's tier",
    )
    return {k: v for k, v in labels.items() if k != "tier"}


def _prometheus_metric(selector: Selector) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": selector.render()}}}
