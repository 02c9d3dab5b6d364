"""Group commit of webhook deliveries: one transaction for many, each answered after the commit
that holds it, a failing delivery rolled back alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import alerts.batching
from alerts.batching import DeliveryBatcher
from controlplane.store.alerts import IncomingAlert, IncomingDelivery, list_alerts
from controlplane.store.database import Database

pytestmark = pytest.mark.unit


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


def delivery(fingerprint: str, receiver: str = "controlplane") -> IncomingDelivery:
    alert = IncomingAlert(
        fingerprint=fingerprint,
        status="firing",
        starts_at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
        labels={"alertname": "ErrorBudgetBurn1h5m", "slo": "read-latency"},
    )
    return IncomingDelivery(receiver=receiver, status="firing", alerts=(alert,))


async def store_all(batcher: DeliveryBatcher, deliveries: list[IncomingDelivery]) -> list[Any]:
    return await asyncio.gather(*(batcher.store(d) for d in deliveries), return_exceptions=True)


def test_concurrent_deliveries_share_commits_and_all_are_stored(database: Database) -> None:
    batcher = DeliveryBatcher(database)
    results = asyncio.run(store_all(batcher, [delivery(f"fp-{i}") for i in range(60)]))

    assert all(r.changes[0].outcome == "opened" for r in results)
    assert len({r.delivery_id for r in results}) == 60
    assert batcher.stored == 60
    assert batcher.commits < 60  # the fsync was shared
    with database.reader() as session:
        assert len(list_alerts(session, status="firing", limit=1000)) == 60


def test_the_same_alert_twice_in_one_batch_is_one_alert_and_one_repeat(database: Database) -> None:
    batcher = DeliveryBatcher(database)
    first, second = asyncio.run(store_all(batcher, [delivery("same"), delivery("same")]))
    assert first.changes[0].outcome == "opened"
    assert second.changes[0].outcome == "repeat"
    assert second.repeats == 1


def test_a_failing_delivery_is_rolled_back_alone(
    database: Database, monkeypatch: pytest.MonkeyPatch
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
    batcher = DeliveryBatcher(database)
    deliveries = [delivery("a"), delivery("b", receiver="broken"), delivery("c")]
    results = asyncio.run(store_all(batcher, deliveries))

    assert isinstance(results[1], RuntimeError)
    assert results[0].changes[0].outcome == "opened"
    assert results[2].changes[0].outcome == "opened"
    with database.reader() as session:
        stored = {a.fingerprint for a in list_alerts(session, limit=100)}
    assert stored == {"a", "c"}


def test_listeners_hear_of_each_batch_s_changes_before_its_answers(database: Database) -> None:
    heard: list[list[str]] = []
    batcher = DeliveryBatcher(
        database, notify=lambda changes: heard.append([c.fingerprint for c in changes])
    )
    results = asyncio.run(store_all(batcher, [delivery("x"), delivery("x"), delivery("y")]))

    assert [r.changes[0].outcome for r in results] == ["opened", "repeat", "opened"]
    # The repeat changed nothing; heard before gather returned, one call per committed batch.
    assert [fingerprint for batch in heard for fingerprint in batch] == ["x", "y"]
    assert 1 <= len(heard) <= 2


def test_a_failing_listener_loses_no_delivery(database: Database) -> None:
    def broken(changes: Any) -> None:
        raise RuntimeError("listener bug")

    batcher = DeliveryBatcher(database, notify=broken)
    results = asyncio.run(store_all(batcher, [delivery(f"fp-{i}") for i in range(5)]))

    assert all(r.changes[0].outcome == "opened" for r in results)
    with database.reader() as session:
        assert len(list_alerts(session, limit=100)) == 5
