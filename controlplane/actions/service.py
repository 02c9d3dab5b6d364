"""The acting side of ``controlplane serve``: the action engine and automatic failover.

* Alerts: the webhook receiver tells :meth:`ActionService.on_alert_changes` (after commit) which
  alerts it opened; they are handed to the engine in the scheduler's threads. A delivery that
  reached a replica which does not lead is not lost: each tick the leader also offers the engine
  the firing alerts of the last :data:`ALERT_LOOKBACK` it has not offered yet (the engine's
  trigger keys make a second offer a no-op).
* Every ``CONTROLPLANE_ACTION_INTERVAL_SECONDS`` the leader ticks the engine: operator-approved
  decisions run, due scale-out verifications are checked, burn-tier triggers are read.
* With database nodes and their data folders configured, a :class:`FailoverService` watches the
  primary and fails over through the same gate; with ``CONTROLPLANE_DRILL_INTERVAL_HOURS`` too,
  a :class:`ScheduledDrill` runs a switchover drill whenever the newest stored drill is older.

A job that fails is logged by the scheduler and runs again at its next time. Only the leader
acts; a replica that loses the lease mid-decision is refused by its fencing token in the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from controlplane.actions.database import FailoverService
from controlplane.actions.drills import ScheduledDrill, local_node_control
from controlplane.actions.engine import ActionEngine
from controlplane.actions.policy import load_action_policy
from controlplane.actions.signals import prometheus_burn_reader
from controlplane.core.config import ControlPlaneSettings, FailoverSettings
from controlplane.core.specs import load_spec_paths
from controlplane.failover.fencing import LocalFencer
from controlplane.failover.nodes import Node, configured_nodes
from controlplane.runtime import Runtime
from controlplane.sources.prometheus import PrometheusSource
from controlplane.store.alerts import AlertChange, list_alerts
from controlplane.targets.policy import (
    PolicyError,
    TierTargets,
    load_capacity_policy,
    load_dr_policy,
)

__all__ = ["ALERT_LOOKBACK", "ActionService"]

logger = logging.getLogger(__name__)

#: Firing alerts received this recently are (re)offered to the engine by the leader's tick.
ALERT_LOOKBACK = timedelta(minutes=15)

TICK_JOB = "actions-tick"
DRILL_JOB = "actions-drill"
#: How often the leader checks whether the scheduled drill is due.
DRILL_CHECK_EVERY = timedelta(minutes=1)


class ActionService:
    """Runs the engine (and failover) beside the API; a BackgroundService of ``serve``."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        engine: ActionEngine,
        failover: FailoverService | None = None,
        drill: ScheduledDrill | None = None,
        interval: float = 5.0,
    ) -> None:
        self.runtime = runtime
        self.engine = engine
        self.failover = failover
        self.drill = drill
        self.interval = interval
        self._offered: set[int] = set()
        self._offered_lock = threading.Lock()
        self._scheduler: Any = None

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings, *, runtime: Runtime) -> ActionService:
        """Engine, burn reader and failover from the settings, with the runtime's actuator.
        Raises PolicyError / SpecErrors when something configured cannot work.

        Where services have autoscalers (Kubernetes), their bounds are the capacity policy's:
        the engine scales within them, and gives an HPA back the policy's minimum."""
        slos = load_spec_paths(list(settings.evaluation.slo_specs))
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
        failover = _failover_for(settings.failover, dr_policy=dr_policy, engine=engine)
        return cls(
            runtime=runtime,
            engine=engine,
            failover=failover,
            drill=_drill_for(
                settings.failover, dr_policy=dr_policy, engine=engine, failover=failover
            ),
            interval=settings.actions.action_interval_seconds,
        )

    # -- BackgroundService ---------------------------------------------------------------------
    def start(self) -> None:
        if self._scheduler is not None:
            return
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
        if self.drill is not None:
            scheduler.add_job(
                self.drill_now,
                "interval",
                seconds=DRILL_CHECK_EVERY.total_seconds(),
                id=DRILL_JOB,
                next_run_time=datetime.now(UTC) + DRILL_CHECK_EVERY,
            )
        scheduler.start()
        self._scheduler = scheduler
        if self.failover is not None:
            self.failover.start()
        logger.info(
            "action engine started: policy %s v%d, tick every %g s, automatic failover %s, "
            "scheduled drills %s",
            self.engine.policy.metadata.name,
            self.engine.policy.metadata.version,
            self.interval,
            "on" if self.failover is not None else "off",
            "on" if self.drill is not None else "off",
        )

    def stop(self) -> None:
        if self.on_alert_changes in self.runtime.alert_listeners:
            self.runtime.alert_listeners.remove(self.on_alert_changes)
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if self.failover is not None:
            self.failover.stop()

    # -- triggers --------------------------------------------------------------------------------
    def on_alert_changes(self, changes: Sequence[AlertChange]) -> None:
        """Alert listener (webhook thread): hand the opened alerts to the scheduler's threads,
        never block the delivery (a failure there is logged by the scheduler)."""
        opened = [c for c in changes if c.outcome == "opened" and c.status == "firing"]
        scheduler = self._scheduler
        if opened and scheduler is not None:
            scheduler.add_job(self._offer_as_leader, args=[opened])

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
                AlertChange(
                    alert_id=alert.id,
                    fingerprint=alert.fingerprint,
                    starts_at=alert.starts_at,
                    status=alert.status,
                    outcome="opened",
                    labels=alert.labels,
                )
                for alert in firing
                if alert.first_received_at >= since
            ]
        )

    def drill_now(self) -> None:
        """The scheduled drill, when due (leader only; it runs for tens of seconds)."""
        if self.drill is not None and self._leads():
            self.drill.run_if_due()

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


def _drill_for(
    settings: FailoverSettings,
    *,
    dr_policy: Path,
    engine: ActionEngine,
    failover: FailoverService | None,
) -> ScheduledDrill | None:
    if settings.drill_interval_hours <= 0:
        return None
    nodes, data_dirs = _local_nodes(settings, "scheduled drills")
    if not nodes:
        return None
    targets = _tier_targets(settings, dr_policy=dr_policy)
    return ScheduledDrill(
        engine=engine,
        nodes=nodes,
        control=local_node_control(nodes, data_dirs),
        database=settings.database_name,
        interval=timedelta(hours=settings.drill_interval_hours),
        rto_target=targets.rto,
        rpo_target=targets.rpo,
        failover=failover,
    )
