"""Fencing the old primary so that it can never take writes again after a failover.

Local fencing (the project's own PostgreSQL processes): kill the postmaster named in the data
folder's ``postmaster.pid`` and every server process still working in that folder, then leave a
``standby.signal`` and a ``primary_conninfo`` pointing at the new primary in the data folder.
If anything starts it again it comes up in recovery — a read-only standby (if its WAL still
fits the new timeline) or a server that refuses to leave recovery — never a second writable
primary. Kubernetes fencing (delete the pod, cordon its volume) belongs to the Kubernetes
adapter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from controlplane.core.errors import ControlPlaneError
from controlplane.core.processes import kill_processes_under, postmaster_pid
from controlplane.failover.nodes import Node

FENCE_MARK = "# fenced by the control plane"
#: The server's executable: what fencing kills in the data folder (not a shell working there).
POSTGRES = "postgres"


class FencingFailed(ControlPlaneError):
    """The old primary could not be fenced: the failover must not go on."""


@dataclass(frozen=True, kw_only=True)
class FenceResult:
    node: str
    killed_pid: int | None
    standby_signal: bool


class Fencer(Protocol):
    def fence(self, old: Node, *, new_primary: Node) -> FenceResult:
        """Make ``old`` unable to accept writes, now and after any restart."""


class LocalFencer:
    """Fences PostgreSQL servers whose data folders this machine can write."""

    def __init__(self, *, data_dirs: dict[str, Path], stop_timeout: float = 10.0) -> None:
        self.data_dirs = data_dirs
        self.stop_timeout = stop_timeout

    def fence(self, old: Node, *, new_primary: Node) -> FenceResult:
        data_dir = self.data_dirs.get(old.name)
        if data_dir is None or not data_dir.is_dir():
            raise FencingFailed(f"{old.name}: no data folder known to fence")
        pid = postmaster_pid(data_dir)
        # The postmaster, then every server process still working in its folder: each leads its
        # own process group, and one that is stopped or stuck outlives the postmaster, holding
        # the old primary's shared memory (no restart) and its clients' sockets.
        survivors = kill_processes_under(
            data_dir,
            program=POSTGRES,
            also=[pid] if pid is not None else [],
            timeout=self.stop_timeout,
        )
        if survivors:
            raise FencingFailed(f"{old.name}: processes {sorted(survivors)} survived SIGKILL")
        owner = data_dir.stat()
        signal_file = data_dir / "standby.signal"
        signal_file.write_text("", encoding="utf-8")
        auto_conf = data_dir / "postgresql.auto.conf"
        lines = [
            line
            for line in (
                auto_conf.read_text(encoding="utf-8").splitlines() if auto_conf.exists() else []
            )
            if not line.startswith(("primary_conninfo", "primary_slot_name", FENCE_MARK))
        ]
        lines += [
            FENCE_MARK,
            f"primary_conninfo = 'host={new_primary.host} port={new_primary.port} "
            f"user={new_primary.user} application_name={old.name}'",
        ]
        auto_conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for path in (signal_file, auto_conf):
            os.chown(path, owner.st_uid, owner.st_gid)
        return FenceResult(node=old.name, killed_pid=pid, standby_signal=True)
