"""Leader lease with an expiry; the token under which an action's execution was claimed.

Revision ID: 0004_leader_lease_ttl
Revises: 0003_backups
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.models import UTCDateTime

revision: str = "0004_leader_lease_ttl"
down_revision: str | None = "0003_backups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("leader_lease") as batch:
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("holder_session", sa.String(200), nullable=True))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("executed_token", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("executed_token")
    with op.batch_alter_table("leader_lease") as batch:
        batch.drop_column("holder_session")
        batch.drop_column("expires_at")
