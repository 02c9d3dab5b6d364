"""``controlplane drill switchover`` against ``controlplane serve`` on Patroni: the command asks
the control plane, which decides through its gate, has Patroni switch over under its write
probe, stores the drill, and shows it on its DR view; its Patroni watch takes the move for its
own (no leader_change event)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from controlplane.core.config import DEFAULT_ACTION_POLICY
from controlplane.core.security import Role
from controlplane.stack.patroni import PatroniCluster
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.integration.controlplane.evaluation.support import ServeProcess
from tests.integration.patroni.control import urls
from tests.integration.patroni.test_driver import synchronous
from tests.support.kube import wait_for

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("controlplane"))


def quiet_policy(folder: Path) -> Path:
    """The shipped action policy without its burn triggers (no Prometheus in this test)."""
    policy = yaml.safe_load(DEFAULT_ACTION_POLICY.read_text(encoding="utf-8"))
    policy["spec"]["rules"] = []
    path = folder / "actions.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return path


def operator_token(data_dir: Path, folder: Path) -> Path:
    database = Database.from_url(f"sqlite:///{data_dir / 'controlplane.db'}")
    try:
        database.migrate()
        with database.writer() as session:
            _, secret = create_token(session, name="ops", role=Role.OPERATOR, at=datetime.now(UTC))
    finally:
        database.dispose()
    path = folder / "operator.token"
    path.write_text(secret, encoding="utf-8")
    return path


def test_the_cli_switchover_drill_runs_through_the_control_plane_and_patroni(
    tmp_path: Path, patroni_cluster: PatroniCluster
) -> None:
    synchronous(patroni_cluster).close()
    data_dir = tmp_path / "store"
    data_dir.mkdir()
    token_file = operator_token(data_dir, tmp_path)
    serve = ServeProcess(
        settings={
            "data_dir": str(data_dir),
            "webhook_token": "w" * 32,
            "evaluation_enabled": "false",
            "action_policy": str(quiet_policy(tmp_path)),
            "failover_driver": "patroni",
            "patroni_urls": ",".join(urls(patroni_cluster)),
            "failover_mode": "auto",
            "leader_acquire_interval_seconds": "0.2",
            "leader_check_interval_seconds": "0.2",
        },
        log_path=tmp_path / "serve.log",
    ).start()
    headers = {"Authorization": f"Bearer {token_file.read_text(encoding='utf-8')}"}

    def get(path: str) -> object:
        answer = httpx.get(f"{serve.url}/api/v1{path}", headers=headers, timeout=10)
        answer.raise_for_status()
        return answer.json()

    try:
        wait_for(
            lambda: get("/health")["leader"]["is_leader"] is True,  # type: ignore[index]
            timeout=30,
            what="serve leading",
        )
        done = subprocess.run(
            [CLI, "drill", "switchover", "--url", serve.url, "--token-file", str(token_file)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stdout + done.stderr + serve.log_tail()
        time.sleep(2)  # the watch reads the cluster after the move
        dr = get("/dr")
        audit = get("/audit")
    finally:
        serve.stop()
    assert re.search(r"switchover drill: RTO \d+\.\d+ s \(within", done.stdout), done.stdout
    assert re.search(r"0 of \d+ acknowledged writes lost", done.stdout), done.stdout
    assert isinstance(dr, dict)
    assert (dr["failover_driver"], dr["failover_mode"]) == ("patroni", "auto")
    (database,) = dr["databases"]
    assert database["primary"] == "member-2"
    assert [(d["kind"], d["lost_acknowledged_writes"]) for d in database["drills"]] == [
        ("switchover", 0)
    ]
    assert isinstance(audit, list)
    assert [(e["action"], e["actor"], e["outcome"]) for e in audit] == [
        ("run_drill", "operator:ops", "succeeded")
    ]
