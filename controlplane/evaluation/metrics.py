"""Self-metrics of the control plane, served on ``/metrics`` (Prometheus text format).

One :class:`ControlPlaneMetrics` per process, on its own registry (never the global one, so
two apps in one process do not collide). Series:

* ``controlplane_evaluation_duration_seconds`` (histogram) and
  ``controlplane_evaluation_last_duration_seconds``: how long a cycle took;
  ``controlplane_evaluation_cycles_total{outcome}`` (``complete``, ``degraded`` when a source
  failed, ``failed`` when the cycle could not be stored);
  ``controlplane_evaluation_queries_total{plan}``;
  ``controlplane_evaluation_paused_seconds_total``: time cycles paused for a busy API
  (:mod:`~controlplane.evaluation.pacing`).
* ``controlplane_source_errors_total{source, stage}``: a source (``prometheus``,
  ``elasticsearch``, ``postgresql``, ``orchestrator``...) failing during an evaluation or a
  target check (``stage`` = ``evaluation``, ``capacity``, ``dr``).
* Per SLO, from the last cycle: ``controlplane_slo_burn_rate{service, slo, window}`` (only
  windows with data), ``controlplane_slo_error_budget_remaining_ratio``, ``controlplane_slo_sli``
  and ``controlplane_slo_state{state}`` (1 for the current state, 0 for the others).
* ``controlplane_target_check_duration_seconds{check}``,
  ``controlplane_target_check_runs_total{check, outcome}``,
  ``controlplane_findings_open{check}``.
* ``controlplane_is_leader`` and the process collector (``process_resident_memory_bytes``...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controlplane.evaluation.evaluator import Cycle
from controlplane.store.evaluations import EvaluationRecord
from slo.maths import SLIState

__all__ = ["CONTENT_TYPE", "ControlPlaneMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = tuple(str(state) for state in SLIState)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _name(record: EvaluationRecord) -> str:
    """The SLO's name (its ``slo`` label elsewhere), whatever its id."""
    return str(record.details.get("slo", record.slo_id))


class _LastCycleCollector(Collector):
    """Per-SLO gauges from the last cycle (SLOs removed from the specs disappear with it).

    With thousands of SLOs these are most of ``/metrics`` (16 series per SLO): their text is
    rendered once per cycle, at the first scrape after it, and served as is until the next
    cycle (:meth:`text`). They are not in the registry: :meth:`ControlPlaneMetrics.exposition`
    appends them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: tuple[EvaluationRecord, ...] = ()
        self._at: float | None = None
        self._duration: float | None = None
        self._text: bytes | None = None

    def update(self, cycle: Cycle) -> None:
        with self._lock:
            self._records = cycle.records
            self._at = cycle.at.timestamp()
            self._duration = cycle.duration_s
            self._text = None

    def text(self) -> bytes:
        """The exposition of :meth:`collect`, rendered once per cycle."""
        with self._lock:
            if self._text is None:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(self)
                self._text = generate_latest(registry)
            return self._text

    def collect(self) -> Iterator[Metric]:
        records, at, duration = self._records, self._at, self._duration
        burn = GaugeMetricFamily(
            "controlplane_slo_burn_rate",
            "Error budget burn rate of an SLO over a window (absent: no data)",
            labels=["service", "slo", "window"],
        )
        remaining = GaugeMetricFamily(
            "controlplane_slo_error_budget_remaining_ratio",
            "Share of the error budget left over the SLO period (absent: no data)",
            labels=["service", "slo"],
        )
        sli = GaugeMetricFamily(
            "controlplane_slo_sli",
            "SLI over the SLO period (absent: no data)",
            labels=["service", "slo"],
        )
        state = GaugeMetricFamily(
            "controlplane_slo_state",
            "1 for the SLO's state in the last evaluation (ok, no_data, insufficient_traffic)",
            labels=["service", "slo", "state"],
        )
        for record in records:
            name = _name(record)
            for window, rate in record.burn_rates.items():
                if rate is not None:
                    burn.add_metric([record.service, name, window], rate)
            if record.budget_remaining is not None:
                remaining.add_metric([record.service, name], record.budget_remaining)
            if record.sli is not None:
                sli.add_metric([record.service, name], record.sli)
            for candidate in STATES:
                state.add_metric(
                    [record.service, name, candidate], 1.0 if record.state == candidate else 0.0
                )
        yield from (burn, remaining, sli, state)
        count = GaugeMetricFamily(
            "controlplane_evaluation_slos", "SLOs evaluated in the last cycle", value=len(records)
        )
        yield count
        if at is not None and duration is not None:
            yield GaugeMetricFamily(
                "controlplane_evaluation_last_timestamp_seconds",
                "When the last evaluation cycle evaluated the SLOs (unix time)",
                value=at,
            )
            yield GaugeMetricFamily(
                "controlplane_evaluation_last_duration_seconds",
                "Duration of the last evaluation cycle",
                value=duration,
            )


class ControlPlaneMetrics:
    """The registry and every self-metric; the scheduler and the checks report into it."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
        self.evaluation_duration = Histogram(
            "controlplane_evaluation_duration_seconds",
            "Duration of an evaluation cycle (reads, maths and the store write)",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.evaluation_cycles = Counter(
            "controlplane_evaluation_cycles",
            "Evaluation cycles by outcome (complete, degraded: a source failed, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.evaluation_paused = Counter(
            "controlplane_evaluation_paused_seconds",
            "Time evaluation cycles left the interpreter to a busy API (within their duration)",
            registry=self.registry,
        )
        self.evaluation_queries = Counter(
            "controlplane_evaluation_queries",
            "Queries sent to the sources by the evaluation, per plan",
            ["plan"],
            registry=self.registry,
        )
        self.source_errors = Counter(
            "controlplane_source_errors",
            "Failures of a signal source or check input, per source and stage",
            ["source", "stage"],
            registry=self.registry,
        )
        self.check_duration = Histogram(
            "controlplane_target_check_duration_seconds",
            "Duration of a target check run (inputs, check and findings update)",
            ["check"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.check_runs = Counter(
            "controlplane_target_check_runs",
            "Target check runs by outcome (complete, partial: an input failed, failed)",
            ["check", "outcome"],
            registry=self.registry,
        )
        self.findings_open = Gauge(
            "controlplane_findings_open",
            "Findings a target check left open after its last run",
            ["check"],
            registry=self.registry,
        )
        self.is_leader = Gauge(
            "controlplane_is_leader",
            "1 while this replica is the leader (only the leader evaluates and checks)",
            registry=self.registry,
        )
        self._last_cycle = _LastCycleCollector()

    def leadership(self, is_leader: Callable[[], bool]) -> None:
        """Report leadership from a callable read at every scrape."""
        self.is_leader.set_function(lambda: 1.0 if is_leader() else 0.0)

    def observe_cycle(self, cycle: Cycle, *, stored: bool) -> None:
        self.evaluation_duration.observe(cycle.duration_s)
        if not stored:
            outcome = "failed"
        elif cycle.failures:
            outcome = "degraded"
        else:
            outcome = "complete"
        self.evaluation_cycles.labels(outcome=outcome).inc()
        self.evaluation_paused.inc(cycle.paused_s)
        for plan, count in cycle.queries.items():
            self.evaluation_queries.labels(plan=plan).inc(count)
        for failure in cycle.failures:
            self.source_errors.labels(source=failure.source, stage="evaluation").inc()
        self._last_cycle.update(cycle)

    def exposition(self) -> bytes:
        """The registry's series, then the last cycle's per-SLO series (rendered once per
        cycle)."""
        return generate_latest(self.registry) + self._last_cycle.text()
