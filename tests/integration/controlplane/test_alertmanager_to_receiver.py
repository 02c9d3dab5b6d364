"""``alerts/alertmanager.yml`` passes ``amtool check-config``, and a real Alertmanager running it
delivers to the receiver with the bearer token: the alert is stored, then closed when resolved."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from alerts.receiver import WEBHOOK_PATH
from controlplane.core.security import Role
from controlplane.stack.backends import Alertmanager
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.support.backends import BackendPool, launch, require_tool

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "alerts" / "alertmanager.yml"


def eventually(check: Callable[[], Any], *, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"not met within {timeout} s (last: {last!r})")


def test_the_shipped_config_passes_amtool_and_targets_the_receiver() -> None:
    amtool = require_tool("amtool")
    done = subprocess.run(
        [amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout

    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == f"http://127.0.0.1:8080/api/v1{WEBHOOK_PATH}"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"


def _alertmanager_for(pool: BackendPool, *, port: int, token_file: Path) -> Alertmanager:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    webhook = config["receivers"][0]["webhook_configs"][0]
    webhook["url"] = webhook["url"].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    # Test timing: notify at once, and resend changes quickly.
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update(group_wait="1s", group_interval="1s")
    return launch(pool, Alertmanager, config=config)


def test_a_real_alertmanager_delivers_to_the_receiver(
    backend_pool: BackendPool, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex
    token_file = tmp_path / "webhook.token"
    token_file.write_text(f"{token}\n", encoding="utf-8")
    token_file.chmod(0o644)  # Alertmanager may run as another user
    database_url = f"sqlite:///{tmp_path}/controlplane.db"
    database = Database.from_url(database_url)
    database.migrate()
    with database.writer() as session:
        _, viewer = create_token(session, name="probe", role=Role.VIEWER, at=datetime.now(UTC))
    database.dispose()
    headers = {"Authorization": f"Bearer {viewer}"}

    control_plane = ControlPlaneProcess(
        settings={
            "database_url": database_url,
            "webhook_token_file": str(token_file),
        },
        log_path=tmp_path / "controlplane.log",
    ).start()
    try:
        alertmanager = _alertmanager_for(
            backend_pool, port=control_plane.port, token_file=token_file
        )
        try:
            name = f"ErrorBudgetBurn{uuid.uuid4().hex[:6]}"
            starts = datetime.now(UTC).replace(microsecond=0)
            alert = {
                "labels": {
                    "alertname": name,
                    "service": "inventory",
                    "slo": "api-availability",
                    "severity": "page",
                },
                "annotations": {"summary": "burning 14.4x over 1h and 5m"},
                "startsAt": starts.isoformat(),
                "endsAt": (starts + timedelta(hours=1)).isoformat(),
            }
            posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[alert], timeout=10)
            assert posted.status_code == 200

            def stored(status: str) -> list[dict[str, Any]]:
                answer = httpx.get(
                    f"{control_plane.url}/api/v1/alerts",
                    params={"status": status},
                    headers=headers,
                    timeout=10,
                )
                answer.raise_for_status()
                return [item for item in answer.json() if item["alertname"] == name]

            (firing,) = eventually(lambda: stored("firing"))
            assert firing["labels"]["slo"] == "api-availability"
            assert firing["starts_at"] == starts.isoformat().replace("+00:00", "Z")
            assert firing["receiver"] == "controlplane"

            alert["endsAt"] = datetime.now(UTC).isoformat()  # resolve it
            assert (
                httpx.post(
                    f"{alertmanager.url}/api/v2/alerts", json=[alert], timeout=10
                ).status_code
                == 200
            )
            (resolved,) = eventually(lambda: stored("resolved"))
            assert resolved["id"] == firing["id"]
            assert resolved["closed_at"] is not None
        finally:
            backend_pool.stop(alertmanager)
    finally:
        control_plane.stop()
