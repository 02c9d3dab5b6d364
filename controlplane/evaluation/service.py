"""The evaluation scheduler: SLO evaluation and target checks on APScheduler interval jobs.

A :class:`~controlplane.api.BackgroundService` (``start`` / ``stop``) run beside the API by
``controlplane serve``. Three jobs on a background scheduler (one thread each, never two runs
of one job at once, late runs coalesced):

* ``slo-evaluation`` every ``CONTROLPLANE_EVALUATION_INTERVAL_SECONDS``: one
  :class:`~controlplane.evaluation.evaluator.SLOEvaluator` cycle, stored in one transaction;
* ``target-checks`` every ``CONTROLPLANE_TARGET_CHECKS_INTERVAL_SECONDS``: each target check,
  reconciled into the findings (:func:`~controlplane.targets.reconcile.reconcile`);
* ``evaluation-retention`` hourly: evaluations older than the retention are deleted.

Only the leader works (the jobs of a follower return at once), so replicas never write the
same evaluation twice; a replica that becomes leader runs both jobs at once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from controlplane.backups.archive import ArchiveStatus, read_archive_status
from controlplane.backups.errors import PgBackRestError
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.core.config import BackupSettings, ControlPlaneSettings
from controlplane.evaluation.evaluator import Cycle, SLOEvaluator
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.evaluation.pacing import Pacer
from controlplane.failover.nodes import configured_nodes
from controlplane.failover.patroni import PatroniDriver
from controlplane.leader import LeaderStatus
from controlplane.orchestrator.registry import Orchestration
from controlplane.runtime import Runtime
from controlplane.sources.elasticsearch import ElasticsearchSource
from controlplane.sources.prometheus import PrometheusSource
from controlplane.store.drills import list_drills, list_restore_validations
from controlplane.store.evaluations import EvaluationRecord
from controlplane.store.models import SLOEvaluation
from controlplane.targets.policy import load_capacity_policy, load_dr_policy
from controlplane.targets.reconcile import (
    ArchiveReader,
    BackupHistory,
    CapacityCheck,
    DRCheck,
    DrillHistory,
    InputFailure,
    NodeTopology,
    PatroniReplication,
    Reconciled,
    StoreBackupHistory,
    StoreDrillHistory,
    TargetCheck,
    reconcile,
    reconcile_inputs,
)

__all__ = [
    "EvaluationService",
    "archive_reader",
    "build_target_checks",
    "insert_evaluations",
]

logger = logging.getLogger(__name__)

EVALUATION_JOB = "slo-evaluation"
#: The check name of the evaluation's own findings: a source it could not read is the open
#: finding ``check.input_unavailable`` ``check/slo-evaluation/<source>`` until it answers again.
EVALUATION_CHECK = "slo-evaluation"
CHECKS_JOB = "target-checks"
RETENTION_JOB = "evaluation-retention"
RETENTION_EVERY = timedelta(hours=1)
#: Rows deleted per statement, and statements per retention run (bounded work per run).
PRUNE_BATCH = 5_000
PRUNE_MAX_BATCHES = 200

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


#: Rows per ``INSERT`` statement on SQLite (10 parameters each: far under SQLite's 32,766).
SQLITE_ROWS_PER_INSERT = 500


def insert_evaluations(session: Session, *, evaluations: Sequence[EvaluationRecord]) -> None:
    """Insert a cycle's evaluations without the ORM's unit of work or ids read back: a cycle of
    1,000 SLOs is stored in a fraction of ``store.evaluations.record_evaluations``' time. Same
    rows, same types.

    PostgreSQL: one executemany. SQLite: multi-row ``INSERT`` statements of
    :data:`SQLITE_ROWS_PER_INSERT` rows, their values converted by the columns' own SQLAlchemy
    types before the first one runs. An executemany steps SQLite once per row and each step
    lets go of Python's interpreter lock; beside a busy event loop every one of those is a wait
    to get it back, and the write lock (which the webhook's deliveries wait for) is held
    throughout: 60-80 ms for 1,000 rows under 1,000 deliveries/s, against 2 steps here."""
    if not evaluations:
        return
    table = SLOEvaluation.metadata.tables[SLOEvaluation.__tablename__]
    # The fields as they are (validated when the record was built): no deep copy.
    rows = [dict(evaluation) for evaluation in evaluations]
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "sqlite":
        session.execute(insert(table), rows)
        return
    names = list(rows[0])
    processors = [table.c[name].type.bind_processor(dialect) for name in names]
    values = [
        value if process is None else process(value)
        for row in rows
        for value, process in zip((row[name] for name in names), processors, strict=True)
    ]
    quote = dialect.identifier_preparer
    head = (
        f"INSERT INTO {quote.format_table(table)} "
        f"({', '.join(quote.quote(name) for name in names)}) VALUES "
    )
    one = f"({', '.join('?' * len(names))})"
    width = len(names) * SQLITE_ROWS_PER_INSERT
    for start in range(0, len(values), width):
        chunk = tuple(values[start : start + width])
        statement = head + ", ".join([one] * (len(chunk) // len(names)))
        connection.exec_driver_sql(statement, chunk)


class EvaluationService:
    """Runs the evaluator and the target checks on a schedule while this replica leads."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        evaluator: SLOEvaluator,
        metrics: ControlPlaneMetrics,
        checks: Sequence[TargetCheck] = (),
        interval: float = 30.0,
        checks_interval: float = 60.0,
        retention: timedelta | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.runtime = runtime
        self.evaluator = evaluator
        self.metrics = metrics
        self.checks = tuple(checks)
        self.interval = interval
        self.checks_interval = checks_interval
        self.retention = retention
        self.clock = clock
        self._scheduler: Any = None
        self._running = threading.Event()
        #: The last cycle this replica ran (for the API and tests; None before the first).
        self.last_cycle: Cycle | None = None
        self.last_checks: dict[str, Reconciled] = {}
        metrics.leadership(lambda: self.runtime.leadership.status().is_leader)
        runtime.leadership.add_listener(self._on_leadership)

    @classmethod
    def from_settings(
        cls,
        settings: ControlPlaneSettings,
        *,
        runtime: Runtime,
        metrics: ControlPlaneMetrics,
    ) -> EvaluationService:
        """Everything from the settings: SLO specs, sources, policies, database nodes, and the
        runtime's orchestrator.

        Raises ``SpecErrors`` or ``PolicyError`` when a spec or policy file is invalid (the
        process should not start with a half-read configuration).
        """
        history = StoreDrillHistory(
            database=runtime.database,
            list_drills=list_drills,
            list_restores=list_restore_validations,
        )
        slos = runtime.slos()
        pacer = Pacer(watch=runtime.loop_watch)  # the API shares this process
        evaluator = SLOEvaluator(
            slos=slos,
            metrics=PrometheusSource.from_settings(settings, pacer=pacer),
            logs=ElasticsearchSource.from_settings(settings),
            pacer=pacer,
        )
        evaluation = settings.evaluation
        return cls(
            runtime=runtime,
            evaluator=evaluator,
            metrics=metrics,
            checks=build_target_checks(
                settings,
                orchestration=runtime.orchestration,
                drill_history=history,
                backup_history=StoreBackupHistory(
                    database=runtime.database,
                    databases=frozenset({settings.failover.database_name}),
                )
                if settings.backups.configured
                else None,
            ),
            interval=evaluation.evaluation_interval_seconds,
            checks_interval=evaluation.target_checks_interval_seconds,
            retention=timedelta(days=evaluation.evaluation_retention_days)
            if evaluation.evaluation_retention_days > 0
            else None,
        )

    # -- BackgroundService ---------------------------------------------------------------------
    def start(self) -> None:
        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        now = self.clock()
        scheduler.add_job(
            self.evaluate_now,
            "interval",
            seconds=self.interval,
            id=EVALUATION_JOB,
            next_run_time=now,
        )
        if self.checks:
            scheduler.add_job(
                self.check_now,
                "interval",
                seconds=self.checks_interval,
                id=CHECKS_JOB,
                next_run_time=now,
            )
        if self.retention is not None:
            scheduler.add_job(
                self.prune_now,
                "interval",
                seconds=RETENTION_EVERY.total_seconds(),
                id=RETENTION_JOB,
                next_run_time=now + timedelta(minutes=1),
            )
        self._running.set()
        scheduler.start()
        self._scheduler = scheduler
        logger.info(
            "evaluation scheduler started: %d SLO(s) every %g s, %d target check(s) every %g s",
            len(self.evaluator.slos),
            self.interval,
            len(self.checks),
            self.checks_interval,
        )

    def stop(self) -> None:
        self._running.clear()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)

    # -- jobs ------------------------------------------------------------------------------------
    def _leads(self) -> bool:
        return self.runtime.leadership.status().is_leader

    def _on_leadership(self, status: LeaderStatus) -> None:
        scheduler = self._scheduler
        if not status.is_leader or scheduler is None or not self._running.is_set():
            return
        now = self.clock()
        for job_id in (EVALUATION_JOB, CHECKS_JOB):
            if scheduler.get_job(job_id) is not None:
                scheduler.modify_job(job_id, next_run_time=now)

    def evaluate_now(self) -> Cycle | None:
        """One evaluation cycle, stored; None when this replica does not lead."""
        if not self._leads():
            return None
        started = time.perf_counter()
        cycle = self.evaluator.evaluate(at=self.clock())
        stored = True
        failures = [
            InputFailure(input=failure.source, source=failure.source, message=failure.message)
            for failure in cycle.failures
        ]
        try:
            # The insert comes first: SQLite's write lock is taken once its rows are ready.
            with self.runtime.database.writer(writes_first=True) as session:
                insert_evaluations(session, evaluations=cycle.records)
                inputs = reconcile_inputs(
                    session, check=EVALUATION_CHECK, failures=failures, at=cycle.at
                )
            for kind, subject in inputs.opened:
                logger.warning("finding opened: %s %s", kind, subject)
            for kind, subject in inputs.resolved:
                logger.info("finding resolved: %s %s", kind, subject)
            self.metrics.findings_open.labels(check=EVALUATION_CHECK).set(inputs.open_after)
        except SQLAlchemyError:
            stored = False
            logger.exception("could not store the evaluation of %d SLO(s)", len(cycle.records))
        cycle = dataclasses.replace(cycle, duration_s=time.perf_counter() - started)
        for failure in cycle.failures:
            logger.warning(
                "source failed during evaluation (%d SLO(s) without data): %s",
                failure.slos,
                failure.message,
            )
        self.metrics.observe_cycle(cycle, stored=stored)
        self.last_cycle = cycle
        return cycle

    def check_now(self) -> list[Reconciled]:
        """Run every target check and reconcile its findings; [] when this replica does not lead."""
        if not self._leads():
            return []
        results: list[Reconciled] = []
        for check in self.checks:
            started = time.perf_counter()
            run = check.run(now=self.clock())
            for failure in run.failures:
                self.metrics.source_errors.labels(source=failure.source, stage=check.name).inc()
                logger.warning(
                    "%s check: %s unreadable: %s", check.name, failure.input, failure.message
                )
            try:
                with self.runtime.database.writer() as session:
                    result = reconcile(session, run=run, at=self.clock())
            except SQLAlchemyError:
                logger.exception("could not store the findings of the %s check", check.name)
                self.metrics.check_runs.labels(check=check.name, outcome="failed").inc()
                continue
            finally:
                self.metrics.check_duration.labels(check=check.name).observe(
                    time.perf_counter() - started
                )
            outcome = "partial" if run.failures else "complete"
            self.metrics.check_runs.labels(check=check.name, outcome=outcome).inc()
            self.metrics.findings_open.labels(check=check.name).set(result.open_after)
            for kind, subject in result.opened:
                logger.warning("finding opened: %s %s", kind, subject)
            for kind, subject in result.resolved:
                logger.info("finding resolved: %s %s", kind, subject)
            self.last_checks[check.name] = result
            results.append(result)
        return results

    def prune_now(self) -> int:
        """Delete evaluations older than the retention (bounded batches); rows deleted."""
        if self.retention is None or not self._leads():
            return 0
        cutoff = self.clock() - self.retention
        deleted = 0
        try:
            for _ in range(PRUNE_MAX_BATCHES):
                with self.runtime.database.writer() as session:
                    ids = (
                        select(SLOEvaluation.id).where(SLOEvaluation.at < cutoff).limit(PRUNE_BATCH)
                    )
                    result = session.execute(
                        delete(SLOEvaluation).where(SLOEvaluation.id.in_(ids.scalar_subquery()))
                    )
                    count = int(getattr(result, "rowcount", 0) or 0)
                deleted += count
                if count < PRUNE_BATCH:
                    break
        except SQLAlchemyError:
            logger.exception("could not delete old evaluations")
        if deleted:
            logger.info("deleted %d evaluation(s) older than %s", deleted, cutoff.isoformat())
        return deleted


def build_target_checks(
    settings: ControlPlaneSettings,
    *,
    orchestration: Orchestration | None,
    drill_history: DrillHistory | None = None,
    backup_history: BackupHistory | None = None,
) -> list[TargetCheck]:
    """The capacity check (when an orchestrator is configured) and the DR check, on the
    policies and the database of the settings (Patroni's cluster, or the database nodes);
    with pgBackRest configured, and a ``backup_history``, also its backups, restores and WAL
    archiving (read on the primary)."""
    checks: list[TargetCheck] = []
    capacity_policy = load_capacity_policy(settings.policies.capacity_policy)
    if orchestration is not None:
        checks.append(
            CapacityCheck(
                policy=capacity_policy,
                orchestrator=orchestration.reader,
                services=orchestration.services,
            )
        )
    timeout = settings.sources.source_timeout_seconds
    failover = settings.failover
    dr_policy = load_dr_policy(settings.policies.dr_policy)
    archive = (
        archive_reader(settings.backups, timeout=timeout) if backup_history is not None else None
    )
    if failover.failover_driver == "patroni":
        # The leader Patroni names, its pg_stat_replication, and the members not connected.
        patroni = PatroniReplication(
            driver=PatroniDriver(urls=failover.patroni_urls, timeout=min(timeout, 2.0)),
            database=failover.database_name,
            timeout=min(timeout, 2.0),
        )
        dr = DRCheck(
            policy=dr_policy,
            replication=patroni,
            primary=patroni.primary,
            history=drill_history,
            timeout=timeout,
            backups=backup_history,
            archive=archive,
        )
    else:
        dr = DRCheck(
            policy=dr_policy,
            primary=NodeTopology(
                nodes=configured_nodes(failover),
                database=failover.database_name,
                timeout=min(timeout, 2.0),
            ),
            history=drill_history,
            timeout=timeout,
            backups=backup_history,
            archive=archive,
        )
    checks.append(dr)
    return checks


def archive_reader(settings: BackupSettings, *, timeout: float) -> ArchiveReader:
    """Reads the primary's archiving status, with pgBackRest's message for a failure from the
    archive-push log its configuration names (read on each call: the file may come later)."""
    pgbackrest = PgBackRest.from_settings(settings)

    def read(dsn: str) -> ArchiveStatus:
        try:
            log = pgbackrest.read_config().archive_push_log(pgbackrest.stanza)
        except PgBackRestError as exc:
            logger.warning("archive check: %s", exc)
            log = None
        return read_archive_status(dsn, timeout=timeout, error_log=log)

    return read
