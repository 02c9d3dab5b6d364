"""Node control for the project's own PostgreSQL processes (the local stack and the tests)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from controlplane.failover.nodes import Node, NodeUnreachable, probe
from controlplane.stack.backends import PostgresPrimary
from controlplane.stack.process import group_alive, stop_process_group


class LocalNodeControl:
    """Maps failover nodes (by name) to the stack's PostgreSQL backends."""

    def __init__(
        self,
        backends: Mapping[str, PostgresPrimary],
        *,
        start_timeout: float = 60.0,
        on_started: Callable[[str, int], None] | None = None,
    ):
        self.backends = dict(backends)
        self.start_timeout = start_timeout
        #: Told (backend name, pid) after a start, e.g. to update the stack's state file.
        self.on_started = on_started

    def _backend(self, node: Node) -> PostgresPrimary:
        try:
            return self.backends[node.name]
        except KeyError as exc:
            raise NodeUnreachable(f"{node.name}: not a node of this stack") from exc

    def data_dir(self, node: Node) -> Path:
        return self._backend(node).data_dir

    def stop(self, node: Node, *, clean: bool) -> None:
        """Stop the server: SIGINT (fast, clean shutdown) or SIGKILL. Works for a server this
        process started and for one started by another process (pid from postmaster.pid)."""
        backend = self._backend(node)
        sig = signal.SIGINT if clean else signal.SIGKILL
        if backend.process is not None:
            backend.process.stop(sig=sig, timeout=60)
            backend.process = None
            return
        try:
            first = (backend.data_dir / "postmaster.pid").read_text(encoding="utf-8").split()[0]
        except (OSError, IndexError):
            return
        if first.isdigit() and group_alive(int(first)):
            stop_process_group(int(first), sig=sig, timeout=60)

    def start(self, node: Node) -> None:
        """Start the server (primary or standby) and wait until it answers a probe."""
        backend = self._backend(node)
        backend.spawn()
        if self.on_started is not None and backend.process is not None and backend.process.pid:
            self.on_started(backend.name, backend.process.pid)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                probe(node, timeout=1)
                return
            except NodeUnreachable:
                if time.monotonic() > deadline:
                    raise
                if backend.process is not None and backend.process.exit_code() is not None:
                    raise NodeUnreachable(f"{node.name} exited during start") from None
                time.sleep(0.2)
