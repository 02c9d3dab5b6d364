"""The stack's PostgreSQL topology: an etcd and two Patroni members on their demo ports, every
client given every member, the control plane given Patroni as its failover driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from controlplane.stack.patroni import FAST_TIMING, PatroniMember
from controlplane.stack.runner import (
    DEMO_PORTS,
    ControlPlane,
    LocalStack,
    order_for,
    stop_order,
)
from controlplane.stack.settings import StackSettings
from controlplane.stack.topology import MEMBER_BACKENDS, format_lag, member_views
from controlplane.stack.workload import InventoryAPI, workload_environment

pytestmark = pytest.mark.unit


def test_etcd_then_both_members_start_before_anything_that_uses_the_database() -> None:
    for kubernetes in (False, True):
        order = order_for(kubernetes=kubernetes)
        assert order.index("etcd") < order.index("patroni-member-1")
        assert order.index("patroni-member-1") + 1 == order.index("patroni-member-2")
        for user in ("inventory-api", "inventory-worker", "controlplane"):
            assert order.index("patroni-member-2") < order.index(user)
        assert not {"postgresql-primary", "postgresql-replica"} & set(order)
    # The Kubernetes cluster's own etcd is another server, on other ports.
    assert "kube-etcd" in order_for(kubernetes=True)
    assert "kube-etcd" not in order_for(kubernetes=False)


def test_the_stack_builds_its_members_with_the_patroni_settings_it_promises(
    tmp_path: Path,
) -> None:
    stack = LocalStack(settings=StackSettings(), home=tmp_path)
    members = [stack.backends[name] for name in MEMBER_BACKENDS]
    assert [m.name for m in members] == ["patroni-member-1", "patroni-member-2"]
    for member, port, rest in zip(members, (5432, 5433), (8008, 8009), strict=True):
        assert isinstance(member, PatroniMember)
        assert member.workdir == tmp_path / "data" / member.name  # kept across restarts
        assert member.log_path == tmp_path / "logs" / f"{member.name}.log"
        config = member.config()
        assert config["restapi"]["listen"] == f"127.0.0.1:{rest}"
        assert config["postgresql"]["listen"] == f"127.0.0.1:{port}"
        assert config["etcd3"]["hosts"] == ["127.0.0.1:2379"]
        assert config["watchdog"] == {"mode": "off"}
        dcs = config["bootstrap"]["dcs"]
        assert dcs["postgresql"]["use_pg_rewind"] is True
        assert dcs["synchronous_mode"] is True
        assert {key: dcs[key] for key in FAST_TIMING.as_dcs()} == FAST_TIMING.as_dcs()
    assert stack.database.etcd is stack.backends["etcd"]


def test_synchronous_mode_follows_the_stack_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACK_PATRONI_SYNCHRONOUS_MODE", "false")
    stack = LocalStack(settings=StackSettings(), home=tmp_path)
    member = stack.backends[MEMBER_BACKENDS[0]]
    assert isinstance(member, PatroniMember)
    assert member.config()["bootstrap"]["dcs"]["synchronous_mode"] is False


def test_the_workload_writes_to_whichever_member_leads_and_reads_from_a_standby() -> None:
    env = workload_environment(DEMO_PORTS)
    write = conninfo_to_dict(env["INVENTORY_DATABASE_URL"])
    read = conninfo_to_dict(env["INVENTORY_REPLICA_URL"])
    for dsn in (write, read):
        assert dsn["host"] == "127.0.0.1,127.0.0.1"
        assert dsn["port"] == "5432,5433"
        assert dsn["dbname"] == "inventory"
    assert "target_session_attrs" not in write  # the app opens writes read-write itself
    assert read["target_session_attrs"] == "prefer-standby"


def test_the_workload_checks_the_stacks_tokens_and_its_traffic_signs_in(tmp_path: Path) -> None:
    env = workload_environment(DEMO_PORTS, identity_dir=tmp_path)
    assert env["INVENTORY_AUTH_ISSUER"] == "http://127.0.0.1:8180/realms/inventory"
    assert env["INVENTORY_AUTH_CLIENT_ID"] == "inventory-traffic"
    assert env["INVENTORY_AUTH_CLIENT_SECRET_FILE"] == str(tmp_path / "inventory-traffic.secret")
    without = {name: ports for name, ports in DEMO_PORTS.items() if name != "keycloak"}
    assert "INVENTORY_AUTH_ISSUER" not in workload_environment(without, identity_dir=tmp_path)


def test_the_control_plane_gets_patroni_as_its_failover_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTROLPLANE_DATABASE_DATA_DIRS", "member-1=/somewhere")
    monkeypatch.delenv("CONTROLPLANE_FAILOVER_MODE", raising=False)
    control_plane = LocalStack(settings=StackSettings(), home=tmp_path).backends[ControlPlane.name]
    env = control_plane.environment()
    assert env["CONTROLPLANE_FAILOVER_DRIVER"] == "patroni"
    assert env["CONTROLPLANE_PATRONI_URLS"] == "http://127.0.0.1:8008,http://127.0.0.1:8009"
    assert env["CONTROLPLANE_FAILOVER_MODE"] == "auto"
    assert env["CONTROLPLANE_DATABASE_NODES"] == ("member-1=127.0.0.1:5432,member-2=127.0.0.1:5433")
    # Patroni owns the members' folders: local fencing is never pointed at them.
    assert "CONTROLPLANE_DATABASE_DATA_DIRS" not in env

    monkeypatch.setenv("CONTROLPLANE_FAILOVER_MODE", "controlled")
    assert control_plane.environment()["CONTROLPLANE_FAILOVER_MODE"] == "controlled"


def test_every_member_archives_into_the_repository_the_control_plane_backs_up_with(
    tmp_path: Path,
) -> None:
    stack = LocalStack(settings=StackSettings(), home=tmp_path)
    repository = stack.backups
    assert repository.base == tmp_path / "data" / "pgbackrest"  # kept across restarts
    assert repository.stanza == "inventory"
    for name in MEMBER_BACKENDS:
        member = stack.backends[name]
        assert isinstance(member, PatroniMember)
        config = member.config()
        # In etcd for a new cluster, and in the member's own settings for one made before.
        for parameters in (
            config["bootstrap"]["dcs"]["postgresql"]["parameters"],
            config["postgresql"]["parameters"],
        ):
            assert parameters["archive_mode"] == "on"
            assert f"--config={repository.config_path}" in parameters["archive_command"]
            assert "--stanza=inventory" in parameters["archive_command"]
    env = stack.backends[ControlPlane.name].environment()
    assert env["CONTROLPLANE_PGBACKREST_CONFIG"] == str(repository.config_path)
    assert env["CONTROLPLANE_PGBACKREST_STANZA"] == "inventory"
    assert env["CONTROLPLANE_DATABASE_NAME"] == "inventory"


def test_the_leader_stops_last_and_the_rest_in_reverse_start_order() -> None:
    order = order_for(kubernetes=False)
    plain = list(reversed(order))  # member-2, then member-1
    assert stop_order(order, leader=None) == plain
    assert stop_order(order, leader="patroni-member-1") == plain
    led_by_second = stop_order(order, leader="patroni-member-2")
    assert led_by_second.index("patroni-member-1") < led_by_second.index("patroni-member-2")
    assert led_by_second.index("patroni-member-2") < led_by_second.index("etcd")
    assert led_by_second.index(InventoryAPI.name) < led_by_second.index("patroni-member-1")
    assert [n for n in led_by_second if "member" not in n] == [
        n for n in plain if "member" not in n
    ]


def test_cluster_answer_becomes_one_row_per_member() -> None:
    answer = {
        "members": [
            {"name": "member-2", "role": "leader", "state": "running", "timeline": 3},
            {
                "name": "member-1",
                "role": "sync_standby",
                "state": "streaming",
                "timeline": 3,
                "lag": 2048,
            },
            {"name": "member-3", "role": "replica", "state": "starting", "lag": "unknown"},
        ]
    }
    views = member_views(answer)
    assert [(v.member, v.role, v.timeline, v.lag, v.leads) for v in views] == [
        ("member-1", "sync_standby", 3, 2048, False),
        ("member-2", "leader", 3, None, True),
        ("member-3", "replica", None, "unknown", False),
    ]
    assert views[0].backend == "patroni-member-1"
    assert views[0].describe() == "sync_standby, streaming, timeline 3, 2.0 kB behind"
    assert views[1].describe() == "leader, running, timeline 3"
    assert [format_lag(lag) for lag in (None, 0, 1023, 5 * 1024 * 1024, "unknown")] == [
        "-",
        "0 B",
        "1023 B",
        "5.0 MB",
        "unknown",
    ]
