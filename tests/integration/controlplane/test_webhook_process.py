"""The receiver as a real uvicorn process on SQLite and on PostgreSQL: concurrent repeats,
refused deliveries that write nothing, and acknowledged alerts that survive ``kill -9``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.core.security import Role
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.integration.controlplane.conftest import sqlalchemy_url
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.unit.controlplane.payloads import webhook_alert, webhook_payload

WEBHOOK_TOKEN = "integration-webhook-token"
WEBHOOK = "/api/v1/alerts/webhook"


@dataclass
class Running:
    process: ControlPlaneProcess
    viewer: dict[str, str]
    webhook: dict[str, str]

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(
            f"{self.process.url}{path}", params=params, headers=self.viewer, timeout=30
        )
        answer.raise_for_status()
        return answer.json()

    def post_webhook(self, body: Any, *, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.process.url}{WEBHOOK}",
            json=body,
            headers=self.webhook if headers is None else headers,
            timeout=30,
        )


def _viewer_token(url: str) -> str:
    database = Database.from_url(sqlalchemy_url(url))
    try:
        database.migrate()
        with database.writer() as session:
            _, secret = create_token(
                session,
                name=f"viewer-{time.monotonic_ns()}",
                role=Role.VIEWER,
                at=datetime.now(UTC),
            )
    finally:
        database.dispose()
    return secret


@pytest.fixture
def control_plane(database_url: str, tmp_path: Path) -> Iterator[Running]:
    secret = _viewer_token(database_url)
    process = ControlPlaneProcess(
        settings={
            "database_url": database_url,
            "data_dir": str(tmp_path),
            "webhook_token": WEBHOOK_TOKEN,
            "database_pool_size": "20",
        },
        log_path=tmp_path / "controlplane.log",
    ).start()
    try:
        yield Running(
            process=process,
            viewer={"Authorization": f"Bearer {secret}"},
            webhook={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    finally:
        process.stop()


def test_the_same_webhook_100_times_concurrently_is_one_alert_and_99_repeats(
    control_plane: Running,
) -> None:
    body = webhook_payload()

    async def deliver_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{control_plane.process.url}{WEBHOOK}",
                        json=body,
                        headers=control_plane.webhook,
                    )
                    for _ in range(100)
                )
            )

    answers = asyncio.run(deliver_all())
    assert [answer.status_code for answer in answers] == [200] * 100, (
        control_plane.process.log_tail()
    )
    outcomes = [answer.json()["outcomes"] for answer in answers]
    assert outcomes.count({"opened": 1}) == 1
    assert outcomes.count({"repeat": 1}) == 99

    (alert,) = control_plane.get("/api/v1/alerts")
    assert alert["repeat_count"] == 99
    deliveries = control_plane.get("/api/v1/alerts/deliveries", limit=1000)
    assert len(deliveries) == 100
    assert sum(delivery["changed_count"] for delivery in deliveries) == 1


def test_refused_deliveries_write_nothing(control_plane: Running) -> None:
    bad_token = control_plane.post_webhook(
        webhook_payload(), headers={"Authorization": "Bearer not-the-token"}
    )
    assert bad_token.status_code == 401
    malformed = webhook_payload()
    del malformed["alerts"][0]["fingerprint"]
    refused = control_plane.post_webhook(malformed)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "alerts", 0, "fingerprint"]
    assert control_plane.get("/api/v1/alerts") == []
    assert control_plane.get("/api/v1/alerts/deliveries") == []


def test_every_acknowledged_alert_survives_kill_9(
    control_plane: Running, database_url: str, tmp_path: Path
) -> None:
    """Senders post distinct alerts while the process is killed with SIGKILL mid-stream: every
    alert that got a 200 is in the store after a restart."""
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            for sequence in range(10_000):
                if stop.is_set():
                    return
                fingerprint = f"{worker:02d}{sequence:06d}"
                try:
                    answer = client.post(
                        f"{control_plane.process.url}{WEBHOOK}",
                        json=webhook_payload(webhook_alert(fingerprint=fingerprint)),
                        headers=control_plane.webhook,
                    )
                except httpx.TransportError:
                    return  # the process is gone
                if answer.status_code == 200:
                    with lock:
                        acknowledged.append(fingerprint)

    threads = [threading.Thread(target=sender, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if len(acknowledged) >= 40:
                break
        time.sleep(0.01)
    control_plane.process.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    with lock:
        acked = set(acknowledged)
    assert len(acked) >= 40

    restarted = ControlPlaneProcess(
        settings=control_plane.process.settings,
        log_path=tmp_path / "controlplane-restarted.log",
    ).start()
    try:
        answer = httpx.get(
            f"{restarted.url}/api/v1/alerts",
            params={"limit": 10_000},
            headers=control_plane.viewer,
            timeout=30,
        )
        answer.raise_for_status()
        stored = {alert["fingerprint"] for alert in answer.json()}
    finally:
        restarted.stop()
    assert acked <= stored, f"lost after kill -9: {sorted(acked - stored)}"
