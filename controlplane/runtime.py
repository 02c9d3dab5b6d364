"""The long-lived objects of one control plane process, built once from the settings.

The API app factory, the scheduler and the CLI share one :class:`Runtime`: the settings root, the
store, the leader election, the orchestrator (reader and actuator, one pair for the capacity
check, the API and the action engine), the listeners told about alert changes and the database
operations operators may ask for (set by the action service when it runs), and the SLO specs
(read once: the evaluation and the action engine share them). Building it opens nothing;
:meth:`Runtime.start` migrates the store (when configured) and starts the election.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from controlplane.core.config import ControlPlaneSettings
from controlplane.core.loopwatch import LoopWatch
from controlplane.core.specs import load_spec_paths
from controlplane.leader import Leadership, leadership_for
from controlplane.orchestrator.registry import Orchestration, build_orchestration
from controlplane.store.alerts import AlertChange
from controlplane.store.audit import StoredAuditEntry
from controlplane.store.database import Database
from controlplane.targets.policy import slo_tiers
from slo.spec import SLO

__all__ = ["AlertListener", "DatabaseOperations", "Runtime"]

logger = logging.getLogger(__name__)

#: Called after a webhook delivery is committed, with the alerts it opened or closed (repeats are
#: not passed). Runs in a worker thread; must be quick (hand the work to a queue or a scheduler).
AlertListener = Callable[[Sequence[AlertChange]], None]


class DatabaseOperations(Protocol):
    """Database actions an operator asks for through the API; each is decided through the gate
    (and audited) like any other (``controlplane.actions.service.ActionService``)."""

    def run_drill(
        self, *, kind: Literal["switchover", "failover"], actor: str
    ) -> StoredAuditEntry: ...

    def request_switchover(self, *, actor: str, candidate: str | None) -> StoredAuditEntry: ...


@dataclass
class Runtime:
    settings: ControlPlaneSettings
    database: Database
    leadership: Leadership
    #: The configured orchestrator (None: ``CONTROLPLANE_ORCHESTRATOR=none``).
    orchestration: Orchestration | None = None
    alert_listeners: list[AlertListener] = field(default_factory=list)
    #: Drills and switchovers on request (None: the action engine does not run here).
    database_operations: DatabaseOperations | None = None
    #: The API's event loop, as the threads beside it see it (attached while the API runs):
    #: the evaluation paces itself by it.
    loop_watch: LoopWatch = field(default_factory=LoopWatch)
    _slos: tuple[SLO, ...] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> Runtime:
        """Raises SettingsError when the configured orchestrator cannot be built."""
        orchestration = build_orchestration(settings.orchestrator)
        database = Database.from_settings(settings)
        return cls(
            settings=settings,
            database=database,
            leadership=leadership_for(settings=settings, database=database),
            orchestration=orchestration,
        )

    def slos(self) -> tuple[SLO, ...]:
        """The configured SLO specs (``evaluation.slo_specs``, tiers from the policies), read
        on first use and then shared: every SLO is held once per process (10,000 SLOs are about
        60 MB of models). Raises ``SpecErrors`` (every problem found) or ``PolicyError``."""
        if self._slos is None:
            self._slos = load_spec_paths(
                list(self.settings.evaluation.slo_specs), tiers=slo_tiers(self.settings.policies)
            )
        return self._slos

    def start(self) -> None:
        if self.settings.store.migrate_on_start:
            self.database.migrate()
        self.database.start_background_checkpoints()
        self.leadership.start()

    def stop(self) -> None:
        self.leadership.stop()
        if self.orchestration is not None:
            self.orchestration.reader.close()
        self.database.dispose()

    def notify_alert_changes(self, changes: Sequence[AlertChange]) -> None:
        """Tell the listeners (after commit). A failing listener is logged, never raised: the
        alerts are stored, and the action engine can always read them from the store."""
        if not changes:
            return
        for listener in list(self.alert_listeners):
            try:
                listener(changes)
            except Exception:
                logger.exception("alert listener %r failed", listener)
