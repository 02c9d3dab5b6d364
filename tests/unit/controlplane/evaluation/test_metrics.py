"""The per-SLO series on ``/metrics`` follow the last cycle (their text is rendered once per
cycle and reused between cycles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.evaluation.evaluator import Cycle
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.store.evaluations import EvaluationRecord

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def cycle(at: datetime, burns: dict[str, float]) -> Cycle:
    records = tuple(
        EvaluationRecord(
            slo_id=name,
            service="inventory",
            at=at,
            state="ok",
            sli=0.999,
            objective=0.99,
            budget_remaining=0.5,
            burn_rates={"1h": burn},
            details={"slo": name},
        )
        for name, burn in burns.items()
    )
    return Cycle(at=at, records=records, failures=(), duration_s=0.25)


def series(text: bytes, name: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            found[labels] = float(value)
    return found


def test_per_slo_series_follow_the_latest_cycle() -> None:
    metrics = ControlPlaneMetrics(process=False)
    assert series(metrics.exposition(), "controlplane_slo_burn_rate") == {}

    metrics.observe_cycle(cycle(AT, {"a": 2.0, "b": 3.0}), stored=True)
    first = metrics.exposition()
    assert series(first, "controlplane_slo_burn_rate") == {
        'controlplane_slo_burn_rate{service="inventory",slo="a",window="1h"}': 2.0,
        'controlplane_slo_burn_rate{service="inventory",slo="b",window="1h"}': 3.0,
    }
    assert metrics.exposition() == first  # nothing new: the same text

    later = AT + timedelta(seconds=30)
    metrics.observe_cycle(cycle(later, {"a": 5.0}), stored=True)  # b left the specs
    second = metrics.exposition()
    assert series(second, "controlplane_slo_burn_rate") == {
        'controlplane_slo_burn_rate{service="inventory",slo="a",window="1h"}': 5.0,
    }
    (stamp,) = [
        line
        for line in second.decode().splitlines()
        if line.startswith("controlplane_evaluation_last_timestamp_seconds ")
    ]
    assert float(stamp.rpartition(" ")[2]) == later.timestamp()
    assert 'controlplane_evaluation_cycles_total{outcome="complete"} 2.0' in second.decode()
