"""One evaluation cycle: every SLO at one instant, as :class:`EvaluationRecord` rows.

Three plans, chosen per SLO when the evaluator is built:

``recording_rules`` (batched)
    Prometheus-backed SLOs with a rolling window and ``min_events: 1`` whose name no other
    service uses. One instant query per record name for all of them
    (:meth:`MetricsSource.recording_rules`): ``slo:objective:ratio`` (always present once the
    rules are loaded: it tells "rules not loaded" from "no data") and
    ``slo:sli_error:ratio_rate<w>`` for every window and the period. SLI, budget, burn rates and
    the multi-window alerts are computed from those error ratios with ``slo.maths``.
``raw``
    The other Prometheus-backed SLOs (calendar windows, ``min_events`` above 1, a name two
    services share), and batched SLOs whose rules Prometheus does not have (or has for another
    objective): event counts per window (``sum(increase(...[w]))``), then
    :func:`controlplane.slo_report.build_report`.
``elasticsearch``
    Log-based SLOs: event counts per window from the log source, then ``build_report``.

A source that fails never leaves an SLO looking healthy: every SLO it backs is recorded as
``no_data`` with the reason (``source unavailable: prometheus: ...``). A source found
unavailable is not asked again in the same cycle (the remaining SLOs get the same reason at
once), so a cycle stays short while a backend is down.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from controlplane.evaluation.events import LogEvents, MetricsEvents
from controlplane.slo_report import SLOReport, build_report, no_data_reason
from controlplane.sources.base import (
    LogSource,
    MetricsSource,
    NoData,
    RecordingRuleSnapshot,
    SourceError,
    SourceUnavailable,
)
from controlplane.store.evaluations import EvaluationRecord
from slo.durations import format_duration
from slo.maths import BurnRateWindow, SLIState, error_budget, time_to_exhaustion
from slo.rules import ERROR_RATIO, OBJECTIVE, STANDARD_WINDOWS
from slo.spec import SLO, PrometheusLatencySLI, RollingWindow

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

logger = logging.getLogger(__name__)

Plan = Literal["recording_rules", "raw", "elasticsearch"]
BATCHED: Plan = "recording_rules"
RAW: Plan = "raw"
ELASTICSEARCH: Plan = "elasticsearch"

#: Longest reason text stored with a "no data" evaluation.
MAX_REASON = 500
#: The window whose burn rate is the "current" burn (time to exhaustion is computed from it).
CURRENT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class SourceFailure:
    """A source that failed during a cycle (or a check): which, how, and what it said."""

    source: str
    error: str
    message: str
    slos: int = 0

    @classmethod
    def from_error(cls, exc: SourceError, *, slos: int = 0) -> SourceFailure:
        return cls(source=exc.source, error=type(exc).__name__, message=str(exc), slos=slos)


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

    def states(self) -> Counter[str]:
        return Counter(record.state for record in self.records)


def batched_windows(slo: SLO) -> list[timedelta]:
    """The windows whose error ratios the rules record for ``slo``: the standard windows, the
    alert windows and the period (the same set as ``slo.rules``)."""
    needed = set(STANDARD_WINDOWS)
    for window in slo.burn_rate_windows():
        needed.update((window.long, window.short))
    needed.add(slo.period)
    return sorted(needed)


def _ratio_name(window: timedelta) -> str:
    return ERROR_RATIO.format(window=format_duration(window))


def plan_for(slo: SLO, *, shared_names: frozenset[str] = frozenset()) -> Plan:
    """The plan an SLO is evaluated with when its rules are loaded (see the module docstring)."""
    if slo.backend == "elasticsearch":
        return ELASTICSEARCH
    if (
        isinstance(slo.window, RollingWindow)
        and slo.min_events == 1
        and slo.name not in shared_names
    ):
        return BATCHED
    return RAW


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _alert_shapes(slo: SLO) -> list[dict[str, Any]]:
    """The SLO's multi-window alerts without a verdict: severity, windows, factor."""
    return [
        {
            "severity": alert.severity,
            "long": format_duration(alert.long),
            "short": format_duration(alert.short),
            "factor": alert.factor,
        }
        for alert in slo.burn_rate_windows()
    ]


def _base_details(slo: SLO, plan: Plan) -> dict[str, Any]:
    """What every evaluation carries for the console, whatever its state: the tier, the
    period, the alert windows (not firing until a verdict replaces them), the forecast of
    exhaustion (none until computed) and, for a latency SLI, its threshold in seconds."""
    details: dict[str, Any] = {
        "slo": slo.name,
        "plan": plan,
        "tier": slo.tier,
        "period": format_duration(slo.period),
        "alerts": [
            {**shape, "firing": False, "state": str(SLIState.NO_DATA)}
            for shape in _alert_shapes(slo)
        ],
        "time_to_exhaustion_s": None,
    }
    if isinstance(slo.sli, PrometheusLatencySLI):
        details["latency_threshold_s"] = slo.sli.threshold
    return details


def no_data_record(
    slo: SLO,
    *,
    slo_id: str,
    at: datetime,
    plan: Plan,
    reason: str,
    failure: SourceError | None = None,
) -> EvaluationRecord:
    details = _base_details(slo, plan)
    if failure is not None:
        details["source_error"] = {
            "source": failure.source,
            "error": type(failure).__name__,
            "message": _short(str(failure)),
        }
    return EvaluationRecord(
        slo_id=slo_id,
        service=slo.service,
        at=at,
        state=str(SLIState.NO_DATA),
        sli=None,
        objective=slo.target,
        budget_remaining=None,
        burn_rates={},
        no_data_reason=_short(reason),
        details=details,
    )


def record_from_report(
    report: SLOReport, *, slo_id: str, plan: Plan, missing: str | None = None
) -> EvaluationRecord:
    """An evaluation row from a raw-plan report (``build_report``); ``missing`` says what the
    source reported missing when there was no data (e.g. "no index matches 'logs-*'")."""
    slo, status = report.slo, report.status
    budget = status.budget
    details = _base_details(slo, plan)
    details.update(
        {
            "period_start": report.period_start.isoformat(),
            "events": None if status.sli.counts is None else status.sli.counts.total,
            "bad_events": None if status.sli.counts is None else status.sli.counts.bad,
            "error_ratio": status.sli.error_ratio,
            "budget_remaining_minutes": None if budget is None else budget.remaining_minutes,
            "current_burn_1h": _finite(status.current_burn),
            "time_to_exhaustion_s": None
            if status.exhaustion is None
            else status.exhaustion.total_seconds(),
            "alerts": [
                {
                    "severity": alert.window.severity,
                    "long": format_duration(alert.window.long),
                    "short": format_duration(alert.window.short),
                    "factor": alert.window.factor,
                    "firing": alert.firing,
                    "state": str(alert.state),
                }
                for alert in status.alerts
            ],
        }
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
        no_data_reason=_reason(report, missing),
        details=details,
    )


def _reason(report: SLOReport, missing: str | None) -> str | None:
    reason = no_data_reason(report)
    if reason is not None and missing and report.status.state == SLIState.NO_DATA:
        return _short(f"{reason}: {missing}")
    return reason


@dataclass(frozen=True, kw_only=True)
class RuleShape:
    """What the batched plan reads and computes for one SLO, worked out once per evaluator:
    the windows (with their record names and labels), the alert windows, the budget."""

    slo: SLO
    slo_id: str
    #: The budget as written (0.001, not 1 - 0.999 in binary), as the rules divide by it.
    budget: float
    windows: tuple[tuple[timedelta, str, str], ...]
    alerts: tuple[tuple[BurnRateWindow, dict[str, Any]], ...]

    @classmethod
    def of(cls, slo: SLO, *, slo_id: str) -> RuleShape:
        return cls(
            slo=slo,
            slo_id=slo_id,
            budget=float(slo.error_budget_decimal),
            windows=tuple(
                (window, _ratio_name(window), format_duration(window))
                for window in batched_windows(slo)
            ),
            alerts=tuple(zip(slo.burn_rate_windows(), _alert_shapes(slo), strict=True)),
        )


def record_from_rules(
    slo: SLO,
    *,
    slo_id: str,
    snapshot: RecordingRuleSnapshot,
    at: datetime,
    shape: RuleShape | None = None,
) -> EvaluationRecord:
    """An evaluation row from the recorded error ratios of ``slo`` (rules known to be loaded).

    A missing ratio is "no data" (the SLI's total series is absent), a NaN one is a window
    without traffic; neither becomes a number.
    """
    shape = shape or RuleShape.of(slo, slo_id=slo_id)
    ratios: dict[timedelta, float | NoData] = {}
    burn_rates: dict[str, float | None] = {}
    burns: dict[timedelta, float | None] = {}
    for window, name, label in shape.windows:
        value = snapshot.value(name=name, slo=slo.name)
        if not isinstance(value, NoData) and not math.isfinite(value):
            value = NoData("not_a_number", f"{name} is {value}")
        # rate() extrapolates each series on its own: keep the ratio within [0, 1].
        ratio = value if isinstance(value, NoData) else min(max(value, 0.0), 1.0)
        ratios[window] = ratio
        burn = None if isinstance(ratio, NoData) else ratio / shape.budget
        burns[window] = burn_rates[label] = burn
    alerts = []
    for alert, described in shape.alerts:
        parts = [ratios[alert.long], ratios[alert.short]]
        if any(isinstance(part, NoData) and part.reason == "empty_result" for part in parts):
            state = SLIState.NO_DATA
        elif any(isinstance(part, NoData) for part in parts):
            state = SLIState.INSUFFICIENT_TRAFFIC
        else:
            state = SLIState.OK
        long_burn, short_burn = burns[alert.long], burns[alert.short]
        alerts.append(
            {
                **described,
                "firing": state is SLIState.OK
                and long_burn is not None
                and short_burn is not None
                and alert.exceeded(long_burn)
                and alert.exceeded(short_burn),
                "state": str(state),
            }
        )
    period_ratio = ratios[slo.period]
    current_burn = burns.get(CURRENT_WINDOW)
    details = _base_details(slo, BATCHED)
    details["alerts"] = alerts
    details["current_burn_1h"] = current_burn
    period = format_duration(slo.period)
    if isinstance(period_ratio, NoData):
        if period_ratio.reason == "not_a_number":
            state, reason = SLIState.INSUFFICIENT_TRAFFIC, f"no events in the {period} period"
        else:
            state = SLIState.NO_DATA
            reason = f"no samples of the SLI's total series in the {period} period"
        details["error_ratio"] = None
        return EvaluationRecord(
            slo_id=slo_id,
            service=slo.service,
            at=at,
            state=str(state),
            sli=None,
            objective=slo.target,
            budget_remaining=None,
            burn_rates=burn_rates,
            no_data_reason=reason,
            details=details,
        )
    budget = error_budget(target=slo.target, error_ratio=period_ratio, period=slo.period)
    exhaustion = (
        None
        if current_burn is None
        else time_to_exhaustion(
            remaining_ratio=budget.remaining_ratio, burn=current_burn, period=slo.period
        )
    )
    details.update(
        {
            "error_ratio": period_ratio,
            "budget_remaining_minutes": budget.remaining_minutes,
            "time_to_exhaustion_s": None if exhaustion is None else exhaustion.total_seconds(),
        }
    )
    return EvaluationRecord(
        slo_id=slo_id,
        service=slo.service,
        at=at,
        state=str(SLIState.OK),
        sli=1 - period_ratio,
        objective=slo.target,
        budget_remaining=budget.remaining_ratio,
        burn_rates=burn_rates,
        no_data_reason=None,
        details=details,
    )


def slo_ids(slos: Iterable[SLO]) -> dict[str, str]:
    """The id of each SLO (by ``slo.key``) in the store and the API: its name, the ``slo`` label
    of its series and alerts; ``<service>:<name>`` when several services use that name. Ids
    never hold a ``/``, so ``/api/v1/slos/{id}`` can address them."""
    listed = tuple(slos)
    shared = _shared_names(listed)
    return {
        slo.key: f"{slo.service}:{slo.name}" if slo.name in shared else slo.name for slo in listed
    }


def _shared_names(slos: Iterable[SLO]) -> frozenset[str]:
    services: dict[str, set[str]] = {}
    for slo in slos:
        services.setdefault(slo.name, set()).add(slo.service)
    return frozenset(name for name, owners in services.items() if len(owners) > 1)


class SLOEvaluator:
    """Evaluates a fixed set of SLOs against the metrics and log sources."""

    def __init__(
        self,
        *,
        slos: Sequence[SLO],
        metrics: MetricsSource,
        logs: LogSource | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.slos = tuple(slos)
        self.metrics = metrics
        self.logs = logs
        self.clock = clock
        shared = _shared_names(self.slos)
        #: The id each SLO is stored and served under (see :func:`slo_ids`).
        self.ids = slo_ids(self.slos)
        self.plans: dict[str, Plan] = {
            slo.key: plan_for(slo, shared_names=shared) for slo in self.slos
        }
        self._batched = [slo for slo in self.slos if self.plans[slo.key] == BATCHED]
        self._shapes = {
            slo.key: RuleShape.of(slo, slo_id=self.ids[slo.key]) for slo in self._batched
        }
        names = {OBJECTIVE}
        for shape in self._shapes.values():
            names.update(name for _, name, _ in shape.windows)
        #: Record names read per cycle by the batched plan (one query each).
        self.record_names = tuple(sorted(names))

    def evaluate(self, *, at: datetime | None = None) -> Cycle:
        """Evaluate every SLO at ``at`` (default: now). Never raises for a source failure."""
        started = time.perf_counter()
        when = (at or self.clock()).astimezone(UTC)
        records: dict[str, EvaluationRecord] = {}
        failures: list[SourceFailure] = []
        queries: Counter[str] = Counter()
        plans: Counter[str] = Counter()
        prometheus_down: SourceError | None = None

        # 1. The batched plan: one query per record name for every batched SLO.
        fallback: list[tuple[SLO, str]] = []
        if self._batched:
            try:
                snapshot = self.metrics.recording_rules(
                    names=self.record_names, slos=[slo.name for slo in self._batched], at=when
                )
            except SourceUnavailable as exc:
                prometheus_down = exc
                queries[BATCHED] += 1
            except SourceError as exc:
                # Refused or ambiguous (two series for one slo): count the SLOs the slow way.
                logger.warning("batched recording-rule read failed, using raw queries: %s", exc)
                failures.append(SourceFailure.from_error(exc, slos=len(self._batched)))
                fallback = [(slo, f"recording rules unreadable: {exc}") for slo in self._batched]
                queries[BATCHED] += len(self.record_names)
            else:
                queries[BATCHED] += snapshot.queries
                for slo in self._batched:
                    objective = snapshot.value(name=OBJECTIVE, slo=slo.name)
                    if isinstance(objective, NoData):
                        fallback.append((slo, "recording rules not loaded in Prometheus"))
                    elif not math.isclose(objective, slo.target, rel_tol=0, abs_tol=1e-12):
                        fallback.append(
                            (slo, f"recording rules are for objective {objective}, not the spec's")
                        )
                    else:
                        records[slo.key] = record_from_rules(
                            slo,
                            slo_id=self.ids[slo.key],
                            snapshot=snapshot,
                            at=when,
                            shape=self._shapes[slo.key],
                        )
                        plans[BATCHED] += 1
        if fallback:
            logger.info(
                "%d SLO(s) evaluated with raw queries: %s",
                len(fallback),
                "; ".join(sorted({reason for _, reason in fallback})),
            )

        # 2. Raw Prometheus queries: the SLOs planned so, and the fallbacks.
        raw = [slo for slo in self.slos if self.plans[slo.key] == RAW]
        raw.extend(slo for slo, _ in fallback)
        metrics_events = MetricsEvents(metrics=self.metrics)
        for slo in raw:
            if prometheus_down is not None:
                break
            try:
                report = build_report(slo, source=metrics_events, at=when)
            except SourceUnavailable as exc:
                prometheus_down = exc
            except SourceError as exc:
                failures.append(SourceFailure.from_error(exc, slos=1))
                records[slo.key] = no_data_record(
                    slo,
                    slo_id=self.ids[slo.key],
                    at=when,
                    plan=RAW,
                    reason=f"query refused: {exc}",
                    failure=exc,
                )
            else:
                records[slo.key] = record_from_report(
                    report,
                    slo_id=self.ids[slo.key],
                    plan=RAW,
                    missing=metrics_events.reasons.get(slo.key),
                )
                plans[RAW] += 1
        queries[RAW] += metrics_events.queries
        if prometheus_down is not None:
            down = [
                slo for slo in self.slos if slo.backend == "prometheus" and slo.key not in records
            ]
            failures.append(SourceFailure.from_error(prometheus_down, slos=len(down)))
            for slo in down:
                records[slo.key] = no_data_record(
                    slo,
                    slo_id=self.ids[slo.key],
                    at=when,
                    plan=self.plans[slo.key],
                    reason=f"source unavailable: {prometheus_down}",
                    failure=prometheus_down,
                )

        # 3. Elasticsearch-backed SLOs.
        log_slos = [slo for slo in self.slos if self.plans[slo.key] == ELASTICSEARCH]
        if log_slos:
            self._evaluate_logs(
                log_slos, at=when, records=records, failures=failures, queries=queries, plans=plans
            )

        ordered = tuple(records[slo.key] for slo in self.slos)
        return Cycle(
            at=when,
            records=ordered,
            failures=tuple(failures),
            duration_s=time.perf_counter() - started,
            queries=dict(queries),
            plans=dict(plans),
        )

    def _evaluate_logs(
        self,
        slos: Sequence[SLO],
        *,
        at: datetime,
        records: dict[str, EvaluationRecord],
        failures: list[SourceFailure],
        queries: Counter[str],
        plans: Counter[str],
    ) -> None:
        if self.logs is None:
            for slo in slos:
                records[slo.key] = no_data_record(
                    slo,
                    slo_id=self.ids[slo.key],
                    at=at,
                    plan=ELASTICSEARCH,
                    reason="no log source configured",
                )
            return
        events = LogEvents(logs=self.logs)
        down: SourceError | None = None
        for slo in slos:
            if down is not None:
                records[slo.key] = no_data_record(
                    slo,
                    slo_id=self.ids[slo.key],
                    at=at,
                    plan=ELASTICSEARCH,
                    reason=f"source unavailable: {down}",
                    failure=down,
                )
                continue
            try:
                report = build_report(slo, source=events, at=at)
            except SourceUnavailable as exc:
                down = exc
                failures.append(SourceFailure.from_error(exc, slos=len(slos)))
                records[slo.key] = no_data_record(
                    slo,
                    slo_id=self.ids[slo.key],
                    at=at,
                    plan=ELASTICSEARCH,
                    reason=f"source unavailable: {exc}",
                    failure=exc,
                )
            except SourceError as exc:
                failures.append(SourceFailure.from_error(exc, slos=1))
                records[slo.key] = no_data_record(
                    slo,
                    slo_id=self.ids[slo.key],
                    at=at,
                    plan=ELASTICSEARCH,
                    reason=f"query refused: {exc}",
                    failure=exc,
                )
            else:
                records[slo.key] = record_from_report(
                    report,
                    slo_id=self.ids[slo.key],
                    plan=ELASTICSEARCH,
                    missing=events.reasons.get(slo.key),
                )
                plans[ELASTICSEARCH] += 1
        queries[ELASTICSEARCH] += events.queries
