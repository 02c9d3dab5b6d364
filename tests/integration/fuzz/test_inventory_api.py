"""schemathesis on the inventory API's OpenAPI schema, against the real server and its real
PostgreSQL, Redis and stream worker: no 5xx, every response as the schema says (status code,
content type, body, headers), and afterwards nothing partial in the stores."""

from __future__ import annotations

from tests.integration.app.conftest import eventually
from tests.integration.fuzz.conftest import (
    STATEFUL_SETTINGS,
    InventoryTarget,
    fuzz_every_operation,
    links_of,
    sequences,
)
from tests.support.figures import Figures
from tests.support.ledger import stock_drift, stream_backlog

API = "inventory"


def test_every_operation_answers_as_documented(
    inventory_target: InventoryTarget, figures: Figures
) -> None:
    failures = fuzz_every_operation(inventory_target.schema, api=API, figures=figures)
    assert not failures, "\n\n".join(failures)


def test_create_read_update_sequences_answer_as_documented(
    inventory_target: InventoryTarget, figures: Figures
) -> None:
    machine = sequences(inventory_target.schema, api=API, figures=figures)
    print(links_of(machine))
    machine.run(settings=STATEFUL_SETTINGS)


def test_after_the_fuzzing_the_stores_hold_nothing_partial(
    inventory_target: InventoryTarget,
) -> None:
    """Every accepted movement is applied or dead-lettered (the stream settles), and every stock
    level adds up: on hand = the applied movements less the confirmed reservations, reserved =
    the held ones, never negative, never more reserved than on hand."""
    target = inventory_target
    eventually(
        lambda: stream_backlog(redis_url=target.redis_url, stream=target.stream) == 0,
        timeout=60,
        what="the worker to settle the stream",
    )
    assert stock_drift(lambda sql: target.databases.query(sql)) == []
