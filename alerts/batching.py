"""Group commit for webhook deliveries: many deliveries, one transaction, one fsync.

Each request hands its delivery to :class:`DeliveryBatcher` and waits. The batcher takes every
delivery queued so far (up to ``max_batch``), records them in one transaction, commits once, and
only then answers every waiting request. If a delivery fails, the batch is written again with
each delivery inside its own savepoint: the failing one is rolled back alone and its request gets
the error, the others are kept. So an acknowledged alert is still a committed one; under load the
commit (the fsync) is shared instead of paid per delivery, and a burst of new alerts is written
with multi-row inserts (``record_deliveries``). Deliveries are recorded in arrival order, exactly
as one-by-one storage would record them.

Where the batch is written depends on the store:

- **SQLite** (a local file, a few milliseconds per commit): in the event loop's own thread, from
  a callback the first waiting request schedules. A writer thread beside a busy event loop is
  starved of Python's interpreter lock (``make bench-gil``: a 3 ms commit took more than 20 s
  beside a loop that released the lock at every ``select``), so the loop writes itself and no
  hand-over is needed. When another thread of the process has the write turn (an evaluation
  cycle's insert, a lease renewal; see :class:`~controlplane.store.database.WriteTurns`), the
  loop does not wait for it: it tries again ``retry_s`` later and keeps serving meanwhile.
  Requests that arrive during a commit make the next batch.
- **PostgreSQL** (a round trip per statement): in one writer thread, which waits on the network
  without the interpreter lock. The waiting requests are woken with one call into their event
  loop per batch (not one per delivery): under load each wake-up is a write to the loop's
  self-pipe and a turn of the loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from sqlalchemy import Connection

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
        in_loop: bool | None = None,
        retry_s: float = 0.001,
        linger_s: float = 0.002,
    ) -> None:
        """``in_loop``: write in the requests' event loop (the default for SQLite) instead of
        a writer thread (the default for PostgreSQL). ``retry_s``: how soon the loop tries
        again when another thread has SQLite's write turn."""
        self.database = database
        self.max_batch = max_batch
        #: Told the alerts each committed batch opened or closed (in delivery order, one call
        #: per batch), after the commit and before its requests are answered (a listener must
        #: be quick and must not raise).
        self.notify = notify
        self.in_loop = database.turns is not None if in_loop is None else in_loop
        self.retry_s = retry_s
        self.linger_s = linger_s
        #: Transactions committed and deliveries stored, and (in the loop) the times the write
        #: turn was taken and the batch waited ``retry_s`` (for tests and the benchmark).
        self.commits = 0
        self.stored = 0
        self.retries = 0
        # In the loop: the deliveries each loop has waiting (a key while a flush is scheduled).
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if not self.in_loop:
            self._thread = threading.Thread(target=self._run, name="webhook-writer", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the writer thread once the deliveries queued before are written (nothing to
        stop in the loop: its flushes end with it)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    async def store(self, delivery: IncomingDelivery) -> DeliveryResult:
        """Record ``delivery``; returns after the transaction holding it has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DeliveryResult] = loop.create_future()
        if not self.in_loop:
            self._queue.put((delivery, future))
            return await future
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_later(self.linger_s, self._flush, loop)
        pending.append((delivery, future))
        return await future

    # -- in the event loop ------------------------------------------------------------------

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """A loop callback: write the waiting deliveries (``max_batch`` at a time), or come back
        in ``retry_s`` if another thread is writing."""
        pending = self._pending[loop]
        batch = pending[: self.max_batch]
        outcomes = self._commit(batch, wait=False)
        if outcomes is None:
            self.retries += 1
            loop.call_later(self.retry_s, self._flush, loop)
            return
        del pending[: len(batch)]
        if pending:
            loop.call_soon(self._flush, loop)
        else:
            del self._pending[loop]
        _settle(outcomes)

    # -- in the writer thread ---------------------------------------------------------------

    def _take(self) -> tuple[list[_Item], bool]:
        """The deliveries waiting (at least one), and whether :meth:`close` was called."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        closed = False
        while not closed:
            batch, closed = self._take()
            if batch:
                outcomes = self._commit(batch, wait=True)
                assert outcomes is not None  # a writer that waits for its turn always writes
                self._answer(outcomes)

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

    # -- either ----------------------------------------------------------------------------

    def _commit(self, batch: list[_Item], *, wait: bool) -> list[_Outcome] | None:
        """Write ``batch`` and tell the listeners; each request's outcome (None: not written,
        the write turn was taken and ``wait`` is false)."""
        try:
            results = self._write(batch, wait=wait)
        except Exception as exc:  # the commit itself failed: nothing of the batch is stored
            logger.exception("storing %d webhook deliveries failed", len(batch))
            return [(future, exc) for _, future in batch]
        if results is None:
            return None
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
        return [(future, result) for (_, future), result in zip(batch, results, strict=True)]

    def _write(
        self, batch: list[_Item], *, wait: bool
    ) -> list[DeliveryResult | BaseException] | None:
        """The batch in one transaction. First without savepoints (the usual case: every
        delivery is stored); if one fails, the transaction is rolled back whole and the batch
        written again with a savepoint per delivery, so only the failing ones are left out."""
        try:
            return self._write_all(batch, wait=wait)
        except Exception as exc:
            if len(batch) == 1:
                raise  # its own transaction: nothing else to keep
            logger.info("a batch of %d deliveries failed (%s); one by one", len(batch), exc)
        return self._write_each(batch, wait=wait)

    def _transaction(self, *, wait: bool) -> AbstractContextManager[Connection | None]:
        if wait:
            return self.database.write_connection()
        return self.database.write_connection_if_free()

    def _write_all(
        self, batch: list[_Item], *, wait: bool
    ) -> list[DeliveryResult | BaseException] | None:
        with self._transaction(wait=wait) as connection:
            if connection is None:
                return None
            stored = record_deliveries(
                connection, deliveries=[(delivery, datetime.now(UTC)) for delivery, _ in batch]
            )
        self.commits += 1
        self.stored += len(stored)
        return list(stored)

    def _write_each(
        self, batch: list[_Item], *, wait: bool
    ) -> list[DeliveryResult | BaseException] | None:
        results: list[DeliveryResult | BaseException] = []
        with self._transaction(wait=wait) as connection:
            if connection is None:
                return None
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
