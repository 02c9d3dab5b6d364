"""The closed-loop demo on the whole local stack (what ``make demo`` starts):

1. injected slowness under load → the read-latency SLO burns → the running ``controlplane
   serve`` adds API workers (TTIN) → the latency falls;
2. the primary SIGKILLed → the control plane fences it and promotes the replica → the API's
   writes resume without a restart;

both visible in the audit log through the control plane's API, the failover drill on its DR view.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from controlplane.stack.runner import shifted_ports
from tests.integration.stack.test_local_stack import CLI, free_offset, stack_home

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


def assert_api_writes(api: str) -> str:
    """A movement is accepted and applied by the API at ``api``; its id is returned."""
    with httpx.Client(base_url=api, timeout=10) as client:
        sku = client.get("/api/v1/items", params={"limit": 1}).json()["items"][0]["sku"]
        body = {"kind": "receive", "sku": sku, "warehouse": "W-NORTH", "quantity": 1}
        accepted = client.post(
            "/api/v1/movements", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert accepted.status_code == 202, accepted.text
        movement = str(accepted.json()["id"])
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/movements/{movement}").json()["status"] != "applied":
            assert time.monotonic() < deadline, f"movement {movement} was not applied"
            time.sleep(0.5)
    return movement


def wait_for_items(api: str) -> None:
    deadline = time.monotonic() + 60  # the demo traffic creates the items first
    while not httpx.get(f"{api}/api/v1/items", timeout=5).json()["items"]:
        assert time.monotonic() < deadline, "the demo traffic created no items"
        time.sleep(1)


def test_slowness_scales_out_and_a_killed_primary_fails_over_both_audited(
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

    wait_for_items(api)

    scaling = run("drill", "scaling", "--timeout", "200", home=stack_home)
    assert scaling.returncode == 0, scaling.stdout + scaling.stderr
    assert "scale reaction:" in scaling.stdout
    print(scaling.stdout)

    failover = run(
        "drill", "failover", home=stack_home, env={"CONTROLPLANE_DATA_DIR": str(tmp_path)}
    )
    assert failover.returncode == 0, failover.stdout + failover.stderr
    assert "control plane: failover_database taken → succeeded" in failover.stdout
    print(failover.stdout)
    # The drill reached the store the stack's control plane reads: its DR view (the console's DR
    # page) shows it, whatever the CLI's own data folder is.
    dr = httpx.get(f"{control_plane}/api/v1/dr", headers=headers, timeout=10).json()
    (inventory,) = [d for d in dr["databases"] if d["database"] == "inventory"]
    assert [d["kind"] for d in inventory["drills"]] == ["failover"], inventory

    assert_api_writes(api)  # again, without a restart

    audit = httpx.get(f"{control_plane}/api/v1/audit", headers=headers, timeout=10).json()
    outcomes = {(e["action"], e["decision"], e["outcome"]) for e in audit}
    assert ("scale_out", "taken", "succeeded") in outcomes, outcomes
    assert ("failover_database", "taken", "succeeded") in outcomes, outcomes
    scale_out = next(e for e in audit if e["action"] == "scale_out" and e["outcome"] == "succeeded")
    assert scale_out["evidence"]["result"]["via"] == "workers"
    assert scale_out["evidence"]["result"]["after"] > scale_out["evidence"]["result"]["before"]
    assert scale_out["fencing_token"] is not None
