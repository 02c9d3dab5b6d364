"""One evaluation cycle: every SLO at one instant, as :class:`EvaluationRecord` rows.

The reading and the maths are :class:`~controlplane.evaluation.report.SLOReporter`'s (the
same reports ``controlplane slo report`` prints, with its three plans: batched recording
rules, raw event counts, Elasticsearch counts); this module turns each report, or each SLO that
could not be evaluated, into the row the store keeps and the API serves.

A source that fails never leaves an SLO looking healthy: every SLO it backs is recorded as
``no_data`` with the reason (``source unavailable: prometheus: ...``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controlplane.evaluation.details import AlertDetail, EvaluationDetails, SourceErrorDetail
from controlplane.evaluation.pacing import Pacer, pace_nothing
from controlplane.evaluation.report import (
    BATCHED,
    ELASTICSEARCH,
    RAW,
    Plan,
    SLOReport,
    SLOReporter,
    SourceFailure,
    Unevaluated,
    batched_windows,
    plan_for,
    shared_names,
)
from controlplane.sources.base import LogSource, MetricsSource
from controlplane.store.evaluations import EvaluationRecord
from slo.durations import format_duration
from slo.maths import SLIState
from slo.spec import SLO, PrometheusLatencySLI

__all__ = [
    "BATCHED",
    "ELASTICSEARCH",
    "RAW",
    "Cycle",
    "SLOEvaluator",
    "SourceFailure",
    "batched_windows",
    "plan_for",
]

#: Longest reason text stored with a "no data" evaluation.
MAX_REASON = 500


@dataclass(frozen=True, kw_only=True)
class Cycle:
    """The outcome of one evaluation cycle."""

    at: datetime
    records: tuple[EvaluationRecord, ...]
    failures: tuple[SourceFailure, ...]
    duration_s: float
    #: Queries sent per plan.
    queries: dict[str, int] = field(default_factory=dict)
    #: SLOs evaluated per plan (after fallbacks).
    plans: dict[str, int] = field(default_factory=dict)
    #: Time the cycle left the interpreter to a busy API (see ``Pacer``), within ``duration_s``.
    paused_s: float = 0.0

    def states(self) -> Counter[str]:
        return Counter(record.state for record in self.records)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _details(slo: SLO, *, plan: Plan, **computed: Any) -> EvaluationDetails:
    """What every evaluation of ``slo`` carries, plus what its evaluation ``computed``."""
    return EvaluationDetails(
        slo=slo.name,
        plan=plan,
        tier=slo.tier,
        period=format_duration(slo.period),
        latency_threshold_s=slo.sli.threshold
        if isinstance(slo.sli, PrometheusLatencySLI)
        else None,
        **computed,
    )


def no_data_record(outcome: Unevaluated, *, slo_id: str) -> EvaluationRecord:
    """The row of an SLO that could not be evaluated: the tier, the period and the alert
    windows (not firing) still travel with it, so the console shows them."""
    slo, failure = outcome.slo, outcome.failure
    details = _details(
        slo,
        plan=outcome.plan,
        alerts=[AlertDetail.unevaluated(window) for window in slo.burn_rate_windows()],
        source_error=None
        if failure is None
        else SourceErrorDetail(
            source=failure.source, error=type(failure).__name__, message=_short(str(failure))
        ),
    )
    return EvaluationRecord(
        slo_id=slo_id,
        service=slo.service,
        at=outcome.at,
        state=str(SLIState.NO_DATA),
        sli=None,
        objective=slo.target,
        budget_remaining=None,
        burn_rates={},
        no_data_reason=_short(outcome.reason),
        details=details.model_dump(mode="json"),
    )


def record_from_report(report: SLOReport, *, slo_id: str) -> EvaluationRecord:
    """The row of an evaluated SLO, whichever plan read it."""
    slo, status = report.slo, report.status
    budget = status.budget
    counts = status.sli.counts
    details = _details(
        slo,
        plan=report.plan,
        alerts=[AlertDetail.of(alert) for alert in status.alerts],
        time_to_exhaustion_s=None
        if status.exhaustion is None
        else status.exhaustion.total_seconds(),
        current_burn_1h=_finite(status.current_burn),
        period_start=report.period_start,
        events=None if counts is None else counts.total,
        bad_events=None if counts is None else counts.bad,
        error_ratio=status.sli.error_ratio,
        budget_remaining_minutes=None if budget is None else budget.remaining_minutes,
    )
    return EvaluationRecord(
        slo_id=slo_id,
        service=slo.service,
        at=report.at,
        state=str(status.state),
        sli=_finite(status.sli.sli),
        objective=slo.target,
        budget_remaining=None if budget is None else _finite(budget.remaining_ratio),
        burn_rates={
            format_duration(window): _finite(burn)
            for window, burn in sorted(report.burn_rates.items())
        },
        no_data_reason=None if report.no_data_reason is None else _short(report.no_data_reason),
        details=details.model_dump(mode="json"),
    )


def slo_ids(slos: Iterable[SLO]) -> dict[str, str]:
    """The id of each SLO (by ``slo.key``) in the store and the API: its name, the ``slo`` label
    of its series and alerts; ``<service>:<name>`` when several services use that name. Ids
    never hold a ``/``, so ``/api/v1/slos/{id}`` can address them."""
    listed = tuple(slos)
    shared = shared_names(listed)
    return {
        slo.key: f"{slo.service}:{slo.name}" if slo.name in shared else slo.name for slo in listed
    }


class SLOEvaluator:
    """Evaluates a fixed set of SLOs against the metrics and log sources."""

    def __init__(
        self,
        *,
        slos: Sequence[SLO],
        metrics: MetricsSource,
        logs: LogSource | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
    ) -> None:
        """``pacer``: paces the cycle's loops beside a busy API (None: full speed)."""
        self.pacer = pacer
        self.reporter = SLOReporter(
            slos=slos, metrics=metrics, logs=logs, pace=pacer or pace_nothing
        )
        self.slos = self.reporter.slos
        self.clock = clock
        #: The id each SLO is stored and served under (see :func:`slo_ids`).
        self.ids = slo_ids(self.slos)
        self.plans: dict[str, Plan] = self.reporter.plans
        #: Record names read per cycle by the batched plan (one query each).
        self.record_names = self.reporter.record_names

    def evaluate(self, *, at: datetime | None = None) -> Cycle:
        """Evaluate every SLO at ``at`` (default: now). Never raises for a source failure."""
        pacer = self.pacer
        pace = pacer or pace_nothing
        records: list[EvaluationRecord] = []
        with pacer.cycle() if pacer is not None else nullcontext():
            run = self.reporter.report(at=at or self.clock())
            for outcome in run.outcomes:
                pace()
                slo_id = self.ids[outcome.slo.key]
                records.append(
                    record_from_report(outcome, slo_id=slo_id)
                    if isinstance(outcome, SLOReport)
                    else no_data_record(outcome, slo_id=slo_id)
                )
        return Cycle(
            at=run.at,
            records=tuple(records),
            failures=run.failures,
            duration_s=run.duration_s,
            queries=run.queries,
            plans=run.plans,
            paused_s=0.0 if pacer is None else pacer.paused_s,
        )
