"""Node control for the project's own PostgreSQL processes (the local stack and the tests)."""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from pathlib import Path

from controlplane.failover.nodes import Node, NodeUnreachable, probe
from controlplane.stack.backends import PostgresPrimary


class LocalNodeControl:
    """Maps failover nodes (by name) to the stack's PostgreSQL backends."""

    def __init__(self, backends: Mapping[str, PostgresPrimary], *, start_timeout: float = 60.0):
        self.backends = dict(backends)
        self.start_timeout = start_timeout

    def _backend(self, node: Node) -> PostgresPrimary:
        try:
            return self.backends[node.name]
        except KeyError as exc:
            raise NodeUnreachable(f"{node.name}: not a node of this stack") from exc

    def data_dir(self, node: Node) -> Path:
        return self._backend(node).data_dir

    def stop(self, node: Node, *, clean: bool) -> None:
        backend = self._backend(node)
        if backend.process is None:
            return
        backend.process.stop(sig=signal.SIGINT if clean else signal.SIGKILL, timeout=60)
        backend.process = None

    def start(self, node: Node) -> None:
        """Start the server (primary or standby) and wait until it answers a probe."""
        backend = self._backend(node)
        backend.spawn()
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
