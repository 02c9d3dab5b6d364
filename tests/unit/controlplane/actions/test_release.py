"""Scale-in targets: what the engine's scale-outs added, where it goes back, in what steps."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.actions.release import (
    Raise,
    combined_bounds,
    outstanding_raise,
    release_step,
    restore_target,
)
from controlplane.store.audit import StoredAuditEntry

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def entry(
    action: str,
    before: int,
    after: int,
    *,
    minutes: int,
    decision: str = "taken",
    service: str = "inventory",
    via: str = "workers",
    target: int | None = None,
    dry_run: bool = False,
) -> StoredAuditEntry:
    evidence: dict[str, Any] = {
        "service": service,
        "result": {"before": before, "after": after, "via": via},
    }
    if target is not None:
        evidence["release"] = {"target": target}
    number = next(_ids)
    return StoredAuditEntry(
        id=number,
        decision_id=f"d{number}",
        at=START + timedelta(minutes=minutes),
        actor="controlplane",
        action=action,
        target=f"service/{service}",
        decision=decision,  # type: ignore[arg-type]
        evidence=evidence,
        dry_run=dry_run,
        outcome="succeeded",
        outcome_detail=None,
        outcome_at=None,
    )


def newest_first(*entries: StoredAuditEntry) -> list[StoredAuditEntry]:
    return sorted(entries, key=lambda e: e.at, reverse=True)


def test_the_orchestrators_bounds_narrow_the_action_policys() -> None:
    assert combined_bounds((1, 8), (3, 20)) == (3, 8)
    assert combined_bounds((1, 8), None) == (1, 8)
    # No overlap: the range the cluster is held to wins.
    assert combined_bounds((10, 12), (3, 8)) == (3, 8)


def test_the_raise_starts_at_the_first_scale_out_since_everything_was_given_back() -> None:
    old_out = entry("scale_out", 2, 4, minutes=0)
    full_in = entry("scale_in", 4, 2, minutes=10, target=2)
    first = entry("scale_out", 2, 4, minutes=20)
    second = entry("scale_out", 4, 6, minutes=25)
    raised = outstanding_raise(newest_first(old_out, full_in, first, second), "inventory")
    assert raised == Raise(decision_id=first.decision_id, at=first.at, before=2, via="workers")


def test_a_release_that_stopped_short_leaves_the_raise_standing() -> None:
    out = entry("scale_out", 2, 6, minutes=0)
    step = entry("scale_in", 6, 4, minutes=10, target=2)
    raised = outstanding_raise(newest_first(out, step), "inventory")
    assert raised is not None
    assert raised.decision_id == out.decision_id


def test_nothing_is_outstanding_once_a_scale_in_reached_its_target() -> None:
    out = entry("scale_out", 2, 6, minutes=0)
    step = entry("scale_in", 6, 4, minutes=10, target=2)
    last = entry("scale_in", 4, 2, minutes=20, target=2)
    assert outstanding_raise(newest_first(out, step, last), "inventory") is None
    assert outstanding_raise([], "inventory") is None


def test_refused_dry_run_and_other_services_decisions_raise_nothing() -> None:
    entries = newest_first(
        entry("scale_out", 2, 4, minutes=0, decision="refused"),
        entry("scale_out", 2, 4, minutes=1, dry_run=True),
        entry("scale_out", 2, 4, minutes=2, service="analytics"),
    )
    assert outstanding_raise(entries, "inventory") is None


def test_an_hpa_goes_back_to_the_floor_a_replica_count_to_what_ran_before() -> None:
    hpa = Raise(decision_id="d", at=START, before=5, via="hpa-bounds")
    workers = Raise(decision_id="d", at=START, before=2, via="workers")
    assert restore_target(hpa, floor=3) == 3
    assert restore_target(workers, floor=1) == 2
    assert restore_target(workers, floor=3) == 3  # never below the floor


def test_a_scale_in_removes_at_most_the_policys_step() -> None:
    assert release_step(current=8, target=3, max_step=2) == 6
    assert release_step(current=4, target=3, max_step=2) == 3
    assert release_step(current=8, target=3, max_step=None) == 3
