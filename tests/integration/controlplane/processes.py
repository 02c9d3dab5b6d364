"""The control plane API as a real process (uvicorn), as it runs in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from controlplane.core.processes import free_ports, tail

APP_FACTORY = "alerts.wiring:create_app"


class ControlPlaneProcess:
    """``uvicorn --factory alerts.wiring:create_app`` with ``CONTROLPLANE_*`` settings."""

    def __init__(
        self,
        *,
        settings: dict[str, str],
        log_path: Path,
        port: int | None = None,
        extra_environment: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        #: Variables besides the settings (e.g. ``KUBECONFIG`` for the Kubernetes orchestrator).
        self.extra_environment = dict(extra_environment or {})
        self.log_path = log_path
        self.port = port or free_ports(1)[0]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("CONTROLPLANE_")
        }
        env.update(self.extra_environment)
        env.update({f"CONTROLPLANE_{key.upper()}": value for key, value in self.settings.items()})
        return env

    def start(self, timeout: float = 60.0) -> ControlPlaneProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    APP_FACTORY,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"control plane exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                # Any answer (401 without a token) means startup (migrations) is complete.
                httpx.get(f"{self.url}/api/v1/health/live", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError(f"control plane not answering after {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets and database sessions but runs nothing."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a stopped process would not see SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


def leader_view(url: str, headers: dict[str, str]) -> dict[str, Any] | None:
    """A replica's view of the leadership (``leader`` of ``/api/v1/health``), None when it
    does not answer."""
    try:
        answer = httpx.get(f"{url}/api/v1/health", headers=headers, timeout=2)
    except httpx.TransportError:
        return None
    if answer.status_code != 200:
        return None
    leader: dict[str, Any] = answer.json()["leader"]
    return leader
