"""SLO reports at one instant: every SLO's SLI, budget, burn rates and alerts, read with the
fewest queries its plan allows. ``controlplane slo report`` prints them; the evaluator stores
them (:mod:`controlplane.evaluation.evaluator`).

The instant is explicit (``at``): a report can be checked against history. Three plans, chosen
per SLO when the :class:`SLOReporter` is built:

``recording_rules`` (batched)
    Prometheus-backed SLOs with a rolling window and ``min_events: 1`` whose name no other
    service uses. One instant query per record name for all of them
    (:meth:`MetricsSource.recording_rules`): ``slo:objective:ratio`` (always present once the
    rules are loaded: it tells "rules not loaded" from "no data") and
    ``slo:sli_error:ratio_rate<w>`` for every window and the period. SLI, budget, burn rates and
    the multi-window alerts are computed from those error ratios with ``slo.maths``.
``raw``
    The other Prometheus-backed SLOs (calendar windows, ``min_events`` above 1, a name two
    services share), and batched SLOs whose rules Prometheus does not have at that instant (or
    has for another objective): event counts per window, all SLOs together
    (:func:`~controlplane.evaluation.events.read_metrics_counts`), then :func:`build_report`.
``elasticsearch``
    Log-based SLOs: event counts per window from the log source, then :func:`build_report`.

"No data" (a missing total series, an unreachable index) stays distinct from zero events. A
source that fails never leaves an SLO looking healthy: every SLO it backs is
:class:`Unevaluated` with the reason (``source unavailable: prometheus: ...``), and a source found
unavailable is not asked again in the same run.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from controlplane.evaluation.details import AlertDetail
from controlplane.evaluation.events import (
    WindowCounts,
    WindowRequest,
    read_log_counts,
    read_metrics_counts,
)
from controlplane.evaluation.pacing import Pace, pace_nothing
from controlplane.sources.base import (
    LogSource,
    MetricsSource,
    NoData,
    RecordingRuleSnapshot,
    SourceError,
    SourceUnavailable,
)
from slo.durations import format_duration
from slo.maths import (
    BurnRateWindow,
    SLIResult,
    SLIState,
    SLOStatus,
    burn_rate,
    error_budget,
    evaluate_burn_rate_alert,
    evaluate_slo,
    time_to_exhaustion,
    window_burn,
)
from slo.rules import ERROR_RATIO, OBJECTIVE, STANDARD_WINDOWS
from slo.spec import SLO, CalendarWindow, RollingWindow

__all__ = [
    "BATCHED",
    "CURRENT_WINDOW",
    "ELASTICSEARCH",
    "RAW",
    "Plan",
    "ReportRun",
    "SLOReport",
    "SLOReporter",
    "SourceFailure",
    "Unevaluated",
    "batched_windows",
    "build_report",
    "plan_for",
    "report_from_rules",
    "report_windows",
    "shared_names",
]

logger = logging.getLogger(__name__)

Plan = Literal["recording_rules", "raw", "elasticsearch"]
BATCHED: Plan = "recording_rules"
RAW: Plan = "raw"
ELASTICSEARCH: Plan = "elasticsearch"

#: The window whose burn rate is the "current" burn (time to exhaustion is computed from it).
CURRENT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class SLOReport:
    """One SLO evaluated at ``at``, whichever plan read it."""

    slo: SLO
    at: datetime
    period_start: datetime
    status: SLOStatus
    burn_rates: Mapping[timedelta, float | None]
    plan: Plan = RAW
    #: Why the SLO has no value (``None`` when its state is ok).
    no_data_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Full-precision, JSON-ready view (the table rounds; this does not)."""
        status = self.status
        budget = status.budget
        return {
            "slo": self.slo.key,
            "service": self.slo.service,
            "tier": self.slo.tier,
            "at": self.at.isoformat(),
            "period_start": self.period_start.isoformat(),
            "objective": self.slo.target,
            "state": str(status.state),
            "sli": status.sli.sli,
            "error_ratio": status.sli.error_ratio,
            "events": None if status.sli.counts is None else status.sli.counts.total,
            "bad_events": None if status.sli.counts is None else status.sli.counts.bad,
            "budget_remaining_ratio": None if budget is None else budget.remaining_ratio,
            "budget_remaining_minutes": None if budget is None else budget.remaining_minutes,
            "budget_consumed_ratio": None if budget is None else budget.consumed_ratio,
            "current_burn_1h": status.current_burn,
            "time_to_exhaustion_s": (
                None if status.exhaustion is None else status.exhaustion.total_seconds()
            ),
            "burn_rates": {
                format_duration(window): burn for window, burn in sorted(self.burn_rates.items())
            },
            "alerts": [AlertDetail.of(alert).model_dump(mode="json") for alert in status.alerts],
        }


@dataclass(frozen=True, kw_only=True)
class Unevaluated:
    """An SLO that could not be evaluated: its source failed, refused its query, or is not
    configured. It is "no data", never healthy."""

    slo: SLO
    at: datetime
    plan: Plan
    reason: str
    failure: SourceError | None = None


@dataclass(frozen=True, kw_only=True)
class SourceFailure:
    """A source that failed during a run (or a check): which, how, and what it said."""

    source: str
    error: str
    message: str
    slos: int = 0

    @classmethod
    def from_error(cls, exc: SourceError, *, slos: int = 0) -> SourceFailure:
        return cls(source=exc.source, error=type(exc).__name__, message=str(exc), slos=slos)


@dataclass(frozen=True, kw_only=True)
class ReportRun:
    """Every SLO at one instant (in the reporter's order), with what it took."""

    at: datetime
    outcomes: tuple[SLOReport | Unevaluated, ...]
    failures: tuple[SourceFailure, ...]
    duration_s: float
    #: Queries sent per plan.
    queries: dict[str, int] = field(default_factory=dict)
    #: SLOs evaluated per plan (after fallbacks).
    plans: dict[str, int] = field(default_factory=dict)


# -- plans ---------------------------------------------------------------------------------------


def batched_windows(slo: SLO) -> list[timedelta]:
    """The windows whose error ratios the rules record for ``slo``: the standard windows, the
    alert windows and the period (the same set as ``slo.rules``)."""
    needed = set(STANDARD_WINDOWS)
    for window in slo.burn_rate_windows():
        needed.update((window.long, window.short))
    needed.add(slo.period)
    return sorted(needed)


def shared_names(slos: Iterable[SLO]) -> frozenset[str]:
    """SLO names that several services use (their recorded series cannot be told apart)."""
    services: dict[str, set[str]] = {}
    for slo in slos:
        services.setdefault(slo.name, set()).add(slo.service)
    return frozenset(name for name, owners in services.items() if len(owners) > 1)


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


# -- from event counts -----------------------------------------------------------------------


def _period_window(slo: SLO, at: datetime) -> timedelta:
    """The window the period's counts cover: the period, or the elapsed part of a calendar one."""
    if isinstance(slo.window, CalendarWindow):
        return slo.window.period_at(at).elapsed
    return slo.period


def report_windows(slo: SLO, *, at: datetime) -> tuple[timedelta, ...]:
    """The windows :func:`build_report` needs counts of: the period (if it has begun), every
    alert window and the current-burn window."""
    windows = slo.burn_rate_windows()
    needed = {w.long for w in windows} | {w.short for w in windows} | {CURRENT_WINDOW}
    period = _period_window(slo, at)
    if period > timedelta(0):
        needed.add(period)
    return tuple(sorted(needed))


def build_report(
    slo: SLO,
    *,
    counts: Mapping[timedelta, Any],
    at: datetime,
    plan: Plan = RAW,
    missing: str | None = None,
) -> SLOReport:
    """Evaluate ``slo`` at ``at`` from the event counts of :func:`report_windows` (``None``: no
    data). ``missing`` says what the source reported missing (e.g. "no index matches
    'logs-*'"), for the reason of a "no data" report."""
    if at.tzinfo is None:
        raise ValueError("the report instant must be timezone-aware")
    period = slo.window.period_at(at)
    calendar = isinstance(slo.window, CalendarWindow)
    period_window = _period_window(slo, at)
    windows = slo.burn_rate_windows()
    needed = sorted({w.long for w in windows} | {w.short for w in windows} | {CURRENT_WINDOW})
    window_counts = {window: counts.get(window) for window in needed}
    status = evaluate_slo(
        target=slo.target,
        period=period.length if calendar else slo.period,
        elapsed=period.elapsed if calendar else None,
        period_counts=counts.get(period_window) if period_window > timedelta(0) else None,
        window_counts=window_counts,
        windows=windows,
        current_window=CURRENT_WINDOW,
        min_events=slo.min_events,
    )
    burn_rates = {
        window: window_burn(found, target=slo.target, min_events=slo.min_events)
        for window, found in window_counts.items()
    }
    reason: str | None = None
    if status.state == SLIState.NO_DATA:
        reason = "no samples for the SLI's total series in the period"
        if missing:
            reason = f"{reason}: {missing}"
    elif status.state == SLIState.INSUFFICIENT_TRAFFIC:
        reason = f"fewer than {slo.min_events} events in the period"
    return SLOReport(
        slo=slo,
        at=at,
        period_start=period.start,
        status=status,
        burn_rates=burn_rates,
        plan=plan,
        no_data_reason=reason,
    )


# -- from recorded error ratios -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RuleShape:
    """What the batched plan reads for one SLO, worked out once per reporter: the windows with
    their record names, and the alert windows."""

    slo: SLO
    windows: tuple[tuple[timedelta, str], ...]
    alerts: tuple[BurnRateWindow, ...]

    @classmethod
    def of(cls, slo: SLO) -> RuleShape:
        return cls(
            slo=slo,
            windows=_window_records(tuple(batched_windows(slo))),
            alerts=slo.burn_rate_windows(),
        )


@functools.lru_cache(maxsize=256)
def _window_records(windows: tuple[timedelta, ...]) -> tuple[tuple[timedelta, str], ...]:
    """Each window with its error-ratio record: one tuple shared by every SLO with the same
    windows (10,000 SLOs held 160,000 copies of the same few names)."""
    return tuple((window, ERROR_RATIO.format(window=format_duration(window))) for window in windows)


def _ratio_state(ratio: float | NoData) -> SLIState:
    if not isinstance(ratio, NoData):
        return SLIState.OK
    return SLIState.INSUFFICIENT_TRAFFIC if ratio.reason == "not_a_number" else SLIState.NO_DATA


def report_from_rules(
    slo: SLO,
    *,
    snapshot: RecordingRuleSnapshot,
    at: datetime,
    shape: RuleShape | None = None,
) -> SLOReport:
    """The report of ``slo`` from its recorded error ratios (rules known to be loaded).

    A missing ratio is "no data" (the SLI's total series is absent), a NaN one is a window
    without traffic; neither becomes a number. There are no event counts in the rules: the
    report's ``events`` are unknown (``None``).
    """
    shape = shape or RuleShape.of(slo)
    ratios: dict[timedelta, float | NoData] = {}
    burns: dict[timedelta, float | None] = {}
    for window, name in shape.windows:
        value = snapshot.value(name=name, slo=slo.name)
        if not isinstance(value, NoData) and not math.isfinite(value):
            value = NoData("not_a_number", f"{name} is {value}")
        # rate() extrapolates each series on its own: keep the ratio within [0, 1].
        ratio = value if isinstance(value, NoData) else min(max(value, 0.0), 1.0)
        ratios[window] = ratio
        burns[window] = (
            None if isinstance(ratio, NoData) else burn_rate(error_ratio=ratio, target=slo.target)
        )
    alerts = tuple(
        evaluate_burn_rate_alert(
            alert,
            long_state=_ratio_state(ratios[alert.long]),
            short_state=_ratio_state(ratios[alert.short]),
            long_burn=burns[alert.long],
            short_burn=burns[alert.short],
        )
        for alert in shape.alerts
    )
    period_ratio = ratios[slo.period]
    current_burn = burns.get(CURRENT_WINDOW)
    period = format_duration(slo.period)
    if isinstance(period_ratio, NoData):
        state = _ratio_state(period_ratio)
        reason = (
            f"no events in the {period} period"
            if state is SLIState.INSUFFICIENT_TRAFFIC
            else f"no samples of the SLI's total series in the {period} period"
        )
        status = SLOStatus(
            state=state,
            sli=SLIResult(state=state, counts=None, sli=None, error_ratio=None),
            budget=None,
            current_burn=current_burn,
            exhaustion=None,
            alerts=alerts,
        )
    else:
        reason = None
        budget = error_budget(target=slo.target, error_ratio=period_ratio, period=slo.period)
        status = SLOStatus(
            state=SLIState.OK,
            sli=SLIResult(
                state=SLIState.OK, counts=None, sli=1 - period_ratio, error_ratio=period_ratio
            ),
            budget=budget,
            current_burn=current_burn,
            exhaustion=None
            if current_burn is None
            else time_to_exhaustion(
                remaining_ratio=budget.remaining_ratio, burn=current_burn, period=slo.period
            ),
            alerts=alerts,
        )
    return SLOReport(
        slo=slo,
        at=at,
        period_start=at - slo.period,
        status=status,
        burn_rates=burns,
        plan=BATCHED,
        no_data_reason=reason,
    )


# -- every SLO at one instant ------------------------------------------------------------------


class SLOReporter:
    """Reports a fixed set of SLOs from the metrics and log sources (see the module docstring)."""

    def __init__(
        self,
        *,
        slos: Sequence[SLO],
        metrics: MetricsSource,
        logs: LogSource | None,
        pace: Pace = pace_nothing,
    ) -> None:
        """``pace``: called between two SLOs in the loops over every SLO (see
        :mod:`~controlplane.evaluation.pacing`)."""
        self.slos = tuple(slos)
        self.metrics = metrics
        self.logs = logs
        self.pace = pace
        shared = shared_names(self.slos)
        self.plans: dict[str, Plan] = {
            slo.key: plan_for(slo, shared_names=shared) for slo in self.slos
        }
        self._batched = [slo for slo in self.slos if self.plans[slo.key] == BATCHED]
        self._shapes = {slo.key: RuleShape.of(slo) for slo in self._batched}
        names = {OBJECTIVE}
        for shape in self._shapes.values():
            names.update(name for _, name in shape.windows)
        #: Record names read per run by the batched plan (one query each).
        self.record_names = tuple(sorted(names))

    def report(self, *, at: datetime) -> ReportRun:
        """Every SLO at ``at``. Never raises for a source failure: the SLOs it backs are
        :class:`Unevaluated`."""
        started = time.perf_counter()
        when = at.astimezone(UTC)
        outcomes: dict[str, SLOReport | Unevaluated] = {}
        failures: list[SourceFailure] = []
        queries: Counter[str] = Counter({RAW: 0})
        plans: Counter[str] = Counter()

        # 1. The batched plan: one query per record name for every batched SLO.
        fallback, prometheus_down = self._report_batched(
            when, outcomes=outcomes, failures=failures, queries=queries, plans=plans
        )
        # 2. Raw Prometheus counts: the SLOs planned so, and the fallbacks.
        raw = [slo for slo in self.slos if self.plans[slo.key] == RAW]
        raw.extend(fallback)
        if raw and prometheus_down is None:
            prometheus_down = self._report_counts(
                raw, at=when, plan=RAW, outcomes=outcomes, failures=failures, queries=queries
            )
        if prometheus_down is not None:
            down = [
                slo for slo in self.slos if slo.backend == "prometheus" and slo.key not in outcomes
            ]
            failures.append(SourceFailure.from_error(prometheus_down, slos=len(down)))
            for slo in down:
                outcomes[slo.key] = _unavailable(slo, when, self.plans[slo.key], prometheus_down)

        # 3. Elasticsearch-backed SLOs.
        log_slos = [slo for slo in self.slos if self.plans[slo.key] == ELASTICSEARCH]
        if log_slos and self.logs is None:
            for slo in log_slos:
                outcomes[slo.key] = Unevaluated(
                    slo=slo, at=when, plan=ELASTICSEARCH, reason="no log source configured"
                )
        elif log_slos:
            logs_down = self._report_counts(
                log_slos,
                at=when,
                plan=ELASTICSEARCH,
                outcomes=outcomes,
                failures=failures,
                queries=queries,
            )
            if logs_down is not None:
                failures.append(SourceFailure.from_error(logs_down, slos=len(log_slos)))
                for slo in log_slos:
                    outcomes[slo.key] = _unavailable(slo, when, ELASTICSEARCH, logs_down)

        for outcome in outcomes.values():
            if isinstance(outcome, SLOReport):
                plans[outcome.plan] += 1
        return ReportRun(
            at=when,
            outcomes=tuple(outcomes[slo.key] for slo in self.slos),
            failures=tuple(failures),
            duration_s=time.perf_counter() - started,
            queries=dict(queries),
            plans=dict(plans),
        )

    def _report_batched(
        self,
        at: datetime,
        *,
        outcomes: dict[str, SLOReport | Unevaluated],
        failures: list[SourceFailure],
        queries: Counter[str],
        plans: Counter[str],
    ) -> tuple[list[SLO], SourceUnavailable | None]:
        """Reports from the recording rules; returns the SLOs to count the raw way instead,
        and Prometheus' failure if it could not be reached."""
        if not self._batched:
            return [], None
        try:
            snapshot = self.metrics.recording_rules(
                names=self.record_names, slos=[slo.name for slo in self._batched], at=at
            )
        except SourceUnavailable as exc:
            queries[BATCHED] += 1
            return [], exc
        except SourceError as exc:
            # Refused or ambiguous (two series for one slo): count the SLOs the slow way.
            logger.warning("batched recording-rule read failed, using raw queries: %s", exc)
            failures.append(SourceFailure.from_error(exc, slos=len(self._batched)))
            queries[BATCHED] += len(self.record_names)
            return list(self._batched), None
        queries[BATCHED] += snapshot.queries
        fallback: list[tuple[SLO, str]] = []
        pace = self.pace
        for slo in self._batched:
            pace()
            objective = snapshot.value(name=OBJECTIVE, slo=slo.name)
            if isinstance(objective, NoData):
                fallback.append((slo, "recording rules not loaded in Prometheus"))
            elif not math.isclose(objective, slo.target, rel_tol=0, abs_tol=1e-12):
                fallback.append(
                    (slo, f"recording rules are for objective {objective}, not the spec's")
                )
            else:
                outcomes[slo.key] = report_from_rules(
                    slo, snapshot=snapshot, at=at, shape=self._shapes[slo.key]
                )
        if fallback:
            logger.info(
                "%d SLO(s) evaluated with raw queries: %s",
                len(fallback),
                "; ".join(sorted({reason for _, reason in fallback})),
            )
        return [slo for slo, _ in fallback], None

    def _report_counts(
        self,
        slos: Sequence[SLO],
        *,
        at: datetime,
        plan: Plan,
        outcomes: dict[str, SLOReport | Unevaluated],
        failures: list[SourceFailure],
        queries: Counter[str],
    ) -> SourceUnavailable | None:
        """Reports from event counts, one batched read for all ``slos``; returns the source's
        failure if it could not be reached (the caller marks the SLOs)."""
        requests = [WindowRequest(slo=slo, windows=report_windows(slo, at=at)) for slo in slos]
        read: WindowCounts
        try:
            if plan == ELASTICSEARCH:
                assert self.logs is not None
                read = read_log_counts(requests, logs=self.logs, at=at)
            else:
                read = read_metrics_counts(requests, metrics=self.metrics, at=at)
        except SourceUnavailable as exc:
            queries[plan] += 1
            return exc
        queries[plan] += read.queries
        for slo in slos:
            refused = read.refused.get(slo.key)
            if refused is not None:
                failures.append(SourceFailure.from_error(refused, slos=1))
                outcomes[slo.key] = Unevaluated(
                    slo=slo, at=at, plan=plan, reason=f"query refused: {refused}", failure=refused
                )
                continue
            outcomes[slo.key] = build_report(
                slo,
                counts=read.counts[slo.key],
                at=at,
                plan=plan,
                missing=read.missing.get(slo.key),
            )
        return None


def _unavailable(slo: SLO, at: datetime, plan: Plan, failure: SourceError) -> Unevaluated:
    return Unevaluated(
        slo=slo, at=at, plan=plan, reason=f"source unavailable: {failure}", failure=failure
    )
