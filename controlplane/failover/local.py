"""Node control for PostgreSQL servers whose data folders this machine holds.

:class:`LocalNodeControl` stops and starts the servers of failover nodes (by name). A server is a
:class:`LocalServer`: the local stack's PostgreSQL backends are ones (they start with the stack's
command line), and :class:`LocalPostgres` is the small description the control plane uses for
its own nodes: a data folder, started again with the command line its server was last started
with (``postmaster.opts``, as ``pg_ctl restart`` does), as the folder's owner.
"""

from __future__ import annotations

import os
import pwd
import shlex
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from controlplane.core.processes import (
    ServerProcess,
    group_alive,
    postmaster_pid,
    stop_process_group,
)
from controlplane.failover.nodes import Node, NodeUnreachable, probe

__all__ = ["LocalNodeControl", "LocalPostgres", "LocalServer"]


class LocalServer(Protocol):
    """A PostgreSQL server of this machine that node control can start."""

    @property
    def name(self) -> str: ...

    @property
    def data_dir(self) -> Path: ...

    #: The server process this program started (None when another program started it).
    process: ServerProcess | None

    def spawn(self) -> None:
        """Start the server without waiting for it to answer."""


class LocalPostgres:
    """A PostgreSQL server known by its data folder (``node`` names it in logs and errors)."""

    def __init__(self, *, node: str, data_dir: Path) -> None:
        self.node = node
        self._data_dir = data_dir
        self.process: ServerProcess | None = None

    @property
    def name(self) -> str:
        return self.node

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    def _owner(self) -> str | None:
        """As root, run as the data folder's owner (PostgreSQL refuses root)."""
        if os.geteuid() != 0:
            return None
        uid = self.data_dir.stat().st_uid
        return None if uid == 0 else pwd.getpwuid(uid).pw_name

    def spawn(self) -> None:
        options = self.data_dir / "postmaster.opts"
        try:
            argv = shlex.split(options.read_text(encoding="utf-8"))
        except OSError as exc:
            raise NodeUnreachable(f"{self.node}: cannot start it, {options}: {exc}") from exc
        if not argv:
            raise NodeUnreachable(f"{self.node}: cannot start it, {options} is empty")
        self.process = ServerProcess(
            name=self.node,
            argv=argv,
            log_path=self.data_dir.parent / "log" / f"{self.node}.log",
            user=self._owner(),
            cwd=self.data_dir.parent,
        )
        self.process.start()


class LocalNodeControl:
    """Maps failover nodes (by name) to PostgreSQL servers of this machine."""

    def __init__(
        self,
        servers: Mapping[str, LocalServer],
        *,
        start_timeout: float = 60.0,
        on_started: Callable[[str, int], None] | None = None,
    ):
        self.servers = dict(servers)
        self.start_timeout = start_timeout
        #: Told (server name, pid) after a start, e.g. to update the stack's state file.
        self.on_started = on_started

    def _server(self, node: Node) -> LocalServer:
        try:
            return self.servers[node.name]
        except KeyError as exc:
            raise NodeUnreachable(f"{node.name}: not a node of this stack") from exc

    def data_dir(self, node: Node) -> Path:
        return self._server(node).data_dir

    def stop(self, node: Node, *, clean: bool) -> None:
        """Stop the server: SIGINT (fast, clean shutdown) or SIGKILL. Works for a server this
        process started and for one started by another process (pid from postmaster.pid)."""
        server = self._server(node)
        sig = signal.SIGINT if clean else signal.SIGKILL
        if server.process is not None:
            server.process.stop(sig=sig, timeout=60)
            server.process = None
            return
        pid = postmaster_pid(server.data_dir)
        if pid is not None and group_alive(pid):
            stop_process_group(pid, sig=sig, timeout=60)

    def start(self, node: Node) -> None:
        """Start the server (primary or standby) and wait until it answers a probe."""
        server = self._server(node)
        server.spawn()
        if self.on_started is not None and server.process is not None and server.process.pid:
            self.on_started(server.name, server.process.pid)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                probe(node, timeout=1)
                return
            except NodeUnreachable:
                if time.monotonic() > deadline:
                    raise
                if server.process is not None and server.process.exit_code() is not None:
                    raise NodeUnreachable(f"{node.name} exited during start") from None
                time.sleep(0.2)
