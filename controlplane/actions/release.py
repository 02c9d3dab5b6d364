"""Scale-in: giving back what the engine's scale-outs added (pure, no I/O).

The burn signals only ever add replicas (``recommend.py``); what they added is given back once
every burn signal of the service has stayed under its target for the stabilisation window
(``scale_in_after``). Where it goes back to depends on what the scale-outs changed:

* an HPA's ``minReplicas`` (``via: hpa-bounds``): back to the floor — on Kubernetes the capacity
  policy's minimum, which the HPA carries when nobody raised it. The HPA then decides the
  Deployment's size from CPU again, at its own pace (its downscale stabilisation);
* a replica count (gunicorn workers, a Deployment's ``scale`` without an HPA): back to what ran
  before the first of the scale-outs, never below the floor.

Each scale-in removes at most the policy's ``max_step`` (the next step after its cooldown), and
the outstanding raise is read from the audit log, so a restarted or new leader gives back what
an earlier one added.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controlplane.store.audit import StoredAuditEntry

__all__ = [
    "HPA_BOUNDS",
    "Bounds",
    "Raise",
    "combined_bounds",
    "outstanding_raise",
    "release_step",
    "restore_target",
]

#: A replica range, (minimum, maximum).
Bounds = tuple[int, int]

#: How a scale changed an HPA's bounds instead of a replica count (``ScaleResult.via``).
HPA_BOUNDS = "hpa-bounds"


@dataclass(frozen=True, kw_only=True)
class Raise:
    """The engine's scale-outs of a service that were not given back yet."""

    #: The first of them (the audit decision), when it ran, what ran before it and what it changed.
    decision_id: str
    at: datetime
    before: int
    via: str


def combined_bounds(policy: Bounds, system: Bounds | None) -> Bounds:
    """The replica range both the action policy and the orchestrator allow (Kubernetes: the
    capacity policy's, which the HPAs carry; None: the action policy's alone). Should they not
    overlap, the orchestrator's range wins: it is what the cluster is held to, and what the
    capacity check reports drift from."""
    if system is None:
        return policy
    low, high = max(policy[0], system[0]), min(policy[1], system[1])
    return (low, high) if low <= high else system


def _scale(entry: StoredAuditEntry, service: str) -> dict[str, Any] | None:
    """The actuator's result of a scaling decision of ``service`` that changed something."""
    if (
        entry.action not in ("scale_out", "scale_in")
        or entry.decision != "taken"
        or entry.dry_run
        or entry.evidence.get("service") != service
    ):
        return None
    result = entry.evidence.get("result")
    return result if isinstance(result, dict) and "after" in result else None


def outstanding_raise(entries: Iterable[StoredAuditEntry], service: str) -> Raise | None:
    """What the engine's scale-outs of ``service`` added and no scale-in gave back, from audit
    entries newest first: the scale-outs after the last scale-in that reached its target (a step
    of a release that stopped short leaves the raise standing)."""
    first: StoredAuditEntry | None = None
    for entry in entries:
        result = _scale(entry, service)
        if result is None:
            continue
        if entry.action == "scale_in":
            release = entry.evidence.get("release")
            target = release.get("target") if isinstance(release, dict) else None
            if target is None or int(result["after"]) <= int(target):
                break
            continue
        first = entry
    if first is None:
        return None
    result = first.evidence["result"]
    return Raise(
        decision_id=first.decision_id,
        at=first.at,
        before=int(result["before"]),
        via=str(result.get("via", "")),
    )


def restore_target(raised: Raise, *, floor: int) -> int:
    """Where a scale-in brings the service back: an HPA's minimum to the floor, a replica count
    to what ran before the first scale-out (never below the floor)."""
    return floor if raised.via == HPA_BOUNDS else max(floor, raised.before)


def release_step(*, current: int, target: int, max_step: int | None) -> int:
    """One scale-in from ``current`` toward ``target``: at most ``max_step`` replicas at once."""
    if max_step is None:
        return target
    return max(target, current - max_step)
