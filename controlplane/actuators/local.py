"""Local actuator: the app's gunicorn master, one worker per replica.

``TTIN`` asks the master for one more worker, ``TTOU`` for one less. The count is read back from
the system: the master's live child processes (``/proc``), so a request the master ignored or a
worker that died shows up as it is.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from controlplane.actuators.base import ActuatorError, ScaleResult
from controlplane.core.processes import child_pids, read_pidfile


class LocalGunicornActuator:
    """Scales the workers of one gunicorn master found through its pidfile."""

    def __init__(
        self, *, pidfile: Path, service: str = "inventory", settle_timeout: float = 30.0
    ) -> None:
        self.pidfile = pidfile
        self.service = service
        self.settle_timeout = settle_timeout

    def master_pid(self) -> int:
        pid = read_pidfile(self.pidfile)
        if pid is None:
            raise ActuatorError(f"no gunicorn master pid in {self.pidfile}")
        try:
            os.kill(pid, 0)
        except ProcessLookupError as exc:
            raise ActuatorError(f"gunicorn master {pid} (from {self.pidfile}) is gone") from exc
        return pid

    def _check(self, service: str) -> None:
        if service != self.service:
            raise ActuatorError(f"this local actuator runs {self.service}, not {service}")

    def current_replicas(self, service: str) -> int:
        self._check(service)
        return len(child_pids(self.master_pid()))

    def ready_replicas(self, service: str) -> int:
        """The live workers: a forked gunicorn worker accepts on the shared socket at once (there
        is no readiness probe to wait for), and a dead one is gone from ``/proc``."""
        return self.current_replicas(service)

    def scale(self, service: str, *, replicas: int) -> ScaleResult:
        self._check(service)
        if replicas < 1:
            raise ActuatorError("a gunicorn master needs at least one worker")
        master = self.master_pid()
        before = len(child_pids(master))
        delta = replicas - before
        sig = signal.SIGTTIN if delta > 0 else signal.SIGTTOU
        for _ in range(abs(delta)):
            os.kill(master, sig)
            time.sleep(0.05)  # gunicorn handles queued signals one by one; don't coalesce them
        deadline = time.monotonic() + self.settle_timeout
        after = len(child_pids(master))
        while after != replicas and time.monotonic() < deadline:
            time.sleep(0.1)
            after = len(child_pids(master))
        return ScaleResult(
            service=service, before=before, requested=replicas, after=after, via="workers"
        )
