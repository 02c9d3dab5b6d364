"""SQLite writers of one process queue for their turn in Python (``WriteTurns``) instead of
polling SQLite's lock: the next writer goes as soon as the one before it has committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from controlplane.store.database import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path / 'turns.db'}")
    _create_table(db)
    yield db
    db.dispose()


def _create_table(db: Database) -> None:
    with db.write_connection() as connection:
        connection.execute(text("CREATE TABLE rows (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"))


def _insert(db: Database, who: str) -> None:
    with db.writer() as session:
        session.execute(text("INSERT INTO rows (who) VALUES (:who)"), {"who": who})


def _rows(db: Database) -> list[str]:
    with db.reader() as session:
        return list(session.execute(text("SELECT who FROM rows ORDER BY id")).scalars())


def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g} s: {what}")
        time.sleep(0.01)


def _thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _holding(
    db: Database, who: str
) -> tuple[threading.Thread, list[BaseException], threading.Event]:
    """A thread that has written ``who`` and keeps its transaction open until the event is set."""
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.writer() as session:
            session.execute(text("INSERT INTO rows (who) VALUES (:who)"), {"who": who})
            inside.set()
            release.wait(10)

    thread, errors = _thread(hold)
    assert inside.wait(10)
    return thread, errors, release


def test_a_second_writer_queues_for_its_turn_and_goes_once_the_first_commits(
    database: Database,
) -> None:
    assert database.turns is not None
    first_thread, first_errors, release = _holding(database, "first")
    second_thread, second_errors = _thread(lambda: _insert(database, "second"))
    _until(lambda: database.turns is not None and database.turns.waiting == 1, "second waits")
    assert second_thread.is_alive()
    assert _rows(database) == []  # readers are not held up, and see nothing uncommitted
    release.set()
    first_thread.join(10)
    second_thread.join(10)
    assert not first_errors
    assert not second_errors
    assert _rows(database) == ["first", "second"]
    assert database.turns.waiting == 0


def test_a_writes_first_transaction_takes_its_turn_at_its_first_statement(
    database: Database,
) -> None:
    opened, go_on = threading.Event(), threading.Event()

    def late_writer() -> None:
        with database.writer(writes_first=True) as session:
            opened.set()
            go_on.wait(10)
            session.execute(text("INSERT INTO rows (who) VALUES ('writes first')"))

    thread, errors = _thread(late_writer)
    assert opened.wait(10)
    # Its transaction is open but has not written: another writer goes ahead of it.
    other, other_errors = _thread(lambda: _insert(database, "other"))
    other.join(10)
    assert not other.is_alive()
    assert not other_errors
    go_on.set()
    thread.join(10)
    assert not errors
    assert _rows(database) == ["other", "writes first"]


def test_a_failed_transaction_gives_its_turn_back(database: Database) -> None:
    def failing() -> None:
        with database.writer() as session:
            session.execute(text("INSERT INTO rows (who) VALUES ('rolled back')"))
            raise RuntimeError("the caller failed")

    with pytest.raises(RuntimeError):
        failing()
    thread, errors = _thread(lambda: _insert(database, "next"))
    thread.join(10)  # the turn would otherwise be waited for until the busy timeout, 30 s
    assert not thread.is_alive()
    assert not errors
    assert _rows(database) == ["next"]


def test_a_turn_not_given_within_the_busy_timeout_fails_as_sqlite_would(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite:///{tmp_path / 'short.db'}", sqlite_busy_timeout=0.2)
    try:
        _create_table(database)
        thread, errors, release = _holding(database, "holder")
        try:
            with pytest.raises(OperationalError, match="database is locked"):
                _insert(database, "refused")
        finally:
            release.set()
            thread.join(10)
        assert not errors
        assert _rows(database) == ["holder"]
        _insert(database, "after")  # nothing left held
        assert _rows(database) == ["holder", "after"]
    finally:
        database.dispose()
