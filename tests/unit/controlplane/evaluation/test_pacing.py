"""Pacing of the evaluation beside a busy API: full speed when no other thread waits for the
interpreter, pauses when one does, the same results either way, and the pauses reported."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from controlplane.core.loopwatch import LoopWatch
from controlplane.evaluation.evaluator import Cycle, SLOEvaluator
from controlplane.evaluation.pacing import Pacer
from tests.unit.controlplane.evaluation.memory import AT, EVERY_WINDOW, MemoryPrometheus, recorded
from tests.unit.controlplane.evaluation.specs import native, slos

pytestmark = pytest.mark.unit


class FakeTime:
    """A clock and a sleep: ``sleep(0)`` takes ``handover_s`` (another thread's turn)."""

    def __init__(self, *, handover_s: float) -> None:
        self.now = 0.0
        self.handover_s = handover_s
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds if seconds else self.handover_s

    def work(self, pacer: Pacer, *, items: int, each_s: float) -> None:
        for _ in range(items):
            pacer()
            self.now += each_s


def paced(fake: FakeTime) -> Pacer:
    return Pacer(work_s=0.002, pause_s=0.002, clock=fake.clock, sleep=fake.sleep)


def test_nothing_waiting_means_no_pause_only_a_release_every_work_slice() -> None:
    fake = FakeTime(handover_s=0.00001)
    pacer = paced(fake)
    fake.work(pacer, items=1000, each_s=0.0002)  # 0.2 s of work
    assert pacer.pauses == 0
    assert pacer.paused_s == 0
    assert set(fake.sleeps) == {0}
    assert 90 <= len(fake.sleeps) <= 100  # one release per 2 ms of work
    assert fake.now == pytest.approx(0.2, rel=0.01)


def test_a_waiting_thread_gets_a_pause_after_every_work_slice() -> None:
    fake = FakeTime(handover_s=0.001)  # the API had the interpreter for 1 ms
    pacer = paced(fake)
    fake.work(pacer, items=1000, each_s=0.0002)
    assert 80 <= pacer.pauses <= 100
    assert pacer.paused_s == pytest.approx(pacer.pauses * 0.002)
    assert fake.sleeps.count(0.002) == pacer.pauses
    pacer.reset()
    assert (pacer.pauses, pacer.paused_s) == (0, 0)


def test_a_busy_thread_in_the_process_makes_the_pacer_pause() -> None:
    """Real threads: a CPU-bound thread holds the interpreter between its time slices, so the
    paced loop's release takes longer than the threshold and it pauses."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    busy = threading.Thread(target=spin, name="busy-api")
    busy.start()
    try:
        pacer = Pacer(work_s=0.0005, pause_s=0.0005)
        for _ in range(200_000):
            pacer()
            if pacer.pauses >= 3:
                break
    finally:
        stop.set()
        busy.join(5)
    assert pacer.pauses >= 3


def test_a_paced_cycle_gives_the_same_records_and_reports_its_pauses() -> None:
    names = [f"slo-{n}" for n in range(40)]
    ratios = dict.fromkeys(EVERY_WINDOW, 0.0001)
    series = {}
    for name in names:
        series.update(recorded(name, **ratios))
    specs = slos(*(native(name) for name in names))

    def cycle(pacer: Pacer | None) -> Cycle:
        evaluator = SLOEvaluator(
            slos=specs, metrics=MemoryPrometheus(recorded=series), logs=None, pacer=pacer
        )
        return evaluator.evaluate(at=AT)

    fake = FakeTime(handover_s=0.001)
    # Every call is past the work slice (the fake clock moves only in sleeps and ``work``).
    pacer = Pacer(work_s=0.0, pause_s=0.002, clock=fake.clock, sleep=fake.sleep)
    plain, slow = cycle(None), cycle(pacer)
    assert plain.paused_s == 0
    assert slow.records == plain.records
    assert pacer.pauses == 80  # one per SLO in the report's loop, one per SLO in the records'
    assert slow.paused_s == pytest.approx(80 * 0.002)


class FakeLoop:
    """Stands in for the API's loop in a :class:`LoopWatch` driven by the fake clock: it turns
    every ``turn_every_s`` of the fake time that passes in sleeps."""

    def __init__(self, watch: LoopWatch, fake: FakeTime, *, turn_every_s: float) -> None:
        self.watch = watch
        self.fake = fake
        self.turn_every_s = turn_every_s

    def sleep(self, seconds: float) -> None:
        before = self.fake.now
        self.fake.sleep(seconds)
        turns = int(self.fake.now / self.turn_every_s) - int(before / self.turn_every_s)
        if turns:
            self.watch.last_turn = self.fake.now


@contextmanager
def watched_pacer(fake: FakeTime, *, turn_every_s: float) -> Iterator[tuple[Pacer, LoopWatch]]:
    """A pacer watching a loop that never runs (the fake time stands in for its turns)."""
    watch = LoopWatch(every_s=0.001, clock=fake.clock)
    idle = asyncio.new_event_loop()
    watch.attach(idle)
    loop = FakeLoop(watch, fake, turn_every_s=turn_every_s)
    try:
        yield Pacer(work_s=0.002, clock=fake.clock, sleep=loop.sleep, watch=watch), watch
    finally:
        watch.detach()
        idle.close()


def test_a_late_event_loop_is_left_the_interpreter_until_it_turns() -> None:
    """The loop has not turned while the cycle worked: the cycle sleeps until it has."""
    fake = FakeTime(handover_s=0.0)  # the release alone never looks contended
    with watched_pacer(fake, turn_every_s=0.003) as (pacer, watch):
        with pacer.cycle():
            assert watch.watched
            for _ in range(100):  # 0.2 s of work, the loop never turning during it
                pacer()
                fake.now += 0.002
                watch.last_turn = min(watch.last_turn, fake.now - 0.01)
        assert not watch.watched  # the loop is watched during cycles only
    assert pacer.pauses >= 90
    assert 0.0005 in fake.sleeps
    assert 0 < pacer.paused_s <= pacer.pauses * 0.003  # each pause ends at the loop's turn


def test_an_event_loop_on_time_costs_the_cycle_no_pause() -> None:
    fake = FakeTime(handover_s=0.0)
    with watched_pacer(fake, turn_every_s=0.001) as (pacer, watch), pacer.cycle():
        for _ in range(100):
            pacer()
            fake.now += 0.0002
            watch.last_turn = fake.now  # the loop turns all along
    assert pacer.pauses == 0
    assert set(fake.sleeps) == {0}


def test_the_watched_loop_notes_its_turns_only_while_watched() -> None:
    async def scenario() -> tuple[float, float, bool, float]:
        watch = LoopWatch(every_s=0.001)
        watch.attach(asyncio.get_running_loop())
        assert watch.late_s() == 0.0  # not watched: nothing to tell
        with watch.watching():
            await asyncio.sleep(0.05)
            on_time = watch.late_s()
            idle_lag = watch.lag_s
            time.sleep(0.05)  # the loop is blocked: its turn is late
            blocked = watch.late_s()
            await asyncio.sleep(0.003)  # the late turn comes
            assert watch.lag_s > idle_lag + 0.005  # 50 ms late weighs a fifth
        await asyncio.sleep(0.01)  # the tick scheduled before the end runs, and no other
        first = watch.last_turn
        await asyncio.sleep(0.02)
        stopped = watch.last_turn == first
        watch.detach()
        return on_time, blocked, stopped, watch.late_s()

    on_time, blocked, stopped, detached = asyncio.run(scenario())
    assert on_time < 0.02
    assert blocked >= 0.04
    assert stopped
    assert detached == 0.0


def test_between_queries_the_cycle_rests_only_while_the_api_is_busy() -> None:
    fake = FakeTime(handover_s=0.0)
    with watched_pacer(fake, turn_every_s=0.001) as (pacer, watch), pacer.cycle():
        watch.lag_s = 0.0  # the loop turns on time: the API has nothing else to do
        pacer.rest(0.03)
        assert fake.sleeps == []
        watch.lag_s = 0.002  # its turns come 2 ms late: it is busy
        pacer.rest(0.03)
        pacer.rest(0.5)  # a slow query: the rest is capped
    assert fake.sleeps == [0.03, pacer.max_rest_s]
    assert pacer.pauses == 2
    assert pacer.paused_s == pytest.approx(0.03 + pacer.max_rest_s)
