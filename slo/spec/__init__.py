"""SLO specifications: frozen models and loaders for OpenSLO v1, the native format, Sloth
``prometheus/v1`` files and Pyrra ``ServiceLevelObjective`` objects.

Every format is read into the same normalized :class:`SLO` model, which the maths, the rule
generator and the control plane use (Sloth and Pyrra through the OpenSLO documents
:func:`convert_to_openslo` writes). Loading is pure: callers pass ``(name, text)`` pairs
(:class:`SpecSource`) and the tiers of services whose specs name none (:class:`TierPolicy`),
and get models back with :class:`SpecNote` notes on fields read but not carried over, or a
:class:`SpecErrors` with one :class:`SpecError` per problem, each naming the file, the field
path and what is wrong.

Supported OpenSLO v1 subset (anything else is an error, never silently ignored):

* ``kind: SLO`` with inline ``indicator`` or ``indicatorRef``; one ``timeWindow`` (rolling, or
  calendar ``1w``/``1M``); ``budgetingMethod`` Occurrences, Timeslices or RatioTimeslices;
  one or more ``objectives``; ``alertPolicies`` inline or by ``alertPolicyRef`` (none given:
  the default alerts; an empty list: no alerts).
* ``kind: SLI`` with ``ratioMetric`` (good/total or bad/total, counters) or ``thresholdMetric``;
  metric sources of ``type`` Prometheus (``spec.query``: a series selector or ``sum(<selector>)``
  for ratio metrics, any PromQL expression for threshold metrics) or Elasticsearch
  (``spec.index``, ``spec.timestampField``, ``spec.query``), inline or by ``metricSourceRef``.
* ``kind: DataSource`` (its type; its connection details are noted as not used).
* ``kind: Service`` (its ``metadata.labels.tier`` is the default tier of its SLOs).
* ``kind: AlertPolicy`` with ``burnrate`` conditions of severity page or ticket, inline or by
  ``conditionRef`` to a ``kind: AlertCondition``; notification targets inline or by
  ``targetRef`` to a ``kind: AlertNotificationTarget``.

Our own labels on OpenSLO documents: ``metadata.labels.tier`` (critical, standard, batch,
reporting; optional) and annotations ``runbook_url``, ``dashboard_url`` and ``min_events``.

Modules, each importing only those above it: :mod:`~slo.spec.errors` (spec errors and notes,
validation errors located by field path), :mod:`~slo.spec.validators` (checks the formats
share), :mod:`~slo.spec.model` (the normalized models), :mod:`~slo.spec.native` and
:mod:`~slo.spec.openslo` (the two input formats; OpenSLO written for imports),
:mod:`~slo.spec.sloth` and :mod:`~slo.spec.pyrra` (imports), :mod:`~slo.spec.loading`
(:func:`parse_specs`, :func:`parse_slos`, :func:`convert_to_openslo`).
"""

from __future__ import annotations

from slo.spec.errors import SpecError, SpecErrors, SpecNote
from slo.spec.loading import (
    Conversion,
    ParsedSpecs,
    SpecSource,
    convert_to_openslo,
    parse_slos,
    parse_specs,
)
from slo.spec.model import (
    DEFAULT_TIER,
    SLI,
    SLO,
    TIERS,
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
    TimeWindow,
)
from slo.spec.native import NATIVE_API_VERSION
from slo.spec.openslo import OPENSLO_API_VERSION
from slo.spec.pyrra import PYRRA_API_VERSION
from slo.spec.sloth import SLOTH_VERSION

__all__ = [
    "DEFAULT_TIER",
    "NATIVE_API_VERSION",
    "OPENSLO_API_VERSION",
    "PYRRA_API_VERSION",
    "SLI",
    "SLO",
    "SLOTH_VERSION",
    "TIERS",
    "Alerting",
    "BudgetingMethod",
    "CalendarWindow",
    "Conversion",
    "ElasticsearchRatioSLI",
    "ParsedSpecs",
    "PrometheusLatencySLI",
    "PrometheusRatioSLI",
    "PrometheusThresholdSLI",
    "RollingWindow",
    "SpecError",
    "SpecErrors",
    "SpecNote",
    "SpecSource",
    "Tier",
    "TierPolicy",
    "TimeWindow",
    "convert_to_openslo",
    "parse_slos",
    "parse_specs",
]
