"""Pyrra's ``ServiceLevelObjective`` objects (``apiVersion: pyrra.dev/v1alpha1``), read as
OpenSLO v1.

========================================  =====================================================
Pyrra                                     OpenSLO v1 (and so this control plane)
========================================  =====================================================
``metadata.name``                         ``metadata.name``
``metadata.namespace`` (``default``       ``spec.service``: Pyrra has no service, Kubernetes
when absent)                              namespaces group its objects
``metadata.labels``, ``.annotations``     ``metadata.labels`` (a ``tier`` label must be a
                                          tier), ``metadata.annotations``
``spec.description``                      ``spec.description``
``spec.target`` (percent, a string)       ``objectives[0].targetPercent``
``spec.window``                           ``timeWindow: [{duration: ..., isRolling: true}]``
``indicator.ratio.errors`` / ``.total``   ``ratioMetric.bad`` / ``ratioMetric.total``
``indicator.latency.success`` / ``total``  ``ratioMetric.good`` (the ``le`` bucket) / ``total``
``alerting.burnrates`` (or ``disabled``)  ``false``: ``alertPolicies: []`` (no alerts)
``alerting.absent``                       ``false``: the default windows as AlertPolicies
                                          with ``alertWhenNoData: false``
========================================  =====================================================

Burn-rate alerts use this control plane's multi-window set (SRE Workbook factors), not
Pyrra's (14, 7, 2, 1 over windows scaled from 28 days). ``grouping`` (one SLO per label
value), ``latencyNative`` and ``bool_gauge`` change what is measured and are errors. Fields
that shape Pyrra's own output (alert names and severities, Thanos and rule-output settings,
``performanceOverAccuracy``, ``status``) are not carried over and are reported as notes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from slo.durations import DurationError, parse_duration
from slo.maths import default_burn_rate_windows
from slo.promql import Selector, SelectorError, parse_selector
from slo.spec.errors import SpecErrors, SpecNote, _FieldProblem, _Where
from slo.spec.openslo import _Condition, _ImportNotes, _SLOToWrite, _tier_label
from slo.spec.validators import _Input, _name

PYRRA_API_VERSION = "pyrra.dev/v1alpha1"

#: The namespace Kubernetes puts an object in when it names none.
DEFAULT_NAMESPACE = "default"


class _PyrraMetadata(_Input):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # Kubernetes bookkeeping, as `kubectl get -o yaml` writes it: read, not carried over.
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    managedFields: list[Any] | None = None


class _PyrraQuery(_Input):
    metric: str


class _PyrraRatio(_Input):
    errors: _PyrraQuery
    total: _PyrraQuery
    grouping: list[str] | None = None


class _PyrraLatency(_Input):
    success: _PyrraQuery
    total: _PyrraQuery
    grouping: list[str] | None = None


class _PyrraIndicator(_Input):
    ratio: _PyrraRatio | None = None
    latency: _PyrraLatency | None = None
    latencyNative: dict[str, Any] | None = None
    bool_gauge: dict[str, Any] | None = None


class _PyrraSeverities(_Input):
    absent: str = ""
    fastBurn: str = ""
    mediumBurn: str = ""
    slowBurn: str = ""
    longTermBurn: str = ""


class _PyrraAlerting(_Input):
    disabled: bool | None = None
    burnrates: bool | None = None
    absent: bool | None = None
    name: str = ""
    absentName: str = ""
    severities: _PyrraSeverities | None = None


class _PyrraSpec(_Input):
    description: str = ""
    target: str | float
    window: str
    indicator: _PyrraIndicator
    alerting: _PyrraAlerting = _PyrraAlerting()
    partial_response_strategy: str = ""
    performanceOverAccuracy: bool = False
    ruleOutput: dict[str, Any] | None = None


class _PyrraDocument(_Input):
    apiVersion: Literal["pyrra.dev/v1alpha1"]
    kind: Literal["ServiceLevelObjective"]
    metadata: _PyrraMetadata
    spec: _PyrraSpec
    status: dict[str, Any] | None = None


def _selector(query: _PyrraQuery, *, field: str) -> Selector:
    try:
        return parse_selector(query.metric)
    except SelectorError as exc:
        raise _FieldProblem(f"{field}.metric", str(exc)) from exc


def _grouping(grouping: list[str] | None, *, field: str) -> None:
    if grouping:
        raise _FieldProblem(
            f"{field}.grouping",
            "not supported: one SLO per label value; write one SLO per group, or none",
        )


def _indicator(indicator: _PyrraIndicator) -> tuple[Selector | None, Selector | None, Selector]:
    """(good, bad, total) selectors."""
    base = "spec.indicator"
    for unsupported in ("latencyNative", "bool_gauge"):
        if getattr(indicator, unsupported) is not None:
            raise _FieldProblem(
                f"{base}.{unsupported}",
                "not supported: give a ratio or a latency indicator on counters",
            )
    if (indicator.ratio is None) == (indicator.latency is None):
        raise _FieldProblem(base, "give exactly one of ratio and latency")
    if indicator.ratio is not None:
        _grouping(indicator.ratio.grouping, field=f"{base}.ratio")
        bad = _selector(indicator.ratio.errors, field=f"{base}.ratio.errors")
        return None, bad, _selector(indicator.ratio.total, field=f"{base}.ratio.total")
    assert indicator.latency is not None
    _grouping(indicator.latency.grouping, field=f"{base}.latency")
    good = _selector(indicator.latency.success, field=f"{base}.latency.success")
    if not any(m.label == "le" and m.op == "=" for m in good.matchers):
        raise _FieldProblem(
            f"{base}.latency.success.metric",
            'must select one histogram bucket with le="<seconds>"',
        )
    return good, None, _selector(indicator.latency.total, field=f"{base}.latency.total")


def _target(value: str | float) -> float:
    try:
        target = float(value)
    except ValueError as exc:
        raise _FieldProblem("spec.target", f"not a number: {value!r}") from exc
    if not 0 < target < 100:
        raise _FieldProblem(
            "spec.target", f"must be a percentage strictly between 0 and 100, got {value!r}"
        )
    return target


def _alerts(
    alerting: _PyrraAlerting, *, window: timedelta, notes: _ImportNotes
) -> tuple[tuple[_Condition, ...] | None, bool]:
    """(conditions, no-data alert): ``None`` keeps the default alerts."""
    field = "spec.alerting"
    if alerting.name:
        notes.add(f"{field}.name", "not carried over: the alerts are named ErrorBudgetBurn<...>")
    if alerting.absentName:
        notes.add(f"{field}.absentName", "not carried over: the alert is named SLODataAbsent")
    if alerting.severities is not None:
        notes.add(
            f"{field}.severities",
            "not carried over: the alerts' severities are page and ticket",
        )
    burns = alerting.burnrates is not False and alerting.disabled is not True
    absent = alerting.absent is not False
    if burns and absent:
        return None, True
    if not burns:
        if absent:
            notes.add(
                f"{field}.absent",
                "not carried over: OpenSLO has no alert policy without a burn-rate condition, "
                "so without burn-rate alerts there is no absent-data alert either",
            )
        return (), False
    conditions = tuple(
        _Condition(severity=w.severity, factor=w.factor, long=w.long)
        for w in default_burn_rate_windows(window)
    )
    return conditions, False


def _spec_notes(spec: _PyrraSpec, notes: _ImportNotes) -> None:
    if spec.partial_response_strategy:
        notes.add("spec.partial_response_strategy", "not carried over: used by Thanos Ruler only")
    if spec.performanceOverAccuracy:
        notes.add(
            "spec.performanceOverAccuracy",
            "not carried over: the rules always read the raw counters over each window",
        )
    if spec.ruleOutput:
        notes.add("spec.ruleOutput", "not carried over: labels of Pyrra's PrometheusRule objects")


def _convert(document: _PyrraDocument, *, notes: _ImportNotes) -> _SLOToWrite:
    metadata, spec = document.metadata, document.spec
    try:
        name = _name(metadata.name)
    except ValueError as exc:
        raise _FieldProblem("metadata.name", str(exc)) from exc
    try:
        service = _name(metadata.namespace or DEFAULT_NAMESPACE)
    except ValueError as exc:
        raise _FieldProblem("metadata.namespace", str(exc)) from exc
    try:
        window = parse_duration(spec.window)
    except DurationError as exc:
        raise _FieldProblem("spec.window", str(exc)) from exc
    good, bad, total = _indicator(spec.indicator)
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
        if getattr(metadata, key) is not None:
            notes.add(f"metadata.{key}", "not carried over: Kubernetes bookkeeping")
    if document.status:
        notes.add("status", "not carried over: written by Pyrra's controller")
    _spec_notes(spec, notes)
    conditions, no_data = _alerts(spec.alerting, window=window, notes=notes)
    return _SLOToWrite(
        name=name,
        service=service,
        description=spec.description,
        labels=_tier_label(metadata.labels, field="metadata.labels", notes=notes),
        annotations=dict(metadata.annotations),
        target_percent=_target(spec.target),
        window=window,
        good=good,
        bad=bad,
        total=total,
        conditions=conditions,
        no_data=no_data,
    )


def _pyrra_to_openslo(
    document: _PyrraDocument, *, where: _Where
) -> tuple[list[dict[str, Any]], list[SpecNote]]:
    """The OpenSLO v1 ``SLO`` document of a Pyrra object, and notes on fields not carried
    over. Raises :class:`SpecErrors` naming the Pyrra field."""
    notes = _ImportNotes(where=where, items=[])
    try:
        converted = _convert(document, notes=notes)
    except _FieldProblem as problem:
        raise SpecErrors([where.error(problem.field, problem.message)]) from problem
    return [converted.document()], notes.items
