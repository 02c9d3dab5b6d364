"""Settings of the action engine, the orchestrator and the database topology (``CONTROLPLANE_``).

Kept apart from the core settings because only the acting side needs them; they share the prefix
so that one environment configures the whole control plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controlplane.failover.nodes import Node
from controlplane.targets.policy import DEFAULT_CAPACITY_POLICY, DEFAULT_DR_POLICY, POLICY_DIR

DEFAULT_ACTION_POLICY = POLICY_DIR / "actions.yaml"


class ActionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTROLPLANE_", extra="ignore", frozen=True)

    action_policy: Path = Field(
        default=DEFAULT_ACTION_POLICY, description="Versioned action policy (triggers → actions)."
    )
    capacity_policy: Path = Field(default=DEFAULT_CAPACITY_POLICY)
    dr_policy: Path = Field(default=DEFAULT_DR_POLICY)
    orchestrator: Literal["none", "local", "kubernetes"] = Field(
        default="none", description="Where replicas are read and changed."
    )
    local_pidfile: Path | None = Field(
        default=None, description="gunicorn master pidfile of the local app (orchestrator=local)."
    )
    local_service: str = "inventory"
    kubernetes_namespace: str = "inventory"
    database_nodes: str = Field(
        default="",
        description="PostgreSQL nodes as name=host:port, comma separated, primary first "
        "(e.g. primary=127.0.0.1:5432,replica_1=127.0.0.1:5433).",
    )
    database_name: str = Field(default="inventory", description="Database of the DR policy.")
    database_data_dirs: str = Field(
        default="",
        description="Data folders of the local PostgreSQL nodes as name=path, comma separated: "
        "what local fencing needs. Without them automatic failover stays off.",
    )
    actions_enabled: bool = Field(
        default=True, description="Run the action engine (alert and burn triggers, approvals)."
    )
    action_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often the engine reads burn triggers and approvals."
    )
    failover_enabled: bool = Field(
        default=True, description="Fail the database over automatically (needs nodes + dirs)."
    )
    drill_interval_hours: float = Field(
        default=0.0,
        ge=0,
        description="Run a switchover drill when the newest stored drill is older than this "
        "(needs nodes + dirs); 0: no scheduled drills.",
    )
    failover_probe_interval_seconds: float = Field(default=0.5, gt=0)
    failover_probe_threshold: int = Field(
        default=3, ge=1, description="Consecutive failed probes that declare the primary down."
    )

    @field_validator("database_nodes")
    @classmethod
    def _nodes_parse(cls, value: str) -> str:
        parse_nodes(value)
        return value

    @field_validator("database_data_dirs")
    @classmethod
    def _dirs_parse(cls, value: str) -> str:
        parse_data_dirs(value)
        return value

    def nodes(self) -> list[Node]:
        return parse_nodes(self.database_nodes)

    def data_dirs(self) -> dict[str, Path]:
        return parse_data_dirs(self.database_data_dirs)


def parse_nodes(text: str) -> list[Node]:
    nodes: list[Node] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, address = part.partition("=")
        host, colon, port = address.rpartition(":")
        if not sep or not colon or not port.isdigit() or not name or not host:
            raise ValueError(f"{part!r} is not name=host:port")
        nodes.append(Node(name=name, host=host, port=int(port)))
    return nodes


def parse_data_dirs(text: str) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, path = part.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{part!r} is not name=path")
        dirs[name] = Path(path)
    return dirs
