"""A control plane runtime (SQLite store, leader lease) that leads, for tests that drive the
action engine or the services in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controlplane.core.config import ControlPlaneSettings
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
