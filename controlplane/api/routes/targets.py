"""``/api/v1/capacity`` and ``/api/v1/dr``: live state against the policies, for the dashboards;
``POST /api/v1/dr/drills`` stores a drill measured elsewhere (``controlplane drill``);
``POST /api/v1/dr/drills/run`` asks this control plane to run one (through the gate). ``/dr``
also carries each database's recent backups and restore validations and its primary's WAL
archiving (``routes/backups.py``).

Both read the live system on each request (orchestrator, ``pg_stat_replication``); a source that
cannot be read gives ``error`` with the reason and ``null`` live values, never made-up zeros.
``/capacity`` also says which orchestrator it read and where (kind, namespace, API server,
version), and lists every workload that orchestrator runs there, those outside the policy too
(on a cluster: the stream workers, the control plane, the console), each with its autoscaler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime, BaseModel

from controlplane.api.deps import (
    CurrentOperator,
    OrchestrationDep,
    ReaderDep,
    RuntimeDep,
    SettingsDep,
    WriterDep,
    database_operations,
)
from controlplane.api.errors import ENGINE_RESPONSES
from controlplane.api.routes.actions import with_requester
from controlplane.api.routes.backups import read_archive_view
from controlplane.backups.archive import ArchiveReport
from controlplane.core.config import FailoverSettings
from controlplane.failover.nodes import NodeUnreachable, configured_nodes, probe
from controlplane.failover.patroni import PatroniDriver
from controlplane.orchestrator.base import OrchestratorError, OrchestratorInfo, WorkloadState
from controlplane.store.audit import StoredAuditEntry
from controlplane.store.backups import (
    StoredBackup,
    StoredRestoreRun,
    list_backups,
    list_restore_runs,
)
from controlplane.store.drills import (
    NewDrill,
    StoredDrill,
    list_drills,
    list_restore_validations,
    record_drill,
)
from controlplane.targets.dr import ReplicaStatus
from controlplane.targets.policy import load_capacity_policy, load_dr_policy
from controlplane.targets.replication import (
    ReplicationReadError,
    leader_replication,
    read_replication,
)

router = APIRouter(tags=["targets"])


class Quantities(BaseModel):
    cpu: str
    memory: str


class PolicyView(BaseModel):
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int
    requests: Quantities
    limits: Quantities


class AutoscalerView(BaseModel):
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int | None


class LiveView(BaseModel):
    current_replicas: int
    desired_replicas: int
    ready_replicas: int
    cpu_percent: int | None
    autoscaler: AutoscalerView | None
    #: Whether the orchestrator has autoscalers at all (Kubernetes: HPAs; the local gunicorn
    #: workers: none), so a missing one is drift only where one could exist.
    has_autoscalers: bool


class ServiceCapacity(BaseModel):
    service: str
    tier: str
    policy: PolicyView
    live: LiveView | None
    observed_at: AwareDatetime | None


class OrchestratorView(BaseModel):
    """Which orchestrator was read, and where (all null: none is configured)."""

    kind: Literal["kubernetes", "local"] | None
    #: The Kubernetes API server's URL, or the local gunicorn pidfile.
    location: str | None
    namespace: str | None
    #: The Kubernetes API server's gitVersion (``v1.36.3``); null when unreadable or local.
    version: str | None


class WorkloadAutoscalerView(BaseModel):
    """A workload's autoscaler as it is live (a Kubernetes HPA: spec and status)."""

    name: str
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int | None
    current_cpu_percent: int | None
    desired_replicas: int | None


class ResourcesView(BaseModel):
    """The first container's requests and limits (null: not set)."""

    cpu_request: str | None
    memory_request: str | None
    cpu_limit: str | None
    memory_limit: str | None


class WorkloadView(BaseModel):
    """One workload as the orchestrator sees it, whether or not the policy covers it."""

    #: The orchestrator's name (the Deployment's).
    name: str
    #: The service it runs (``app.kubernetes.io/name``), which the policy is matched on.
    service: str
    in_policy: bool
    desired_replicas: int
    current_replicas: int
    ready_replicas: int
    cpu_percent: int | None
    autoscaler: WorkloadAutoscalerView | None
    resources: ResourcesView | None


class Capacity(BaseModel):
    services: list[ServiceCapacity]
    error: str | None
    orchestrator: OrchestratorView
    #: Every workload the orchestrator runs where it is read; null when it could not be read
    #: (or none is configured).
    workloads: list[WorkloadView] | None
    observed_at: AwareDatetime | None


def _orchestrator_view(info: OrchestratorInfo | None) -> OrchestratorView:
    if info is None:
        return OrchestratorView(kind=None, location=None, namespace=None, version=None)
    return OrchestratorView(
        kind=info.kind, location=info.location, namespace=info.namespace, version=info.version
    )


def _workload_view(workload: WorkloadState, *, policy_services: set[str]) -> WorkloadView:
    autoscaler, resources = workload.autoscaler, workload.resources
    return WorkloadView(
        name=workload.name or workload.service,
        service=workload.service,
        in_policy=workload.service in policy_services,
        desired_replicas=workload.desired_replicas,
        current_replicas=workload.current_replicas,
        ready_replicas=workload.ready_replicas,
        cpu_percent=workload.cpu_percent,
        autoscaler=None
        if autoscaler is None
        else WorkloadAutoscalerView(
            name=autoscaler.name,
            min_replicas=autoscaler.min_replicas,
            max_replicas=autoscaler.max_replicas,
            target_cpu_percent=autoscaler.target_cpu_percent,
            current_cpu_percent=autoscaler.current_cpu_percent,
            desired_replicas=autoscaler.desired_replicas,
        ),
        resources=None
        if resources is None
        else ResourcesView(
            cpu_request=resources.cpu_request,
            memory_request=resources.memory_request,
            cpu_limit=resources.cpu_limit,
            memory_limit=resources.memory_limit,
        ),
    )


@router.get("/capacity", response_model=Capacity, summary="Replicas and CPU against the policy")
async def capacity(settings: SettingsDep, orchestration: OrchestrationDep) -> Capacity:
    policy = load_capacity_policy(settings.policies.capacity_policy)
    error = None
    read: list[WorkloadState] | None = None
    info: OrchestratorInfo | None = None
    observed = None
    if orchestration is None:
        error = "no orchestrator configured (CONTROLPLANE_ORCHESTRATOR)"
    else:
        info = await run_in_threadpool(orchestration.reader.describe)
        try:
            read = await run_in_threadpool(orchestration.reader.workloads)
            observed = datetime.now(UTC)
        except OrchestratorError as exc:
            error = f"orchestrator unreadable: {exc}"
    workloads = {w.service: w for w in read or []}
    policy_services = {service.name for service in policy.spec.services}
    services = []
    for service in policy.spec.services:
        live = workloads.get(service.name)
        services.append(
            ServiceCapacity(
                service=service.name,
                tier=service.tier,
                policy=PolicyView(
                    min_replicas=service.replicas.min,
                    max_replicas=service.replicas.max,
                    target_cpu_percent=service.target_cpu_percent,
                    requests=Quantities(**service.resources.requests.model_dump()),
                    limits=Quantities(**service.resources.limits.model_dump()),
                ),
                live=None
                if live is None
                else LiveView(
                    current_replicas=live.current_replicas,
                    desired_replicas=live.desired_replicas,
                    ready_replicas=live.ready_replicas,
                    cpu_percent=live.cpu_percent,
                    has_autoscalers=orchestration is not None
                    and orchestration.reader.has_autoscalers,
                    autoscaler=None
                    if live.autoscaler is None
                    else AutoscalerView(
                        min_replicas=live.autoscaler.min_replicas,
                        max_replicas=live.autoscaler.max_replicas,
                        target_cpu_percent=live.autoscaler.target_cpu_percent,
                    ),
                ),
                observed_at=observed if live is not None else None,
            )
        )
    return Capacity(
        services=services,
        error=error,
        orchestrator=_orchestrator_view(info),
        workloads=None
        if read is None
        else [
            _workload_view(w, policy_services=policy_services)
            for w in sorted(read, key=lambda w: w.name or w.service)
        ],
        observed_at=observed,
    )


class ReplicaView(BaseModel):
    name: str
    state: str
    lag_bytes: int | None
    replay_lag_s: float | None


class DrillView(BaseModel):
    kind: str
    finished_at: AwareDatetime
    measured_rto_s: float
    measured_rpo_s: float | None
    lost_acknowledged_writes: int | None
    succeeded: bool


class DatabaseDR(BaseModel):
    database: str
    tier: str
    rto_s: float
    rpo_s: float
    primary: str | None
    replicas: list[ReplicaView] | None
    error: str | None
    drills: list[DrillView]
    #: The newest restore validation that passed.
    last_restore_validation: AwareDatetime | None
    #: Backups and restores the control plane recorded (newest first, at most 20 each), and
    #: the primary's WAL archiving (null: not this control plane's database).
    backups: list[StoredBackup] = []
    restore_validations: list[StoredRestoreRun] = []
    archive: ArchiveReport | None = None


class DR(BaseModel):
    #: Who moves the primary role (``CONTROLPLANE_FAILOVER_DRIVER``) and how (``auto``:
    #: Patroni by itself; ``controlled``: the control plane decides).
    failover_driver: Literal["local", "patroni"]
    failover_mode: Literal["auto", "controlled"]
    databases: list[DatabaseDR]


def _views(rows: list[ReplicaStatus]) -> list[ReplicaView]:
    return [
        ReplicaView(
            name=r.name,
            state=r.state,
            lag_bytes=r.lag_bytes,
            replay_lag_s=None if r.replay_lag is None else r.replay_lag.total_seconds(),
        )
        for r in rows
    ]


def _patroni_replication(
    settings: FailoverSettings,
) -> tuple[str | None, list[ReplicaView] | None, str | None]:
    driver = PatroniDriver(urls=settings.patroni_urls, timeout=2, attempts=1)
    try:
        leader, rows = leader_replication(driver, timeout=2)
    except ReplicationReadError as exc:
        return None, None, f"Patroni: {exc}"
    finally:
        driver.close()
    return leader, _views(rows), None


def _replication(
    settings: FailoverSettings,
) -> tuple[str | None, list[ReplicaView] | None, str | None]:
    if settings.failover_driver == "patroni":
        return _patroni_replication(settings)
    nodes = configured_nodes(settings)
    if not nodes:
        return None, None, "no database nodes configured (CONTROLPLANE_DATABASE_NODES)"
    for node in nodes:
        try:
            status = probe(node, timeout=2)
        except NodeUnreachable:
            continue
        if status.in_recovery:
            continue
        try:
            rows = read_replication(node.dsn(timeout=2), timeout=2)
        except ReplicationReadError as exc:
            return node.name, None, str(exc)
        return node.name, _views(rows), None
    return None, None, "no writable primary among " + ", ".join(n.name for n in nodes)


@router.get("/dr", response_model=DR, summary="Replication, drills and restores against the tiers")
async def dr(session: ReaderDep, settings: SettingsDep) -> DR:
    policy = load_dr_policy(settings.policies.dr_policy)
    primary, replicas, error = await run_in_threadpool(_replication, settings.failover)
    databases = []
    for database in policy.spec.databases:
        targets = policy.spec.tiers[database.tier]
        own = database.name == settings.failover.database_name
        drills = list_drills(session, database=database.name, limit=50)
        restores = list_restore_validations(
            session, database=database.name, succeeded=True, limit=1
        )
        archive = None
        if own:
            archive = await run_in_threadpool(
                read_archive_view,
                settings,
                database=database.name,
                rpo_s=targets.rpo.total_seconds(),
            )
        databases.append(
            DatabaseDR(
                database=database.name,
                tier=database.tier,
                rto_s=targets.rto.total_seconds(),
                rpo_s=targets.rpo.total_seconds(),
                primary=primary if own else None,
                replicas=replicas if own else None,
                error=error if own else "not the configured database",
                drills=[
                    DrillView(
                        kind=d.kind,
                        finished_at=d.finished_at,
                        measured_rto_s=d.measured_rto_s,
                        measured_rpo_s=d.measured_rpo_s,
                        lost_acknowledged_writes=d.lost_acknowledged_writes,
                        succeeded=d.succeeded,
                    )
                    for d in drills
                ],
                last_restore_validation=restores[0].finished_at if restores else None,
                backups=list_backups(session, database=database.name, limit=20),
                restore_validations=list_restore_runs(session, database=database.name, limit=20),
                archive=archive,
            )
        )
    return DR(
        failover_driver=settings.failover.failover_driver,
        failover_mode=settings.failover.mode,
        databases=databases,
    )


@router.post(
    "/dr/drills",
    response_model=StoredDrill,
    status_code=status.HTTP_201_CREATED,
    summary="Store a drill measured by a client (operator)",
)
def add_drill(drill: NewDrill, _operator: CurrentOperator, session: WriterDep) -> StoredDrill:
    return record_drill(session, drill=drill)


class DrillRequest(BaseModel):
    kind: Literal["switchover", "failover"] = "switchover"


@router.post(
    "/dr/drills/run",
    response_model=StoredAuditEntry,
    responses=ENGINE_RESPONSES,
    summary="Run a drill now, through the gate (operator); the decision with its outcome",
)
def run_drill(
    request: DrillRequest, operator: CurrentOperator, runtime: RuntimeDep
) -> StoredAuditEntry:
    """The ``run_drill`` decision: refused (the reason says why: kill switch, cooldown, not the
    leader ...), pending an approval, or taken and run (its outcome and the drill's figures in
    ``evidence.drill``; the drill is stored like any other)."""
    entry = database_operations(runtime).run_drill(kind=request.kind, actor=operator.actor)
    return with_requester(runtime, entry, operator)
