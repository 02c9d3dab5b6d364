"""The stack starts from the database topology it was left in (after a failover or switchover)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.stack.errors import StackError
from controlplane.stack.runner import LocalStack
from controlplane.stack.settings import StackSettings

pytestmark = pytest.mark.unit


def data_folder(home: Path, backend: str, *, standby: bool, marker: str) -> Path:
    data = home / "data" / backend / "data"
    (data / "pg_replslot" / "replica_1").mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    (data / "marker").write_text(marker)
    if standby:
        (data / "standby.signal").write_text("")
    return data


def restore(home: Path) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    stack = LocalStack(settings=StackSettings(), home=home)
    stack.restore_database_roles(on_event=lambda name, event: events.append((name, event)))
    return events


def test_the_promoted_replica_becomes_the_primary_and_the_old_one_is_rebuilt(
    tmp_path: Path,
) -> None:
    primary = data_folder(tmp_path, "postgresql-primary", standby=True, marker="fenced old")
    replica = data_folder(tmp_path, "postgresql-replica", standby=False, marker="promoted")
    events = restore(tmp_path)
    assert (primary / "marker").read_text() == "promoted"
    assert not (primary / "standby.signal").exists()
    assert list((primary / "pg_replslot").iterdir()) == []  # the rebuilt replica makes its own
    assert not replica.exists()  # the start takes a fresh base backup into it
    assert events == [
        (
            "postgresql-primary",
            "postgresql-replica was promoted: its data becomes the primary, the old primary "
            "is rebuilt as its replica",
        )
    ]


def test_the_usual_topology_and_a_new_stack_are_left_alone(tmp_path: Path) -> None:
    assert restore(tmp_path) == []
    primary = data_folder(tmp_path, "postgresql-primary", standby=False, marker="primary")
    data_folder(tmp_path, "postgresql-replica", standby=True, marker="replica")
    assert restore(tmp_path) == []
    assert (primary / "marker").read_text() == "primary"


def test_a_fenced_primary_without_a_promoted_replica_names_the_repair(tmp_path: Path) -> None:
    primary = data_folder(tmp_path, "postgresql-primary", standby=True, marker="fenced")
    data_folder(tmp_path, "postgresql-replica", standby=True, marker="replica")
    with pytest.raises(StackError, match="holds no promoted primary") as raised:
        restore(tmp_path)
    assert f"`rm {primary / 'standby.signal'}`" in str(raised.value)
    assert (primary / "marker").read_text() == "fenced"
