"""pytest plugin: figures the fault and fuzz tests measure, for ``make chaos`` (``bench/chaos.py``).

The fault tests live in ``tests/chaos`` (marker ``chaos``): they take minutes, so a run selects
them only when its ``-m`` expression names ``chaos`` (``make chaos``); every other run leaves
them out.

A test records what it saw through the session fixture ``figures``: one row per fault (what was
done, what must hold, what was seen, whether it held, and the counts the chaos summary adds up:
acknowledged writes lost, actions taken twice, destructive actions on stale or missing data),
and, for the API fuzzing, each case sent and its status. With ``FIGURES_FILE`` set, the rows are
written there as JSON lines when the session ends (the file is ``bench/chaos.py``'s to read); in
a plain ``pytest`` run they are only kept in memory. A row is recorded whether or not the test
then fails: the figures say what was seen, the assertions whether it was good enough.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

FIGURES_FILE = "FIGURES_FILE"


@dataclass
class FaultRow:
    fault: str
    must_hold: str
    seen: str
    survived: bool
    acked_lost: int = 0
    actions_doubled: int = 0
    destructive_on_stale: int = 0
    #: Measured figures with their unit in the key (``takeover_s``, ...).
    measures: dict[str, float | int | None] = field(default_factory=dict)
    test: str = ""


@dataclass
class FuzzTally:
    api: str
    cases: int = 0
    server_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class Figures:
    """What the tests of one session measured."""

    def __init__(self) -> None:
        self.faults: list[FaultRow] = []
        self.fuzz: dict[str, FuzzTally] = {}
        self._lock = threading.Lock()
        self.current_test = ""

    def fault(
        self,
        fault: str,
        *,
        must_hold: str,
        seen: str,
        survived: bool,
        acked_lost: int = 0,
        actions_doubled: int = 0,
        destructive_on_stale: int = 0,
        **measures: float | int | None,
    ) -> FaultRow:
        row = FaultRow(
            fault=fault,
            must_hold=must_hold,
            seen=seen,
            survived=survived,
            acked_lost=acked_lost,
            actions_doubled=actions_doubled,
            destructive_on_stale=destructive_on_stale,
            measures=dict(measures),
            test=self.current_test,
        )
        with self._lock:
            self.faults.append(row)
        return row

    def fuzz_case(self, api: str, status: int) -> None:
        with self._lock:
            tally = self.fuzz.setdefault(api, FuzzTally(api=api))
            tally.cases += 1
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
            if status >= 500:
                tally.server_errors += 1

    def lines(self) -> Iterator[str]:
        for row in self.faults:
            yield json.dumps({"kind": "fault", **asdict(row)})
        for tally in self.fuzz.values():
            yield json.dumps({"kind": "fuzz", **asdict(tally)})


_KEY = pytest.StashKey[Figures]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = Figures()


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    return request.config.stash[_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[_KEY].current_test = item.nodeid


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests under tests/chaos are ``chaos`` (and ``integration``: real servers); they run
    only when the ``-m`` expression names ``chaos``."""
    chaos: list[pytest.Item] = []
    folder = config.rootpath / "tests" / "chaos"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.chaos)
            chaos.append(item)
    if "chaos" in (config.getoption("markexpr") or "") or not chaos:
        return
    config.hook.pytest_deselected(items=chaos)
    items[:] = [item for item in items if item not in chaos]


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(FIGURES_FILE)
    if not target:
        return
    recorded = session.config.stash[_KEY]
    with Path(target).open("a", encoding="utf-8") as out:
        for line in recorded.lines():
            out.write(line + "\n")
