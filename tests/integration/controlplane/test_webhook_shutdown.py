"""The webhook receiver stops with the app: on PostgreSQL its writer thread is gone once the app
has shut down (the alerts it acknowledged are in the store), on SQLite there was none."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from alerts.wiring import create_app
from controlplane.core.config import ControlPlaneSettings
from controlplane.store.alerts import list_alerts
from controlplane.store.database import Database
from tests.integration.controlplane.conftest import sqlalchemy_url
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.payloads import webhook_alert, webhook_payload

pytestmark = pytest.mark.integration

TOKEN = "shutdown-test-webhook-token"


def writers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "webhook-writer"]


def test_the_receiver_leaves_no_writer_thread_behind(database_url: str, tmp_path: Path) -> None:
    before = writers()
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"database_url": database_url, "data_dir": tmp_path},
            "webhook": {"webhook_token": TOKEN},
            "leader": {"leader_election": False},
        }
    )
    app = create_app(settings)
    fingerprints = [f"shutdown-{n}" for n in range(5)]
    with AppClient(app) as client:
        for fingerprint in fingerprints:
            answer = client.post(
                "/api/v1/alerts/webhook",
                json=webhook_payload(webhook_alert(fingerprint=fingerprint)),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert answer.status_code == 200, answer.text
        running = [thread for thread in writers() if thread not in before]
        assert len(running) == (1 if database_url.startswith("postgresql") else 0)

    assert [thread for thread in writers() if thread not in before] == []
    database = Database.from_url(sqlalchemy_url(database_url))
    try:
        with database.reader() as session:
            stored = {alert.fingerprint for alert in list_alerts(session)}
    finally:
        database.dispose()
    assert set(fingerprints) <= stored
