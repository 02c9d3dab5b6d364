"""A control plane runtime (SQLite store, leader lease) that leads, and an action engine on it
for database actions, for tests that drive the engine or the services in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controlplane.actions.engine import ActionEngine
from controlplane.actions.gate import ActionKind, InputValue, Mode
from controlplane.actions.policy import load_action_policy
from controlplane.core.config import DEFAULT_ACTION_POLICY, ControlPlaneSettings
from controlplane.runtime import Runtime


@contextmanager
def leading_runtime(folder: Path, *, timeout: float = 10.0) -> Iterator[Runtime]:
    """A started runtime with its store in ``folder``, once it holds the leader lease (fast
    lease intervals); stopped on exit."""
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": folder},
            "webhook": {"webhook_token": "t" * 32},
            "leader": {
                "leader_acquire_interval_seconds": 0.2,
                "leader_check_interval_seconds": 0.2,
            },
        }
    )
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        deadline = time.monotonic() + timeout
        while not runtime.leadership.status().is_leader:
            assert time.monotonic() < deadline, f"no leadership within {timeout:.0f} s"
            time.sleep(0.1)
        yield runtime
    finally:
        runtime.stop()


def database_engine(
    runtime: Runtime, *, modes: dict[ActionKind, Mode] | None = None
) -> ActionEngine:
    """The shipped action policy (with ``modes`` changed), nothing to scale: database actions."""
    policy = load_action_policy(DEFAULT_ACTION_POLICY)
    for action, mode in (modes or {}).items():
        policy = policy.with_mode(action, mode)
    return ActionEngine(
        policy=policy,
        database=runtime.database,
        leadership=runtime.leadership,
        lease_name=runtime.settings.leader.leader_name,
        actuator=None,
        burn_reader=lambda *_: InputValue(value=None, observed_at=None),
    )
