"""Data shapes: ``tables`` (PostgreSQL) and one module of API models per resource."""
