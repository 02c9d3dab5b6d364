"""Alembic migrations of the inventory schema."""
