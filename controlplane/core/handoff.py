"""Hand items from a hot thread to one worker thread, coalesced.

:meth:`Handoff.put` only appends to a list and wakes the worker when it sleeps; the worker takes
everything queued so far and passes it to the consumer in one call. A producer that calls
``put`` a thousand times a second (the webhook writer, once per committed batch) thus pays a
lock and a list append each time, not a scheduler job, and the consumer runs as often as it can
keep up rather than once per call. Items reach the consumer in the order they were put.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

__all__ = ["Handoff"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, consumer: Callable[[Sequence[T]], None], *, name: str) -> None:
        self.consumer = consumer
        self.name = name
        self._items: list[T] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._ready:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Hand over what is queued, then end the worker (items put later are dropped)."""
        with self._ready:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._ready.notify()
        if thread is not None:
            thread.join(timeout)

    def put(self, items: Iterable[T]) -> None:
        """Queue ``items`` for the consumer; never blocks on it. Ignored when not started."""
        with self._ready:
            if self._thread is None:
                return
            self._items.extend(items)
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._items and not self._stopping:
                    self._ready.wait()
                taken, self._items = self._items, []
                stopping = self._stopping
            if taken:
                try:
                    self.consumer(taken)
                except Exception:  # the producer never hears of it: log and go on
                    logger.exception("%s: handing %d item(s) over failed", self.name, len(taken))
            if stopping:
                return
