"""The local stack's pgBackRest repository on its Patroni cluster: set up at the first start
(every member archiving into it), kept as it is when the stack starts again on the same data,
and set aside for a new one when the database is initialised anew."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from controlplane.backups.pgbackrest import PgBackRest
from controlplane.core.config import DEFAULT_DR_POLICY
from controlplane.stack.runner import LocalStack
from controlplane.stack.topology import DCS, MEMBER_BACKENDS
from tests.integration.stack.support import stack_on_free_ports
from tests.support.backends import BackendPool

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(backend_pool: BackendPool) -> Iterator[LocalStack]:
    """A stack on free ports of which only the database is started (by the test)."""
    stack = stack_on_free_ports(backend_pool, prefix="backups-home-")
    yield stack
    stack.database.stop()


def start_database(stack: LocalStack) -> tuple[list[str], int]:
    """What ``stack up`` does for the database: the repository prepared, the cluster started,
    the stanza configured. The events, and the leader's system identifier."""
    events: list[str] = []
    stack.prepare_backups(dr_policy=DEFAULT_DR_POLICY)
    stack.database.start()
    leader = stack.database.wait_ready()
    stack.configure_backups(leader, on_event=lambda name, event: events.append(event))
    return events, int(leader.status()["database_system_identifier"])


def archived_system(stack: LocalStack) -> int | None:
    repository = stack.backups
    pgbackrest = PgBackRest(
        config=repository.config_path, stanza=repository.stanza, user=repository.user
    )
    return pgbackrest.info().system_id


def test_the_repository_is_kept_across_restarts_and_set_aside_for_a_new_database(
    stack: LocalStack,
) -> None:
    events, system = start_database(stack)
    assert any(event.startswith("stanza inventory archives into") for event in events), events
    assert "point-in-time recovery 35 days" in events[-1]  # the DR policy's retention
    assert archived_system(stack) == system

    # Started again on the same data: the same stanza, archiving (pgbackrest check passed).
    stack.database.stop()
    events, again = start_database(stack)
    assert again == system
    assert not any("is a new one" in event for event in events), events
    assert archived_system(stack) == system

    # A database made anew (etcd and the members' data removed): a new repository, the former
    # one kept beside it.
    stack.database.stop()
    for name in (DCS, *MEMBER_BACKENDS):
        shutil.rmtree(stack.home / "data" / name)
    events, fresh = start_database(stack)
    assert fresh != system
    former = stack.backups.base / f"repo-system-{system}"
    assert any(f"kept in {former}" in event for event in events), events
    assert (former / "archive" / "inventory").is_dir()
    assert archived_system(stack) == fresh
