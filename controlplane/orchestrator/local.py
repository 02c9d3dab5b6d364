"""Local adapter: the app's gunicorn master, one worker per replica.

The master is found through its pidfile (checked by
:class:`~controlplane.actuators.local.LocalGunicornActuator`, which the local scaling uses) and
its workers are its live child processes, read from ``/proc`` the same way the actuator counts
them. The one service it runs (``inventory``) is reported with:

* desired = the worker count the control plane is configured to run
  (``CONTROLPLANE_LOCAL_REPLICAS``), else the current count (nothing to compare against);
* ready = current = the live workers;
* CPU = the workers' average use of one core since the previous read, in percent (unknown on
  the first read: one needs two samples; reads less than a second apart share one sample);
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
from controlplane.core.processes import child_pids, proc_stat
from controlplane.orchestrator.base import AutoscalerState, OrchestratorError, WorkloadState

__all__ = ["LocalOrchestrator"]

AUTOSCALER_NAME = "gunicorn-workers"
#: Reads closer together than this give the previous CPU figure again (the clock ticks are
#: 10 ms: over a few milliseconds one tick more or less would swing the percent wildly).
MIN_CPU_SAMPLE_SECONDS = 1.0


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process in clock ticks; None when it is gone."""
    fields = proc_stat(pid)
    # After the comm field: state(0) ppid(1) ... utime(11) stime(12)
    return None if fields is None else int(fields[11]) + int(fields[12])


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
        self._last_cpu: int | None = None
        self._ticks_per_second = os.sysconf("SC_CLK_TCK")

    @property
    def pidfile(self) -> Path:
        return self._actuator.pidfile

    def _cpu_percent(self, workers: list[int]) -> int | None:
        """Average CPU of the workers since the previous sample, in percent of one core.

        One instance serves the capacity check and the API: a read within
        :data:`MIN_CPU_SAMPLE_SECONDS` of the last sample returns the last figure."""
        now = time.monotonic()
        with self._lock:
            previous = self._previous
            if previous is not None and now - previous[0] < MIN_CPU_SAMPLE_SECONDS:
                return self._last_cpu
            ticks = {pid: t for pid in workers if (t := _cpu_ticks(pid)) is not None}
            self._previous = (now, ticks)
            self._last_cpu = None
            if previous is None:
                return None
            then, before = previous
            common = [pid for pid in ticks if pid in before]
            if not common:
                return None
            used = sum(ticks[pid] - before[pid] for pid in common) / self._ticks_per_second
            self._last_cpu = round(100 * used / (now - then) / len(common))
            return self._last_cpu

    def workloads(self) -> list[WorkloadState]:
        try:
            master = self._actuator.master_pid()
        except ActuatorError as exc:
            raise OrchestratorError(str(exc)) from exc
        workers = child_pids(master)
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

    def close(self) -> None:
        """Nothing to release: every read goes to ``/proc``."""
