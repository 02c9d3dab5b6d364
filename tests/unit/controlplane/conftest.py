"""An API on an embedded SQLite store in a temporary folder, with one token per role."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.wiring import create_app
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.security import Role
from controlplane.runtime import Runtime
from controlplane.store.tokens import create_token
from tests.unit.controlplane.asgi import AppClient

WEBHOOK_TOKEN = "webhook-secret-for-tests"


@dataclass
class Api:
    client: AppClient
    runtime: Runtime
    tokens: dict[Role, str]

    def headers(self, role: Role = Role.VIEWER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    @property
    def webhook_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


def settings_for(tmp_path: Path, **groups: dict[str, object]) -> ControlPlaneSettings:
    """Settings for a test over the environment's: a store in ``tmp_path``, the webhook
    token, a quick election, and ``groups`` merged over them (``leader={...}``)."""
    values: dict[str, dict[str, object]] = {
        "store": {"data_dir": tmp_path},
        "webhook": {"webhook_token": WEBHOOK_TOKEN},
        "leader": {"leader_acquire_interval_seconds": 0.2, "leader_check_interval_seconds": 0.2},
    }
    for group, overrides in groups.items():
        values[group] = {**values.get(group, {}), **overrides}
    return ControlPlaneSettings.model_validate(values)


@contextmanager
def running_api(settings: ControlPlaneSettings) -> Iterator[Api]:
    """The API on ``settings`` with one token per role, stopped on exit."""
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    with AppClient(app) as client:
        tokens = {}
        with runtime.database.writer() as session:
            for role in Role:
                _, secret = create_token(
                    session, name=f"test-{role.value}", role=role, at=datetime.now(UTC)
                )
                tokens[role] = secret
        yield Api(client=client, runtime=runtime, tokens=tokens)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(settings_for(tmp_path)) as running:
        yield running
