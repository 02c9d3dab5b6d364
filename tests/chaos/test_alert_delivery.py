"""Alert delivery under faults, with the real Alertmanager running the shipped configuration
(``alerts/alertmanager.yml``, test timing) and ``controlplane serve`` as its receiver:

* the receiver down for 60 s while alerts fire: every alert arrives once it is back, none is
  lost, none acted on twice;
* a storm of 100 identical deliveries at once: one alert, one action;
* the control plane's own store (PostgreSQL) restarted under webhook load: what was answered 5xx
  while it was down Alertmanager retries, and no alert is lost.

Alerts that a rule of the action policy maps to a scale-out act on a real gunicorn master (the
burn rig), so "acted on" is counted in workers, not only in the audit log.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alerts.receiver import WEBHOOK_PATH
from controlplane.actions.signals import prometheus_burn_reader
from controlplane.core.processes import free_ports
from controlplane.sources.prometheus import PrometheusSource
from controlplane.stack.backends import Alertmanager, PostgresPrimary
from controlplane.store.alerts import list_alerts
from controlplane.store.audit import list_audit
from tests.chaos.conftest import WEBHOOK_TOKEN, Replicas, Store, new_store
from tests.chaos.test_leadership import settings_for
from tests.integration.app.conftest import eventually
from tests.support.backends import TEST_PG_CONF, BackendPool, launch
from tests.support.burn import BurnRig
from tests.support.figures import Figures

REPO = Path(__file__).resolve().parents[2]
RECEIVER_DOWN_S = 60.0
STORM = 100


@pytest.fixture
def burning(rig: BurnRig) -> Iterator[BurnRig]:
    """Two workers and a fresh 2× page burn: an alert-triggered scale-out goes 2 → 4."""
    assert rig.actuator.scale("inventory", replicas=2).reached
    rig.burn.labels(service="inventory", slo="read-latency").set(28.8)
    reader = prometheus_burn_reader(PrometheusSource(url=rig.prometheus_url, timeout=5))
    eventually(
        lambda: reader("inventory", "read-latency", "30s").value == 28.8,
        timeout=30,
        what="the burn in Prometheus",
    )
    yield rig
    rig.burn.labels(service="inventory", slo="read-latency").set(0)
    rig.actuator.scale("inventory", replicas=2)


def alert_only_policy(folder: Path) -> Path:
    """The shipped action policy without its burn trigger: only alerts lead to scale-outs here."""
    policy = yaml.safe_load(
        (REPO / "controlplane" / "policies" / "actions.yaml").read_text(encoding="utf-8")
    )
    policy["spec"]["rules"] = [r for r in policy["spec"]["rules"] if "alert" in r["trigger"]]
    path = folder / "actions.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return path


def token_file(folder: Path) -> Path:
    path = folder / "webhook.token"
    path.write_text(WEBHOOK_TOKEN + "\n", encoding="utf-8")
    path.chmod(0o644)  # Alertmanager may run as another user
    return path


def alertmanager_for(pool: BackendPool, *, port: int, token: Path) -> Alertmanager:
    """The shipped configuration pointed at ``port``, with test timing (a notification within
    a second, a failed one retried at the next group interval, repeats every 10 s)."""
    config = yaml.safe_load((REPO / "alerts" / "alertmanager.yml").read_text(encoding="utf-8"))
    webhook = config["receivers"][0]["webhook_configs"][0]
    webhook["url"] = f"http://127.0.0.1:{port}/api/v1{WEBHOOK_PATH}"
    webhook["http_config"]["authorization"]["credentials_file"] = str(token)
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update(group_wait="1s", group_interval="2s", repeat_interval="10s")
    return launch(pool, Alertmanager, config=config)


def fire(alertmanager: Alertmanager, alerts: list[dict[str, Any]]) -> None:
    answer = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=alerts, timeout=10)
    assert answer.status_code == 200, answer.text


def page_alert(instance: str, *, alertname: str = "ErrorBudgetBurn1h5m") -> dict[str, Any]:
    starts = datetime.now(UTC).replace(microsecond=0)
    return {
        "labels": {
            "alertname": alertname,
            "service": "inventory",
            "slo": "read-latency",
            "severity": "page",
            "instance": instance,
        },
        "annotations": {"summary": "read-latency burns 14.4x over 1h and 5m"},
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(hours=1)).isoformat(),
    }


def stored_instances(store: Store, prefix: str) -> dict[str, int]:
    """Stored alerts of this test: instance → repeats."""
    with store.database.reader() as session:
        found = list_alerts(session, limit=5000)
    return {
        a.labels.get("instance", ""): a.repeat_count
        for a in found
        if a.labels.get("instance", "").startswith(prefix)
    }


def decisions_per_trigger(store: Store) -> tuple[dict[str, int], int]:
    """scale_out decisions per trigger key, and how many were taken."""
    with store.database.reader() as session:
        entries = list_audit(session, action="scale_out", limit=5000)
    per: dict[str, int] = {}
    for entry in entries:
        per[entry.trigger_key or entry.decision_id] = (
            per.get(entry.trigger_key or entry.decision_id, 0) + 1
        )
    return per, sum(1 for e in entries if e.decision == "taken")


def test_the_receiver_down_for_60_s_gets_every_alert_after_none_lost_none_acted_twice(
    burning: BurnRig,
    store: Store,
    replicas: Replicas,
    backend_pool: BackendPool,
    tmp_path: Path,
    figures: Figures,
) -> None:
    rig = burning
    port = free_ports(1)[0]
    settings = {
        **settings_for(rig, store, tmp_path),
        "action_policy": str(alert_only_policy(tmp_path)),
    }
    receiver = replicas.start("receiver", settings, port=port)
    alertmanager = alertmanager_for(backend_pool, port=port, token=token_file(tmp_path))
    try:
        prefix = f"down-{uuid.uuid4().hex[:6]}-"
        receiver.stop()  # down: connections refused
        down_at = time.monotonic()
        instances = [f"{prefix}{n}" for n in range(20)]
        fire(alertmanager, [page_alert(instance) for instance in instances])
        time.sleep(RECEIVER_DOWN_S)
        receiver.start()
        back_at = time.monotonic()
        arrived = eventually(
            lambda: (found := stored_instances(store, prefix)).keys() == set(instances) and found,
            timeout=120,
            what="every alert stored",
        )
        arrived_s = time.monotonic() - back_at
        time.sleep(12)  # a repeat interval: repeats arrive, and must not act again
        repeats = sum(stored_instances(store, prefix).values())
        per_trigger, taken = decisions_per_trigger(store)
        workers = rig.actuator.current_replicas("inventory")
    finally:
        backend_pool.stop(alertmanager)
    lost = len(set(instances) - set(arrived))
    twice = sum(n - 1 for n in per_trigger.values() if n > 1) + max(taken - 1, 0)
    held = lost == 0 and twice == 0 and taken == 1 and workers == 4
    figures.fault(
        "receiver down 60 s while the real Alertmanager delivers",
        must_hold="every alert arrives after, none lost, none acted on twice",
        seen=f"receiver down {back_at - down_at:.0f} s; {len(arrived)}/{len(instances)} alerts "
        f"stored {arrived_s:.1f} s after it came back ({repeats} repeats since); "
        f"{len(per_trigger)} decisions, {taken} taken (one per trigger), workers 2 → {workers}",
        survived=held,
        acked_lost=lost,
        actions_doubled=twice,
        receiver_down_s=round(back_at - down_at, 1),
        delivered_after_s=round(arrived_s, 1),
    )
    assert held, (lost, per_trigger, taken, workers)


def test_a_storm_of_100_duplicate_deliveries_is_one_alert_and_one_action(
    burning: BurnRig, store: Store, replicas: Replicas, tmp_path: Path, figures: Figures
) -> None:
    rig = burning
    settings = {
        **settings_for(rig, store, tmp_path),
        "action_policy": str(alert_only_policy(tmp_path)),
    }
    receiver = replicas.start("receiver", settings)
    eventually(
        lambda: (
            (h := httpx.get(f"{receiver.url}/api/v1/health", headers=store.headers))
            and h.json()["leader"]["is_leader"]
        ),
        timeout=30,
        what="the receiver leading",
    )
    fingerprint = uuid.uuid4().hex[:16]
    alert = page_alert(f"storm-{fingerprint}")
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="ErrorBudgetBurn1h5m"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "controlplane",
        "groupLabels": {"alertname": "ErrorBudgetBurn1h5m"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                **alert,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint,
            }
        ],
    }

    def deliver(_: int) -> int:
        with httpx.Client(timeout=30) as client:
            return client.post(
                f"{receiver.url}/api/v1{WEBHOOK_PATH}",
                json=body,
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:  # 20 at a time, 100 in all
        statuses = list(pool.map(deliver, range(STORM)))
    eventually(
        lambda: decisions_per_trigger(store)[1] >= 1, timeout=30, what="the scale-out decision"
    )
    time.sleep(5)  # time for any second action to show
    stored = stored_instances(store, "storm-")
    per_trigger, taken = decisions_per_trigger(store)
    workers = rig.actuator.current_replicas("inventory")
    twice = sum(n - 1 for n in per_trigger.values()) + max(taken - 1, 0)
    held = (
        statuses.count(200) == STORM
        and len(stored) == 1
        and list(stored.values()) == [STORM - 1]
        and taken == 1
        and twice == 0
        and workers == 4
    )
    figures.fault(
        f"storm of {STORM} identical deliveries at once",
        must_hold="one alert, one action",
        seen=f"{statuses.count(200)}/{STORM} answered 200; {len(stored)} alert stored "
        f"({sum(stored.values())} repeats); {len(per_trigger)} decision, {taken} taken; "
        f"workers 2 → {workers}",
        survived=held,
        actions_doubled=twice,
    )
    assert held, (statuses, stored, per_trigger, taken, workers)


def test_the_store_restarted_under_webhook_load_loses_no_alert(
    replicas: Replicas, backend_pool: BackendPool, tmp_path: Path, figures: Figures
) -> None:
    postgres: PostgresPrimary = launch(backend_pool, PostgresPrimary, extra_conf=TEST_PG_CONF)
    own = new_store(postgres)
    port = free_ports(1)[0]
    replicas.start(
        "receiver",
        {
            "database_url": own.url,
            "data_dir": str(tmp_path / "data"),
            "webhook_token": WEBHOOK_TOKEN,
            "evaluation_enabled": "false",
        },
        port=port,
    )
    alertmanager = alertmanager_for(backend_pool, port=port, token=token_file(tmp_path))
    prefix = f"load-{uuid.uuid4().hex[:6]}-"
    fired: list[str] = []
    stop = threading.Event()

    def load() -> None:  # five new alerts a second, each its own group (its own alertname)
        n = 0
        while not stop.is_set():
            batch = [f"{prefix}{n + i}" for i in range(5)]
            fire(alertmanager, [page_alert(i, alertname=f"Load{i[-6:]}") for i in batch])
            fired.extend(batch)
            n += 5
            stop.wait(1.0)

    loader = threading.Thread(target=load, daemon=True)
    try:
        loader.start()
        time.sleep(8)
        backend_pool.stop(postgres)  # the store goes away under load ...
        down_at = time.monotonic()
        time.sleep(10)
        backend_pool.start(postgres)  # ... and comes back on the same data
        down_s = time.monotonic() - down_at
        time.sleep(8)
        stop.set()
        loader.join(timeout=30)
        arrived = eventually(
            lambda: (found := stored_instances(own, prefix)).keys() >= set(fired) and found,
            timeout=120,
            what="every alert stored",
        )
        failed = notifications_failed(alertmanager)
    finally:
        stop.set()
        backend_pool.stop(alertmanager)
        own.database.dispose()
        replicas.stop_all()
        backend_pool.stop(postgres)
    lost = len(set(fired) - set(arrived))
    held = lost == 0 and failed > 0
    figures.fault(
        "control-plane store (PostgreSQL) restarted under webhook load",
        must_hold="deliveries answered 5xx while it is down are retried by Alertmanager; "
        "none is lost",
        seen=f"store down {down_s:.1f} s; {failed} notifications failed and retried; "
        f"{len(set(fired) & set(arrived))}/{len(fired)} alerts stored",
        survived=held,
        acked_lost=lost,
        store_down_s=round(down_s, 1),
    )
    assert held, (lost, failed)


def notifications_failed(alertmanager: Alertmanager) -> int:
    text = httpx.get(f"{alertmanager.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("alertmanager_notifications_failed_total") and (
            'integration="webhook"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
