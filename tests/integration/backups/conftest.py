"""A PostgreSQL primary archiving into a pgBackRest repository, with the inventory schema, and
the control plane's backup schedule, action engine and DR check on it (its store in the test's
folder). The DR policy's cadence is scaled down (a differential backup every 3 s) and the
action policy lets backups and validations run back to back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from app.migrate import upgrade
from controlplane.actions.backups import BackupSchedule
from controlplane.actions.engine import ActionEngine
from controlplane.actions.gate import InputValue
from controlplane.actions.policy import load_action_policy
from controlplane.actions.service import backup_schedule
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.core.config import DEFAULT_ACTION_POLICY, DEFAULT_DR_POLICY, ControlPlaneSettings
from controlplane.evaluation.evaluator import SLOEvaluator
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.evaluation.service import EvaluationService, build_target_checks
from controlplane.runtime import Runtime
from controlplane.sources.prometheus import PrometheusSource
from controlplane.stack.backends import PostgresPrimary
from controlplane.stack.pgbackrest import PgBackRestRepository
from controlplane.store.drills import list_drills, list_restore_validations
from controlplane.store.findings import StoredFinding, list_findings
from controlplane.targets.reconcile import StoreBackupHistory, StoreDrillHistory
from tests.integration.controlplane.evaluation.support import eventually
from tests.support.backends import PgBackRestFactory

DATABASE = "inventory"


@dataclass
class BackedUp:
    """A primary archiving into a repository; pgBackRest as the control plane runs it; a
    scratch folder for restores."""

    repository: PgBackRestRepository
    primary: PostgresPrimary
    pgbackrest: PgBackRest
    scratch: Path

    def dsn(self, dbname: str = DATABASE) -> str:
        return self.primary.dsn(dbname)


@pytest.fixture
def backed_up(pgbackrest_factory: PgBackRestFactory) -> BackedUp:
    repository = pgbackrest_factory.repository()
    primary = pgbackrest_factory.archiving_primary(repository)
    upgrade(primary.dsn(DATABASE), create=True)
    with psycopg.connect(primary.dsn(DATABASE), autocommit=True) as conn:
        conn.execute("INSERT INTO warehouses (code, name) VALUES ('w1', 'one'), ('w2', 'two')")
        conn.execute(
            "INSERT INTO items (sku, name) SELECT 'sku-' || i, 'item ' || i"
            " FROM generate_series(1, 500) i"
        )
        conn.execute(
            "INSERT INTO stock_levels (sku, warehouse, on_hand, reserved)"
            " SELECT sku, code, 100, 10 FROM items, warehouses"
        )
    return BackedUp(
        repository=repository,
        primary=primary,
        pgbackrest=PgBackRest(
            config=repository.config_path, stanza=repository.stanza, user=repository.user
        ),
        scratch=pgbackrest_factory.scratch(),
    )


def scaled_policies(folder: Path, *, rpo: str = "5m") -> dict[str, Path]:
    """The shipped DR and action policies with the backup cadence and the rails scaled down
    (and the critical tier's RPO ``rpo``)."""
    dr = DEFAULT_DR_POLICY.read_text(encoding="utf-8")
    for old, new in (
        ("full_every: 1d", "full_every: 10m"),
        ("differential_every: 1h", "differential_every: 3s"),
        ("restore_validation_every: 30d", "restore_validation_every: 10m"),
        ("critical: {rto: 15m, rpo: 5m}", f"critical: {{rto: 15m, rpo: {rpo}}}"),
    ):
        assert old in dr
        dr = dr.replace(old, new)
    actions = DEFAULT_ACTION_POLICY.read_text(encoding="utf-8")
    for old, new in (
        (
            "cooldown: 10m\n      budget: {capacity: 2, per_hour: 3}",
            "cooldown: 1s\n      budget: {capacity: 20, per_hour: 3600}",
        ),
        (
            "cooldown: 1h\n      budget: {capacity: 1, per_hour: 1}\n  scaling",
            "cooldown: 1s\n      budget: {capacity: 20, per_hour: 3600}\n  scaling",
        ),
        ("global_cap_per_hour: 20", "global_cap_per_hour: 1000"),
    ):
        assert old in actions, old
        actions = actions.replace(old, new)
    paths = {"dr_policy": folder / "dr.yaml", "action_policy": folder / "actions.yaml"}
    paths["dr_policy"].write_text(dr, encoding="utf-8")
    paths["action_policy"].write_text(actions, encoding="utf-8")
    return paths


@dataclass
class ControlPlane:
    settings: ControlPlaneSettings
    runtime: Runtime
    engine: ActionEngine
    schedule: BackupSchedule
    evaluation: EvaluationService

    def open_findings(self) -> dict[str, StoredFinding]:
        """Run the target checks once; the open findings afterwards, by "kind subject"."""
        self.evaluation.check_now()
        with self.runtime.database.reader() as session:
            found = list_findings(session, open_only=True, limit=1000)
        return {f"{f.kind} {f.subject}": f for f in found}


def control_plane_settings(
    tmp_path: Path, backed_up: BackedUp, *, rpo: str = "5m", **backups: object
) -> ControlPlaneSettings:
    return ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": tmp_path / "store"},
            "leader": {"leader_acquire_interval_seconds": 0.2},
            "policies": scaled_policies(tmp_path, rpo=rpo),
            "failover": {
                "database_nodes": f"primary=127.0.0.1:{backed_up.primary.port}",
                "database_name": DATABASE,
            },
            "backups": {
                "pgbackrest_config": backed_up.repository.config_path,
                "pgbackrest_stanza": backed_up.repository.stanza,
                "pgbackrest_user": backed_up.repository.user,
                "restore_scratch_dir": backed_up.scratch,
                **backups,
            },
        }
    )


ControlPlaneFactory = Callable[..., ControlPlane]


def start_control_plane(settings: ControlPlaneSettings, runtimes: list[Runtime]) -> ControlPlane:
    """The control plane of ``settings``, leading (its runtime appended to ``runtimes``, which
    the caller stops): the backup schedule, the action engine and the DR check."""
    runtime = Runtime.from_settings(settings)
    runtime.start()
    runtimes.append(runtime)
    eventually(lambda: runtime.leadership.status().is_leader, timeout=10)
    engine = ActionEngine(
        policy=load_action_policy(settings.policies.action_policy),
        database=runtime.database,
        leadership=runtime.leadership,
        lease_name=settings.leader.leader_name,
        actuator=None,
        burn_reader=lambda service, slo, window: InputValue(value=None, observed_at=None),
    )
    schedule = backup_schedule(settings, engine=engine)
    assert schedule is not None
    checks = build_target_checks(
        settings,
        orchestration=None,
        drill_history=StoreDrillHistory(
            database=runtime.database,
            list_drills=list_drills,
            list_restores=list_restore_validations,
        ),
        backup_history=StoreBackupHistory(
            database=runtime.database, databases=frozenset({DATABASE})
        ),
    )
    evaluation = EvaluationService(
        runtime=runtime,
        evaluator=SLOEvaluator(
            slos=(), metrics=PrometheusSource.from_settings(settings), logs=None
        ),
        metrics=ControlPlaneMetrics(process=False),
        checks=checks,
    )
    return ControlPlane(
        settings=settings,
        runtime=runtime,
        engine=engine,
        schedule=schedule,
        evaluation=evaluation,
    )


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    """The control planes' runtimes a test started, stopped at its end."""
    started: list[Runtime] = []
    try:
        yield started
    finally:
        for runtime in started:
            runtime.stop()


@pytest.fixture
def control_plane_factory(
    tmp_path: Path, backed_up: BackedUp, runtimes: list[Runtime]
) -> ControlPlaneFactory:
    def build(*, rpo: str = "5m", **backups: object) -> ControlPlane:
        """The control plane; ``backups``: its backup settings over the fixture's."""
        settings = control_plane_settings(tmp_path, backed_up, rpo=rpo, **backups)
        return start_control_plane(settings, runtimes)

    return build


@pytest.fixture
def control_plane(control_plane_factory: ControlPlaneFactory) -> ControlPlane:
    return control_plane_factory()
