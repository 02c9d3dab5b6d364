"""The supported OpenSLO v1 subset (``apiVersion: openslo/v1``): input documents, references
across files, and their conversion to :class:`~slo.spec.model.SLO`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from slo.durations import DurationError, parse_calendar_unit, parse_duration
from slo.maths import BurnRateWindow, ComparisonOp, Severity
from slo.promql import Selector, SelectorError, parse_selector
from slo.spec.errors import SpecErrors, _FieldProblem, _validate, _Where
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
    alertPolicies: list[_OAlertPolicyItem] = Field(default_factory=list)

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
