"""When its PostgreSQL goes away the API answers 503, and the webhook never acknowledges an
alert it could not store (Alertmanager retries on 5xx)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alerts.wiring import create_app
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.security import Role
from controlplane.runtime import Runtime
from controlplane.stack.backends import PostgresPrimary
from controlplane.store.tokens import create_token
from tests.support.backends import TEST_PG_CONF, BackendPool, launch
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.payloads import webhook_payload

WEBHOOK_TOKEN = "down-test-webhook-token"


def _private_postgres(pool: BackendPool) -> PostgresPrimary:
    return launch(pool, PostgresPrimary, extra_conf=TEST_PG_CONF)


def test_a_lost_database_is_503_and_no_alert_is_acknowledged(
    backend_pool: BackendPool, tmp_path: Path
) -> None:
    postgres = _private_postgres(backend_pool)
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"database_url": postgres.dsn(), "data_dir": tmp_path},
            "webhook": {"webhook_token": WEBHOOK_TOKEN},
            "leader": {"leader_election": False},
        }
    )
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    try:
        with AppClient(app) as client:
            with runtime.database.writer() as session:
                _, secret = create_token(
                    session, name="probe", role=Role.VIEWER, at=datetime.now(UTC)
                )
            viewer = {"Authorization": f"Bearer {secret}"}
            webhook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
            assert client.get("/api/v1/slos", headers=viewer).status_code == 200

            backend_pool.stop(postgres)

            assert client.get("/api/v1/slos", headers=viewer).status_code == 503
            answer = client.post("/api/v1/alerts/webhook", json=webhook_payload(), headers=webhook)
            assert answer.status_code == 503
            assert answer.json() == {"detail": "the control plane store is unavailable"}
    finally:
        backend_pool.stop(postgres)
