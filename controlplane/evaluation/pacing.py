"""Pacing of the evaluation's long loops, so that the API keeps answering on time beside them.

An evaluation cycle is pure Python for a while (a thousand SLOs: about a quarter of a second of
CPU), in a thread of the API's process. Python runs one thread at a time: while the cycle runs,
the event loop and the webhook writer get the interpreter only between the cycle's time slices,
and each webhook delivery waits several slices (at 1,000 deliveries/s beside a 1,000-SLO cycle
every 10 s, the deliveries' p99 was 13-16 ms without the cycle and 63-69 ms with it).

:class:`Pacer` is called once per SLO in those loops. After ``work_s`` of work it releases the
interpreter (``time.sleep(0)``); if getting it back took time, another thread was waiting for
it (the API is busy), and the cycle then sleeps ``pause_s`` more, leaving that thread the
interpreter. When nothing else waits, the check costs a microsecond and the cycle runs at full
speed: a cycle is slower only while the API has work, by about ``pause_s`` per ``work_s`` (the
defaults: up to twice as long). With the defaults, the same run gives a p99 of 25-31 ms
(``make bench-controlplane`` measures it); the cycles' pauses are counted in
``controlplane_evaluation_paused_seconds_total``.

That check cannot see every wait: a release of the interpreter is often taken back at once by
the releasing thread, before the loop's thread, woken by it, gets there (its wait then starts
over). So in ``controlplane serve`` the pacer also asks the API's event loop itself
(:class:`~controlplane.core.loopwatch.LoopWatch`, watched during the cycle only): when the loop
has not turned for ``late_s`` beyond its period, it is behind, and the cycle sleeps in
``poll_s`` steps until it has turned (``max_pause_s`` at most), so the API goes first and the
cycle takes the time it leaves.

The cycle's Prometheus queries are paced too (:meth:`Pacer.rest`, called by the source after each
one): Prometheus computes an answer on the same CPUs, and ten answers back to back left the
API's loop behind. While the loop's turns come late on average (it is busy), the cycle rests as
long as the last query took before it sends the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from controlplane.core.loopwatch import LoopWatch

__all__ = ["Pacer", "pace_nothing"]

#: What a loop calls between two items (``pace_nothing``: not paced).
Pace = Callable[[], None]


def pace_nothing() -> None:
    """No pacing (the ``slo report`` command: nothing else runs in its process)."""


class Pacer:
    def __init__(
        self,
        *,
        work_s: float = 0.002,
        pause_s: float = 0.002,
        contended_s: float = 0.0002,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        watch: LoopWatch | None = None,
        late_s: float = 0.001,
        poll_s: float = 0.0005,
        max_pause_s: float = 0.02,
        busy_lag_s: float = 0.0003,
        rest_ratio: float = 1.0,
        max_rest_s: float = 0.1,
    ) -> None:
        """``contended_s``: a release of the interpreter that takes longer than this means
        another thread was waiting for it. ``watch``: the API's event loop, watched during
        :meth:`cycle` (see the module's docstring for ``late_s``, ``poll_s``, ``max_pause_s``).
        """
        self.work_s = work_s
        self.pause_s = pause_s
        self.contended_s = contended_s
        self.clock = clock
        self.sleep = sleep
        self.watch = watch
        self.late_s = late_s
        self.poll_s = poll_s
        self.max_pause_s = max_pause_s
        self.busy_lag_s = busy_lag_s
        self.rest_ratio = rest_ratio
        self.max_rest_s = max_rest_s
        self._since = clock()
        #: Pauses taken (the API was busy) and time spent in them, since the last :meth:`reset`.
        self.pauses = 0
        self.paused_s = 0.0

    def reset(self) -> None:
        """At the start of a cycle."""
        self._since = self.clock()
        self.pauses = 0
        self.paused_s = 0.0

    @contextmanager
    def cycle(self) -> Iterator[None]:
        """One cycle: counts reset, the API's loop watched (if there is one) until the end."""
        self.reset()
        with self.watch.watching() if self.watch is not None else nullcontext():
            yield

    def __call__(self) -> None:
        now = self.clock()
        if now - self._since < self.work_s:
            return
        watch = self.watch
        if watch is not None and watch.watched and watch.late_s(now) > self.late_s:
            self._until_the_loop_turns(watch, now)
            self._since = self.clock()
            return
        self.sleep(0)  # lets a thread waiting for the interpreter have it
        back = self.clock()
        if back - now >= self.contended_s:
            self.sleep(self.pause_s)
            self.pauses += 1
            after = self.clock()
            self.paused_s += after - back
            back = after
        self._since = back

    def rest(self, worked_s: float) -> None:
        """Between two requests to another server (the cycle's Prometheus queries): when the
        API's loop is busy, rest ``rest_ratio`` times as long as the last request took, so the
        server's work (on the same CPUs) comes in spurts the API can get between."""
        watch = self.watch
        if watch is None or not watch.busy(lag_s=self.busy_lag_s):
            return
        pause = min(worked_s * self.rest_ratio, self.max_rest_s)
        self.sleep(pause)
        self.pauses += 1
        self.paused_s += pause
        self._since = self.clock()

    def _until_the_loop_turns(self, watch: LoopWatch, now: float) -> None:
        turned = watch.last_turn
        after = now
        while watch.last_turn == turned and after - now < self.max_pause_s:
            self.sleep(self.poll_s)
            after = self.clock()
        self.pauses += 1
        self.paused_s += after - now
