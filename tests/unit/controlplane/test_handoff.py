"""The hand-off from the webhook thread to the action engine: nothing lost, order kept, many
puts coalesced into few calls, and a failing consumer does not stop the next hand-over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from controlplane.core.handoff import Handoff

pytestmark = pytest.mark.unit


def wait_until(check: Callable[[], object], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def test_items_arrive_in_order_and_puts_made_while_busy_are_coalesced() -> None:
    calls: list[list[int]] = []
    release = threading.Event()

    def consume(items: Sequence[int]) -> None:
        calls.append(list(items))
        release.wait(5)

    handoff: Handoff[int] = Handoff(consume, name="test-handoff")
    handoff.start()
    try:
        handoff.put([0])
        wait_until(lambda: calls)  # the consumer is busy with [0]
        for n in range(1, 101):
            handoff.put([n])
        release.set()
        wait_until(lambda: sum(len(c) for c in calls) == 101)
    finally:
        handoff.stop()
    assert [n for call in calls for n in call] == list(range(101))
    assert calls[0] == [0]
    assert calls[1] == list(range(1, 101))  # 100 puts, one call


def test_a_failing_consumer_is_logged_and_the_next_items_still_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def consume(items: Sequence[str]) -> None:
        if "bad" in items:
            raise RuntimeError("engine failed")
        seen.extend(items)

    handoff: Handoff[str] = Handoff(consume, name="test-handoff")
    handoff.start()
    try:
        handoff.put(["bad"])
        wait_until(lambda: "engine failed" in caplog.text)
        handoff.put(["good"])
        wait_until(lambda: seen == ["good"])
    finally:
        handoff.stop()
    assert "handing 1 item(s) over failed" in caplog.text


def test_stop_hands_over_what_is_queued_and_later_puts_are_ignored() -> None:
    seen: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def consume(items: Sequence[int]) -> None:
        started.set()
        release.wait(5)
        seen.extend(items)

    handoff: Handoff[int] = Handoff(consume, name="test-handoff")
    handoff.start()
    handoff.put([1])
    assert started.wait(5)
    handoff.put([2, 3])
    stopper = threading.Thread(target=handoff.stop)
    stopper.start()
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert seen == [1, 2, 3]
    handoff.put([4])  # stopped: dropped, no thread left to take it
    assert not [t for t in threading.enumerate() if t.name == "test-handoff"]
    assert seen == [1, 2, 3]
