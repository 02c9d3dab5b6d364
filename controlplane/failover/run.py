"""Detect a failed primary and fail over: choose → fence → promote, with every instant recorded.

``watch_primary`` probes the primary every ``interval`` and declares it failed after
``threshold`` consecutive failed probes (a timeout, a refused connection, or a server that is
no longer a writable primary). While the primary is healthy it keeps the last WAL position and
the last ``pg_stat_replication`` rows, which bound the data loss of a promotion later.

``fail_over`` never promotes before the old primary is fenced: if fencing fails, nothing is
promoted (two writable primaries are worse than a longer outage).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from controlplane.core.errors import ControlPlaneError
from controlplane.failover.fencing import Fencer, FencingFailed
from controlplane.failover.nodes import (
    Node,
    NodeStatus,
    NodeUnreachable,
    PromotionFailed,
    ReplicationSample,
    probe,
    promote,
    replication_samples,
)
from controlplane.failover.plan import Choice, choose_candidate


@dataclass(frozen=True, kw_only=True)
class Detection:
    primary: Node
    first_failed_at: datetime
    detected_at: datetime
    failed_probes: int
    last_error: str
    last_primary_lsn: int | None
    last_samples: dict[str, ReplicationSample]


@dataclass
class Watch:
    """State of one watch: the last healthy view of the primary."""

    last_primary_lsn: int | None = None
    last_samples: dict[str, ReplicationSample] = field(default_factory=dict)
    healthy_probes: int = 0


def watch_primary(
    primary: Node,
    *,
    interval: float = 0.5,
    threshold: int = 3,
    probe_timeout: float = 1.0,
    max_wait: float | None = None,
    stop: threading.Event | None = None,
    state: Watch | None = None,
) -> Detection | None:
    """Probe until ``threshold`` consecutive failures (→ Detection) or ``max_wait`` / ``stop``.

    ``state`` (optional) is updated in place after each healthy probe, for observers.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    state = state if state is not None else Watch()
    failures = 0
    first_failed_at: datetime | None = None
    last_error = ""
    deadline = None if max_wait is None else time.monotonic() + max_wait
    while (deadline is None or time.monotonic() < deadline) and not (stop and stop.is_set()):
        started = time.monotonic()
        try:
            status = probe(primary, timeout=probe_timeout)
            if status.in_recovery:
                raise NodeUnreachable(f"{primary.name} is in recovery: not a writable primary")
            samples = replication_samples(primary, timeout=probe_timeout)
        except NodeUnreachable as exc:
            failures += 1
            last_error = str(exc).splitlines()[0]
            if first_failed_at is None:
                first_failed_at = datetime.now(UTC)
            if failures >= threshold:
                return Detection(
                    primary=primary,
                    first_failed_at=first_failed_at,
                    detected_at=datetime.now(UTC),
                    failed_probes=failures,
                    last_error=last_error,
                    last_primary_lsn=state.last_primary_lsn,
                    last_samples=dict(state.last_samples),
                )
        else:
            failures, first_failed_at = 0, None
            state.last_primary_lsn = status.wal_lsn
            state.last_samples = {s.name: s for s in samples}
            state.healthy_probes += 1
        pause = interval - (time.monotonic() - started)
        if pause > 0:
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
    return None


@dataclass(frozen=True, kw_only=True)
class FailoverRecord:
    """Everything that happened, for the audit log and the DR findings."""

    primary: str
    candidate: str | None
    refused: str | None
    forced: bool
    first_failed_at: datetime
    detected_at: datetime
    fenced_at: datetime | None
    promoted_at: datetime | None
    #: WAL bytes the old primary had written that the promoted standby never received.
    lost_bytes: int | None
    candidate_lag: timedelta | None
    synchronous: bool
    considered: tuple[str, ...]

    @property
    def promoted(self) -> bool:
        return self.promoted_at is not None

    def evidence(self) -> dict[str, object]:
        return {
            "primary": self.primary,
            "candidate": self.candidate,
            "refused": self.refused,
            "forced": self.forced,
            "first_failed_at": self.first_failed_at.isoformat(),
            "detected_at": self.detected_at.isoformat(),
            "fenced_at": None if self.fenced_at is None else self.fenced_at.isoformat(),
            "promoted_at": None if self.promoted_at is None else self.promoted_at.isoformat(),
            "lost_bytes": self.lost_bytes,
            "candidate_lag_s": None
            if self.candidate_lag is None
            else self.candidate_lag.total_seconds(),
            "synchronous": self.synchronous,
            "considered": list(self.considered),
        }


class FailoverAborted(ControlPlaneError):
    """The failover stopped part-way (fencing or promotion failed); nothing unsafe was done."""


def _reachable(standbys: Sequence[Node]) -> list[NodeStatus]:
    statuses = []
    for node in standbys:
        try:
            statuses.append(probe(node, timeout=2))
        except NodeUnreachable:
            continue
    return statuses


def plan_failover(
    detection: Detection, *, standbys: Sequence[Node], rpo: timedelta, force: bool = False
) -> Choice:
    return choose_candidate(
        _reachable(standbys),
        last_primary_lsn=detection.last_primary_lsn,
        last_samples=detection.last_samples,
        rpo=rpo,
        force=force,
    )


def fail_over(
    detection: Detection,
    *,
    standbys: Sequence[Node],
    fencer: Fencer,
    rpo: timedelta,
    force: bool = False,
    choice: Choice | None = None,
) -> FailoverRecord:
    """Promote the best standby after fencing the failed primary (or record why not)."""
    plan = choice or plan_failover(detection, standbys=standbys, rpo=rpo, force=force)
    candidate = plan.candidate
    base = {
        "primary": detection.primary.name,
        "forced": force,
        "first_failed_at": detection.first_failed_at,
        "detected_at": detection.detected_at,
        "considered": tuple(c.status.node.name for c in plan.considered),
    }
    if candidate is None or plan.refused is not None:
        return FailoverRecord(
            **base,  # type: ignore[arg-type]
            candidate=None if candidate is None else candidate.status.node.name,
            refused=plan.refused,
            fenced_at=None,
            promoted_at=None,
            lost_bytes=None if candidate is None else candidate.lag_bytes,
            candidate_lag=None if candidate is None else candidate.lag_time,
            synchronous=False if candidate is None else candidate.synchronous,
        )
    new_primary = candidate.status.node
    try:
        fencer.fence(detection.primary, new_primary=new_primary)
    except (FencingFailed, OSError) as exc:
        raise FailoverAborted(f"fencing {detection.primary.name} failed: {exc}") from exc
    fenced_at = datetime.now(UTC)
    try:
        promote(new_primary)
    except (PromotionFailed, NodeUnreachable) as exc:
        raise FailoverAborted(f"promoting {new_primary.name} failed: {exc}") from exc
    return FailoverRecord(
        **base,  # type: ignore[arg-type]
        candidate=new_primary.name,
        refused=None,
        fenced_at=fenced_at,
        promoted_at=datetime.now(UTC),
        lost_bytes=candidate.lag_bytes,
        candidate_lag=candidate.lag_time,
        synchronous=candidate.synchronous,
    )
