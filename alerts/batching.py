"""Group commit for webhook deliveries: many deliveries, one transaction, one fsync.

Each request hands its delivery to :class:`DeliveryBatcher` and waits. One writer thread takes
every delivery queued so far (up to ``max_batch``), records them in one transaction, commits
once, and only then answers every waiting request. If a delivery fails, the batch is written
again with each delivery inside its own savepoint: the failing one is rolled back alone and its
request gets the error, the others are kept. So an acknowledged alert is still a
committed one; under load the commit (the fsync) is shared instead of paid per delivery, and a
burst of new alerts is written with multi-row inserts (``record_deliveries``).
Deliveries are recorded in arrival order, exactly as one-by-one storage would record them.

The waiting requests are woken with one call into their event loop per batch (not one per
delivery): under load each wake-up is a write to the loop's self-pipe and a turn of the loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from controlplane.store.alerts import (
    AlertChange,
    DeliveryResult,
    IncomingDelivery,
    record_deliveries,
    record_delivery,
)
from controlplane.store.database import Database

__all__ = ["DeliveryBatcher"]

logger = logging.getLogger(__name__)

_Item = tuple[IncomingDelivery, "asyncio.Future[DeliveryResult]"]
_Outcome = tuple["asyncio.Future[DeliveryResult]", "DeliveryResult | BaseException"]


class DeliveryBatcher:
    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 200,
        notify: Callable[[Sequence[AlertChange]], None] | None = None,
    ) -> None:
        self.database = database
        self.max_batch = max_batch
        #: Told the alerts each committed batch opened or closed (in delivery order, one call
        #: per batch), after the commit and before its requests are answered (a listener must
        #: be quick and must not raise).
        self.notify = notify
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="webhook-writer", daemon=True)
        self._thread.start()
        #: Transactions committed and deliveries stored (for tests and the benchmark).
        self.commits = 0
        self.stored = 0

    async def store(self, delivery: IncomingDelivery) -> DeliveryResult:
        """Record ``delivery``; returns after the transaction holding it has committed."""
        future: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        self._queue.put((delivery, future))
        return await future

    def _take(self) -> list[_Item]:
        batch = [self._queue.get()]
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            try:
                results = self._write(batch)
            except Exception as exc:  # the commit itself failed: nothing of the batch is stored
                logger.exception("storing %d webhook deliveries failed", len(batch))
                self._answer([(future, exc) for _, future in batch])
                continue
            changed = [
                change
                for result in results
                if not isinstance(result, BaseException)
                for change in result.changed
            ]
            if changed and self.notify is not None:
                try:
                    self.notify(changed)
                except Exception:  # the alerts are stored: a listener never fails them
                    logger.exception("an alert listener failed")
            self._answer(
                [(future, result) for (_, future), result in zip(batch, results, strict=True)]
            )

    @staticmethod
    def _answer(outcomes: list[_Outcome]) -> None:
        """Hand each waiting request its outcome: one call into each event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for future, outcome in outcomes:
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        for loop, mine in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, mine)
            except RuntimeError:  # that loop is closed: nobody waits for these answers
                logger.warning("%d webhook answers dropped: their event loop is closed", len(mine))

    def _write(self, batch: list[_Item]) -> list[DeliveryResult | BaseException]:
        """The batch in one transaction. First without savepoints (the usual case: every
        delivery is stored); if one fails, the transaction is rolled back whole and the batch
        written again with a savepoint per delivery, so only the failing ones are left out."""
        try:
            return self._write_all(batch)
        except Exception as exc:
            if len(batch) == 1:
                raise  # its own transaction: nothing else to keep
            logger.info("a batch of %d deliveries failed (%s); one by one", len(batch), exc)
        return self._write_each(batch)

    def _write_all(self, batch: list[_Item]) -> list[DeliveryResult | BaseException]:
        with self.database.write_connection() as connection:
            stored = record_deliveries(
                connection, deliveries=[(delivery, datetime.now(UTC)) for delivery, _ in batch]
            )
        self.commits += 1
        self.stored += len(stored)
        return list(stored)

    def _write_each(self, batch: list[_Item]) -> list[DeliveryResult | BaseException]:
        results: list[DeliveryResult | BaseException] = []
        with self.database.write_connection() as connection:
            for delivery, _ in batch:
                try:
                    with connection.begin_nested():
                        results.append(
                            record_delivery(
                                connection, delivery=delivery, received_at=datetime.now(UTC)
                            )
                        )
                except Exception as exc:
                    logger.warning("a webhook delivery was not stored: %s", exc)
                    results.append(exc)
        self.commits += 1
        self.stored += sum(1 for r in results if not isinstance(r, BaseException))
        return results


def _settle(outcomes: list[_Outcome]) -> None:
    """In the requests' event loop: answer each (unless its request was cancelled)."""
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
