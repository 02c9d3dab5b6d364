"""Tables of the control plane store (SQLAlchemy 2 declarative models).

The same models serve SQLite (embedded default) and PostgreSQL (production); the Alembic
migrations in ``migrations/`` create exactly these tables (a test compares them). Timestamps are
stored in UTC and always come back timezone-aware, on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Alert",
    "AlertDelivery",
    "ApiToken",
    "AuditEntry",
    "BackupRun",
    "Base",
    "Finding",
    "LeaderLease",
    "SLOEvaluation",
    "UTCDateTime",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON on SQLite, JSONB on PostgreSQL.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")
#: 64-bit keys on PostgreSQL; INTEGER PRIMARY KEY (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases.

    PostgreSQL stores ``timestamptz``; SQLite has no timezone, so values are stored as naive UTC
    and get their timezone back when read. Naive datetimes are refused on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }


class SLOEvaluation(Base):
    """One evaluation of one SLO at one instant (written by the evaluation loop)."""

    __tablename__ = "slo_evaluations"
    __table_args__ = (Index("ix_slo_evaluations_slo_id_at", "slo_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slo_id: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime]
    #: ``ok``, ``no_data``, ``insufficient_traffic``, ``error`` (source failed), ...
    state: Mapped[str] = mapped_column(String(32))
    sli: Mapped[float | None] = mapped_column(Float)
    objective: Mapped[float] = mapped_column(Float)
    budget_remaining: Mapped[float | None] = mapped_column(Float)
    #: window (``5m``, ``1h``, ...) -> burn rate, ``null`` where that window had no data.
    burn_rates: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    no_data_reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class Finding(Base):
    """Something a check found (target violated, budget burning, ...), open until resolved."""

    __tablename__ = "findings"
    __table_args__ = (
        # At most one open finding per (kind, subject); resolved ones are history.
        Index(
            "uq_findings_open_kind_subject",
            "kind",
            "subject",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_findings_last_seen", "last_seen"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None]


class Alert(Base):
    """One Alertmanager alert occurrence, identified by (fingerprint, starts_at).

    Its status moves from ``firing`` to ``resolved`` once (``closed_at`` set); a delivery that
    repeats a (fingerprint, starts_at, status) already recorded only bumps ``repeat_count``.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("fingerprint", "starts_at", name="uq_alerts_fingerprint_starts_at"),
        Index("ix_alerts_status_starts_at", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    ends_at: Mapped[datetime | None]
    alertname: Mapped[str] = mapped_column(String(200), default="")
    severity: Mapped[str | None] = mapped_column(String(32))
    labels: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    generator_url: Mapped[str] = mapped_column(Text, default="")
    receiver: Mapped[str] = mapped_column(String(200))
    group_key: Mapped[str] = mapped_column(Text, default="")
    first_received_at: Mapped[datetime]
    last_received_at: Mapped[datetime]
    repeat_count: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None]


class AlertDelivery(Base):
    """One webhook delivery as received (repeats included), with what it did to each alert."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    receiver: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    group_key: Mapped[str] = mapped_column(Text, default="")
    truncated_alerts: Mapped[int] = mapped_column(Integer, default=0)
    notification_reason: Mapped[str | None] = mapped_column(String(64))
    alert_count: Mapped[int] = mapped_column(Integer)
    changed_count: Mapped[int] = mapped_column(Integer)
    repeat_count: Mapped[int] = mapped_column(Integer)
    #: ``[{"alert_id", "fingerprint", "starts_at", "status", "outcome"}, ...]``
    outcomes: Mapped[list[Any]] = mapped_column(JSONDocument, default=list)
    #: The webhook body as parsed (all fields, unknown ones included).
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class AuditEntry(Base):
    """A decision of the action engine, taken or refused, with its evidence and outcome."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        # One decision per trigger and action: a repeated alert can never act twice.
        Index("uq_audit_log_trigger_key", "trigger_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(64), unique=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300))
    #: ``taken``, ``refused`` or ``pending`` (approval mode: waiting for an operator).
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    fencing_token: Mapped[int | None] = mapped_column(BigInteger)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_detail: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime | None]
    #: What caused the decision (``alert:<fingerprint>:<startsAt>:<action>``, ...); unique.
    trigger_key: Mapped[str | None] = mapped_column(String(300))
    #: The fencing token of the leader that claimed the execution (``outcome`` ``running``):
    #: a later leader resumes an execution claimed under an older token, never its own.
    executed_token: Mapped[int | None] = mapped_column(BigInteger)


class ControlFlag(Base):
    """A runtime switch shared by every replica (the action kill switch)."""

    __tablename__ = "control_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")


class DrillRun(Base):
    """A DR drill (switchover or failover under a write probe) and what it measured."""

    __tablename__ = "drills"
    __table_args__ = (Index("ix_drills_database_finished_at", "database", "finished_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    database: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)
    measured_rto_s: Mapped[float] = mapped_column(Float)
    measured_rpo_s: Mapped[float | None] = mapped_column(Float)
    lost_acknowledged_writes: Mapped[int | None] = mapped_column(Integer)
    acknowledged_writes: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class RestoreValidationRun(Base):
    """A restore of a backup into a scratch server, checked, and its outcome."""

    __tablename__ = "restore_validations"
    __table_args__ = (
        Index("ix_restore_validations_database_finished_at", "database", "finished_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    database: Mapped[str] = mapped_column(String(200))
    finished_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    #: ``backup`` (the newest backup set to a restore point) or ``point_in_time``.
    kind: Mapped[str | None] = mapped_column(String(32))
    #: The validation this restore belongs to (its restores share it).
    run_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None]
    target: Mapped[str | None] = mapped_column(Text)
    backup_set: Mapped[str | None] = mapped_column(String(100))
    #: Copying plus recovery until the server took connections: the restore's RTO.
    duration_s: Mapped[float | None] = mapped_column(Float)
    restore_s: Mapped[float | None] = mapped_column(Float)
    recovery_s: Mapped[float | None] = mapped_column(Float)
    validation_s: Mapped[float | None] = mapped_column(Float)
    #: The last transaction the restored copy replayed, and the instant asked for (time target).
    reached_at: Mapped[datetime | None]
    target_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class BackupRun(Base):
    """A backup the control plane took (or tried to) with pgBackRest, as pgBackRest described
    it: type, start / stop, sizes, WAL range and LSNs."""

    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_database_finished_at", "database", "finished_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    database: Mapped[str] = mapped_column(String(200))
    stanza: Mapped[str] = mapped_column(String(200))
    #: pgBackRest's label (``20261205-065804F``); null when the backup failed.
    label: Mapped[str | None] = mapped_column(String(100))
    #: ``full``, ``diff`` or ``incr``: what pgBackRest took (a diff without a full is a full).
    type: Mapped[str] = mapped_column(String(8))
    requested_type: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    #: The database's size, what this backup copied, and both in the repository (compressed).
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    delta_bytes: Mapped[int | None] = mapped_column(BigInteger)
    repo_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    repo_delta_bytes: Mapped[int | None] = mapped_column(BigInteger)
    wal_start: Mapped[str | None] = mapped_column(String(40))
    wal_stop: Mapped[str | None] = mapped_column(String(40))
    lsn_start: Mapped[str | None] = mapped_column(String(40))
    lsn_stop: Mapped[str | None] = mapped_column(String(40))
    #: The backup a differential or incremental one is based on.
    prior: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    #: The audited decision that took it.
    decision_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class ApiToken(Base):
    """An API bearer token: only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index(
            "uq_api_tokens_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LeaderLease(Base):
    """The lease of one leader election: its holder, its expiry (renewed by the holder) and a
    fencing counter incremented on every takeover."""

    __tablename__ = "leader_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    holder: Mapped[str | None] = mapped_column(String(200))
    acquired_at: Mapped[datetime | None]
    renewed_at: Mapped[datetime | None]
    #: The lease lapses at this time unless its holder renews it first.
    expires_at: Mapped[datetime | None]
    #: What lets a follower see that the holder died before the expiry (elector-specific).
    holder_session: Mapped[str | None] = mapped_column(String(200))
