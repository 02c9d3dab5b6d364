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

Modules, each importing only those above it: :mod:`~slo.spec.errors` (spec errors, validation
errors located by field path), :mod:`~slo.spec.validators` (checks both formats share),
:mod:`~slo.spec.model` (the normalized models), :mod:`~slo.spec.native` and
:mod:`~slo.spec.openslo` (the two input formats), :mod:`~slo.spec.loading` (:func:`parse_slos`).
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
