"""Backups taken with pgBackRest; restore validations with their restore, target and timings.

Revision ID: 0003_backups
Revises: 0002_actions
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from controlplane.store.models import UTCDateTime

revision: str = "0003_backups"
down_revision: str | None = "0002_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

RESTORE_COLUMNS = (
    ("kind", sa.String(32)),
    ("run_id", sa.String(64)),
    ("started_at", UTCDateTime()),
    ("target", sa.Text()),
    ("backup_set", sa.String(100)),
    ("duration_s", sa.Float()),
    ("restore_s", sa.Float()),
    ("recovery_s", sa.Float()),
    ("validation_s", sa.Float()),
    ("reached_at", UTCDateTime()),
    ("target_at", UTCDateTime()),
    ("error", sa.Text()),
)


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("database", sa.String(200), nullable=False),
        sa.Column("stanza", sa.String(200), nullable=False),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("requested_type", sa.String(8), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("delta_bytes", sa.BigInteger(), nullable=True),
        sa.Column("repo_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("repo_delta_bytes", sa.BigInteger(), nullable=True),
        sa.Column("wal_start", sa.String(40), nullable=True),
        sa.Column("wal_stop", sa.String(40), nullable=True),
        sa.Column("lsn_start", sa.String(40), nullable=True),
        sa.Column("lsn_stop", sa.String(40), nullable=True),
        sa.Column("prior", sa.String(100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("details", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_backups"),
    )
    op.create_index("ix_backups_database_finished_at", "backups", ["database", "finished_at"])
    with op.batch_alter_table("restore_validations") as batch:
        for name, kind in RESTORE_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("restore_validations") as batch:
        for name, _ in reversed(RESTORE_COLUMNS):
            batch.drop_column(name)
    op.drop_index("ix_backups_database_finished_at", table_name="backups")
    op.drop_table("backups")
