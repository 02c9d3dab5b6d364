"""The action engine end to end on real pieces: a gunicorn master (TTIN/TTOU), a Prometheus
scraping a burn-rate target, the SQLite store with its leader lease, and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.actions.engine import ActionEngine
from controlplane.actions.policy import ActionPolicy, load_action_policy
from controlplane.actions.signals import prometheus_burn_reader
from controlplane.core.config import DEFAULT_ACTION_POLICY
from controlplane.leader import LeaderStatus
from controlplane.runtime import Runtime
from controlplane.sources.prometheus import PrometheusSource
from controlplane.store.actions import (
    KILL_SWITCH,
    claim_execution,
    decide_once,
    resolve_pending,
    set_flag,
)
from controlplane.store.alerts import AlertChange
from controlplane.store.audit import AuditDecision, list_audit
from tests.support.backends import PrometheusFactory
from tests.support.burn import BurnRig, burn_rig, wait_for
from tests.support.runtime import leading_runtime

pytestmark = pytest.mark.integration


Rig = BurnRig


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory, prometheus_factory: PrometheusFactory
) -> Iterator[Rig]:
    with burn_rig(tmp_path_factory.mktemp("gunicorn"), prometheus_factory) as started:
        yield started


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path) as started:
        yield started


def engine_for(rig: Rig, runtime: Runtime, policy: ActionPolicy | None = None) -> ActionEngine:
    source = PrometheusSource(url=rig.prometheus_url, timeout=5)
    return ActionEngine(
        policy=policy or load_action_policy(DEFAULT_ACTION_POLICY),
        database=runtime.database,
        leadership=runtime.leadership,
        lease_name=runtime.settings.leader.leader_name,
        actuator=rig.actuator,
        burn_reader=prometheus_burn_reader(source),
    )


def burning(rig: Rig, value: float) -> None:
    rig.burn.labels(service="inventory", slo="read-latency").set(value)
    source = PrometheusSource(url=rig.prometheus_url, timeout=5)
    reader = prometheus_burn_reader(source)

    def seen() -> bool:
        current = reader("inventory", "read-latency", "30s")
        fresh = current.observed_at is not None and (
            datetime.now(UTC) - current.observed_at < timedelta(seconds=5)
        )
        return current.value == value and fresh

    wait_for(seen)


def alert(fingerprint: str) -> AlertChange:
    return AlertChange(
        alert_id=1,
        fingerprint=fingerprint,
        starts_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
        status="firing",
        outcome="opened",
        labels={
            "alertname": "ErrorBudgetBurn1h5m",
            "service": "inventory",
            "slo": "read-latency",
            "severity": "page",
        },
    )


def reset_workers(rig: Rig, count: int = 2) -> None:
    assert rig.actuator.scale("inventory", replicas=count).reached


def audit(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    with runtime.database.reader() as session:
        return [(e.action, e.decision, e.outcome) for e in reversed(list_audit(session))]


def test_latency_burn_alert_scales_out_once_and_a_repeat_does_nothing(
    rig: Rig, runtime: Runtime
) -> None:
    reset_workers(rig)
    burning(rig, 28.8)  # 2x the page factor → ceil(2 × 28.8 / 14.4) = 4 workers
    engine = engine_for(rig, runtime)
    (entry,) = engine.on_alert_changes([alert("a1")])
    assert (entry.decision, entry.outcome) == ("taken", "succeeded")
    assert rig.actuator.current_replicas("inventory") == 4
    assert entry.fencing_token == runtime.leadership.status().fencing_token
    assert engine.on_alert_changes([alert("a1")]) == []  # Alertmanager repeats the alert
    assert audit(runtime) == [("scale_out", "taken", "succeeded")]
    with runtime.database.reader() as session:
        (stored,) = list_audit(session)
    assert stored.evidence["result"] == {"before": 2, "after": 4, "via": "workers"}
    assert stored.evidence["inputs"]["read-latency burn 30s"]["value"] == 28.8
    assert [c["check"] for c in stored.evidence["gate"]][-1] == "mode"


def test_second_action_inside_the_cooldown_is_refused_and_audited(
    rig: Rig, runtime: Runtime
) -> None:
    reset_workers(rig)
    burning(rig, 28.8)
    engine = engine_for(rig, runtime)
    engine.on_alert_changes([alert("b1")])
    reset_workers(rig, 3)
    (second,) = engine.on_alert_changes([alert("b2")])
    assert second.decision == "refused"
    assert second.reason.startswith("cooldown")
    assert rig.actuator.current_replicas("inventory") == 3


def test_dry_run_changes_nothing_but_audits(rig: Rig, runtime: Runtime) -> None:
    reset_workers(rig)
    burning(rig, 28.8)
    policy = load_action_policy(DEFAULT_ACTION_POLICY).with_mode("scale_out", "dry-run")
    (entry,) = engine_for(rig, runtime, policy).on_alert_changes([alert("c1")])
    assert (entry.decision, entry.dry_run, entry.outcome) == ("taken", True, "dry-run")
    assert "would have run scale_out 2 → 4" in (entry.outcome_detail or "")
    assert rig.actuator.current_replicas("inventory") == 2


def test_kill_switch_refuses_everything(rig: Rig, runtime: Runtime) -> None:
    reset_workers(rig)
    burning(rig, 28.8)
    with runtime.database.writer() as session:
        set_flag(session, name=KILL_SWITCH, enabled=True, at=datetime.now(UTC), by="ops")
    (entry,) = engine_for(rig, runtime).on_alert_changes([alert("d1")])
    assert entry.decision == "refused"
    assert entry.reason.startswith("kill_switch")
    assert rig.actuator.current_replicas("inventory") == 2


def test_approval_mode_waits_for_an_operator(rig: Rig, runtime: Runtime) -> None:
    reset_workers(rig)
    burning(rig, 28.8)
    policy = load_action_policy(DEFAULT_ACTION_POLICY).with_mode("scale_out", "approval")
    engine = engine_for(rig, runtime, policy)
    (entry,) = engine.on_alert_changes([alert("e1")])
    assert entry.decision == "pending"
    assert engine.run_approved() == []
    assert rig.actuator.current_replicas("inventory") == 2
    with runtime.database.writer() as session:
        resolve_pending(
            session, decision_id=entry.decision_id, approve=True, by="alice", at=datetime.now(UTC)
        )
    (ran,) = engine.run_approved()
    assert ran.outcome == "succeeded"
    assert rig.actuator.current_replicas("inventory") == 4
    assert engine.run_approved() == []  # runs once


class StaleLeader:
    """A replica that still believes it leads, with the token it had before a takeover."""

    def __init__(self, token: int) -> None:
        self.token = token

    def status(self) -> LeaderStatus:
        now = datetime.now(UTC)
        return LeaderStatus(
            replica_id="old-leader",
            mode="sqlite",
            is_leader=True,
            fencing_token=self.token,
            since=now,
            confirmed_at=now,
        )


def test_a_stale_leaders_decision_is_refused_by_its_fencing_token(
    rig: Rig, runtime: Runtime
) -> None:
    reset_workers(rig)
    burning(rig, 28.8)
    current = runtime.leadership.status().fencing_token
    assert current is not None
    engine = engine_for(rig, runtime)
    engine.leadership = StaleLeader(current - 1)  # type: ignore[assignment]
    (entry,) = engine.on_alert_changes([alert("f1")])
    assert entry.decision == "refused"
    assert "stale" in entry.reason
    assert rig.actuator.current_replicas("inventory") == 2
    # The real leader still decides the same trigger: the stale refusal did not consume it.
    (real,) = engine_for(rig, runtime).on_alert_changes([alert("f1")])
    assert real.outcome == "succeeded"


def test_unreachable_metrics_hold_and_never_scale_in(rig: Rig, runtime: Runtime) -> None:
    reset_workers(rig, 4)
    burning(rig, 28.8)
    rig.stop_target()
    reader = prometheus_burn_reader(PrometheusSource(url=rig.prometheus_url, timeout=5))
    wait_for(lambda: reader("inventory", "read-latency", "30s").value is None)
    engine = engine_for(rig, runtime)
    (out,) = engine.on_alert_changes([alert("g1")])
    assert out.decision == "refused"
    scale_in = engine.decide(
        "scale_in", "inventory", trigger_key="manual:g2", trigger="operator", evidence={}
    )
    assert scale_in is not None
    assert scale_in.decision == "refused"
    assert rig.actuator.current_replicas("inventory") == 4


def _left_by_a_dead_leader(
    runtime: Runtime, *, trigger: str, current: int, desired: int, at: datetime, claimed: bool
) -> str:
    """A taken scale-out recorded (and maybe claimed) under an older token, never finished."""
    token = runtime.leadership.status().fencing_token
    assert token is not None
    decision = AuditDecision(
        at=at,
        actor="dead-leader",
        action="scale_out",
        target="service/inventory",
        decision="taken",
        reason="all checks passed",
        evidence={"service": "inventory", "current_replicas": current, "desired_replicas": desired},
        fencing_token=token - 1,
        trigger_key=trigger,
    )
    with runtime.database.writer() as session:
        entry = decide_once(session, decision=decision)
        if claimed:
            assert claim_execution(
                session, decision_id=entry.decision_id, at=at, by="dead-leader", token=token - 1
            )
    return entry.decision_id


def test_an_execution_a_dead_leader_left_is_finished_once_by_the_next_leader(
    rig: Rig, runtime: Runtime
) -> None:
    reset_workers(rig)
    now = datetime.now(UTC)
    engine = engine_for(rig, runtime)
    # Decided, not started: the next leader runs it.
    untouched = _left_by_a_dead_leader(
        runtime, trigger="dead:1", current=2, desired=3, at=now, claimed=False
    )
    # Started, and the old leader got as far as scaling before it died: 3 → 4 done already.
    assert rig.actuator.scale("inventory", replicas=3).reached
    halfway = _left_by_a_dead_leader(
        runtime, trigger="dead:2", current=3, desired=4, at=now, claimed=True
    )
    assert rig.actuator.scale("inventory", replicas=4).reached
    # Too old to act on: closed, not run.
    stale = _left_by_a_dead_leader(
        runtime,
        trigger="dead:3",
        current=4,
        desired=8,
        at=now - timedelta(minutes=10),
        claimed=False,
    )
    finished = {entry.decision_id: entry for entry in engine.resume_interrupted()}
    assert set(finished) == {untouched, halfway, stale}
    # 2 → 3 and 3 → 4: four run already, so neither changes anything (a resumed scale-out
    # never scales in); each is closed once.
    for decision_id in (untouched, halfway):
        assert finished[decision_id].outcome == "succeeded"
        assert finished[decision_id].evidence["result"]["after"] == 4
        assert "resumed after a leader change" in (finished[decision_id].outcome_detail or "")
    assert finished[stale].outcome == "abandoned"
    assert rig.actuator.current_replicas("inventory") == 4  # not 5, not 8
    assert engine.resume_interrupted() == []  # once
    assert rig.actuator.current_replicas("inventory") == 4


def test_a_decision_whose_leader_died_before_acting_is_run_by_the_next_one(
    rig: Rig, runtime: Runtime
) -> None:
    reset_workers(rig)
    engine = engine_for(rig, runtime)
    left = _left_by_a_dead_leader(
        runtime, trigger="dead:4", current=2, desired=3, at=datetime.now(UTC), claimed=True
    )
    (done,) = engine.resume_interrupted()
    assert done.decision_id == left
    assert (done.outcome, done.evidence["result"]) == (
        "succeeded",
        {"before": 2, "after": 3, "via": "workers"},
    )
    assert done.executed_token == runtime.leadership.status().fencing_token
    assert rig.actuator.current_replicas("inventory") == 3
    assert engine.resume_interrupted() == []
