"""PostgreSQL tables (SQLAlchemy Core metadata; the Alembic migrations create the same schema).

Natural keys: an item is its SKU, a warehouse its code. ``stock_levels`` holds one row per
(SKU, warehouse); its CHECK constraints make "available never negative" a property of the database,
so no code path and no concurrency can break it. ``version`` comes from one sequence, so a higher
version is always a newer state of that row (the cache uses it to refuse stale fills).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    Table,
    Text,
    Uuid,
    func,
    text,
)

metadata = MetaData()

stock_version_seq = Sequence("stock_version_seq", metadata=metadata)

MOVEMENT_KINDS = ("receive", "ship", "transfer", "adjust")
RESERVATION_STATUSES = ("held", "confirmed", "released", "expired")

warehouses = Table(
    "warehouses",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

items = Table(
    "items",
    metadata,
    Column("sku", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("unit", Text, nullable=False, server_default=text("'each'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("sku", Text, ForeignKey("items.sku"), nullable=False),
    Column("warehouse", Text, ForeignKey("warehouses.code"), nullable=False),
    Column("on_hand", BigInteger, nullable=False, server_default=text("0")),
    Column("reserved", BigInteger, nullable=False, server_default=text("0")),
    Column("version", BigInteger, nullable=False, server_default=stock_version_seq.next_value()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sku", "warehouse", name="stock_levels_pkey"),
    CheckConstraint("on_hand >= 0", name="stock_on_hand_not_negative"),
    CheckConstraint("reserved >= 0", name="stock_reserved_not_negative"),
    CheckConstraint("reserved <= on_hand", name="stock_available_not_negative"),
    Index("stock_levels_warehouse_idx", "warehouse", "sku"),
)

_kind_check = "kind IN ('receive', 'ship', 'transfer', 'adjust')"

movements = Table(
    "movements",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("sku", Text, ForeignKey("items.sku"), nullable=False),
    Column("warehouse", Text, ForeignKey("warehouses.code"), nullable=False),
    Column("to_warehouse", Text, ForeignKey("warehouses.code"), nullable=True),
    Column("quantity", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("trace_id", Text, nullable=True),
    CheckConstraint(_kind_check, name="movements_kind"),
    Index("movements_sku_applied_idx", "sku", "applied_at"),
)

dead_letters = Table(
    "movement_dead_letters",
    metadata,
    Column("movement_id", Uuid, primary_key=True),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("warehouse", Text, nullable=False),
    Column("to_warehouse", Text, nullable=True),
    Column("quantity", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("deliveries", Integer, nullable=False, server_default=text("1")),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("trace_id", Text, nullable=True),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("idempotency_key", Text, nullable=True, unique=True),
    Column("sku", Text, nullable=False),
    Column("warehouse", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'held'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("quantity > 0", name="reservations_quantity_positive"),
    CheckConstraint(
        "status IN ('held', 'confirmed', 'released', 'expired')", name="reservations_status"
    ),
    Index(
        "reservations_held_expiry_idx",
        "expires_at",
        postgresql_where=text("status = 'held'"),
    ),
    Index("reservations_sku_idx", "sku", "warehouse"),
)

#: Baseline of the ingest benchmark: one INSERT per request, nothing else.
bench_per_row_movements = Table(
    "bench_per_row_movements",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("warehouse", Text, nullable=False),
    Column("to_warehouse", Text, nullable=True),
    Column("quantity", BigInteger, nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
