"""The local actuator against a real gunicorn master: TTIN / TTOU and the worker count read back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.actuators.base import ActuatorError, ActuatorFenced
from controlplane.actuators.local import LocalGunicornActuator
from tests.support.gunicorn import running_gunicorn

pytestmark = pytest.mark.integration


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with running_gunicorn(tmp_path, module="pidapp") as server:
        yield server.pidfile, server.url + "/"


def serving_pids(url: str, requests: int = 200) -> set[str]:
    with httpx.Client(timeout=5) as client:
        return {client.get(url).text for _ in range(requests)}


def test_scale_out_and_in_reads_back_the_real_worker_count(gunicorn: tuple[Path, str]) -> None:
    pidfile, url = gunicorn
    actuator = LocalGunicornActuator(pidfile=pidfile)
    deadline = time.monotonic() + 30
    while actuator.current_replicas("inventory") != 2:  # the second worker may still be booting
        assert time.monotonic() < deadline, "gunicorn never ran its 2 workers"
        time.sleep(0.1)

    grown = actuator.scale("inventory", replicas=5)
    assert (grown.before, grown.after, grown.reached, grown.via) == (2, 5, True, "workers")
    assert actuator.current_replicas("inventory") == 5
    assert len(serving_pids(url)) >= 2  # new workers answer requests

    shrunk = actuator.scale("inventory", replicas=1)
    assert (shrunk.before, shrunk.after) == (5, 1)
    assert len(serving_pids(url, 20)) == 1


def test_bad_requests_and_a_missing_master_are_typed_errors(
    gunicorn: tuple[Path, str], tmp_path: Path
) -> None:
    pidfile, _ = gunicorn
    actuator = LocalGunicornActuator(pidfile=pidfile)
    with pytest.raises(ActuatorError, match="at least one worker"):
        actuator.scale("inventory", replicas=0)
    with pytest.raises(ActuatorError, match="not billing"):
        actuator.current_replicas("billing")
    gone = LocalGunicornActuator(pidfile=tmp_path / "absent.pid")
    with pytest.raises(ActuatorError, match="no gunicorn master pid"):
        gone.current_replicas("inventory")


def test_a_scale_converges_on_the_count_and_stops_when_its_guard_says_no(
    gunicorn: tuple[Path, str],
) -> None:
    pidfile, _ = gunicorn
    actuator = LocalGunicornActuator(pidfile=pidfile)
    deadline = time.monotonic() + 30
    while actuator.current_replicas("inventory") != 2:
        assert time.monotonic() < deadline, "gunicorn never ran its 2 workers"
        time.sleep(0.1)
    asked: list[int] = []

    def guard() -> bool:  # allows two changes, then the caller "loses the leadership"
        asked.append(actuator.current_replicas("inventory"))
        return len(asked) <= 2

    with pytest.raises(ActuatorFenced, match="stopped at 4 workers"):
        actuator.scale("inventory", replicas=6, guard=guard)
    assert asked == [2, 3, 4]  # asked before each change, with the count re-read each time
    assert actuator.current_replicas("inventory") == 4
    # Asking again for a count already reached changes nothing (an absolute count, not a step).
    again = actuator.scale("inventory", replicas=4)
    assert (again.before, again.after) == (4, 4)
    assert actuator.current_replicas("inventory") == 4
