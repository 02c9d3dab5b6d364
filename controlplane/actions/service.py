"""The acting side of ``controlplane serve``: the action engine and automatic failover.

* Alerts: the webhook receiver tells :meth:`ActionService.on_alert_changes` (after commit) which
  alerts it opened; they are handed to the engine in the scheduler's threads. A delivery that
  reached a replica which does not lead is not lost: each tick the leader also offers the engine
  the firing alerts of the last :data:`ALERT_LOOKBACK` it has not offered yet (the engine's
  trigger keys make a second offer a no-op).
* Every ``CONTROLPLANE_ACTION_INTERVAL_SECONDS`` the leader ticks the engine: operator-approved
  decisions run, due scale-out verifications are checked, burn-tier triggers are read.
* Database actions follow ``CONTROLPLANE_FAILOVER_DRIVER``. ``patroni``: a
  :class:`PatroniFailover` watches Patroni's ``GET /cluster`` (``auto``: records the leader
  changes Patroni makes; ``controlled``: Patroni paused, a lost leader is failed over through
  the gate) and runs switchovers, failovers and rejoins for the engine. ``local``: with
  database nodes and their data folders configured, a :class:`FailoverService` watches the
  primary and fails over through the same gate. Either way a :class:`ScheduledDrill` runs a
  switchover drill whenever the newest stored drill is older than
  ``CONTROLPLANE_DRILL_INTERVAL_HOURS``, and operators may ask for drills and switchovers
  (:meth:`ActionService.run_drill`, :meth:`ActionService.request_switchover`).
* With a pgBackRest configuration (``CONTROLPLANE_PGBACKREST_CONFIG``) and the database's
  primary locatable (Patroni's leader, or among the database nodes), a
  :class:`BackupSchedule` takes the DR policy's full and differential backups and runs its
  restore validations, each through the gate (``backup``, ``validate_restore``).

A job that fails is logged by the scheduler and runs again at its next time. Only the leader
acts; a replica that loses the lease mid-decision is refused by its fencing token in the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from psycopg.conninfo import make_conninfo

from controlplane.actions.backups import BackupCadence, BackupSchedule
from controlplane.actions.database import FailoverService
from controlplane.actions.drills import (
    DrillKind,
    DrillRunner,
    LocalDrillRunner,
    ScheduledDrill,
    local_node_control,
)
from controlplane.actions.engine import ActionEngine
from controlplane.actions.patroni import PatroniDrillRunner, PatroniFailover
from controlplane.actions.policy import load_action_policy
from controlplane.actions.signals import prometheus_burn_reader
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.backups.validation import InvariantQuery, ValidationSettings
from controlplane.core.config import ControlPlaneSettings, FailoverSettings
from controlplane.core.handoff import Handoff
from controlplane.failover.fencing import LocalFencer
from controlplane.failover.nodes import Node, configured_nodes
from controlplane.failover.patroni import PatroniDriver
from controlplane.failover.switchover import SwitchoverAborted
from controlplane.runtime import Runtime
from controlplane.sources.prometheus import PrometheusSource
from controlplane.store.alerts import AlertChange, list_alerts
from controlplane.store.audit import StoredAuditEntry
from controlplane.targets.policy import (
    PolicyError,
    TierTargets,
    load_capacity_policy,
    load_dr_policy,
)
from controlplane.targets.reconcile import locate_primary

__all__ = [
    "ALERT_LOOKBACK",
    "ActionService",
    "backup_schedule",
    "source_of",
    "validation_settings",
]

logger = logging.getLogger(__name__)

#: Firing alerts received this recently are (re)offered to the engine by the leader's tick.
ALERT_LOOKBACK = timedelta(minutes=15)

TICK_JOB = "actions-tick"
DRILL_JOB = "actions-drill"
BACKUP_JOB = "actions-backup"
VALIDATION_JOB = "actions-restore-validation"
#: How often the leader checks whether the scheduled drill is due.
DRILL_CHECK_EVERY = timedelta(minutes=1)


class ActionService:
    """Runs the engine (and failover) beside the API; a BackgroundService of ``serve``."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        engine: ActionEngine,
        failover: FailoverService | PatroniFailover | None = None,
        drill: ScheduledDrill | None = None,
        patroni: PatroniFailover | None = None,
        interval: float = 5.0,
        backups: BackupSchedule | None = None,
        backup_interval: float = 60.0,
    ) -> None:
        """``failover``: the watch started with the service (automatic failover on);
        ``patroni``: the Patroni executor of switchovers, also when the watch is off."""
        self.runtime = runtime
        self.engine = engine
        self.failover = failover
        self.drill = drill
        self.patroni = patroni
        self.interval = interval
        self.backups = backups
        self.backup_interval = backup_interval
        self._offered: set[int] = set()
        self._offered_lock = threading.Lock()
        self._scheduler: Any = None
        #: Opened alerts from the webhook thread, offered to the engine in another thread.
        self._opened: Handoff[AlertChange] = Handoff(self._offer_as_leader, name="alert-handoff")

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings, *, runtime: Runtime) -> ActionService:
        """Engine, burn reader and failover from the settings, with the runtime's actuator.
        Raises PolicyError / SpecErrors when something configured cannot work.

        Where services have autoscalers (Kubernetes), their bounds are the capacity policy's:
        the engine scales within them, and gives an HPA back the policy's minimum."""
        slos = runtime.slos()
        orchestration = runtime.orchestration
        capacity = None
        if orchestration is not None and orchestration.reader.has_autoscalers:
            capacity = load_capacity_policy(settings.policies.capacity_policy)
        engine = ActionEngine(
            policy=load_action_policy(settings.policies.action_policy),
            database=runtime.database,
            leadership=runtime.leadership,
            lease_name=settings.leader.leader_name,
            actuator=None if orchestration is None else orchestration.actuator,
            burn_reader=prometheus_burn_reader(PrometheusSource.from_settings(settings), slos),
            capacity=capacity,
            crash_point=settings.actions.actions_crash_point,
        )
        dr_policy = settings.policies.dr_policy
        interval = settings.actions.action_interval_seconds
        backups = backup_schedule(settings, engine=engine)
        backup_interval = settings.backups.backup_check_interval_seconds
        if settings.failover.failover_driver == "patroni":
            patroni = _patroni_for(
                settings.failover,
                dr_policy=dr_policy,
                engine=engine,
                timeout=min(settings.sources.source_timeout_seconds, 2.0),
            )
            service = cls(
                runtime=runtime,
                engine=engine,
                failover=patroni if settings.failover.failover_enabled else None,
                drill=_scheduled_drill(
                    settings.failover,
                    dr_policy=dr_policy,
                    engine=engine,
                    runner=PatroniDrillRunner(patroni),
                ),
                patroni=patroni,
                interval=interval,
                backups=backups,
                backup_interval=backup_interval,
            )
        else:
            failover = _failover_for(settings.failover, dr_policy=dr_policy, engine=engine)
            service = cls(
                runtime=runtime,
                engine=engine,
                failover=failover,
                drill=_drill_for(
                    settings.failover, dr_policy=dr_policy, engine=engine, failover=failover
                ),
                interval=interval,
                backups=backups,
                backup_interval=backup_interval,
            )
        runtime.database_operations = service
        return service

    # -- operators' database actions (the API) ------------------------------------------------
    def run_drill(self, *, kind: DrillKind, actor: str) -> StoredAuditEntry:
        """A drill an operator asked for, through the gate; runs at once if the gate says so."""
        if self.drill is None:
            raise SwitchoverAborted(
                "no drill can run: no failover driver with its nodes is configured "
                "(CONTROLPLANE_FAILOVER_DRIVER, CONTROLPLANE_PATRONI_URLS or "
                "CONTROLPLANE_DATABASE_NODES and CONTROLPLANE_DATABASE_DATA_DIRS)"
            )
        return self.drill.run_now(kind=kind, actor=actor)

    def request_switchover(self, *, actor: str, candidate: str | None) -> StoredAuditEntry:
        """A planned switchover an operator asked for (``switchover_database``; Patroni)."""
        if self.patroni is None:
            raise SwitchoverAborted(
                "switchovers on request need CONTROLPLANE_FAILOVER_DRIVER=patroni "
                "(the local driver switches over in drills only)"
            )
        return self.patroni.request_switchover(actor=actor, candidate=candidate)

    # -- BackgroundService ---------------------------------------------------------------------
    def start(self) -> None:
        if self._scheduler is not None:
            return
        self._opened.start()
        self.runtime.alert_listeners.append(self.on_alert_changes)
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_job(
            self.tick_now,
            "interval",
            seconds=self.interval,
            id=TICK_JOB,
            next_run_time=datetime.now(UTC),
        )
        if self.drill is not None and self.drill.interval is not None:
            scheduler.add_job(
                self.drill_now,
                "interval",
                seconds=DRILL_CHECK_EVERY.total_seconds(),
                id=DRILL_JOB,
                next_run_time=datetime.now(UTC) + DRILL_CHECK_EVERY,
            )
        if self.backups is not None:
            for job_id, job in ((BACKUP_JOB, self.backup_now), (VALIDATION_JOB, self.validate_now)):
                scheduler.add_job(
                    job,
                    "interval",
                    seconds=self.backup_interval,
                    id=job_id,
                    next_run_time=datetime.now(UTC) + timedelta(seconds=1),
                )
        scheduler.start()
        self._scheduler = scheduler
        if self.failover is not None:
            self.failover.start()
        logger.info(
            "action engine started: policy %s v%d, tick every %g s, automatic failover %s, "
            "scheduled drills %s, backups %s",
            self.engine.policy.metadata.name,
            self.engine.policy.metadata.version,
            self.interval,
            "on" if self.failover is not None else "off",
            "on" if self.drill is not None and self.drill.interval is not None else "off",
            "on" if self.backups is not None else "off",
        )

    def stop(self) -> None:
        if self.on_alert_changes in self.runtime.alert_listeners:
            self.runtime.alert_listeners.remove(self.on_alert_changes)
        self._opened.stop()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if self.failover is not None:
            self.failover.stop()
        if self.patroni is not None:
            self.patroni.driver.close()

    # -- triggers --------------------------------------------------------------------------------
    def on_alert_changes(self, changes: Sequence[AlertChange]) -> None:
        """Alert listener (webhook thread): hand the opened alerts to the hand-off thread,
        never block the delivery (a failure there is logged by the hand-off). Alerts opened
        while the engine is busy are offered together, in one call."""
        opened = [c for c in changes if c.outcome == "opened" and c.status == "firing"]
        if opened:
            self._opened.put(opened)

    def _leads(self) -> bool:
        return self.runtime.leadership.status().is_leader

    def _offer(self, changes: Sequence[AlertChange]) -> None:
        with self._offered_lock:
            fresh = [c for c in changes if c.alert_id not in self._offered]
            self._offered.update(c.alert_id for c in fresh)
        if fresh:
            self.engine.on_alert_changes(fresh)

    def _offer_as_leader(self, changes: Sequence[AlertChange]) -> None:
        if self._leads():  # a follower leaves them to the leader's sweep of the store
            self._offer(changes)

    def sweep_alerts(self, *, now: datetime | None = None) -> None:
        """Offer the engine the recent firing alerts it has not seen (deliveries to followers,
        alerts received before this replica became leader)."""
        since = (now or datetime.now(UTC)) - ALERT_LOOKBACK
        with self.runtime.database.reader() as session:
            firing = list_alerts(session, status="firing", limit=500)
        self._offer(
            [
                AlertChange.opened(alert.id, alert)
                for alert in firing
                if alert.first_received_at >= since
            ]
        )

    def drill_now(self) -> None:
        """The scheduled drill, when due (leader only; it runs for tens of seconds)."""
        if self.drill is not None and self._leads():
            self.drill.run_if_due()

    def backup_now(self) -> None:
        """The due backup, if any (leader only; it runs as long as pgBackRest takes)."""
        if self.backups is not None and self._leads():
            self.backups.run_backup_if_due()

    def validate_now(self) -> None:
        """The due restore validation, if any (leader only)."""
        if self.backups is not None and self._leads():
            self.backups.run_validation_if_due()

    def tick_now(self) -> None:
        """One tick (leader only): missed alerts, approvals, verifications, burn triggers."""
        if not self._leads():
            with self._offered_lock:
                self._offered.clear()  # a future leadership re-offers (trigger keys dedupe)
            return
        self.sweep_alerts()
        self.engine.tick()


def _local_nodes(settings: FailoverSettings, what: str) -> tuple[list[Node], dict[str, Path]]:
    """The database nodes and their data folders, or nothing (with the reason logged)."""
    nodes = configured_nodes(settings)
    if len(nodes) < 2:
        return [], {}
    data_dirs = settings.database_data_dirs
    unknown = [node.name for node in nodes if node.name not in data_dirs]
    if unknown:
        logger.warning(
            "%s off: no data folder for %s (CONTROLPLANE_DATABASE_DATA_DIRS)",
            what,
            ", ".join(unknown),
        )
        return [], {}
    return nodes, dict(data_dirs)


def _tier_targets(settings: FailoverSettings, *, dr_policy: Path) -> TierTargets:
    policy = load_dr_policy(dr_policy)
    entry = next((d for d in policy.spec.databases if d.name == settings.database_name), None)
    if entry is None:
        raise PolicyError(f"{dr_policy}: database {settings.database_name} is not in the DR policy")
    return policy.spec.tiers[entry.tier]


def _failover_for(
    settings: FailoverSettings, *, dr_policy: Path, engine: ActionEngine
) -> FailoverService | None:
    if not settings.failover_enabled:
        return None
    nodes, data_dirs = _local_nodes(settings, "automatic failover")
    if not nodes:
        return None
    return FailoverService(
        engine=engine,
        nodes=nodes,
        fencer=LocalFencer(data_dirs=data_dirs),
        rpo=_tier_targets(settings, dr_policy=dr_policy).rpo,
        database=settings.database_name,
        interval=settings.failover_probe_interval_seconds,
        threshold=settings.failover_probe_threshold,
    )


def _scheduled_drill(
    settings: FailoverSettings, *, dr_policy: Path, engine: ActionEngine, runner: DrillRunner
) -> ScheduledDrill:
    """Drills through ``runner``: on schedule when the interval is set, else on request."""
    targets = _tier_targets(settings, dr_policy=dr_policy)
    hours = settings.drill_interval_hours
    return ScheduledDrill(
        engine=engine,
        runner=runner,
        database=settings.database_name,
        interval=timedelta(hours=hours) if hours > 0 else None,
        rto_target=targets.rto,
        rpo_target=targets.rpo,
    )


def _drill_for(
    settings: FailoverSettings,
    *,
    dr_policy: Path,
    engine: ActionEngine,
    failover: FailoverService | None,
) -> ScheduledDrill | None:
    nodes, data_dirs = _local_nodes(settings, "drills")
    if not nodes:
        return None
    runner = LocalDrillRunner(
        nodes=nodes, control=local_node_control(nodes, data_dirs), failover=failover
    )
    return _scheduled_drill(settings, dr_policy=dr_policy, engine=engine, runner=runner)


def _patroni_for(
    settings: FailoverSettings, *, dr_policy: Path, engine: ActionEngine, timeout: float
) -> PatroniFailover:
    """The Patroni driver and its watch (started when automatic failover is on)."""
    if settings.database_nodes or settings.database_data_dirs:
        logger.warning(
            "CONTROLPLANE_DATABASE_NODES / CONTROLPLANE_DATABASE_DATA_DIRS are not used with "
            "CONTROLPLANE_FAILOVER_DRIVER=patroni: the members come from Patroni's GET /cluster"
        )
    return PatroniFailover(
        engine=engine,
        driver=PatroniDriver(urls=settings.patroni_urls, timeout=timeout),
        database=settings.database_name,
        mode=settings.mode,
        rpo=_tier_targets(settings, dr_policy=dr_policy).rpo,
        interval=settings.failover_probe_interval_seconds,
        threshold=settings.failover_probe_threshold,
    )


def backup_schedule(
    settings: ControlPlaneSettings, *, engine: ActionEngine
) -> BackupSchedule | None:
    """The backup schedule when pgBackRest is configured, scheduled and the database's primary
    can be located (Patroni's leader, or among the database nodes: the restore point is taken
    on the primary)."""
    backups = settings.backups
    if not backups.configured or not backups.backup_schedule_enabled:
        return None
    database = settings.failover.database_name
    if settings.failover.failover_driver != "patroni" and not configured_nodes(settings.failover):
        logger.warning("backups off: no database nodes (CONTROLPLANE_DATABASE_NODES)")
        return None
    policy = load_dr_policy(settings.policies.dr_policy)
    if not any(entry.name == database for entry in policy.spec.databases):
        raise PolicyError(
            f"{settings.policies.dr_policy}: database {database} is not in the DR policy"
        )
    cadence = policy.spec.backups
    return BackupSchedule(
        engine=engine,
        pgbackrest=PgBackRest.from_settings(backups),
        database=database,
        cadence=BackupCadence(
            full_every=cadence.full_every,
            differential_every=cadence.differential_every,
            validation_every=cadence.validation_every,
        ),
        primary=source_of(settings),
        validation=validation_settings(settings),
        backup_timeout=backups.backup_timeout_seconds,
    )


def source_of(settings: ControlPlaneSettings) -> Callable[[], str]:
    """The DSN of the configured database on its current primary (located as the DR check
    locates it; ReplicationReadError when there is none)."""
    database = settings.failover.database_name

    def source() -> str:
        return make_conninfo(locate_primary(settings.failover, database), dbname=database)

    return source


def validation_settings(settings: ControlPlaneSettings) -> ValidationSettings:
    """Where and how the restore validation runs, from the settings and the DR policy."""
    backups = settings.backups
    policy = load_dr_policy(settings.policies.dr_policy)
    return ValidationSettings(
        scratch=backups.restore_scratch_dir or settings.store.data_dir / "restore-scratch",
        port=backups.restore_port,
        timeout=backups.restore_timeout_seconds,
        bindir=backups.restore_pg_bindir,
        invariants=tuple(
            InvariantQuery(name=check.name, sql=check.sql)
            for check in policy.spec.backups.restore_checks
        ),
    )
