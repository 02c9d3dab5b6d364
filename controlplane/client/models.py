"""What a client reads from the control-plane API, as frozen pydantic models.

Unknown fields are ignored, so a client keeps working when the API adds some. Times are
timezone-aware; null numbers mean "no data", never 0.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from controlplane.backups.archive import ArchiveReport as ArchiveInfo
from controlplane.core.security import Role
from controlplane.evaluation.details import SLOStatus
from controlplane.store.backups import CheckRecord as RestoreCheck
from controlplane.store.backups import StoredBackup as Backup
from controlplane.store.backups import StoredRestoreRun as RestoreValidation
from controlplane.store.findings import StoredFinding as Finding

__all__ = [
    "DR",
    "ActionState",
    "Alert",
    "ArchiveInfo",
    "AuditEntry",
    "Autoscaler",
    "Backup",
    "Capacity",
    "DatabaseDR",
    "Drill",
    "Evaluation",
    "Finding",
    "HistoryPoint",
    "LiveCapacity",
    "LogLine",
    "Me",
    "NoDataInfo",
    "OrchestratorInfo",
    "PendingAction",
    "PolicyCapacity",
    "Quantities",
    "Replica",
    "RestoreCheck",
    "RestoreValidation",
    "SLOHistory",
    "SLOStatus",
    "SLOTraces",
    "ServiceCapacity",
    "TraceLogs",
    "TraceRow",
    "Workload",
    "WorkloadAutoscaler",
    "WorkloadResources",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Me(_Model):
    name: str
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role.allows(Role.OPERATOR)


class Evaluation(_Model):
    id: int
    at: AwareDatetime
    state: str
    sli: float | None
    objective: float
    budget_remaining: float | None
    burn_rates: dict[str, float | None]
    no_data_reason: str | None


class HistoryPoint(_Model):
    at: AwareDatetime
    state: str
    sli: float | None
    budget_remaining: float | None


class SLOHistory(_Model):
    """``GET /slos/history``: one SLO's recent evaluations, oldest first."""

    slo_id: str
    points: list[HistoryPoint]


class Alert(_Model):
    id: int
    fingerprint: str
    starts_at: AwareDatetime
    status: Literal["firing", "resolved"]
    ends_at: AwareDatetime | None
    alertname: str
    severity: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    repeat_count: int
    closed_at: AwareDatetime | None


class AuditEntry(_Model):
    id: int
    decision_id: str
    at: AwareDatetime
    actor: str
    action: str
    target: str
    decision: str
    reason: str
    evidence: dict[str, Any]
    fencing_token: int | None
    dry_run: bool
    outcome: str | None
    outcome_detail: str | None
    outcome_at: AwareDatetime | None


class ActionState(_Model):
    kill_switch: bool
    changed_at: AwareDatetime | None
    changed_by: str | None
    reason: str | None


class PendingAction(_Model):
    decision_id: str
    at: AwareDatetime
    action: str
    service: str
    target: str
    reason: str
    evidence: dict[str, Any]


class Quantities(_Model):
    cpu: str
    memory: str


class PolicyCapacity(_Model):
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int
    requests: Quantities
    limits: Quantities


class Autoscaler(_Model):
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int | None


class LiveCapacity(_Model):
    current_replicas: int | None
    desired_replicas: int | None
    ready_replicas: int | None
    cpu_percent: int | None
    autoscaler: Autoscaler | None
    #: False where the orchestrator has no autoscalers (the local workers); an older control
    #: plane does not say, and had only Kubernetes HPAs to report.
    has_autoscalers: bool = True


class ServiceCapacity(_Model):
    service: str
    tier: str
    policy: PolicyCapacity
    live: LiveCapacity | None
    observed_at: AwareDatetime | None


class OrchestratorInfo(_Model):
    """Which orchestrator the control plane read, and where (kind null: none configured)."""

    kind: Literal["kubernetes", "local"] | None
    #: The Kubernetes API server's URL, or the local gunicorn pidfile.
    location: str | None
    namespace: str | None
    #: The Kubernetes API server's gitVersion (``v1.36.3``).
    version: str | None


class WorkloadAutoscaler(_Model):
    name: str
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int | None
    current_cpu_percent: int | None
    desired_replicas: int | None


class WorkloadResources(_Model):
    cpu_request: str | None
    memory_request: str | None
    cpu_limit: str | None
    memory_limit: str | None


class Workload(_Model):
    """A workload the orchestrator runs, inside the capacity policy or not."""

    name: str
    service: str
    in_policy: bool
    desired_replicas: int
    current_replicas: int
    ready_replicas: int
    cpu_percent: int | None
    autoscaler: WorkloadAutoscaler | None
    resources: WorkloadResources | None


class Capacity(_Model):
    services: list[ServiceCapacity]
    error: str | None
    #: None from an older control plane, which does not say.
    orchestrator: OrchestratorInfo | None = None
    #: None when unread (unreadable, none configured, or an older control plane).
    workloads: list[Workload] | None = None
    observed_at: AwareDatetime | None = None


class Replica(_Model):
    name: str
    state: str
    lag_bytes: int | None
    replay_lag_s: float | None


class Drill(_Model):
    kind: str
    finished_at: AwareDatetime
    measured_rto_s: float
    measured_rpo_s: float | None
    lost_acknowledged_writes: int | None
    succeeded: bool


class DatabaseDR(_Model):
    database: str
    tier: str
    rto_s: float
    rpo_s: float
    #: The writable primary (Patroni: the leader it names); None when unknown.
    primary: str | None = None
    replicas: list[Replica] | None
    error: str | None
    drills: list[Drill]
    last_restore_validation: AwareDatetime | None
    #: Empty / None from a control plane that does not take backups (or an older one).
    backups: list[Backup] = []
    restore_validations: list[RestoreValidation] = []
    archive: ArchiveInfo | None = None


class DR(_Model):
    #: ``local`` or ``patroni`` (None: a control plane that does not say).
    failover_driver: str | None = None
    #: ``auto`` or ``controlled`` (None: a control plane that does not say).
    failover_mode: str | None = None
    databases: list[DatabaseDR]


class NoDataInfo(_Model):
    source: str
    reason: str
    detail: str


class TraceRow(_Model):
    trace_id: str
    service: str
    operation: str
    start: AwareDatetime
    duration_ms: float
    span_count: int
    error: bool
    ui_url: str


class SLOTraces(_Model):
    slo_id: str
    service: str
    kind: Literal["slow", "error"]
    start: AwareDatetime
    end: AwareDatetime
    min_duration_ms: float | None
    traces: list[TraceRow]
    no_data: NoDataInfo | None


class LogLine(_Model):
    at: AwareDatetime
    level: str | None
    message: str
    service: str | None
    span_id: str | None
    index: str


class TraceLogs(_Model):
    trace_id: str
    lines: list[LogLine]
    no_data: NoDataInfo | None
