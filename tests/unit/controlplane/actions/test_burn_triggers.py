"""Burn-tier triggers, verification (ready replicas, burn) and escalation, scale-in once the burn
stays calm, and the engine as a background service.

The store is a real SQLite file with its leader lease; the actuator is an in-memory replica
count (the gunicorn actuator is exercised for real in tests/integration/actions).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.actions.engine import INEFFECTIVE, UNFULFILLED, ActionEngine
from controlplane.actions.gate import InputValue
from controlplane.actions.policy import ActionPolicy, load_action_policy
from controlplane.actions.service import ActionService
from controlplane.actuators.base import Guard, ScaleResult
from controlplane.core.config import DEFAULT_ACTION_POLICY
from controlplane.runtime import Runtime
from controlplane.store.alerts import (
    AlertChange,
    IncomingAlert,
    IncomingDelivery,
    record_delivery,
)
from controlplane.store.audit import StoredAuditEntry, list_audit
from controlplane.store.findings import list_findings
from controlplane.targets.policy import CapacityPolicy, PolicyError, load_capacity_policy
from tests.unit.controlplane.conftest import settings_for

pytestmark = pytest.mark.unit


class Workers:
    """A replica count that changes when asked (what TTIN/TTOU do to a gunicorn master), all
    ready unless a test holds some back. ``via="hpa-bounds"`` reports the changes as an HPA's
    minimum, like the Kubernetes actuator."""

    def __init__(self, count: int, *, via: str = "workers") -> None:
        self.count = count
        self.unready = 0
        self.via = via

    def current_replicas(self, service: str) -> int:
        return self.count

    def ready_replicas(self, service: str) -> int:
        return self.count - self.unready

    def scale(self, service: str, *, replicas: int, guard: Guard | None = None) -> ScaleResult:
        assert guard is None or guard(), "scaled by a replica that does not lead"
        before, self.count = self.count, replicas
        return ScaleResult(
            service=service, before=before, requested=replicas, after=replicas, via=self.via
        )


class Burn:
    """The burns Prometheus would report, observed 'now' by the engine's clock: read-latency
    (``value``) and api-availability (``availability``); None is no data."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.value: float | None = None
        self.availability: float | None = None

    def __call__(self, service: str, slo: str, window: str) -> InputValue:
        value = {"read-latency": self.value, "api-availability": self.availability}.get(slo)
        if value is None:
            return InputValue(value=None, observed_at=None)
        return InputValue(value=value, observed_at=self.clock())


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings_for(tmp_path))
    runtime.start()
    deadline = time.monotonic() + 10
    while not runtime.leadership.status().is_leader:
        assert time.monotonic() < deadline, "never became leader"
        time.sleep(0.05)
    yield runtime
    runtime.stop()


def make_engine(
    runtime: Runtime,
    workers: Workers,
    clock: Clock,
    burn: Burn,
    policy: ActionPolicy | None = None,
    capacity: CapacityPolicy | None = None,
) -> ActionEngine:
    return ActionEngine(
        policy=policy or load_action_policy(DEFAULT_ACTION_POLICY),
        database=runtime.database,
        leadership=runtime.leadership,
        lease_name=runtime.settings.leader.leader_name,
        actuator=workers,
        burn_reader=burn,
        clock=clock,
        leader_max_age=3600,  # the test clock moves faster than the lease is confirmed
        capacity=capacity,
    )


def audit(runtime: Runtime) -> list[StoredAuditEntry]:
    with runtime.database.reader() as session:
        return list(reversed(list_audit(session)))


def test_the_policy_needs_exactly_one_trigger_kind(tmp_path: Path) -> None:
    text = DEFAULT_ACTION_POLICY.read_text(encoding="utf-8")
    both = text.replace(
        "        burn: {slo: read-latency, window: 30s, above: 14.4}",
        "        burn: {slo: read-latency, window: 30s, above: 14.4}\n        alert: {names: [X]}",
    )
    path = tmp_path / "actions.yaml"
    path.write_text(both, encoding="utf-8")
    with pytest.raises(PolicyError, match="exactly one of alert or burn"):
        load_action_policy(path)
    path.write_text(text.replace("window: 30s, above", "window: soon, above"), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"spec\.rules\.0\.trigger\.burn\.window"):
        load_action_policy(path)


def test_a_fast_burn_scales_out_once_and_waits_for_verification(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    engine = make_engine(runtime, workers, clock, burn)

    burn.value = 5.0  # under the page tier: nothing
    assert engine.on_burn() == []
    burn.value = 28.8  # 2× the tier → ceil(2 × 28.8 / 14.4) = 4
    (entry,) = engine.on_burn()
    assert (entry.action, entry.decision, entry.outcome) == ("scale_out", "taken", "succeeded")
    assert workers.count == 4
    assert entry.evidence["burn_trigger"]["value"] == 28.8
    assert entry.evidence["rule"] == "latency-fast-burn-scales-out"

    clock.now += timedelta(seconds=40)  # next decision period, still burning, still verifying
    assert engine.on_burn() == []
    assert workers.count == 4
    assert len(audit(runtime)) == 1


def test_a_scale_out_that_did_not_help_escalates_instead_of_scaling_again(
    runtime: Runtime,
) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    engine = make_engine(runtime, workers, clock, burn)
    burn.value = 28.8
    engine.on_burn()
    assert workers.count == 4

    burn.value = 40.0  # worse after the verification time
    clock.now += timedelta(minutes=3)
    engine.tick()
    with runtime.database.reader() as session:
        (finding,) = list_findings(session, open_only=True, kind=INEFFECTIVE)
    assert finding.subject == "service/inventory"
    actions = [(e.action, e.decision) for e in audit(runtime)]
    assert actions[:2] == [("scale_out", "taken"), ("escalate", "taken")]
    refused = audit(runtime)[-1]  # the same tick's burn trigger: refused, not acted
    assert (refused.action, refused.decision) == ("scale_out", "refused")
    assert refused.reason.startswith("recommendation: escalated")
    assert workers.count == 4

    burn.value = 1.0  # the burn falls (an operator fixed it): the escalation is over
    clock.now += timedelta(seconds=30)
    engine.tick()
    with runtime.database.reader() as session:
        assert list_findings(session, open_only=True, kind=INEFFECTIVE) == []


def test_a_scale_out_that_helped_is_verified_and_may_be_followed(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    engine = make_engine(runtime, workers, clock, burn)
    burn.value = 57.6
    engine.on_burn()
    assert workers.count == 6  # limited by the policy's max step of 4

    burn.value = 20.0  # lower, yet above the tier: verified, and another step is allowed
    clock.now += timedelta(minutes=3)
    engine.tick()
    assert [e.action for e in audit(runtime)] == ["scale_out", "scale_out"]
    assert workers.count == 8  # ceil(6 × 20 / 14.4) = 9, bounded by max_replicas 8
    with runtime.database.reader() as session:
        assert list_findings(session, open_only=True, kind=INEFFECTIVE) == []


def test_missing_burn_decides_nothing(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(2)
    engine = make_engine(runtime, workers, clock, Burn(clock))
    assert engine.on_burn() == []
    assert audit(runtime) == []


def firing(runtime: Runtime, fingerprint: str) -> None:
    alert = IncomingAlert(
        fingerprint=fingerprint,
        status="firing",
        starts_at=datetime.now(UTC) - timedelta(minutes=1),
        labels={"alertname": "ErrorBudgetBurn1h5m", "service": "inventory", "slo": "read-latency"},
    )
    with runtime.database.writer() as session:
        record_delivery(
            session,
            delivery=IncomingDelivery(receiver="controlplane", status="firing", alerts=(alert,)),
            received_at=datetime.now(UTC),
        )


def test_the_leader_acts_on_alerts_delivered_to_another_replica(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    burn.value = 28.8
    service = ActionService(runtime=runtime, engine=make_engine(runtime, workers, clock, burn))
    firing(runtime, "f-1")  # stored by some replica's webhook; no listener saw it here

    service.tick_now()
    service.tick_now()  # offered once; the engine's trigger key would stop a second anyway
    decisions = [(e.action, e.decision, e.evidence.get("alertname")) for e in audit(runtime)]
    assert decisions == [("scale_out", "taken", "ErrorBudgetBurn1h5m")]
    assert workers.count == 4


def test_a_follower_does_not_act(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    burn.value = 28.8
    service = ActionService(runtime=runtime, engine=make_engine(runtime, workers, clock, burn))
    firing(runtime, "f-2")
    runtime.leadership.stop()  # gives the lease up
    service.tick_now()
    assert audit(runtime) == []
    assert workers.count == 2


def test_an_alert_handed_over_by_the_webhook_is_decided_in_the_background(
    runtime: Runtime,
) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    burn.value = 28.8
    service = ActionService(
        runtime=runtime, engine=make_engine(runtime, workers, clock, burn), interval=3600
    )
    service.start()
    try:
        change = AlertChange(
            alert_id=41,
            fingerprint="f-3",
            starts_at=datetime.now(UTC),
            status="firing",
            outcome="opened",
            labels={
                "alertname": "ErrorBudgetBurn1h5m",
                "service": "inventory",
                "slo": "read-latency",
            },
        )
        runtime.notify_alert_changes([change])  # what the receiver does after its commit
        deadline = time.monotonic() + 10
        while not alert_decisions(runtime):
            assert time.monotonic() < deadline, "the alert was never decided"
            time.sleep(0.05)
    finally:
        service.stop()
    (entry,) = alert_decisions(runtime)  # the start's tick may also decide on the burn itself
    assert (entry.action, entry.evidence["alert_id"]) == ("scale_out", 41)
    assert entry.decision in ("taken", "refused")  # refused only if the burn trigger acted first
    assert workers.count == 4


def alert_decisions(runtime: Runtime) -> list[StoredAuditEntry]:
    return [e for e in audit(runtime) if e.evidence.get("alertname") == "ErrorBudgetBurn1h5m"]


def stored(runtime: Runtime, decision_id: str) -> StoredAuditEntry:
    (entry,) = [e for e in audit(runtime) if e.decision_id == decision_id]
    return entry


def open_findings(runtime: Runtime, kind: str) -> list[str]:
    with runtime.database.reader() as session:
        return [f.summary for f in list_findings(session, open_only=True, kind=kind)]


def test_verification_records_the_ready_replicas_and_flags_a_scale_out_left_unfulfilled(
    runtime: Runtime,
) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    engine = make_engine(runtime, workers, clock, burn)
    burn.value = 28.8
    (entry,) = engine.on_burn()
    assert workers.count == 4
    workers.unready = 1  # one of the new workers never becomes ready

    burn.value = 10.0  # the burn fell: the scale-out helped, yet not all it asked for runs
    clock.now += timedelta(minutes=3)
    engine.tick()
    verification = stored(runtime, entry.decision_id).evidence["verification"]
    assert (verification["requested"], verification["ready"]) == (4, 3)
    assert verification["burn_reduced"] is True
    assert open_findings(runtime, UNFULFILLED) == [
        "inventory: 3 of the 4 replicas a scale-out asked for are ready at its verification"
    ]
    assert open_findings(runtime, INEFFECTIVE) == []

    workers.unready = 0  # the last worker comes up
    clock.now += timedelta(seconds=5)
    engine.tick()
    assert open_findings(runtime, UNFULFILLED) == []


def test_what_a_scale_out_added_is_given_back_once_the_burn_stays_calm(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    engine = make_engine(runtime, workers, clock, burn)
    burn.value, burn.availability = 28.8, 1.0
    (out,) = engine.on_burn()
    assert workers.count == 4

    burn.value = 1.0
    clock.now += timedelta(minutes=3)
    engine.tick()  # verified; every burn signal under its target from now on
    verification = stored(runtime, out.decision_id).evidence["verification"]
    assert (verification["requested"], verification["ready"]) == (4, 4)
    clock.now += timedelta(minutes=4)
    engine.tick()
    assert workers.count == 4  # calm for 4 of the 5 minutes: nothing yet

    clock.now += timedelta(minutes=1, seconds=1)
    engine.tick()
    assert workers.count == 2  # back to what ran before the scale-out
    back = audit(runtime)[-1]
    assert (back.action, back.decision, back.outcome) == ("scale_in", "taken", "succeeded")
    assert back.evidence["release"]["raised_by"] == out.decision_id
    assert back.evidence["release"]["target"] == 2
    assert back.evidence["result"] == {"before": 4, "after": 2, "via": "workers"}

    clock.now += timedelta(minutes=10)
    engine.tick()  # everything given back: nothing more to decide
    assert [e.action for e in audit(runtime)] == ["scale_out", "scale_in"]


def test_a_burning_or_missing_signal_restarts_the_calm_window(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(2)
    burn = Burn(clock)
    engine = make_engine(runtime, workers, clock, burn)
    burn.value, burn.availability = 28.8, 1.0
    engine.on_burn()
    burn.value = 1.0
    clock.now += timedelta(minutes=3)
    engine.tick()
    for interruption in (20.0, None):  # the availability burn flares up, then goes missing
        clock.now += timedelta(minutes=4)
        burn.availability = interruption
        engine.tick()
        burn.availability = 1.0
        clock.now += timedelta(minutes=1, seconds=1)
        engine.tick()
        assert workers.count == 4
    clock.now += timedelta(minutes=4)
    engine.tick()  # 5 min since the second interruption, 4 since the signal came back
    assert [e.action for e in audit(runtime)] == ["scale_out"]
    clock.now += timedelta(minutes=1)
    engine.tick()
    assert workers.count == 2


def test_on_kubernetes_the_hpa_gets_back_the_capacity_policys_minimum(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(4, via="hpa-bounds")  # CPU had the HPA at 4 already
    burn = Burn(clock)
    engine = make_engine(runtime, workers, clock, burn, capacity=load_capacity_policy())
    burn.value, burn.availability = 21.6, 1.0  # 1.5× the tier → ceil(4 × 1.5) = 6
    engine.on_burn()
    assert workers.count == 6

    burn.value = 1.0
    clock.now += timedelta(minutes=3)
    engine.tick()
    for _ in range(3):  # one step of at most 2 per scale-in cooldown
        clock.now += timedelta(minutes=5, seconds=1)
        engine.tick()
    ins = [e for e in audit(runtime) if e.action == "scale_in"]
    assert [e.evidence["desired_replicas"] for e in ins] == [4, 3]
    # The capacity policy's minimum (3): not what ran before (4), nor the action policy's 1.
    assert workers.count == 3
    assert {e.evidence["release"]["target"] for e in ins} == {3}


def test_a_scale_in_with_nothing_outstanding_is_refused(runtime: Runtime) -> None:
    clock, workers = Clock(), Workers(4)
    burn = Burn(clock)
    burn.value, burn.availability = 1.0, 1.0
    engine = make_engine(runtime, workers, clock, burn)
    entry = engine.decide(
        "scale_in", "inventory", trigger_key="manual:1", trigger="operator", evidence={}
    )
    assert entry is not None
    assert entry.decision == "refused"
    assert entry.reason.startswith("recommendation: nothing to give back")
    assert workers.count == 4
