"""DR checks: replication, restore validation and drills against the DR policy (pure, no I/O).

Findings (kind → when):

* ``dr.replica_missing`` — fewer streaming replicas than the policy expects.
* ``dr.replication_lag`` — a replica's replay lag (time) is above the tier's RPO; the byte lag
  is part of the evidence. A replica whose replay lag PostgreSQL reports as NULL with zero bytes
  behind is idle and caught up (lag 0); NULL with bytes behind is treated as unknown, not zero.
* ``dr.restore_validation_stale`` — no restore validation, or the last is older than allowed.
* ``dr.drill_stale`` — no failover drill, or the last is older than allowed.
* ``dr.drill_rto_exceeded`` — the last drill's measured RTO is above the tier's target.
* ``dr.drill_rpo_exceeded`` — the last drill lost more data (time) than the tier's RPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.targets.findings import Finding
from controlplane.targets.policy import DatabasePolicy, DRPolicy


@dataclass(frozen=True, kw_only=True)
class ReplicaStatus:
    """One row of ``pg_stat_replication`` as the primary reports it."""

    name: str
    client_addr: str | None
    state: str
    lag_bytes: int | None
    replay_lag: timedelta | None

    @property
    def effective_lag(self) -> timedelta | None:
        if self.replay_lag is not None:
            return self.replay_lag
        if self.lag_bytes == 0:
            return timedelta(0)
        return None


@dataclass(frozen=True, kw_only=True)
class DrillRecord:
    database: str
    finished_at: datetime
    measured_rto: timedelta
    measured_rpo: timedelta | None
    succeeded: bool


@dataclass(frozen=True, kw_only=True)
class RestoreValidation:
    database: str
    finished_at: datetime
    succeeded: bool


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _replication(
    database: DatabasePolicy, rpo: timedelta, replicas: Sequence[ReplicaStatus]
) -> list[Finding]:
    subject = f"database/{database.name}"
    findings: list[Finding] = []
    streaming = [r for r in replicas if r.state == "streaming"]
    if len(streaming) < database.replicas:
        findings.append(
            Finding(
                kind="dr.replica_missing",
                subject=subject,
                severity="critical",
                summary=f"{database.name}: {len(streaming)} of {database.replicas} streaming "
                "replica(s) connected",
                evidence={
                    "expected": database.replicas,
                    "streaming": [r.name for r in streaming],
                    "other_states": {r.name: r.state for r in replicas if r.state != "streaming"},
                },
            )
        )
    for replica in streaming:
        lag = replica.effective_lag
        if lag is None or lag > rpo:
            shown = "unknown" if lag is None else f"{lag.total_seconds():.1f} s"
            findings.append(
                Finding(
                    kind="dr.replication_lag",
                    subject=f"{subject}/replica/{replica.name}",
                    severity="critical" if lag is not None else "warning",
                    summary=f"{database.name}: replica {replica.name} replays {shown} behind; "
                    f"the {database.tier} RPO is {rpo.total_seconds():.0f} s",
                    evidence={
                        "replay_lag_s": _seconds(replica.replay_lag),
                        "lag_bytes": replica.lag_bytes,
                        "rpo_s": rpo.total_seconds(),
                        "client_addr": replica.client_addr,
                    },
                )
            )
    return findings


def check_dr(
    policy: DRPolicy,
    *,
    now: datetime,
    replicas: dict[str, Sequence[ReplicaStatus]],
    drills: Sequence[DrillRecord] = (),
    restores: Sequence[RestoreValidation] = (),
) -> list[Finding]:
    """Every DR finding at ``now``.

    ``replicas`` maps a database of the policy to the rows its primary reports; a database
    missing from the map is not checked for replication (its primary could not be read, which
    the caller reports as a source error, not as "no replicas").
    """
    spec = policy.spec
    findings: list[Finding] = []
    for database in spec.databases:
        targets = spec.tiers[database.tier]
        subject = f"database/{database.name}"
        if database.name in replicas:
            findings.extend(_replication(database, targets.rpo, replicas[database.name]))

        validations = sorted(
            (r for r in restores if r.database == database.name and r.succeeded),
            key=lambda r: r.finished_at,
        )
        allowed = spec.backups.restore_validation_max_age
        last_restore = validations[-1].finished_at if validations else None
        if last_restore is None or now - last_restore > allowed:
            findings.append(
                Finding(
                    kind="dr.restore_validation_stale",
                    subject=subject,
                    severity="warning",
                    summary=f"{database.name}: "
                    + (
                        "no successful restore validation on record"
                        if last_restore is None
                        else f"last successful restore validation {last_restore.isoformat()}"
                    )
                    + f" (allowed age {allowed.days} d)",
                    evidence={
                        "last_validation": None
                        if last_restore is None
                        else last_restore.isoformat(),
                        "max_age_s": allowed.total_seconds(),
                    },
                )
            )

        history = sorted(
            (d for d in drills if d.database == database.name), key=lambda d: d.finished_at
        )
        last = history[-1] if history else None
        max_age = spec.drills.max_age
        if last is None or now - last.finished_at > max_age:
            findings.append(
                Finding(
                    kind="dr.drill_stale",
                    subject=subject,
                    severity="warning",
                    summary=f"{database.name}: "
                    + (
                        "no failover drill on record"
                        if last is None
                        else f"last failover drill {last.finished_at.isoformat()}"
                    )
                    + f" (allowed age {max_age.days} d)",
                    evidence={
                        "last_drill": None if last is None else last.finished_at.isoformat(),
                        "max_age_s": max_age.total_seconds(),
                    },
                )
            )
        if last is not None and (not last.succeeded or last.measured_rto > targets.rto):
            findings.append(
                Finding(
                    kind="dr.drill_rto_exceeded",
                    subject=subject,
                    severity="critical",
                    summary=f"{database.name}: last drill "
                    + (
                        "failed"
                        if not last.succeeded
                        else f"recovered in {last.measured_rto.total_seconds():.1f} s"
                    )
                    + f"; the {database.tier} RTO is {targets.rto.total_seconds():.0f} s",
                    evidence={
                        "measured_rto_s": last.measured_rto.total_seconds(),
                        "rto_s": targets.rto.total_seconds(),
                        "succeeded": last.succeeded,
                        "finished_at": last.finished_at.isoformat(),
                    },
                )
            )
        if last is not None and last.measured_rpo is not None and last.measured_rpo > targets.rpo:
            findings.append(
                Finding(
                    kind="dr.drill_rpo_exceeded",
                    subject=subject,
                    severity="critical",
                    summary=f"{database.name}: last drill lost "
                    f"{last.measured_rpo.total_seconds():.1f} s of writes; the {database.tier} "
                    f"RPO is {targets.rpo.total_seconds():.0f} s",
                    evidence={
                        "measured_rpo_s": last.measured_rpo.total_seconds(),
                        "rpo_s": targets.rpo.total_seconds(),
                    },
                )
            )
    return findings
