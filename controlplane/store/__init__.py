"""The control plane store: SQLAlchemy 2 models, Alembic migrations and repository functions.

SQLite is the embedded default, PostgreSQL the production database; the same migrations run on
both. Open it with :class:`~controlplane.store.database.Database` and call the repository
functions of ``evaluations``, ``findings``, ``alerts``, ``audit``, ``tokens`` and ``leases``
inside ``Database.writer()`` / ``Database.reader()`` sessions.
"""

from controlplane.store.database import Database

__all__ = ["Database"]
