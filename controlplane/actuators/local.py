"""Local actuator: the app's gunicorn master, one worker per replica.

``TTIN`` asks the master for one more worker, ``TTOU`` for one less. The count is read back from
the system: the master's live child processes (``/proc``), so a request the master ignored or a
worker that died shows up as it is. A scale sends one signal at a time and waits for the count
to move before the next, re-reading it each time: it converges on the count asked for rather
than replaying a difference computed earlier, so a caller that resumes after a freeze (while
another leader finished the job) sends nothing more.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from controlplane.actuators.base import ActuatorError, ActuatorFenced, Guard, ScaleResult
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

    def scale(self, service: str, *, replicas: int, guard: Guard | None = None) -> ScaleResult:
        self._check(service)
        if replicas < 1:
            raise ActuatorError("a gunicorn master needs at least one worker")
        master = self.master_pid()
        before = current = len(child_pids(master))
        deadline = time.monotonic() + self.settle_timeout
        while current != replicas and time.monotonic() < deadline:
            if guard is not None and not guard():
                raise ActuatorFenced(
                    f"stopped at {current} workers (asked {replicas}): no longer allowed to act"
                )
            os.kill(master, signal.SIGTTIN if current < replicas else signal.SIGTTOU)
            moved = current
            while moved == current and time.monotonic() < deadline:
                time.sleep(0.02)
                moved = len(child_pids(master))
            current = moved
        return ScaleResult(
            service=service, before=before, requested=replicas, after=current, via="workers"
        )
