"""The closed-loop demo on the whole local stack (what ``make demo`` starts):

1. injected slowness under load → the read-latency SLO burns → the running ``controlplane
   serve`` adds API workers (TTIN) → the latency falls;
2. the Patroni member that leads SIGKILLed → Patroni elects the other one and the control
   plane audits the failover → the API's writes resume without a restart, and the killed member
   rejoins as a replica;

both visible in the audit log through the control plane's API, the failover drill and the
rejoined replica on its DR view.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from controlplane.stack.runner import shifted_ports
from tests.integration.stack.test_local_stack import (
    CLI,
    api_auth,
    assert_api_writes,
    free_offset,
    stack_home,
    wait_for_items,
)

pytestmark = pytest.mark.integration

__all__ = ["stack_home"]  # the fixture, shared with the stack's own tests


def run(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_slowness_scales_out_and_a_killed_leader_fails_over_both_audited(
    stack_home: Path, tmp_path: Path
) -> None:
    offset = free_offset()
    up = run("stack", "up", "--port-offset", str(offset), home=stack_home)
    assert up.returncode == 0, up.stdout + up.stderr
    ports = shifted_ports(offset)
    api = f"http://127.0.0.1:{ports['inventory-api']['http']}"
    control_plane = f"http://127.0.0.1:{ports['controlplane']['http']}"
    token = (stack_home / "admin.token").read_text(encoding="utf-8").strip()
    headers = {"Authorization": f"Bearer {token}"}

    auth = api_auth(stack_home, offset)
    wait_for_items(api, auth)

    scaling = run("drill", "scaling", "--timeout", "200", home=stack_home)
    assert scaling.returncode == 0, scaling.stdout + scaling.stderr
    assert "scale reaction:" in scaling.stdout
    print(scaling.stdout)

    failover = run("drill", "crash", home=stack_home, env={"CONTROLPLANE_DATA_DIR": str(tmp_path)})
    assert failover.returncode == 0, failover.stdout + failover.stderr
    print(failover.stdout)
    killed = re.search(r"SIGKILL patroni-(member-\d)", failover.stdout)
    leader = re.search(r"(member-\d) leads now", failover.stdout)
    assert killed is not None, failover.stdout
    assert leader is not None, failover.stdout
    # The drill reached the store the stack's control plane reads, and the rejoined member
    # streams again: its DR view (the console's DR page) shows both, whatever the CLI's own
    # data folder is.
    dr = httpx.get(f"{control_plane}/api/v1/dr", headers=headers, timeout=10).json()
    (inventory,) = [d for d in dr["databases"] if d["database"] == "inventory"]
    assert [d["kind"] for d in inventory["drills"]] == ["failover"], inventory
    assert inventory["primary"] == leader.group(1), inventory
    assert [(r["name"], r["state"]) for r in inventory["replicas"]] == [
        (killed.group(1), "streaming")
    ], inventory

    assert_api_writes(api, auth)  # again, without a restart

    audit = httpx.get(f"{control_plane}/api/v1/audit", headers=headers, timeout=10).json()
    outcomes = {(e["action"], e["decision"], e["outcome"]) for e in audit}
    assert ("scale_out", "taken", "succeeded") in outcomes, outcomes
    scale_out = next(e for e in audit if e["action"] == "scale_out" and e["outcome"] == "succeeded")
    assert scale_out["evidence"]["result"]["via"] == "workers"
    assert scale_out["evidence"]["result"]["after"] > scale_out["evidence"]["result"]["before"]
    assert scale_out["fencing_token"] is not None
    # The control plane (its failover driver: Patroni) audited the failover, and the drill
    # printed that entry: a leader change Patroni made by itself (auto mode), or its own
    # failover decision (controlled mode).
    assert re.search(r"control plane: (leader_change|failover_database) ", failover.stdout)
    assert any(
        action in {"leader_change", "failover_database"} and outcome
        for action, _, outcome in outcomes
    ), outcomes
