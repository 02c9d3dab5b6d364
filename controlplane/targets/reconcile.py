"""Target checks on a schedule, and the reconciler that keeps the store's findings in step.

A check (:class:`CapacityCheck`, :class:`DRCheck`) reads its inputs (orchestrator,
``pg_stat_replication``, drill history), runs the pure check of ``capacity`` / ``dr`` and
returns a :class:`CheckRun`. :func:`reconcile` turns that into store writes in one transaction:

* every finding of the run is observed (opened, or its ``last_seen`` / evidence refreshed);
* an open finding of the check's kinds (``capacity.*``, ``dr.*``) that the run did not see is
  resolved — unless the run could not judge it: an input that could not be read makes its part
  of the check *unknown* (:class:`Unknown`), and unknown findings are left as they are (a
  primary that cannot be reached does not mean "replication fixed");
* each input that could not be read is itself recorded as an open finding
  ``check.input_unavailable`` (subject ``check/<check>/<input>``, the error as evidence),
  resolved by the first run that reads it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from controlplane.backups.archive import ArchiveStatus
from controlplane.backups.errors import ArchiveReadError
from controlplane.core.config import FailoverSettings
from controlplane.core.errors import ControlPlaneError
from controlplane.failover.driver import FailoverDriver
from controlplane.failover.nodes import Node, NodeUnreachable, configured_nodes, probe
from controlplane.failover.patroni import PatroniDriver
from controlplane.orchestrator.base import Orchestrator, OrchestratorError
from controlplane.store.backups import list_backups, list_restore_runs
from controlplane.store.database import Database
from controlplane.store.findings import observe_finding, resolve_finding
from controlplane.store.models import Finding as FindingRow
from controlplane.targets.backups import (
    ARCHIVE_KINDS,
    BACKUP_KINDS,
    BackupRecord,
    RestoreRecord,
    check_archive,
    check_backups,
)
from controlplane.targets.capacity import check_capacity
from controlplane.targets.dr import DrillRecord, ReplicaStatus, RestoreValidation, check_dr
from controlplane.targets.findings import Finding
from controlplane.targets.policy import CapacityPolicy, DatabasePolicy, DRPolicy
from controlplane.targets.replication import (
    ReplicationReadError,
    leader_node,
    leader_replication,
    read_replication,
)

__all__ = [
    "INPUT_UNAVAILABLE",
    "ArchiveReader",
    "BackupHistory",
    "CapacityCheck",
    "CheckRun",
    "DRCheck",
    "DrillHistory",
    "DrillHistoryError",
    "InputFailure",
    "NoDrillHistory",
    "NodeTopology",
    "PatroniReplication",
    "Reconciled",
    "StoreBackupHistory",
    "StoreDrillHistory",
    "TargetCheck",
    "Unknown",
    "locate_primary",
    "reconcile",
    "reconcile_inputs",
]

#: Kind of the finding that records an input a check could not read.
INPUT_UNAVAILABLE = "check.input_unavailable"
REPLICATION_KINDS = frozenset({"dr.replica_missing", "dr.replication_lag"})
HISTORY_KINDS = frozenset(
    {
        "dr.restore_validation_stale",
        "dr.drill_stale",
        "dr.drill_rto_exceeded",
        "dr.drill_rpo_exceeded",
    }
)


# -- what a run says ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Unknown:
    """Findings a run could not judge: ``kinds`` (None: all of the check's) whose subject is
    ``subject`` or below it (``database/inventory`` covers ``database/inventory/replica/r1``);
    ``subject`` None covers every subject."""

    kinds: frozenset[str] | None = None
    subject: str | None = None

    def covers(self, *, kind: str, subject: str) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.subject is None:
            return True
        return subject == self.subject or subject.startswith(self.subject + "/")


@dataclass(frozen=True, kw_only=True)
class InputFailure:
    """An input of a check that could not be read."""

    input: str
    source: str
    message: str

    @property
    def subject(self) -> str:
        return self.input


@dataclass(frozen=True, kw_only=True)
class CheckRun:
    check: str
    findings: tuple[Finding, ...]
    unknown: tuple[Unknown, ...] = ()
    failures: tuple[InputFailure, ...] = ()

    @property
    def kind_prefix(self) -> str:
        return f"{self.check}."


@dataclass(frozen=True, kw_only=True)
class Reconciled:
    """What :func:`reconcile` changed: (kind, subject) pairs opened and resolved."""

    check: str
    opened: tuple[tuple[str, str], ...]
    refreshed: int
    resolved: tuple[tuple[str, str], ...]
    kept_unknown: int
    open_after: int


class TargetCheck(Protocol):
    name: str

    def run(self, *, now: datetime) -> CheckRun:
        """Read the inputs and check them; never raises for an input that cannot be read."""
        ...


# -- the reconciler ----------------------------------------------------------------------------


def _open_findings(session: Session, *, kind_prefix: str) -> list[FindingRow]:
    statement = select(FindingRow).where(
        FindingRow.resolved_at.is_(None),
        FindingRow.kind.startswith(kind_prefix, autoescape=True),
    )
    return list(session.scalars(statement))


def _open_input_failures(session: Session, *, check: str) -> list[FindingRow]:
    statement = select(FindingRow).where(
        FindingRow.resolved_at.is_(None),
        FindingRow.kind == INPUT_UNAVAILABLE,
        FindingRow.subject.startswith(f"check/{check}/", autoescape=True),
    )
    return list(session.scalars(statement))


def reconcile(session: Session, *, run: CheckRun, at: datetime) -> Reconciled:
    """Write one run's findings and resolve what it no longer sees (see the module docstring)."""
    opened: list[tuple[str, str]] = []
    refreshed = 0
    seen: set[tuple[str, str]] = set()
    for finding in run.findings:
        if not finding.kind.startswith(run.kind_prefix):
            raise ValueError(f"check {run.check} returned a {finding.kind} finding")
        stored = observe_finding(
            session,
            kind=finding.kind,
            subject=finding.subject,
            severity=finding.severity,
            at=at,
            summary=finding.summary,
            evidence=finding.evidence,
        )
        seen.add(finding.key)
        if stored.occurrences == 1:
            opened.append(finding.key)
        else:
            refreshed += 1
    resolved: list[tuple[str, str]] = []
    kept = 0
    for row in _open_findings(session, kind_prefix=run.kind_prefix):
        key = (row.kind, row.subject)
        if key in seen:
            continue
        if any(unknown.covers(kind=row.kind, subject=row.subject) for unknown in run.unknown):
            kept += 1
            continue
        resolve_finding(session, kind=row.kind, subject=row.subject, at=at)
        resolved.append(key)

    resolved.extend(
        reconcile_inputs(session, check=run.check, failures=run.failures, at=at).resolved
    )
    open_after = len(seen) + kept
    return Reconciled(
        check=run.check,
        opened=tuple(opened),
        refreshed=refreshed,
        resolved=tuple(resolved),
        kept_unknown=kept,
        open_after=open_after,
    )


def reconcile_inputs(
    session: Session, *, check: str, failures: Sequence[InputFailure], at: datetime
) -> Reconciled:
    """Keep the ``check.input_unavailable`` findings of ``check`` in step with one run: one
    open (or refreshed) per input it could not read, and the others resolved."""
    failing: set[str] = set()
    opened: list[tuple[str, str]] = []
    for failure in failures:
        subject = f"check/{check}/{failure.input}"
        failing.add(subject)
        stored = observe_finding(
            session,
            kind=INPUT_UNAVAILABLE,
            subject=subject,
            severity="warning",
            at=at,
            summary=f"the {check} check could not read {failure.input}: {failure.message}",
            evidence={"check": check, "source": failure.source, "error": failure.message},
        )
        if stored.occurrences == 1:
            opened.append((INPUT_UNAVAILABLE, subject))
    resolved: list[tuple[str, str]] = []
    for row in _open_input_failures(session, check=check):
        if row.subject not in failing:
            resolve_finding(session, kind=row.kind, subject=row.subject, at=at)
            resolved.append((row.kind, row.subject))
    return Reconciled(
        check=check,
        opened=tuple(opened),
        refreshed=len(failing) - len(opened),
        resolved=tuple(resolved),
        kept_unknown=0,
        open_after=len(failing),
    )


# -- capacity ----------------------------------------------------------------------------------


class CapacityCheck:
    """The live workloads of an orchestrator against the capacity policy."""

    name = "capacity"

    def __init__(
        self,
        *,
        policy: CapacityPolicy,
        orchestrator: Orchestrator,
        services: frozenset[str] | None = None,
    ) -> None:
        self.policy = policy
        self.orchestrator = orchestrator
        self.services = services

    def run(self, *, now: datetime) -> CheckRun:
        try:
            workloads = self.orchestrator.workloads()
        except OrchestratorError as exc:
            return CheckRun(
                check=self.name,
                findings=(),
                unknown=(Unknown(),),
                failures=(
                    InputFailure(input="orchestrator", source="orchestrator", message=str(exc)),
                ),
            )
        findings = check_capacity(
            self.policy,
            workloads,
            services=self.services,
            autoscalers=self.orchestrator.has_autoscalers,
        )
        return CheckRun(check=self.name, findings=tuple(findings))


# -- DR ----------------------------------------------------------------------------------------


class DrillHistoryError(ControlPlaneError):
    """The drill or restore-validation history could not be read."""


class DrillHistory(Protocol):
    """Where the DR check reads past drills and restore validations."""

    def drills(self, *, database: str) -> Sequence[DrillRecord]: ...

    def restores(self, *, database: str) -> Sequence[RestoreValidation]: ...


class NoDrillHistory:
    """No history wired: no drill and no restore validation on record (the check reports both
    as stale, which is the truth as far as this control plane knows)."""

    def drills(self, *, database: str) -> Sequence[DrillRecord]:
        return ()

    def restores(self, *, database: str) -> Sequence[RestoreValidation]:
        return ()


class StoredDrillLike(Protocol):
    """A drill row as the store returns it."""

    @property
    def database(self) -> str: ...
    @property
    def finished_at(self) -> datetime: ...
    @property
    def measured_rto_s(self) -> float: ...
    @property
    def measured_rpo_s(self) -> float | None: ...
    @property
    def succeeded(self) -> bool: ...


class StoredRestoreLike(Protocol):
    @property
    def database(self) -> str: ...
    @property
    def finished_at(self) -> datetime: ...
    @property
    def succeeded(self) -> bool: ...


class StoreDrillHistory:
    """Drill history from the control plane store, through the store's list functions
    (``list_drills(session, *, database=...)`` and ``list_restore_validations(...)``)."""

    def __init__(
        self,
        *,
        database: Database,
        list_drills: Callable[..., Sequence[StoredDrillLike]],
        list_restores: Callable[..., Sequence[StoredRestoreLike]],
    ) -> None:
        self.database = database
        self.list_drills = list_drills
        self.list_restores = list_restores

    def drills(self, *, database: str) -> Sequence[DrillRecord]:
        try:
            with self.database.reader() as session:
                rows = self.list_drills(session, database=database)
        except SQLAlchemyError as exc:
            raise DrillHistoryError(f"cannot read the drills of {database}: {exc}") from exc
        return [
            DrillRecord(
                database=row.database,
                finished_at=row.finished_at,
                measured_rto=timedelta(seconds=row.measured_rto_s),
                measured_rpo=None
                if row.measured_rpo_s is None
                else timedelta(seconds=row.measured_rpo_s),
                succeeded=row.succeeded,
            )
            for row in rows
        ]

    def restores(self, *, database: str) -> Sequence[RestoreValidation]:
        try:
            with self.database.reader() as session:
                rows = self.list_restores(session, database=database)
        except SQLAlchemyError as exc:
            raise DrillHistoryError(
                f"cannot read the restore validations of {database}: {exc}"
            ) from exc
        return [
            RestoreValidation(
                database=row.database, finished_at=row.finished_at, succeeded=row.succeeded
            )
            for row in rows
        ]


class BackupHistory(Protocol):
    """Where the DR check reads the backups the control plane took and its restore
    validations; None for a database whose backups it does not take."""

    def backups(self, *, database: str) -> Sequence[BackupRecord] | None: ...

    def restores(self, *, database: str) -> Sequence[RestoreRecord]: ...


class StoreBackupHistory:
    """Backups and restores of ``databases`` from the control plane store."""

    def __init__(self, *, database: Database, databases: frozenset[str], limit: int = 200) -> None:
        self.database = database
        self.databases = databases
        self.limit = limit

    def backups(self, *, database: str) -> Sequence[BackupRecord] | None:
        if database not in self.databases:
            return None
        try:
            with self.database.reader() as session:
                rows = list_backups(session, database=database, limit=self.limit)
                fulls = list_backups(
                    session, database=database, succeeded=True, backup_type="full", limit=1
                )
        except SQLAlchemyError as exc:
            raise DrillHistoryError(f"cannot read the backups of {database}: {exc}") from exc
        # The newest attempts, and the newest successful full one however many came since.
        by_id = {row.id: row for row in (*rows, *fulls)}
        return [
            BackupRecord(
                type=row.type,
                finished_at=row.finished_at,
                succeeded=row.succeeded,
                label=row.label,
                error=row.error,
            )
            for row in by_id.values()
        ]

    def restores(self, *, database: str) -> Sequence[RestoreRecord]:
        try:
            with self.database.reader() as session:
                rows = list_restore_runs(session, database=database, limit=self.limit)
        except SQLAlchemyError as exc:
            raise DrillHistoryError(f"cannot read the restores of {database}: {exc}") from exc
        return [
            RestoreRecord(
                kind=row.kind,
                finished_at=row.finished_at,
                succeeded=row.succeeded,
                duration_s=row.duration_s,
                target=row.target,
                error=row.error,
                failed_checks=tuple(c.name for c in row.checks if not c.passed),
                run_id=row.run_id,
            )
            for row in rows
        ]


#: The archiving status of the primary behind a DSN; raises ArchiveReadError.
ArchiveReader = Callable[[str], ArchiveStatus]
ReplicationReader = Callable[[str], Sequence[ReplicaStatus]]
#: The replication of a database (by name); raises ReplicationReadError when it cannot be read.
DatabaseReplication = Callable[[str], Sequence[ReplicaStatus]]
#: The DSN of a database's current primary; raises ReplicationReadError when there is none.
PrimaryLocator = Callable[[str], str]


class NodeTopology:
    """Finds the current primary of the configured database among its nodes
    (``CONTROLPLANE_DATABASE_NODES`` / ``CONTROLPLANE_DATABASE_NAME``): the first node that
    answers and is not in recovery, so the check follows the primary through a failover."""

    def __init__(self, *, nodes: Sequence[Node], database: str, timeout: float = 2.0) -> None:
        self.nodes = tuple(nodes)
        self.database = database
        self.timeout = timeout

    def __call__(self, database: str) -> str:
        if not self.nodes:
            raise ReplicationReadError("no database nodes configured (CONTROLPLANE_DATABASE_NODES)")
        if database != self.database:
            raise ReplicationReadError(
                f"no nodes configured for database {database} "
                f"(CONTROLPLANE_DATABASE_NAME is {self.database})"
            )
        problems: list[str] = []
        for node in self.nodes:
            try:
                status = probe(node, timeout=self.timeout)
            except NodeUnreachable as exc:
                problems.append(str(exc))
                continue
            if not status.in_recovery:
                return node.dsn(timeout=self.timeout)
            problems.append(f"{node.name} is a standby")
        raise ReplicationReadError("no writable primary: " + "; ".join(problems))


class PatroniReplication:
    """The replication of the configured database as Patroni's leader reports it: the leader
    from ``GET /cluster``, its ``pg_stat_replication``, and the members Patroni lists that are
    not connected (``CONTROLPLANE_FAILOVER_DRIVER=patroni``)."""

    def __init__(self, *, driver: FailoverDriver, database: str, timeout: float = 2.0) -> None:
        self.driver = driver
        self.database = database
        self.timeout = timeout

    def _configured(self, database: str) -> None:
        if database != self.database:
            raise ReplicationReadError(
                f"no Patroni cluster configured for database {database} "
                f"(CONTROLPLANE_DATABASE_NAME is {self.database})"
            )

    def __call__(self, database: str) -> Sequence[ReplicaStatus]:
        self._configured(database)
        _, rows = leader_replication(self.driver, timeout=self.timeout)
        return rows

    def primary(self, database: str) -> str:
        """The DSN of the leader Patroni names (a :data:`PrimaryLocator`: where the DR check
        reads WAL archiving)."""
        self._configured(database)
        _, node = leader_node(self.driver)
        return node.dsn(timeout=self.timeout)


def locate_primary(settings: FailoverSettings, database: str, *, timeout: float = 2.0) -> str:
    """The DSN of ``database``'s current primary: the leader Patroni names
    (``CONTROLPLANE_FAILOVER_DRIVER=patroni``), else the first writable node of
    ``CONTROLPLANE_DATABASE_NODES``. ReplicationReadError when there is none."""
    if settings.failover_driver == "patroni":
        driver = PatroniDriver(urls=settings.patroni_urls, timeout=timeout, attempts=1)
        try:
            patroni = PatroniReplication(
                driver=driver, database=settings.database_name, timeout=timeout
            )
            return patroni.primary(database)
        finally:
            driver.close()
    topology = NodeTopology(
        nodes=configured_nodes(settings), database=settings.database_name, timeout=timeout
    )
    return topology(database)


class DRCheck:
    """Replication (``pg_stat_replication`` of each database's primary), restore validations
    and drills against the DR policy; with ``backups`` and ``archive``, the backups taken, the
    restores' outcome and RTO, and WAL archiving on the primary too
    (``targets/backups.py``)."""

    name = "dr"

    def __init__(
        self,
        *,
        policy: DRPolicy,
        primary: PrimaryLocator | None = None,
        history: DrillHistory | None = None,
        read: ReplicationReader | None = None,
        timeout: float = 5.0,
        replication: DatabaseReplication | None = None,
        backups: BackupHistory | None = None,
        archive: ArchiveReader | None = None,
    ) -> None:
        """The replication of a database is ``replication(name)`` when given (Patroni), else
        ``read`` (``pg_stat_replication``) of the DSN ``primary(name)`` locates. The archive
        is read on the DSN ``primary(name)`` locates (no primary locator: archiving unknown)."""
        if replication is None and primary is None:
            raise ValueError("a DR check needs a primary locator or a replication reader")
        self.policy = policy
        self.primary = primary
        self.history: DrillHistory = history or NoDrillHistory()
        self.read: ReplicationReader = read or (lambda dsn: read_replication(dsn, timeout=timeout))
        self.replication = replication
        self.backups = backups
        self.archive = archive

    def _replication(self, database: str) -> tuple[str | None, Sequence[ReplicaStatus]]:
        """The replication of ``database``, and its primary's DSN when that was located."""
        if self.replication is not None:
            return None, self.replication(database)
        assert self.primary is not None  # checked when built
        dsn = self.primary(database)
        return dsn, self.read(dsn)

    def run(self, *, now: datetime) -> CheckRun:
        replicas: dict[str, Sequence[ReplicaStatus]] = {}
        unknown: list[Unknown] = []
        failures: list[InputFailure] = []
        drills: list[DrillRecord] = []
        restores: list[RestoreValidation] = []
        history_unknown: set[str] = set()
        backup_findings: list[Finding] = []
        for database in self.policy.spec.databases:
            name = database.name
            dsn: str | None = None
            try:
                dsn, replicas[name] = self._replication(name)
            except ReplicationReadError as exc:
                failures.append(
                    InputFailure(input=f"replication/{name}", source="postgresql", message=str(exc))
                )
                unknown.append(Unknown(kinds=REPLICATION_KINDS, subject=f"database/{name}"))
            found, missing, failed = self._backups_of(database, dsn, now=now)
            backup_findings.extend(found)
            unknown.extend(missing)
            failures.extend(failed)
            try:
                drills.extend(self.history.drills(database=name))
                restores.extend(self.history.restores(database=name))
            except DrillHistoryError as exc:
                failures.append(
                    InputFailure(input=f"history/{name}", source="store", message=str(exc))
                )
                unknown.append(Unknown(kinds=HISTORY_KINDS, subject=f"database/{name}"))
                history_unknown.add(f"database/{name}")
        findings = check_dr(
            self.policy, now=now, replicas=replicas, drills=drills, restores=restores
        )
        # Without its history a database's drill and restore findings would only say "none on
        # record": leave them out (unknown), as for replication.
        kept = tuple(
            finding
            for finding in findings
            if not (finding.kind in HISTORY_KINDS and finding.subject in history_unknown)
        )
        return CheckRun(
            check=self.name,
            findings=(*kept, *backup_findings),
            unknown=tuple(unknown),
            failures=tuple(failures),
        )

    def _backups_of(
        self, database: DatabasePolicy, dsn: str | None, *, now: datetime
    ) -> tuple[list[Finding], list[Unknown], list[InputFailure]]:
        """The backup, restore and archive findings of one database; what could not be read
        is unknown (its findings kept as they are) and an input failure."""
        name = database.name
        findings: list[Finding] = []
        unknown: list[Unknown] = []
        failures: list[InputFailure] = []
        if self.backups is None:
            return findings, unknown, failures
        try:
            backups = self.backups.backups(database=name)
            restores = self.backups.restores(database=name) if backups is not None else ()
        except DrillHistoryError as exc:
            failures.append(InputFailure(input=f"backups/{name}", source="store", message=str(exc)))
            unknown.append(Unknown(kinds=BACKUP_KINDS, subject=f"database/{name}"))
            backups = None
        else:
            if backups is None:
                return findings, unknown, failures  # not a database this control plane backs up
            findings.extend(
                check_backups(self.policy, database, now=now, backups=backups, restores=restores)
            )
        if self.archive is None:
            return findings, unknown, failures
        if dsn is None and self.replication is not None and self.primary is not None:
            try:  # the replication came from the HA engine: locate its leader for the archive
                dsn = self.primary(name)
            except ReplicationReadError as exc:
                failures.append(
                    InputFailure(input=f"archive/{name}", source="postgresql", message=str(exc))
                )
        if dsn is None:
            unknown.append(Unknown(kinds=ARCHIVE_KINDS, subject=f"database/{name}"))
            return findings, unknown, failures
        try:
            findings.extend(check_archive(self.policy, database, archive=self.archive(dsn)))
        except ArchiveReadError as exc:
            failures.append(
                InputFailure(input=f"archive/{name}", source="postgresql", message=str(exc))
            )
            unknown.append(Unknown(kinds=ARCHIVE_KINDS, subject=f"database/{name}"))
        return findings, unknown, failures
