"""Two control-plane replicas on PostgreSQL, scaling a real gunicorn master on a real burn
signal, and the leader taken away mid-action:

* SIGKILLed in the middle of a decision (``CONTROLPLANE_ACTIONS_CRASH_POINT``: right after it
  claimed the execution, or right after it scaled and before it recorded the outcome): the
  follower leads within 15 s, the action is done exactly once, the dead leader's token is
  refused;
* frozen (SIGSTOP) in the middle of an action, its lease held by a live database session: the
  follower leads within 15 s once the lease expires and finishes the action; the old leader,
  thawed, does not lead, its outcome and any write under its token are refused, and it takes no
  action;
* cut off from the store by a network partition (a proxy that stops forwarding and resets
  nothing): the same, once the partition heals.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controlplane.stack.backends import PostgresPrimary
from controlplane.store.audit import AuditDecision, StoredAuditEntry, list_audit, record_decision
from controlplane.store.errors import FencingTokenStale
from tests.chaos.conftest import WEBHOOK_TOKEN, Replicas, Store, health
from tests.chaos.tools import FaultProxy, ServeProcess
from tests.integration.app.conftest import eventually
from tests.support.burn import BurnRig
from tests.support.figures import Figures

TAKEOVER_LIMIT_S = 15.0

#: An SLO of another service: the engine reads inventory's burn from the recording rule.
PROBE_SPEC = """\
apiVersion: controlplane.slo/v1
kind: SLO
metadata:
  name: probe-availability
spec:
  service: chaos-probe
  tier: standard
  description: A service the test never scales.
  objective: 0.99
  window: 30d
  sli:
    ratio:
      bad: probe_requests_total{code="500"}
      total: probe_requests_total
"""


@pytest.fixture
def calm(rig: BurnRig) -> Iterator[BurnRig]:
    """The rig at rest: no burn, two workers; put back so after the test."""
    rig.burn.labels(service="inventory", slo="read-latency").set(0)
    assert rig.actuator.scale("inventory", replicas=2).reached
    yield rig
    rig.burn.labels(service="inventory", slo="read-latency").set(0)
    rig.actuator.scale("inventory", replicas=2)


def settings_for(rig: BurnRig, store: Store, folder: Path) -> dict[str, str]:
    specs = folder / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "probe.yaml").write_text(PROBE_SPEC, encoding="utf-8")
    return {
        "database_url": store.url,
        "data_dir": str(folder / "data"),
        "webhook_token": WEBHOOK_TOKEN,
        "orchestrator": "local",
        "local_pidfile": str(rig.pidfile),
        "local_service": "inventory",
        "prometheus_url": rig.prometheus_url,
        "slo_specs": str(specs),
        "evaluation_enabled": "false",
        "action_interval_seconds": "1",
    }


def leader_of(process: ServeProcess, store: Store) -> dict[str, Any] | None:
    view = health(process, store.headers)
    return view if view is not None and view["is_leader"] else None


def two_replicas(
    replicas: Replicas, settings: dict[str, str], store: Store, *, crash_point: str | None
) -> tuple[ServeProcess, ServeProcess, int]:
    """A leads (started first), B follows; A's fencing token."""
    a_settings = dict(settings)
    if crash_point is not None:
        a_settings["actions_crash_point"] = crash_point
    a = replicas.start("replica-a", a_settings)
    view = eventually(lambda: leader_of(a, store), timeout=30, what="replica-a leading")
    b = replicas.start("replica-b", settings)
    eventually(
        lambda: (h := health(b, store.headers)) is not None and h["lease_holder"] == "replica-a",
        timeout=30,
        what="replica-b following",
    )
    return a, b, int(view["fencing_token"])


def scale_outs(store: Store) -> list[StoredAuditEntry]:
    """The scale-outs taken, oldest first."""
    with store.database.reader() as session:
        return list(reversed(list_audit(session, action="scale_out", decision="taken")))


def stale_write_refused(store: Store, token: int) -> bool:
    try:
        with store.database.writer() as session:
            record_decision(
                session,
                decision=AuditDecision(
                    at=datetime.now(UTC),
                    actor="replica-a",
                    action="scale_out",
                    target="service/inventory",
                    decision="taken",
                    fencing_token=token,
                ),
                lease_name="controlplane",
            )
    except FencingTokenStale:
        return True
    return False


def leads_again(process: ServeProcess, store: Store, *, seconds: float = 5.0) -> tuple[bool, int]:
    """Whether the replica claims to lead at any time over ``seconds`` (from its first answer
    on), and how many times it answered."""
    views = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        views.append(health(process, store.headers))
        time.sleep(0.2)
    answered = [v for v in views if v is not None]
    return any(v["is_leader"] for v in answered), len(answered)


def watch_workers(rig: BurnRig, *, seconds: float) -> set[int]:
    """The worker counts seen over ``seconds`` (an action done twice shows as a count above
    the one asked for)."""
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(rig.actuator.current_replicas("inventory"))
        time.sleep(0.2)
    return seen


@pytest.mark.parametrize("crash_point", ["after_decision", "after_act"])
def test_the_leader_sigkilled_mid_decision_is_replaced_and_the_action_done_once(
    crash_point: str,
    calm: BurnRig,
    store: Store,
    replicas: Replicas,
    tmp_path: Path,
    figures: Figures,
) -> None:
    rig = calm
    a, b, old_token = two_replicas(
        replicas, settings_for(rig, store, tmp_path), store, crash_point=crash_point
    )
    # 2× the page factor over 30 s: the leader decides 2 → 4 workers, claims it and dies.
    rig.burn.labels(service="inventory", slo="read-latency").set(28.8)
    eventually(lambda: not a.alive(), timeout=60, interval=0.05, what="replica-a's crash")
    died_at = time.monotonic()
    view = eventually(lambda: leader_of(b, store), timeout=30, interval=0.1, what="replica-b leads")
    took = time.monotonic() - died_at
    (entry,) = eventually(
        lambda: [e for e in scale_outs(store) if e.outcome not in (None, "running")],
        timeout=30,
        what="the scale-out finished",
    )
    workers = watch_workers(rig, seconds=5)
    decisions = scale_outs(store)
    refused = stale_write_refused(store, old_token)
    new_token = int(view["fencing_token"])
    doubled = max(len(decisions) - 1, 0) + max(max(workers) - 4, 0)
    held = (
        took < TAKEOVER_LIMIT_S
        and entry.outcome == "succeeded"
        and entry.executed_token == new_token
        and workers == {4}
        and doubled == 0
        and refused
    )
    figures.fault(
        f"leader SIGKILLed mid-decision ({crash_point.replace('_', ' ')})",
        must_hold="the follower leads within 15 s; the action is done exactly once; a write "
        "under the dead leader's token is refused",
        seen=f"replica-b led {took:.1f} s after the kill (token {old_token} → {new_token}); "
        f"{len(decisions)} scale-out decision, {entry.outcome} under token "
        f"{entry.executed_token} ({entry.outcome_detail}); workers seen {sorted(workers)}; "
        f"stale write {'refused' if refused else 'ACCEPTED'}",
        survived=held,
        actions_doubled=doubled,
        takeover_s=round(took, 2),
    )
    assert held, (took, entry.outcome, entry.executed_token, new_token, workers, refused)


def test_the_leader_frozen_mid_action_is_replaced_and_fenced_when_it_thaws(
    calm: BurnRig, store: Store, replicas: Replicas, tmp_path: Path, figures: Figures
) -> None:
    rig = calm
    a, b, old_token = two_replicas(
        replicas, settings_for(rig, store, tmp_path), store, crash_point=None
    )
    rig.burn.labels(service="inventory", slo="read-latency").set(28.8)
    # Freeze it the moment it has claimed the scale-out (its actuator is waiting for gunicorn
    # to fork the new workers): it holds the lease through a live database session.
    eventually(
        lambda: any(e.outcome is not None for e in scale_outs(store)),
        timeout=60,
        interval=0.005,
        what="replica-a claiming a scale-out",
    )
    a.freeze()
    frozen_at = time.monotonic()
    claimed = scale_outs(store)[0]
    view = eventually(lambda: leader_of(b, store), timeout=30, interval=0.1, what="replica-b leads")
    took = time.monotonic() - frozen_at
    new_token = int(view["fencing_token"])
    eventually(
        lambda: scale_outs(store)[0].outcome not in (None, "running"),
        timeout=30,
        what="the scale-out finished by replica-b",
    )
    a.thaw()
    # Thawed: from its first answer on it does not lead, and does not act.
    led_after_thaw, _ = leads_again(a, store)
    workers = watch_workers(rig, seconds=3)
    decisions = scale_outs(store)
    final = decisions[0]
    with store.database.reader() as session:
        by_old = [
            e for e in list_audit(session) if e.fencing_token == old_token and e.id != claimed.id
        ]
    refused = stale_write_refused(store, old_token)
    doubled = max(len(decisions) - 1, 0) + max(max(workers) - 4, 0)
    held = (
        took < TAKEOVER_LIMIT_S
        and not led_after_thaw
        and final.executed_token == new_token
        and final.outcome == "succeeded"
        and not by_old
        and workers == {4}
        and doubled == 0
        and refused
    )
    figures.fault(
        "leader frozen (SIGSTOP) mid-action, its session alive",
        must_hold="the follower leads within 15 s (lease expiry); thawed, the old leader does "
        "not lead, its writes are refused, its actions not taken",
        seen=f"replica-b led {took:.1f} s after the freeze (token {old_token} → {new_token}) "
        f"and finished the action ({final.outcome_detail}); thawed replica-a led: "
        f"{'YES' if led_after_thaw else 'no'}, decisions under its token since: {len(by_old)}, "
        f"stale write {'refused' if refused else 'ACCEPTED'}; workers seen {sorted(workers)}",
        survived=held,
        actions_doubled=doubled,
        takeover_s=round(took, 2),
    )
    assert held, (took, led_after_thaw, final.executed_token, new_token, by_old, workers)


def test_the_leader_cut_off_from_the_store_is_replaced_and_fenced_when_it_reconnects(
    calm: BurnRig,
    store: Store,
    replicas: Replicas,
    postgres_primary: PostgresPrimary,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """A network partition between the leader and PostgreSQL: its sessions stay open on the
    server (nothing resets them), so its lock is held and only the lease's expiry frees it."""
    rig = calm
    proxy = FaultProxy(f"127.0.0.1:{postgres_primary.port}").start()
    try:
        settings = settings_for(rig, store, tmp_path)
        cut_settings = {
            **settings,
            "database_url": store.url.replace(f"127.0.0.1:{postgres_primary.port}", proxy.address),
        }
        a = replicas.start("replica-a", cut_settings)
        view = eventually(lambda: leader_of(a, store), timeout=30, what="replica-a leading")
        old_token = int(view["fencing_token"])
        b = replicas.start("replica-b", settings)
        eventually(
            lambda: (
                (h := health(b, store.headers)) is not None and h["lease_holder"] == "replica-a"
            ),
            timeout=30,
            what="replica-b following",
        )
        proxy.set_mode("blackhole")
        cut_at = time.monotonic()
        cut_wall = datetime.now(UTC)
        view = eventually(lambda: leader_of(b, store), timeout=30, interval=0.1, what="b leads")
        took = time.monotonic() - cut_at
        new_token = int(view["fencing_token"])
        rig.burn.labels(service="inventory", slo="read-latency").set(28.8)
        (done,) = eventually(
            lambda: [e for e in scale_outs(store) if e.outcome == "succeeded"],
            timeout=60,
            what="replica-b scaling out",
        )
        proxy.set_mode("pass")
        led_after, answered = leads_again(a, store)
        workers = watch_workers(rig, seconds=3)
        with store.database.reader() as session:
            by_old = [
                e for e in list_audit(session) if e.fencing_token == old_token and e.at >= cut_wall
            ]
        refused = stale_write_refused(store, old_token)
    finally:
        proxy.stop()
    doubled = max(len(scale_outs(store)) - 1, 0) + max(max(workers) - 4, 0)
    held = (
        took < TAKEOVER_LIMIT_S
        and done.executed_token == new_token
        and not led_after
        and answered > 0
        and not by_old
        and workers == {4}
        and doubled == 0
        and refused
    )
    figures.fault(
        "leader cut off from the store (partition, sessions left open)",
        must_hold="the follower leads within 15 s (lease expiry); reconnected, the old leader "
        "does not lead, its writes are refused, its actions not taken",
        seen=f"replica-b led {took:.1f} s after the cut (token {old_token} → {new_token}) and "
        f"scaled 2 → 4; reconnected replica-a led: {'YES' if led_after else 'no'} "
        f"({answered} answers), decisions under its token since the cut: {len(by_old)}, "
        f"stale write {'refused' if refused else 'ACCEPTED'}; workers seen {sorted(workers)}",
        survived=held,
        actions_doubled=doubled,
        takeover_s=round(took, 2),
    )
    assert held, (took, led_after, answered, by_old, workers, refused)
