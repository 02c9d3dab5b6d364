"""A local stack of which a test starts only what it needs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from controlplane.core.processes import free_ports
from controlplane.stack.runner import DEMO_PORTS, ORDER, LocalStack
from tests.support.backends import BackendPool


def stack_on_free_ports(pool: BackendPool, *, prefix: str) -> LocalStack:
    """A stack whose home is a new folder of the pool's (reachable by the service account) and
    whose backends all have free loopback ports; nothing is started."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=pool.base))
    home.chmod(0o755)
    ports = {
        name: dict(zip(DEMO_PORTS[name], free_ports(len(DEMO_PORTS[name])), strict=True))
        for name in ORDER
    }
    return LocalStack(settings=pool.settings, home=home, ports=ports)
