"""Inventory schema: warehouses, items, stock levels, movements, dead letters, reservations.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.execute("CREATE SEQUENCE stock_version_seq")
    op.create_table(
        "warehouses",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    )
    op.create_table(
        "items",
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("unit", sa.Text, nullable=False, server_default=sa.text("'each'")),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    )
    op.create_table(
        "stock_levels",
        sa.Column("sku", sa.Text, sa.ForeignKey("items.sku"), nullable=False),
        sa.Column("warehouse", sa.Text, sa.ForeignKey("warehouses.code"), nullable=False),
        sa.Column("on_hand", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "version",
            sa.BigInteger,
            nullable=False,
            server_default=sa.text("nextval('stock_version_seq')"),
        ),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("sku", "warehouse", name="stock_levels_pkey"),
        sa.CheckConstraint("on_hand >= 0", name="stock_on_hand_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="stock_reserved_not_negative"),
        sa.CheckConstraint("reserved <= on_hand", name="stock_available_not_negative"),
    )
    op.create_index("stock_levels_warehouse_idx", "stock_levels", ["warehouse", "sku"])
    op.create_table(
        "movements",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, sa.ForeignKey("items.sku"), nullable=False),
        sa.Column("warehouse", sa.Text, sa.ForeignKey("warehouses.code"), nullable=False),
        sa.Column("to_warehouse", sa.Text, sa.ForeignKey("warehouses.code"), nullable=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("accepted_at", TZ, nullable=False),
        sa.Column("applied_at", TZ, nullable=False, server_default=NOW),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.CheckConstraint(
            "kind IN ('receive', 'ship', 'transfer', 'adjust')", name="movements_kind"
        ),
    )
    op.create_index("movements_sku_applied_idx", "movements", ["sku", "applied_at"])
    op.create_table(
        "movement_dead_letters",
        sa.Column("movement_id", sa.Uuid, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse", sa.Text, nullable=False),
        sa.Column("to_warehouse", sa.Text, nullable=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("accepted_at", TZ, nullable=False),
        sa.Column("failed_at", TZ, nullable=False, server_default=NOW),
        sa.Column("trace_id", sa.Text, nullable=True),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=True, unique=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'held'")),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.CheckConstraint("quantity > 0", name="reservations_quantity_positive"),
        sa.CheckConstraint(
            "status IN ('held', 'confirmed', 'released', 'expired')", name="reservations_status"
        ),
    )
    op.create_index(
        "reservations_held_expiry_idx",
        "reservations",
        ["expires_at"],
        postgresql_where=sa.text("status = 'held'"),
    )
    op.create_index("reservations_sku_idx", "reservations", ["sku", "warehouse"])
    op.create_table(
        "bench_per_row_movements",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse", sa.Text, nullable=False),
        sa.Column("to_warehouse", sa.Text, nullable=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("accepted_at", TZ, nullable=False, server_default=NOW),
    )


def downgrade() -> None:
    for table in (
        "bench_per_row_movements",
        "reservations",
        "movement_dead_letters",
        "movements",
        "stock_levels",
        "items",
        "warehouses",
    ):
        op.drop_table(table)
    op.execute("DROP SEQUENCE stock_version_seq")
