"""How late the API's event loop is, as seen from another thread of the process.

Python runs one thread at a time. A thread that computes for a while beside the API (an
evaluation cycle) cannot tell from Python's lock alone whether the event loop waits for it: a
release of the lock is taken back at once by whichever thread is running, and the loop's wait
starts over (``make bench-gil`` shows the effect in the other direction). The loop can tell,
though: :class:`LoopWatch` has it note the time at each turn (a callback every ``every_s``)
while someone watches, and a loop that has not noted the time for a while is behind (it waits
for the interpreter, or has work queued). The computing thread then leaves it the interpreter
until the loop has turned (``controlplane.evaluation.pacing.Pacer``).

The callbacks run only while a watcher is inside :meth:`LoopWatch.watching`: an idle API pays
nothing between cycles.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

__all__ = ["LoopWatch"]


class LoopWatch:
    def __init__(
        self, *, every_s: float = 0.001, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.every_s = every_s
        self.clock = clock
        #: When the loop last turned (``clock`` time), while watched.
        self.last_turn = clock()
        #: How late the loop's turns came, on average (an exponential moving average, seconds):
        #: an idle loop turns on time, a busy one between its other work.
        self.lag_s = 0.0
        self._due = self.last_turn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers = 0
        self._lock = threading.Lock()
        self._ticking = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The API's loop (in the API's start-up); None of it before or after."""
        self._loop = loop

    def detach(self) -> None:
        self._loop = None

    @property
    def watched(self) -> bool:
        """A loop is attached and someone watches it: :meth:`late_s` means something."""
        return self._loop is not None and self._watchers > 0

    def late_s(self, now: float | None = None) -> float:
        """How much later than its period the loop is with its turn (0 when on time or not
        watched)."""
        if not self.watched:
            return 0.0
        at = self.clock() if now is None else now
        return max(0.0, at - self.last_turn - self.every_s)

    @contextmanager
    def watching(self) -> Iterator[None]:
        """While inside, the attached loop notes the time at each turn (from any thread)."""
        with self._lock:
            self._watchers += 1
            first = self._watchers == 1
        loop = self._loop
        if first and loop is not None:
            self.last_turn = self.clock()
            with suppress(RuntimeError):  # a closed loop: nothing to watch
                loop.call_soon_threadsafe(self._start)
        try:
            yield
        finally:
            with self._lock:
                self._watchers -= 1

    def busy(self, *, lag_s: float) -> bool:
        """Watched, and the loop's turns come more than ``lag_s`` late on average."""
        return self.watched and self.lag_s > lag_s

    def _start(self) -> None:
        if not self._ticking:
            self._ticking = True
            self.lag_s = 0.0
            self._due = self.clock()
            self._tick()

    def _tick(self) -> None:
        """In the loop: note the time, and come back while someone watches."""
        now = self.last_turn = self.clock()
        self.lag_s += (max(0.0, now - self._due) - self.lag_s) * 0.2
        self._due = now + self.every_s
        loop = self._loop
        if self._watchers > 0 and loop is not None and not loop.is_closed():
            loop.call_later(self.every_s, self._tick)
        else:
            self._ticking = False
