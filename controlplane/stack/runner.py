"""The local demo stack: every backend on its DESIGN.md port, logs in one folder, clean stop.

``controlplane stack up`` starts the processes detached (own sessions) and records them in
``<home>/state.json``; ``down`` and ``status`` work from that file in any later process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.stack.backends import (
    PROBE_ERRORS,
    Alertmanager,
    Backend,
    Elasticsearch,
    Jaeger,
    PostgresPrimary,
    PostgresReplica,
    Prometheus,
    Redis,
)
from controlplane.stack.errors import BackendStartError, StackError
from controlplane.stack.process import group_alive, stop_process_group
from controlplane.stack.settings import REPO_ROOT, StackSettings

STATUS_ERRORS: tuple[type[Exception], ...] = (*PROBE_ERRORS, KeyError)

#: Demo ports on loopback (DESIGN.md). Tests never use these: they pick free ports.
DEMO_PORTS: dict[str, dict[str, int]] = {
    PostgresPrimary.name: {"postgres": 5432},
    PostgresReplica.name: {"postgres": 5433},
    Redis.name: {"redis": 6379},
    Prometheus.name: {"http": 9090},
    Alertmanager.name: {"http": 9093},
    Elasticsearch.name: {"http": 9200, "transport": 9300},
    Jaeger.name: {
        "query_http": 16686,
        "otlp_grpc": 4317,
        "otlp_http": 4318,
        "query_grpc": 16685,
        "health": 13133,
        "metrics": 8888,
    },
}

#: Start order; stop runs in reverse. The replica needs the primary up for its base backup.
ORDER: tuple[str, ...] = (
    Elasticsearch.name,
    PostgresPrimary.name,
    PostgresReplica.name,
    Redis.name,
    Prometheus.name,
    Alertmanager.name,
    Jaeger.name,
)


def shifted_ports(offset: int) -> dict[str, dict[str, int]]:
    """The demo ports moved by ``offset`` (for a machine where the demo ports are taken)."""
    shifted = {
        name: {label: port + offset for label, port in ports.items()}
        for name, ports in DEMO_PORTS.items()
    }
    highest = max(port for ports in shifted.values() for port in ports.values())
    lowest = min(port for ports in shifted.values() for port in ports.values())
    if lowest < 1024 or highest > 65535:
        raise StackError(f"port offset {offset} puts ports outside 1024-65535")
    return shifted


def _read_state_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StackError(f"unreadable stack state file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise StackError(f"unreadable stack state file {path}: not a JSON object")
    return raw


@dataclass(frozen=True)
class BackendStatus:
    name: str
    port: int
    pid: int | None
    running: bool
    healthy: bool
    version: str
    log: Path


def demo_prometheus_config(ports: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """Scrape the stack's own servers; send alerts to the stack's Alertmanager; load SLO rules."""
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{ports[Alertmanager.name]['http']}"]}]}
            ]
        },
        "rule_files": [str(REPO_ROOT / "alerts" / "rules" / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[Prometheus.name]['http']}"]}],
            },
            {
                "job_name": "alertmanager",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[Alertmanager.name]['http']}"]}],
            },
            {
                "job_name": "jaeger",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[Jaeger.name]['metrics']}"]}],
            },
        ],
    }


class LocalStack:
    """All backends of the product on fixed loopback ports under one home folder."""

    def __init__(
        self,
        *,
        settings: StackSettings,
        home: Path,
        ports: Mapping[str, Mapping[str, int]] = DEMO_PORTS,
    ) -> None:
        self.settings = settings
        self.home = home
        self.ports = {name: dict(ports[name]) for name in ORDER}
        self.log_dir = home / "logs"
        self.state_path = home / "state.json"
        self.backends = self._build()

    def _build(self) -> dict[str, Backend]:
        data = self.home / "data"
        primary = PostgresPrimary(
            settings=self.settings,
            workdir=data / PostgresPrimary.name,
            ports=self.ports[PostgresPrimary.name],
        )
        built: list[Backend] = [
            Elasticsearch(
                settings=self.settings,
                workdir=data / Elasticsearch.name,
                ports=self.ports[Elasticsearch.name],
            ),
            primary,
            PostgresReplica(
                settings=self.settings,
                workdir=data / PostgresReplica.name,
                ports=self.ports[PostgresReplica.name],
                primary=primary,
            ),
            Redis(settings=self.settings, workdir=data / Redis.name, ports=self.ports[Redis.name]),
            Prometheus(
                settings=self.settings,
                workdir=data / Prometheus.name,
                ports=self.ports[Prometheus.name],
                config=demo_prometheus_config(self.ports),
            ),
            Alertmanager(
                settings=self.settings,
                workdir=data / Alertmanager.name,
                ports=self.ports[Alertmanager.name],
            ),
            Jaeger(
                settings=self.settings, workdir=data / Jaeger.name, ports=self.ports[Jaeger.name]
            ),
        ]
        for backend in built:
            backend.log_dir = self.log_dir
        return {backend.name: backend for backend in built}

    @classmethod
    def at(cls, *, settings: StackSettings, home: Path, port_offset: int = 0) -> LocalStack:
        """The stack recorded in ``home`` (with the ports it was started on), else a new one."""
        state = _read_state_file(home / "state.json")
        recorded = state.get("ports")
        alive = any(group_alive(int(pid)) for pid in state.get("pids", {}).values())
        if alive and isinstance(recorded, dict) and set(recorded) == set(ORDER):
            return cls(settings=settings, home=home, ports=recorded)
        return cls(settings=settings, home=home, ports=shifted_ports(port_offset))

    # -- state file ------------------------------------------------------------------------
    def _read_state(self) -> dict[str, int]:
        raw = _read_state_file(self.state_path)
        return {str(name): int(pid) for name, pid in raw.get("pids", {}).items()}

    def _write_state(self, pids: dict[str, int]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        state = {"pids": pids, "ports": self.ports}
        self.state_path.write_text(json.dumps(state, indent=2), encoding="utf-8")

    def adopt(self, name: str, pid: int) -> None:
        """Record that ``name`` now runs as ``pid`` (a drill restarted it)."""
        pids = self._read_state()
        pids[name] = pid
        self._write_state(pids)

    def running(self) -> dict[str, int]:
        """Backends recorded as started whose process group is still alive."""
        return {name: pid for name, pid in self._read_state().items() if group_alive(pid)}

    # -- lifecycle -------------------------------------------------------------------------
    def up(self, *, on_event: Callable[[str, str], None] = lambda name, event: None) -> None:
        """Start every backend and wait until each is healthy; on failure stop what started."""
        already = self.running()
        if already:
            raise StackError(
                "the stack is already running (" + ", ".join(sorted(already)) + "); "
                "use `controlplane stack status` or `controlplane stack down`"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        pids: dict[str, int] = {}
        try:
            for name in ORDER:
                backend = self.backends[name]
                on_event(name, "starting")
                backend.spawn()
                assert backend.process is not None
                assert backend.process.pid is not None
                pids[name] = backend.process.pid
                self._write_state(pids)
                if name != Elasticsearch.name:  # the slow one warms up while the rest start
                    backend.wait_healthy()
                    on_event(name, "healthy")
            self.backends[Elasticsearch.name].wait_healthy()
            on_event(Elasticsearch.name, "healthy")
        except BackendStartError:
            self.down(on_event=on_event)
            raise

    def down(self, *, on_event: Callable[[str, str], None] = lambda name, event: None) -> None:
        """Stop every recorded backend (reverse start order) and forget the state."""
        pids = self._read_state()
        for name in reversed(ORDER):
            pid = pids.get(name)
            if pid is None:
                continue
            if group_alive(pid):
                on_event(name, "stopping")
                stop_signal = self.backends[name].stop_signal
                stop_process_group(pid, sig=stop_signal, timeout=60)
            on_event(name, "stopped")
        if self.state_path.exists():
            self.state_path.unlink()

    def status(self) -> Iterator[BackendStatus]:
        pids = self._read_state()
        for name in ORDER:
            backend = self.backends[name]
            pid = pids.get(name)
            running = pid is not None and group_alive(pid)
            healthy = running and backend._safe_healthy()
            version = "-"
            if healthy:
                try:
                    version = backend.version()
                except STATUS_ERRORS as exc:
                    version = f"unknown ({exc})"
            yield BackendStatus(
                name=name,
                port=backend.main_port,
                pid=pid,
                running=running,
                healthy=healthy,
                version=version,
                log=backend.log_path,
            )
