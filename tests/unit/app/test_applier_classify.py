"""How the worker reacts to database errors: retry now, wait, or isolate a poison movement."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from app.worker.applier import classify


class FakeDbError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def wrapped(sqlstate: str | None) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("stmt", {}, FakeDbError(sqlstate))


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("40P01", "retry"),  # deadlock
        ("23505", "retry"),  # another worker recorded the key first
        ("08006", "unavailable"),  # connection failure
        ("57P01", "unavailable"),  # admin shutdown
        ("25006", "unavailable"),  # read-only transaction: a standby
        ("23503", "poison"),  # foreign key
        ("23514", "poison"),  # check constraint
        ("22003", "poison"),  # numeric out of range
    ],
)
def test_sqlstates(sqlstate: str, kind: str) -> None:
    assert classify(wrapped(sqlstate)) == kind


def test_a_lost_connection_without_sqlstate_is_unavailable() -> None:
    assert classify(psycopg.OperationalError("server closed the connection")) == "unavailable"
    assert classify(ValueError("bug")) == "poison"
