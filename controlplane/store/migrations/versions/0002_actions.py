"""Actions: trigger keys on the audit log, the kill switch, drills and restore validations.

Revision ID: 0002_actions
Revises: 0001_initial
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from controlplane.store.models import UTCDateTime

revision: str = "0002_actions"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("trigger_key", sa.String(300), nullable=True))
    op.create_index("uq_audit_log_trigger_key", "audit_log", ["trigger_key"], unique=True)

    op.create_table(
        "control_flags",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_control_flags"),
    )

    op.create_table(
        "drills",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("database", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("measured_rto_s", sa.Float(), nullable=False),
        sa.Column("measured_rpo_s", sa.Float(), nullable=True),
        sa.Column("lost_acknowledged_writes", sa.Integer(), nullable=True),
        sa.Column("acknowledged_writes", sa.Integer(), nullable=True),
        sa.Column("details", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drills"),
    )
    op.create_index("ix_drills_database_finished_at", "drills", ["database", "finished_at"])

    op.create_table(
        "restore_validations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("database", sa.String(200), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("details", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_restore_validations"),
    )
    op.create_index(
        "ix_restore_validations_database_finished_at",
        "restore_validations",
        ["database", "finished_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_restore_validations_database_finished_at", table_name="restore_validations")
    op.drop_table("restore_validations")
    op.drop_index("ix_drills_database_finished_at", table_name="drills")
    op.drop_table("drills")
    op.drop_table("control_flags")
    op.drop_index("uq_audit_log_trigger_key", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("trigger_key")
