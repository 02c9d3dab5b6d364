"""Backups and archiving across a Patroni switchover: one archive command for every member
(each archives from its own data folder when it leads), one stanza naming every member
(pgBackRest backs up whichever is primary). After a switchover through Patroni's REST API the
new primary archives, a differential backup is taken from it on top of the full one taken from
the old primary, and a restore validation passes — its point-in-time restore replays from the
full backup across the timeline switch."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from app.migrate import upgrade
from controlplane.api.routes.backups import read_archive_view
from controlplane.backups.archive import read_archive_status
from controlplane.backups.backup import take_backup
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.backups.validation import ValidationSettings, validate_restores
from controlplane.core.config import ControlPlaneSettings
from controlplane.failover.nodes import Node
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.runtime import Runtime
from controlplane.stack.patroni import PatroniCluster, PatroniMember
from tests.integration.backups.conftest import DATABASE, scaled_policies, start_control_plane
from tests.integration.controlplane.evaluation.support import eventually
from tests.support.backends import PatroniFactory, PgBackRestFactory, patroni_instances

pytestmark = pytest.mark.integration


def leading(cluster: PatroniCluster, member: PatroniMember) -> bool:
    return cluster.leader() is member and cluster.ready()


def switch_over(cluster: PatroniCluster, old: PatroniMember, new: PatroniMember) -> None:
    answer = httpx.post(
        f"{old.api_url}/switchover",
        json={"leader": old.member, "candidate": new.member},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    eventually(lambda: leading(cluster, new), timeout=60)


def test_backups_and_archiving_continue_after_a_switchover(
    patroni_factory: PatroniFactory, pgbackrest_factory: PgBackRestFactory
) -> None:
    repository = pgbackrest_factory.repository()
    cluster = patroni_factory(parameters=repository.postgres_parameters())
    pgbackrest_factory.configure(repository, patroni_instances(cluster))
    pgbackrest = PgBackRest(
        config=repository.config_path, stanza=repository.stanza, user=repository.user
    )
    old = cluster.wait_ready()
    new = next(member for member in cluster.members if member is not old)
    upgrade(old.dsn("inventory"), create=True)
    full = take_backup(pgbackrest, backup_type="full", timeout=300)

    probe = WriteProbe(
        nodes=[Node(name=m.member, host="127.0.0.1", port=m.port) for m in cluster.members],
        interval=0.01,
    )
    probe.prepare()
    probe.start()
    try:
        assert probe.wait_for_writes(100, timeout=30)
        switch_over(cluster, old, new)
        assert probe.wait_for_writes(len(probe.report.acked) + 100, timeout=30)
    finally:
        report = probe.stop()
    node = Node(name=new.member, host="127.0.0.1", port=new.port)
    assert missing_acknowledged(node, report.acked) == []

    # The new primary archives with the same command, from its own folder.
    with psycopg.connect(new.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_switch_wal()")
    status = eventually(
        lambda: (s := read_archive_status(new.dsn())).archived_count > 0 and s.lag_bytes == 0 and s,
        timeout=60,
    )
    assert not status.failing
    assert status.current_wal.startswith("00000002")  # the new timeline

    diff = take_backup(pgbackrest, backup_type="diff", timeout=300)
    assert (diff.type, diff.prior) == ("diff", full.label)
    assert (diff.archive.start or "").startswith("00000002")  # taken from the new primary

    runs = validate_restores(
        pgbackrest,
        source_dsn=new.dsn("inventory"),
        settings=ValidationSettings(scratch=pgbackrest_factory.scratch()),
    )
    assert [(run.kind, run.succeeded, run.error) for run in runs] == [
        ("backup", True, None),
        ("point_in_time", True, None),
    ]
    assert runs[0].backup_set == diff.label
    assert runs[1].backup_set == full.label  # replayed across the switchover's timeline switch


def test_the_control_plane_on_patroni_backs_up_and_checks_the_leader_patroni_names(
    tmp_path: Path,
    patroni_factory: PatroniFactory,
    pgbackrest_factory: PgBackRestFactory,
    runtimes: list[Runtime],
) -> None:
    repository = pgbackrest_factory.repository()
    cluster = patroni_factory(parameters=repository.postgres_parameters())
    pgbackrest_factory.configure(repository, patroni_instances(cluster))
    old = cluster.wait_ready()
    new = next(member for member in cluster.members if member is not old)
    upgrade(old.dsn(DATABASE), create=True)
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": tmp_path / "store"},
            "leader": {"leader_acquire_interval_seconds": 0.2},
            "policies": scaled_policies(tmp_path),
            "failover": {
                "failover_driver": "patroni",
                "patroni_urls": ",".join(m.api_url for m in cluster.members),
                "database_name": DATABASE,
            },
            "backups": {
                "pgbackrest_config": repository.config_path,
                "pgbackrest_stanza": repository.stanza,
                "pgbackrest_user": repository.user,
                "restore_scratch_dir": pgbackrest_factory.scratch(),
            },
        }
    )
    control_plane = start_control_plane(settings, runtimes)
    archive_unread = f"check.input_unavailable check/dr/archive/{DATABASE}"

    full = control_plane.schedule.run_backup_if_due()
    assert full is not None
    assert (full.outcome, full.evidence["type"]) == ("succeeded", "full"), full.outcome_detail
    found = control_plane.open_findings()
    assert archive_unread not in found
    assert not [key for key in found if key.startswith("dr.archiving_failing")], found

    switch_over(cluster, old, new)
    with psycopg.connect(new.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_switch_wal()")
    # The archive is read on the new leader: its timeline, its segments archived.
    report = eventually(
        lambda: (
            (view := read_archive_view(settings, database=DATABASE, rpo_s=300)).error is None
            and (view.last_archived_wal or "").startswith("00000002")
            and view
        ),
        timeout=60,
    )
    assert (report.current_wal or "").startswith("00000002")
    assert not report.failing

    # The differential backup is due 3 s after the full one; pgBackRest takes it from the new
    # leader, on top of the full one taken from the old.
    diff = eventually(control_plane.schedule.run_backup_if_due, timeout=30)
    assert (diff.outcome, diff.evidence["type"]) == ("succeeded", "diff"), diff.outcome_detail
    taken = diff.evidence["backup"]
    assert taken["prior"] == full.evidence["backup"]["label"]
    assert (taken["wal_start"] or "").startswith("00000002")

    # The restore point is taken on the leader Patroni names, and both restores pass.
    validation = control_plane.schedule.run_validation_if_due()
    assert validation is not None
    assert validation.outcome == "succeeded", validation.outcome_detail
    found = control_plane.open_findings()
    assert archive_unread not in found
    assert not [
        key
        for key in found
        if key.startswith(("dr.archiving_failing", "dr.restore_validation", "dr.archive_lag"))
    ], found
