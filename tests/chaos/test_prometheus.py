"""Prometheus frozen, then answering garbage, during an active burn.

The real inventory API (gunicorn) serves reads slowed by its fault injection, so its read-latency
SLO burns; Prometheus scrapes it every second; ``controlplane serve`` evaluates the SLO every 2 s
and runs the action engine on the API's gunicorn master (local orchestrator), reading Prometheus
through a fault proxy. The engine scales the API out to its policy maximum (2 workers) on the
burn, then the faults come:

1. Prometheus frozen with SIGSTOP for 30 s (connections accepted by the kernel, never answered);
2. then the proxy answers every query itself with garbage for 25 s (not JSON, cut JSON, the wrong
   shape, NaN);
3. then Prometheus answers again.

During each: the SLO is ``no_data`` (never a number from a stale or unreadable answer), a finding
says the evaluation cannot read Prometheus, and no scaling is taken — neither a scale-out on
stale data nor a scale-in because the burn "went away". After: the SLO has values again, the
finding is resolved and the engine reads the burn again.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controlplane.actions.scaling_drill import OpenLoopLoad
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.stack.backends import PostgresPrimary, PostgresReplica, Prometheus, Redis
from controlplane.store.audit import StoredAuditEntry, list_audit
from controlplane.targets.reconcile import INPUT_UNAVAILABLE
from tests.chaos.conftest import WEBHOOK_TOKEN, Replicas, Store
from tests.chaos.tools import FaultProxy, open_findings
from tests.integration.app.conftest import (
    Api,
    Databases,
    Stack,
    create_database,
    eventually,
    make_item,
    stack_env,
    unique,
)
from tests.support.backends import PrometheusFactory
from tests.support.figures import Figures

REPO = Path(__file__).resolve().parents[2]
FROZEN_S = 30.0
GARBAGE_S = 25.0
INTERVAL_S = 2.0
SLO = "read-latency"
FINDING = "check/slo-evaluation/prometheus"


@dataclass
class Burning:
    api: Api
    prometheus: Prometheus
    actuator: LocalGunicornActuator
    faults_file: Path


@pytest.fixture
def burning_api(
    tmp_path: Path,
    postgres_primary: PostgresPrimary,
    postgres_replica: PostgresReplica,
    redis_server: Redis,
    prometheus_factory: PrometheusFactory,
) -> Iterator[Burning]:
    """The inventory API (one worker) under 6 reads/s, each held 300 ms: past the 250 ms
    threshold, so the read-latency SLO burns whatever the capacity."""
    databases = Databases(
        name=create_database(postgres_primary), primary=postgres_primary, replica=postgres_replica
    )
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"service_time_ms": 300, "methods": ["GET"]}), encoding="utf-8")
    env = stack_env(dbs=databases, redis=redis_server, stream=unique("chaos:prom"))
    stack = Stack(tmp=tmp_path / "inventory", base_env=env)
    load: OpenLoopLoad | None = None
    try:
        api = stack.api(workers=1, INVENTORY_FAULTS_FILE=str(faults))
        with api.client() as client:
            skus = itertools.cycle([make_item(client) for _ in range(3)])
        prometheus = prometheus_factory(
            config={
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "inventory",
                        "static_configs": [{"targets": [f"127.0.0.1:{api.port}"]}],
                    }
                ],
            }
        )
        load = OpenLoopLoad(url=api.url, path=lambda: f"/api/v1/stock/{next(skus)}", rate=6)
        load.start()
        yield Burning(
            api=api,
            prometheus=prometheus,
            actuator=LocalGunicornActuator(pidfile=api.pidfile),
            faults_file=faults,
        )
    finally:
        if load is not None:
            load.stop()
        stack.stop_all()


def capped_policy(folder: Path) -> Path:
    """The shipped action policy, the API capped at 2 workers (so the burn outlives the
    scale-out) and a scale-in due after 10 s of calm (so a blind one would show at once)."""
    policy = yaml.safe_load(
        (REPO / "controlplane" / "policies" / "actions.yaml").read_text(encoding="utf-8")
    )
    scaling = policy["spec"]["scaling"]["inventory"]
    scaling.update(max_replicas=2, verify_after="15s", scale_in_after="10s")
    path = folder / "actions.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return path


def slo_status(url: str, headers: dict[str, str]) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{url}/api/v1/slos/{SLO}", headers=headers, timeout=5)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


def scaling_decisions(store: Store) -> list[StoredAuditEntry]:
    with store.database.reader() as session:
        return [e for e in list_audit(session, limit=2000) if e.action in ("scale_out", "scale_in")]


def on_stale_inputs(entry: StoredAuditEntry) -> bool:
    """A taken scaling decision whose inputs were missing or older than 2 minutes."""
    inputs = entry.evidence.get("inputs", {})
    for value in inputs.values():
        observed = value.get("observed_at")
        if value.get("value") is None or observed is None:
            return True
        if entry.at - datetime.fromisoformat(observed) > timedelta(minutes=2):
            return True
    return False


@dataclass
class Window:
    fault: str
    states: set[str]
    reasons: set[str]
    finding_open: bool
    taken: int
    workers: set[int]


def watch(
    *, fault: str, seconds: float, url: str, store: Store, burning: Burning, since: datetime
) -> Window:
    """What the control plane says and does while a fault lasts (from its second interval on,
    once the first evaluation after the fault could have seen it)."""
    states: set[str] = set()
    reasons: set[str] = set()
    finding = False
    workers: set[int] = set()
    deadline = time.monotonic() + seconds
    time.sleep(min(seconds, 3 * INTERVAL_S + 5))  # the timeouts of the first frozen cycle
    while time.monotonic() < deadline:
        status = slo_status(url, store.headers)
        if status is not None:
            states.add(status["state"])
            reasons.add((status.get("no_data_reason") or "")[:80])
        finding = finding or FINDING in open_findings(url, store.headers, kind=INPUT_UNAVAILABLE)
        workers.add(burning.actuator.current_replicas("inventory"))
        time.sleep(1)
    taken = [
        e
        for e in scaling_decisions(store)
        if e.decision == "taken" and not e.dry_run and e.at >= since
    ]
    return Window(
        fault=fault,
        states=states,
        reasons=reasons - {""},
        finding_open=finding,
        taken=len(taken),
        workers=workers,
    )


def test_prometheus_frozen_then_answering_garbage_during_a_burn(
    burning_api: Burning,
    store: Store,
    replicas: Replicas,
    tmp_path: Path,
    figures: Figures,
) -> None:
    burning = burning_api
    proxy = FaultProxy(f"127.0.0.1:{burning.prometheus.port}").start()
    try:
        specs = tmp_path / "specs"
        specs.mkdir()
        (specs / "inventory-api.yaml").write_text(
            (REPO / "slo" / "specs" / "inventory-api.yaml").read_text(encoding="utf-8"),
            encoding="utf-8",
        )
        control = replicas.start(
            "controlplane",
            {
                "database_url": store.url,
                "data_dir": str(tmp_path / "data"),
                "webhook_token": WEBHOOK_TOKEN,
                "orchestrator": "local",
                "local_pidfile": str(burning.api.pidfile),
                "local_service": "inventory",
                "prometheus_url": proxy.url,
                "slo_specs": str(specs),
                "action_policy": str(capped_policy(tmp_path)),
                "evaluation_interval_seconds": str(INTERVAL_S),
                "action_interval_seconds": "1",
                "source_timeout_seconds": "2",
                "source_retry_attempts": "1",
            },
        )
        # The burn is real and acted on: scaled out to the policy's maximum.
        eventually(
            lambda: burning.actuator.current_replicas("inventory") == 2,
            timeout=120,
            what="the scale-out on the burn",
        )
        before = eventually(
            lambda: (
                (s := slo_status(control.url, store.headers)) is not None
                and s["state"] == "ok"
                and s
            ),
            timeout=60,
            what="the SLO evaluated",
        )
        burn_before = max(v for v in before["burn_rates"].values() if v is not None)

        # 1. Frozen.
        start = datetime.now(UTC)
        assert burning.prometheus.process is not None
        pid = burning.prometheus.process.pid
        os.killpg(pid, signal.SIGSTOP)
        try:
            frozen = watch(
                fault="frozen",
                seconds=FROZEN_S,
                url=control.url,
                store=store,
                burning=burning,
                since=start,
            )
        finally:
            os.killpg(pid, signal.SIGCONT)
        # 2. Garbage.
        garbage_start = datetime.now(UTC)
        proxy.set_mode("garbage")
        garbage = watch(
            fault="garbage",
            seconds=GARBAGE_S,
            url=control.url,
            store=store,
            burning=burning,
            since=garbage_start,
        )
        # 3. Back.
        proxy.set_mode("pass")
        back_at = time.monotonic()
        back_wall = datetime.now(UTC)
        recovered = eventually(
            lambda: (
                (s := slo_status(control.url, store.headers)) is not None
                and s["state"] == "ok"
                and FINDING not in open_findings(control.url, store.headers, kind=INPUT_UNAVAILABLE)
                and s
            ),
            timeout=60,
            what="the SLO and the finding back to normal",
        )
        recovered_s = time.monotonic() - back_at
        reading_again = eventually(
            lambda: [e for e in scaling_decisions(store) if e.at > back_wall],
            timeout=60,
            what="the engine deciding on the burn again",
        )
        decisions = scaling_decisions(store)
    finally:
        proxy.stop()

    stale_taken = [e for e in decisions if e.decision == "taken" and on_stale_inputs(e)]
    for window in (frozen, garbage):
        destructive = window.taken + (len(stale_taken) if window is frozen else 0)
        held = (
            window.states == {"no_data"}
            and window.finding_open
            and window.taken == 0
            and window.workers == {2}
            and destructive == 0
            and recovered["state"] == "ok"
        )
        what = "frozen (SIGSTOP) 30 s" if window is frozen else "answering garbage 25 s"
        figures.fault(
            f"Prometheus {what} during an active burn",
            must_hold="SLO no_data, a finding opened, no scale-in, no scale-out on stale data; "
            "recovery when it comes back",
            seen=f"burn {burn_before:.0f}× before; SLO states {sorted(window.states)} "
            f"({'; '.join(sorted(window.reasons))[:120]}); finding "
            f"{'opened' if window.finding_open else 'NOT opened'}; {window.taken} scaling "
            f"taken, workers {sorted(window.workers)}; back to ok and finding resolved "
            f"{recovered_s:.1f} s after, engine deciding again "
            f"({reading_again[0].decision}: {reading_again[0].reason[:50]})",
            survived=held,
            destructive_on_stale=destructive,
            recovered_s=round(recovered_s, 1),
        )
    assert frozen.states == {"no_data"}, frozen
    assert garbage.states == {"no_data"}, garbage
    assert frozen.finding_open, frozen
    assert garbage.finding_open, garbage
    assert frozen.taken == garbage.taken == 0
    assert frozen.workers == garbage.workers == {2}
    assert not stale_taken, stale_taken
    assert proxy.garbage_answers > 0
