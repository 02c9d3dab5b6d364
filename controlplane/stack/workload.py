"""The workload as processes of the local stack: the inventory API, a stream worker, traffic.

They run the app's own entry points (``python -m app.serve`` / ``app.worker`` / ``app.traffic``)
as subprocesses; the control plane never imports the workload's code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from controlplane.core.config import DEFAULT_CAPACITY_POLICY
from controlplane.core.processes import BackendStartError
from controlplane.stack.backends import Backend
from controlplane.stack.keycloak import INVENTORY_REALM, Keycloak, client_secret_file
from controlplane.stack.settings import StackSettings
from controlplane.stack.topology import read_url, write_url
from controlplane.targets.policy import PolicyError, load_capacity_policy

#: The client the stack's workload programs (the traffic generator) sign in as.
TRAFFIC_CLIENT = "inventory-traffic"


def workload_environment(
    stack_ports: Mapping[str, Mapping[str, int]], *, identity_dir: Path | None = None
) -> dict[str, str]:
    """``INVENTORY_*`` settings pointing at the stack's backends: every Patroni member in the
    write DSN (libpq finds the leader) and in the read DSN (a standby preferred). With the
    stack's Keycloak, the API checks the realm's tokens and the workload's programs sign in as
    ``inventory-traffic`` (its secret in ``identity_dir``)."""
    env = dict(os.environ)
    env.update(
        INVENTORY_DATABASE_URL=write_url(stack_ports),
        INVENTORY_REPLICA_URL=read_url(stack_ports),
        INVENTORY_REDIS_URL=f"redis://127.0.0.1:{stack_ports['redis']['redis']}/0",
        INVENTORY_OTLP_ENDPOINT=f"http://127.0.0.1:{stack_ports['jaeger']['otlp_http']}",
        INVENTORY_ELASTICSEARCH_URL=f"http://127.0.0.1:{stack_ports['elasticsearch']['http']}",
    )
    if Keycloak.name in stack_ports:
        env["INVENTORY_AUTH_ISSUER"] = (
            f"http://127.0.0.1:{stack_ports[Keycloak.name]['http']}/realms/{INVENTORY_REALM}"
        )
        if identity_dir is not None:
            env["INVENTORY_AUTH_CLIENT_ID"] = TRAFFIC_CLIENT
            env["INVENTORY_AUTH_CLIENT_SECRET_FILE"] = str(
                client_secret_file(identity_dir, TRAFFIC_CLIENT)
            )
    return env


def api_requests(api_url: str, *, method: str | None = None) -> float:
    """Requests the API has served under ``/api/v1`` (probes and scrapes left out), from its own
    request histogram on ``/metrics``; only ``method`` ones when given."""
    text = httpx.get(f"{api_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("http_server_request_duration_seconds_count{")
            and 'route="/api/v1/' in line
            and (method is None or f'method="{method}"' in line)
        ):
            total += float(line.rsplit(" ", 1)[-1])
    return total


class _Workload(Backend):
    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        stack_ports: Mapping[str, Mapping[str, int]],
        identity_dir: Path | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.stack_ports = stack_ports
        self.identity_dir = identity_dir

    def executable(self) -> Path:
        return Path(sys.executable)

    def environment(self) -> dict[str, str]:
        return workload_environment(self.stack_ports, identity_dir=self.identity_dir)

    def query_version(self) -> str:
        return "inventory (this repository)"


class InventoryAPI(_Workload):
    """gunicorn + uvicorn workers on the API port; the pidfile is what the local actuator uses.

    It starts as many workers as the capacity policy's minimum replicas for its service, so the
    demo starts inside its own policy (the control plane scales it from there)."""

    name = "inventory-api"
    #: The capacity policy's name of the service this API is (``CONTROLPLANE_LOCAL_SERVICE``).
    service = "inventory"

    @property
    def workers(self) -> int:
        try:
            policy = load_capacity_policy(DEFAULT_CAPACITY_POLICY)
        except PolicyError as exc:
            raise BackendStartError(self.name, f"cannot size its workers: {exc}") from exc
        for bounds in policy.spec.services:
            if bounds.name == self.service:
                return bounds.replicas.min
        raise BackendStartError(
            self.name, f"the capacity policy {DEFAULT_CAPACITY_POLICY} has no {self.service!r}"
        )

    @property
    def pidfile(self) -> Path:
        return self.workdir / "gunicorn.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def faults_file(self) -> Path:
        """Injected slowness (``app/faults.py``): ``controlplane drill scaling`` writes it."""
        return self.workdir / "faults.json"

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "INVENTORY_FAULTS_FILE": str(self.faults_file)}

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "app.serve",
            "--migrate",
            "--bind",
            f"127.0.0.1:{self.ports['http']}",
            "--workers",
            str(self.workers),
            "--pidfile",
            str(self.pidfile),
            "--metrics-dir",
            str(self.workdir / "metrics"),
        ]

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200


class InventoryWorker(_Workload):
    """One stream worker applying movements in batches (its metrics on their own port)."""

    name = "inventory-worker"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app.worker", "--metrics-port", str(self.ports["metrics"])]

    def healthy(self) -> bool:
        return httpx.get(f"http://127.0.0.1:{self.ports['metrics']}/metrics", timeout=2).is_success


class TrafficGenerator(_Workload):
    """Steady demo traffic against the API, so that the SLOs and dashboards have data."""

    name = "traffic"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        stack_ports: Mapping[str, Mapping[str, int]],
        api_url: str,
        rate: float = 20.0,
        identity_dir: Path | None = None,
    ) -> None:
        super().__init__(
            settings=settings,
            workdir=workdir,
            ports=ports,
            stack_ports=stack_ports,
            identity_dir=identity_dir,
        )
        self.api_url = api_url
        self.rate = rate

    @property
    def main_port(self) -> int:
        return 0

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "app.traffic",
            "--url",
            self.api_url,
            "--rate",
            str(self.rate),
        ]

    def healthy(self) -> bool:
        """Traffic really reaches the API: its request histogram counts non-probe requests."""
        return api_requests(self.api_url) > 0
