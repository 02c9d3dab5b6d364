"""Local adapter: the app's gunicorn master, one worker per replica.

The master is found through its pidfile (checked by
:class:`~controlplane.actuators.local.LocalGunicornActuator`, which the local scaling uses) and
its workers are its live child processes, read from ``/proc`` the same way the actuator counts
them. The one service it runs (``inventory``) is reported with:

* desired = the worker count the control plane is configured to run
  (``CONTROLPLANE_LOCAL_REPLICAS``), else the current count (nothing to compare against);
* ready = current = the live workers;
* CPU = the workers' average use of one core since the previous read, in percent (unknown on
  the first read: one needs two samples);
* autoscaler = the local scaling bounds of the settings (``CONTROLPLANE_LOCAL_MIN_REPLICAS``,
  ``..._MAX_REPLICAS``, ``..._TARGET_CPU_PERCENT``), or none when they are not configured
  (no finding: a local master has no autoscaler to have, so the capacity check holds the live
  workers to the policy's replica bounds instead);
* resources = none (no container requests or limits locally).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from controlplane.actuators.base import ActuatorError
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.core.config import ControlPlaneSettings
from controlplane.orchestrator.base import AutoscalerState, OrchestratorError, WorkloadState

__all__ = ["LocalOrchestrator"]

AUTOSCALER_NAME = "gunicorn-workers"


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process in clock ticks; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # After the comm field: state(0) ppid(1) ... utime(11) stime(12)
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if len(fields) > 1 and fields[0] != "Z" and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


class LocalOrchestrator:
    """:class:`~controlplane.orchestrator.base.Orchestrator` over one local gunicorn master."""

    #: No HPA to have: the control plane itself scales the workers (the action policy).
    has_autoscalers = False

    def __init__(
        self,
        *,
        pidfile: Path,
        service: str = "inventory",
        desired_replicas: int | None = None,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        target_cpu_percent: int | None = None,
    ) -> None:
        if (min_replicas is None) != (max_replicas is None):
            raise ValueError("give min_replicas and max_replicas together")
        self.service = service
        self.desired_replicas = desired_replicas
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.target_cpu_percent = target_cpu_percent
        self._actuator = LocalGunicornActuator(pidfile=pidfile, service=service)
        self._lock = threading.Lock()
        self._previous: tuple[float, dict[int, int]] | None = None
        self._ticks_per_second = os.sysconf("SC_CLK_TCK")

    @classmethod
    def from_settings(
        cls, settings: ControlPlaneSettings, *, pidfile: Path, service: str
    ) -> LocalOrchestrator:
        """The pidfile and service come from ``CONTROLPLANE_LOCAL_PIDFILE`` /
        ``CONTROLPLANE_LOCAL_SERVICE`` (the actions' settings); the rest from the core ones."""
        return cls(
            pidfile=pidfile,
            service=service,
            desired_replicas=settings.local_replicas,
            min_replicas=settings.local_min_replicas,
            max_replicas=settings.local_max_replicas,
            target_cpu_percent=settings.local_target_cpu_percent,
        )

    @property
    def pidfile(self) -> Path:
        return self._actuator.pidfile

    def _cpu_percent(self, workers: list[int]) -> int | None:
        """Average CPU of the workers since the previous call, in percent of one core."""
        now = time.monotonic()
        ticks = {pid: t for pid in workers if (t := _cpu_ticks(pid)) is not None}
        with self._lock:
            previous, self._previous = self._previous, (now, ticks)
        if previous is None:
            return None
        then, before = previous
        elapsed = now - then
        common = [pid for pid in ticks if pid in before]
        if elapsed <= 0 or not common:
            return None
        used = sum(ticks[pid] - before[pid] for pid in common) / self._ticks_per_second
        return round(100 * used / elapsed / len(common))

    def workloads(self) -> list[WorkloadState]:
        try:
            master = self._actuator.master_pid()
        except ActuatorError as exc:
            raise OrchestratorError(str(exc)) from exc
        workers = _children(master)
        live = len(workers)
        cpu = self._cpu_percent(workers)
        autoscaler = None
        if self.min_replicas is not None and self.max_replicas is not None:
            autoscaler = AutoscalerState(
                name=AUTOSCALER_NAME,
                min_replicas=self.min_replicas,
                max_replicas=self.max_replicas,
                target_cpu_percent=self.target_cpu_percent,
                current_cpu_percent=cpu,
                desired_replicas=self.desired_replicas,
            )
        return [
            WorkloadState(
                service=self.service,
                desired_replicas=self.desired_replicas if self.desired_replicas else live,
                ready_replicas=live,
                current_replicas=live,
                cpu_percent=cpu,
                autoscaler=autoscaler,
                resources=None,
            )
        ]
