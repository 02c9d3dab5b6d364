"""The demo as a new user meets it on the whole local stack: started, it shows no finding that
its own set-up causes, and its control plane takes the first backup and validates a restore by
itself; `make demo-failover` kills the Patroni member that leads, the API goes on writing through
the member that takes over and the killed one rejoins; `make demo-down` then `make demo` start
again on the same data and the same backup repository, with the member that led at the stop
leading and WAL archived again."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from controlplane.stack.runner import shifted_ports
from tests.integration.stack.test_demo_closed_loop import run, stack_home
from tests.integration.stack.test_local_stack import (
    api_auth,
    assert_api_writes,
    assert_status_healthy,
    database_members,
    free_offset,
    processes_mentioning,
    wait_for_items,
)

pytestmark = pytest.mark.integration

__all__ = ["stack_home"]

#: Findings a new stack has because nothing was ever done yet (no drill, no backup, no restore
#: test): true, and cleared by doing those. Anything else open after start comes from the set-up.
NOTHING_DONE_YET = {"dr.drill_stale", "dr.backup_stale", "dr.restore_validation_stale"}
#: Of those, what the stack's control plane does by itself: a full backup at once, a restore
#: validation at its next look (every minute) once a backup exists.
DONE_BY_ITSELF = {"dr.backup_stale", "dr.restore_validation_stale"}
#: Seconds for that first backup and restore validation (two restores into scratch servers on a
#: loaded machine) and the target check after them.
FIRST_BACKUPS_S = 360

#: Target checks every few seconds, so that the test sees their first runs.
FAST_CHECKS = {
    "CONTROLPLANE_TARGET_CHECKS_INTERVAL_SECONDS": "3",
    "CONTROLPLANE_EVALUATION_INTERVAL_SECONDS": "5",
}


def _counter(metrics: str, name: str, *labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include each of ``labels``."""
    return sum(
        float(line.rsplit(" ", 1)[-1])
        for line in metrics.splitlines()
        if line.startswith(name + "{") and all(label in line for label in labels)
    )


def capacity_checked(control_plane: str, headers: dict[str, str]) -> bool:
    """The capacity check has run twice (its CPU needs two reads) and an evaluation cycle has
    read every source (the first one may run while Elasticsearch still warms up: its
    ``check.input_unavailable`` resolves with the first complete cycle)."""
    metrics = httpx.get(f"{control_plane}/metrics", headers=headers, timeout=10).text
    return (
        _counter(metrics, "controlplane_target_check_runs_total", 'check="capacity"') >= 2
        and _counter(metrics, "controlplane_evaluation_cycles_total", 'outcome="complete"') >= 1
    )


def open_findings(control_plane: str, headers: dict[str, str]) -> dict[str, str]:
    """Open findings, kind → summary."""
    found = httpx.get(
        f"{control_plane}/api/v1/findings", params={"open": "true"}, headers=headers, timeout=10
    )
    found.raise_for_status()
    return {f["kind"]: f["summary"] for f in found.json()}


def open_findings_after_checks(control_plane: str, headers: dict[str, str]) -> dict[str, str]:
    """Open findings (kind → summary) once the checks have run (``capacity_checked``)."""
    deadline = time.monotonic() + 120
    while not capacity_checked(control_plane, headers):
        assert time.monotonic() < deadline, "the capacity check did not run"
        time.sleep(1)
    return open_findings(control_plane, headers)


def first_backups_done(control_plane: str, headers: dict[str, str]) -> dict[str, str]:
    """Open findings once those the control plane clears by itself are gone (every finding
    seen meanwhile must be one a new stack has)."""
    deadline = time.monotonic() + FIRST_BACKUPS_S
    while True:
        found = open_findings(control_plane, headers)
        assert set(found) <= NOTHING_DONE_YET, found
        if not set(found) & DONE_BY_ITSELF:
            return found
        assert time.monotonic() < deadline, f"not cleared within {FIRST_BACKUPS_S} s: {found}"
        time.sleep(3)


def get(control_plane: str, path: str, headers: dict[str, str]) -> Any:
    answer = httpx.get(f"{control_plane}/api/v1{path}", headers=headers, timeout=30)
    answer.raise_for_status()
    return answer.json()


def test_the_demo_starts_in_its_policy_and_again_after_a_failover(
    stack_home: Path, tmp_path: Path
) -> None:
    offset = free_offset()
    ports = shifted_ports(offset)
    api = f"http://127.0.0.1:{ports['inventory-api']['http']}"
    control_plane = f"http://127.0.0.1:{ports['controlplane']['http']}"
    up = run("stack", "up", "--port-offset", str(offset), home=stack_home, env=FAST_CHECKS)
    assert up.returncode == 0, up.stdout + up.stderr
    headers = {"Authorization": f"Bearer {(stack_home / 'admin.token').read_text().strip()}"}

    # No finding of the demo's own making: no HPA asked of a local app, no API below the
    # capacity policy's minimum.
    found = open_findings_after_checks(control_plane, headers)
    assert set(found) <= NOTHING_DONE_YET, found
    capacity = httpx.get(f"{control_plane}/api/v1/capacity", headers=headers, timeout=10).json()
    inventory = next(s for s in capacity["services"] if s["service"] == "inventory")
    assert inventory["live"]["current_replicas"] == inventory["policy"]["min_replicas"]

    # The control plane backs the new database up and validates a restore on its own, each
    # decided through the gate: the backup and restore findings clear, nothing failed.
    assert set(first_backups_done(control_plane, headers)) <= {"dr.drill_stale"}
    (full,) = get(control_plane, "/dr/backups", headers)
    assert (full["type"], full["succeeded"]) == ("full", True), full
    assert full["decision_id"] is not None
    restores = get(control_plane, "/dr/restore-validations", headers)
    assert sorted((r["kind"], r["succeeded"]) for r in restores) == [
        ("backup", True),
        ("point_in_time", True),
    ], restores

    auth = api_auth(stack_home, offset)
    wait_for_items(api, auth)
    before_failover = assert_api_writes(api, auth)
    leader_before = leader_of(run("stack", "status", home=stack_home).stdout)
    identity = system_identifier(ports, leader_before)
    failover = run("drill", "crash", home=stack_home, env={"CONTROLPLANE_DATA_DIR": str(tmp_path)})
    assert failover.returncode == 0, failover.stdout + failover.stderr
    assert re.search(r"failover drill: RTO \d+\.\d+ s", failover.stdout), failover.stdout
    assert f"SIGKILL patroni-{leader_before}" in failover.stdout
    assert f"{leader_before} rejoined" in failover.stdout
    leader = leader_of(run("stack", "status", home=stack_home).stdout)
    assert leader != leader_before
    assert_api_writes(api, auth)  # through the member that took over, without a restart

    down = run("stack", "down", home=stack_home)
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(str(stack_home)) == []

    again = run("stack", "up", "--port-offset", str(offset), home=stack_home, env=FAST_CHECKS)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{leader} leads" in again.stdout  # Patroni's choice: the member that led at the stop
    status = assert_status_healthy(stack_home, offset)
    assert sorted(database_members(status).values()) == [
        ("leader", "running"),
        ("sync_standby", "streaming"),
    ]
    assert leader_of(status) == leader
    assert system_identifier(ports, leader) == identity  # the same database, not a new one
    # The same repository (its stanza created once), archiving again from the leader.
    assert "stanza inventory archives into" in again.stdout
    assert "is a new one" not in again.stdout
    (archive,) = get(control_plane, "/dr/archive", headers)
    assert (archive["error"], archive["enabled"], archive["failing"]) == (None, True, False)
    assert [b["label"] for b in get(control_plane, "/dr/backups", headers)] == [full["label"]]
    auth = api_auth(stack_home, offset)  # the restarted Keycloak made new client secrets
    with httpx.Client(base_url=api, timeout=10, auth=auth) as client:  # what was written survived
        kept = client.get(f"/api/v1/movements/{before_failover}")
        assert kept.status_code == 200, kept.text
        assert kept.json()["status"] == "applied"
    assert_api_writes(api, auth)


def leader_of(status: str) -> str:
    (leader,) = [m for m, (role, _) in database_members(status).items() if role == "leader"]
    return leader


def system_identifier(ports: dict[str, dict[str, int]], member: str) -> int:
    port = ports[f"patroni-{member}"]["postgres"]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres") as conn:
        row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return int(row[0])
