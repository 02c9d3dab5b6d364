"""What every stored evaluation carries besides its headline numbers: the typed ``details`` the
control-plane API serves under ``/api/v1/slos`` and the console reads field by field.

The evaluator computes every verdict here (alert states, whether an alert fires, the forecast of
exhaustion); readers never derive them again. Fields added later are optional, so rows stored
before they existed still read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from slo.durations import format_duration
from slo.maths import AlertEvaluation, BurnRateWindow

__all__ = ["AlertDetail", "EvaluationDetails", "SLOStatus", "SourceErrorDetail"]

Severity = Literal["page", "ticket"]
WindowState = Literal["ok", "no_data", "insufficient_traffic"]


class _Detail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class AlertDetail(_Detail):
    """One multi-window burn-rate alert and its verdict at the evaluation's instant."""

    severity: Severity
    long: str = Field(description="Long window, e.g. 1h.")
    short: str = Field(description="Short window, e.g. 5m.")
    factor: float = Field(description="Burn-rate factor both windows must exceed.")
    firing: bool = Field(description="Both windows burn above the factor (state ok).")
    state: WindowState = Field(
        description="no_data or insufficient_traffic when either window has no value."
    )

    @classmethod
    def of(cls, alert: AlertEvaluation) -> AlertDetail:
        return cls(
            severity=alert.window.severity,
            long=format_duration(alert.window.long),
            short=format_duration(alert.window.short),
            factor=alert.window.factor,
            firing=alert.firing,
            state=alert.state.value,
        )

    @classmethod
    def unevaluated(cls, window: BurnRateWindow) -> AlertDetail:
        """An alert of an SLO that could not be evaluated: not firing, no data."""
        return cls(
            severity=window.severity,
            long=format_duration(window.long),
            short=format_duration(window.short),
            factor=window.factor,
            firing=False,
            state="no_data",
        )


class SourceErrorDetail(_Detail):
    """The source failure that left the SLO without data."""

    source: str
    error: str
    message: str


class EvaluationDetails(_Detail):
    """Everything an evaluation carries for the console, whatever its state."""

    slo: str | None = Field(default=None, description="The SLO's name in its spec.")
    plan: Literal["recording_rules", "raw", "elasticsearch"] | None = None
    tier: str | None = None
    period: str | None = Field(default=None, description="The SLO period, e.g. 30d.")
    alerts: list[AlertDetail] = Field(default_factory=list)
    time_to_exhaustion_s: float | None = Field(
        default=None, description="Seconds until the budget is spent at the 1 h burn rate."
    )
    current_burn_1h: float | None = None
    latency_threshold_s: float | None = Field(
        default=None, description="A latency SLI's threshold in seconds."
    )
    period_start: AwareDatetime | None = None
    events: float | None = Field(
        default=None, description="Events in the period (unknown from recording rules)."
    )
    bad_events: float | None = None
    error_ratio: float | None = None
    budget_remaining_minutes: float | None = None
    source_error: SourceErrorDetail | None = None


class SLOStatus(_Detail):
    """The latest evaluation of an SLO, as ``/api/v1/slos`` serves it and its clients read it.
    ``sli``, ``budget_remaining`` and burn rates are null when there was no data (see ``state``
    and ``no_data_reason``), never 0."""

    slo_id: str
    service: str
    state: str
    evaluated_at: AwareDatetime
    stale: bool
    sli: float | None
    objective: float
    budget_remaining: float | None
    burn_rates: dict[str, float | None]
    no_data_reason: str | None
    details: EvaluationDetails = Field(default_factory=EvaluationDetails)

    @property
    def tier(self) -> str | None:
        return self.details.tier
