"""Group commit of webhook deliveries: one transaction for many, each answered after the commit
that holds it, a failing delivery rolled back alone; written in the event loop (SQLite's default)
or in a writer thread (PostgreSQL's), with the same outcomes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import alerts.batching
from alerts.batching import DeliveryBatcher
from controlplane.store.alerts import IncomingAlert, IncomingDelivery, list_alerts
from controlplane.store.database import Database

pytestmark = pytest.mark.unit


@pytest.fixture(params=[True, False], ids=["in-loop", "writer-thread"])
def in_loop(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def batcher_of(database: Database, in_loop: bool) -> Iterator[Callable[..., DeliveryBatcher]]:
    """Batchers on ``database`` in the mode under test (their writer threads stopped after)."""
    made: list[DeliveryBatcher] = []

    def make(**options: Any) -> DeliveryBatcher:
        made.append(DeliveryBatcher(database, in_loop=in_loop, **options))
        return made[-1]

    yield make
    for batcher in made:
        batcher.close()


def delivery(fingerprint: str, receiver: str = "controlplane") -> IncomingDelivery:
    alert = IncomingAlert(
        fingerprint=fingerprint,
        status="firing",
        starts_at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
        labels={"alertname": "ErrorBudgetBurn1h5m", "slo": "read-latency"},
    )
    return IncomingDelivery(receiver=receiver, status="firing", alerts=(alert,))


def writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "webhook-writer"}


async def store_all(batcher: DeliveryBatcher, deliveries: list[IncomingDelivery]) -> list[Any]:
    return await asyncio.gather(*(batcher.store(d) for d in deliveries), return_exceptions=True)


def test_concurrent_deliveries_share_commits_and_all_are_stored(
    database: Database, batcher_of: Callable[..., DeliveryBatcher]
) -> None:
    batcher = batcher_of()
    results = asyncio.run(store_all(batcher, [delivery(f"fp-{i}") for i in range(60)]))

    assert all(r.changes[0].outcome == "opened" for r in results)
    assert len({r.delivery_id for r in results}) == 60
    assert batcher.stored == 60
    assert batcher.commits < 60  # the fsync was shared
    with database.reader() as session:
        assert len(list_alerts(session, status="firing", limit=1000)) == 60


def test_the_same_alert_twice_in_one_batch_is_one_alert_and_one_repeat(
    database: Database, batcher_of: Callable[..., DeliveryBatcher]
) -> None:
    batcher = batcher_of()
    first, second = asyncio.run(store_all(batcher, [delivery("same"), delivery("same")]))
    assert first.changes[0].outcome == "opened"
    assert second.changes[0].outcome == "repeat"
    assert second.repeats == 1


def test_a_failing_delivery_is_rolled_back_alone(
    database: Database,
    batcher_of: Callable[..., DeliveryBatcher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = alerts.batching.record_delivery

    def record(session: Any, *, delivery: IncomingDelivery, received_at: datetime) -> Any:
        result = real(session, delivery=delivery, received_at=received_at)
        if delivery.receiver == "broken":
            raise RuntimeError("disk on fire")  # after its rows were written: must be undone
        return result

    real_many = alerts.batching.record_deliveries

    def record_many(session: Any, *, deliveries: list[tuple[IncomingDelivery, datetime]]) -> Any:
        results = real_many(session, deliveries=deliveries)
        if any(delivery.receiver == "broken" for delivery, _ in deliveries):
            raise RuntimeError("disk on fire")  # the whole batch's rows: must be undone
        return results

    monkeypatch.setattr(alerts.batching, "record_delivery", record)
    monkeypatch.setattr(alerts.batching, "record_deliveries", record_many)
    batcher = batcher_of()
    deliveries = [delivery("a"), delivery("b", receiver="broken"), delivery("c")]
    results = asyncio.run(store_all(batcher, deliveries))

    assert isinstance(results[1], RuntimeError)
    assert results[0].changes[0].outcome == "opened"
    assert results[2].changes[0].outcome == "opened"
    with database.reader() as session:
        stored = {a.fingerprint for a in list_alerts(session, limit=100)}
    assert stored == {"a", "c"}


def test_listeners_hear_of_each_batch_s_changes_before_its_answers(
    database: Database, batcher_of: Callable[..., DeliveryBatcher]
) -> None:
    heard: list[list[str]] = []
    batcher = batcher_of(notify=lambda changes: heard.append([c.fingerprint for c in changes]))
    results = asyncio.run(store_all(batcher, [delivery("x"), delivery("x"), delivery("y")]))

    assert [r.changes[0].outcome for r in results] == ["opened", "repeat", "opened"]
    # The repeat changed nothing; heard before gather returned, one call per committed batch.
    assert [fingerprint for batch in heard for fingerprint in batch] == ["x", "y"]
    assert 1 <= len(heard) <= 2


def test_a_failing_listener_loses_no_delivery(
    database: Database, batcher_of: Callable[..., DeliveryBatcher]
) -> None:
    def broken(changes: Any) -> None:
        raise RuntimeError("listener bug")

    batcher = batcher_of(notify=broken)
    results = asyncio.run(store_all(batcher, [delivery(f"fp-{i}") for i in range(5)]))

    assert all(r.changes[0].outcome == "opened" for r in results)
    with database.reader() as session:
        assert len(list_alerts(session, limit=100)) == 5


def test_sqlite_is_written_in_the_loop_without_a_thread(database: Database) -> None:
    threads = threading.active_count()
    batcher = DeliveryBatcher(database)
    assert batcher.in_loop  # SQLite: a local file, no hand-over to another thread
    assert threading.active_count() == threads


def test_the_loop_keeps_serving_while_another_thread_has_the_write_turn(
    database: Database,
) -> None:
    """An evaluation cycle's insert in another thread: the delivery waits for it (it is not
    written beside it), and the loop is not blocked meanwhile."""
    batcher = DeliveryBatcher(database, retry_s=0.005)
    holding = threading.Event()
    release = threading.Event()

    def other_writer() -> None:
        with database.write_connection():
            holding.set()
            release.wait(timeout=30)

    async def scenario() -> tuple[int, bool, Any]:
        other = threading.Thread(target=other_writer)
        other.start()
        assert await asyncio.to_thread(holding.wait, 30)
        stored = asyncio.ensure_future(batcher.store(delivery("late")))
        ticks = 0
        for _ in range(20):  # the loop goes on turning while the delivery waits
            await asyncio.sleep(0.005)
            ticks += 1
        waited = not stored.done()
        release.set()
        result = await asyncio.wait_for(stored, timeout=30)
        await asyncio.to_thread(other.join, 30)
        return ticks, waited, result

    ticks, waited, result = asyncio.run(scenario())

    assert ticks == 20
    assert waited
    assert batcher.retries > 0
    assert result.changes[0].outcome == "opened"
    with database.reader() as session:
        assert [a.fingerprint for a in list_alerts(session, limit=10)] == ["late"]


def test_closing_the_writer_thread_writes_what_was_queued(database: Database) -> None:
    writers_before = writer_threads()
    batcher = DeliveryBatcher(database, in_loop=False)
    assert len(writer_threads() - writers_before) == 1

    async def queue_then_close() -> Any:
        stored = asyncio.gather(*(batcher.store(delivery(f"q-{i}")) for i in range(5)))
        await asyncio.sleep(0)  # the five are queued
        await asyncio.to_thread(batcher.close)
        return await asyncio.wait_for(stored, timeout=30)

    results = asyncio.run(queue_then_close())

    assert [r.changes[0].outcome for r in results] == ["opened"] * 5
    assert writer_threads() == writers_before
