"""The actuator Protocol: read the real replica count, change it, read it back, and read how
many of the replicas are ready (what a scale-out's verification compares with what it asked)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from controlplane.core.errors import ControlPlaneError


class ActuatorError(ControlPlaneError):
    """The actuator could not read or change the replica count."""


class ActuatorFenced(ActuatorError):
    """The caller stopped being allowed to act (it lost the leadership) before a change."""


#: Asked right before each change an actuator makes: whether the caller may still act (the
#: leader's lease still valid on its own clock). A leader that froze or was cut off mid-action
#: makes no further change once it resumes.
Guard = Callable[[], bool]


@dataclass(frozen=True, kw_only=True)
class ScaleResult:
    service: str
    before: int
    requested: int
    after: int
    #: What was changed: "workers" (local), "hpa-bounds" or "deployment-scale" (Kubernetes).
    via: str

    @property
    def reached(self) -> bool:
        return self.after == self.requested


class Actuator(Protocol):
    def current_replicas(self, service: str) -> int:
        """The replica count running now, read from the system (never from memory)."""

    def ready_replicas(self, service: str) -> int:
        """The replicas ready to serve now, read from the system: fewer than asked means the
        orchestrator could not (yet) run what a scale asked for."""

    def scale(self, service: str, *, replicas: int, guard: Guard | None = None) -> ScaleResult:
        """Ask for ``replicas`` (an absolute count: asking twice is asking once) and report what
        is running afterwards; ``guard`` is asked before each change (:class:`ActuatorFenced`
        when it says no)."""
