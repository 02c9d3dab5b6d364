"""Signal sources: Prometheus, Elasticsearch and Jaeger behind the Protocols of ``base``.

Pick them with :func:`sources_from_settings` (or construct one directly); callers depend on the
Protocols (``MetricsSource``, ``LogSource``, ``TraceSource``), never on a backend module.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.core.config import ControlPlaneSettings
from controlplane.sources.base import (
    LogSource,
    MetricsSource,
    NoData,
    SourceError,
    SourceQueryError,
    SourceUnavailable,
    TraceSource,
)
from controlplane.sources.elasticsearch import ElasticsearchSource
from controlplane.sources.jaeger import JaegerSource
from controlplane.sources.prometheus import PrometheusSource

__all__ = [
    "LogSource",
    "MetricsSource",
    "NoData",
    "SignalSources",
    "SourceError",
    "SourceQueryError",
    "SourceUnavailable",
    "TraceSource",
    "sources_from_settings",
]


@dataclass(frozen=True)
class SignalSources:
    """The three sources the control plane reads, built together from the settings."""

    metrics: MetricsSource
    logs: LogSource
    traces: TraceSource


def sources_from_settings(settings: ControlPlaneSettings) -> SignalSources:
    return SignalSources(
        metrics=PrometheusSource.from_settings(settings),
        logs=ElasticsearchSource.from_settings(settings),
        traces=JaegerSource.from_settings(settings),
    )
