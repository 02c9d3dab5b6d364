"""Scaling on Kubernetes, every link on real objects: the engine's audited decision → the HPA's
``minReplicas`` → the real HPA controller resizes the Deployment → the ReplicaSet controller
creates pods → the scheduler places them → KWOK makes them Ready → the engine's verification
reads ``readyReplicas``; and back: the scale-in gives the HPA the capacity policy's bounds again
and the HPA shrinks the Deployment after its downscale stabilisation (15 s here).

The engine acts with the ``controlplane`` ServiceAccount's token, so deploy/k8s's RBAC is all
it has. KWOK's pods serve no traffic, so the burn comes from a source the test controls: a gauge
Prometheus scrapes and records as the burn series the engine reads. That the burn then falls
because of the new replicas is proven on the local orchestrator
(tests/integration/app/test_scaling_closed_loop.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from controlplane.actions.engine import UNFULFILLED, ActionEngine, BurnReader
from controlplane.actions.policy import (
    ActionPolicy,
    BurnSignal,
    BurnTrigger,
    Rule,
    ServiceScaling,
    Trigger,
    load_action_policy,
)
from controlplane.actions.service import ActionService
from controlplane.actions.signals import prometheus_burn_reader
from controlplane.actuators.kubernetes import KubernetesActuator
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.processes import free_ports
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator
from controlplane.runtime import Runtime
from controlplane.sources.prometheus import PrometheusSource
from controlplane.stack.kubernetes import INVENTORY_NAMESPACE, KubernetesCluster
from controlplane.store.actions import KILL_SWITCH, set_flag
from controlplane.store.alerts import AlertChange
from controlplane.store.audit import StoredAuditEntry, list_audit
from controlplane.store.findings import list_findings
from controlplane.targets.policy import load_capacity_policy
from tests.support.backends import PrometheusFactory
from tests.support.kube import admin_client, client_for, wait_for
from tests.support.runtime import leading_runtime

pytestmark = pytest.mark.integration

NAMESPACE = INVENTORY_NAMESPACE
#: The capacity policy's bounds of inventory, which its HPA carries.
CAPACITY = load_capacity_policy().spec.service("inventory")
assert CAPACITY is not None
FLOOR, CEILING = CAPACITY.replicas.min, CAPACITY.replicas.max
#: 1.5× the page tier (14.4×): ceil(3 × 1.5) = 5 replicas.
BURN = 21.6
#: Waits on the controllers (the HPA syncs every 5 s and scales down after 15 s of stability).
SETTLE = 90.0


# -- the burn source -------------------------------------------------------------------------
@dataclass
class BurnSource:
    """Burn rates a test sets, read by the engine through Prometheus (scraped every second and
    recorded as ``slo:burn_rate:rate30s``, the series of the SLO rules)."""

    gauge: Gauge
    url: str

    def reader(self) -> BurnReader:
        return prometheus_burn_reader(PrometheusSource(url=self.url, timeout=5))

    def set(self, service: str, slo: str, value: float) -> None:
        """Set a burn and wait until the engine's reader sees it, fresh."""
        self.gauge.labels(service=service, slo=slo).set(value)
        reader = self.reader()

        def seen() -> bool:
            current = reader(service, slo, "30s")
            return (
                current.value == value
                and current.observed_at is not None
                and datetime.now(UTC) - current.observed_at < timedelta(seconds=5)
            )

        wait_for(seen, timeout=30, what=f"{service} {slo} burn {value} in Prometheus")

    def calm(self, service: str) -> None:
        self.set(service, "read-latency", 1.0)
        self.set(service, "api-availability", 0.5)


@pytest.fixture(scope="module")
def burn(prometheus_factory: PrometheusFactory) -> Iterator[BurnSource]:
    (port,) = free_ports(1)
    registry = CollectorRegistry()
    gauge = Gauge("test_burn_rate", "burn", ["service", "slo"], registry=registry)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus = prometheus_factory(
            config={
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "burn", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                ],
            },
            rules={
                "burn.yml": "groups:\n- name: burn\n  interval: 1s\n  rules:\n"
                "  - record: slo:burn_rate:rate30s\n    expr: test_burn_rate\n"
            },
        )
        yield BurnSource(gauge=gauge, url=prometheus.url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- the cluster -----------------------------------------------------------------------------
@dataclass
class Cluster:
    """Admin views of the objects the engine changes (the assertions read with these; the engine
    itself only has the ServiceAccount)."""

    apps: k8s.AppsV1Api
    autoscaling: k8s.AutoscalingV2Api
    core: k8s.CoreV1Api

    def hpa(self, name: str = "inventory") -> Any:
        return self.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, NAMESPACE)

    def deployment(self, name: str = "inventory") -> Any:
        return self.apps.read_namespaced_deployment(name, NAMESPACE)

    def ready(self, name: str = "inventory") -> int:
        return int(self.deployment(name).status.ready_replicas or 0)

    def _selector(self, name: str) -> str:
        labels = self.deployment(name).spec.selector.match_labels
        return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))

    def pods(self, name: str = "inventory") -> list[Any]:
        """The Deployment's pods, those being deleted left out."""
        selector = self._selector(name)
        items: list[Any] = self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return [pod for pod in items if pod.metadata.deletion_timestamp is None]

    def replica_sets(self, name: str = "inventory") -> list[Any]:
        """The Deployment's ReplicaSets that run pods (owned by it, replicas above zero)."""
        uid = self.deployment(name).metadata.uid
        items: list[Any] = self.apps.list_namespaced_replica_set(
            NAMESPACE, label_selector=self._selector(name)
        ).items
        return [
            rs
            for rs in items
            if any(ref.uid == uid for ref in rs.metadata.owner_references or [])
            and rs.spec.replicas
        ]

    def settled(self, name: str, replicas: int) -> bool:
        deployment = self.deployment(name)
        return (
            deployment.spec.replicas == replicas
            and deployment.status.ready_replicas == replicas
            and len(self.pods(name)) == replicas
        )

    def restore_inventory(self) -> None:
        """The HPA back to the capacity policy's bounds, the Deployment back to its minimum."""
        self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            "inventory", NAMESPACE, {"spec": {"minReplicas": FLOOR, "maxReplicas": CEILING}}
        )
        wait_for(
            lambda: self.settled("inventory", FLOOR), timeout=SETTLE, what="inventory back at 3"
        )

    def node_names(self) -> set[str]:
        nodes: list[Any] = self.core.list_node().items
        return {node.metadata.name for node in nodes}

    def set_schedulable(self, schedulable: bool) -> None:
        for name in self.node_names():
            self.core.patch_node(name, {"spec": {"unschedulable": not schedulable}})


def placed_and_ready(pod: Any) -> bool:
    conditions = {c.type: c.status for c in pod.status.conditions or []}
    return bool(pod.spec.node_name) and conditions.get("Ready") == "True"


@pytest.fixture(scope="module")
def cluster(
    kubernetes_cluster: KubernetesCluster, inventory_on_kubernetes: list[dict[str, Any]]
) -> Iterator[Cluster]:
    api = admin_client(kubernetes_cluster)
    try:
        yield Cluster(
            apps=k8s.AppsV1Api(api), autoscaling=k8s.AutoscalingV2Api(api), core=k8s.CoreV1Api(api)
        )
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def service_account(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A kubeconfig with the controlplane ServiceAccount's token."""
    return kubernetes_cluster.service_account_kubeconfig(
        tmp_path_factory.mktemp("controlplane") / "kubeconfig",
        namespace=NAMESPACE,
        name="controlplane",
    )


@pytest.fixture
def actuator(service_account: Path) -> Iterator[KubernetesActuator]:
    api = client_for(service_account)
    try:
        yield KubernetesActuator(api_client=api, namespace=NAMESPACE)
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path / "store") as started:
        yield started


# -- the engine ------------------------------------------------------------------------------
def quick(policy: ActionPolicy, **scaling: Any) -> ActionPolicy:
    """The policy with short verification and calm windows (2 and 5 minutes in production)."""
    changes = {"verify_after": timedelta(seconds=5), "scale_in_after": timedelta(seconds=10)}
    specs = {
        name: spec.model_copy(update={**changes, **scaling})
        for name, spec in policy.spec.scaling.items()
    }
    return policy.model_copy(update={"spec": policy.spec.model_copy(update={"scaling": specs})})


def worker_policy() -> ActionPolicy:
    """The shipped policy's actions scaling inventory-worker (a Deployment without an HPA, and
    not in the capacity policy) on a read-latency burn."""
    shipped = load_action_policy()
    rule = Rule(
        name="worker-burn-scales-out",
        trigger=Trigger(burn=BurnTrigger(slo="read-latency", window="30s", above=14.4)),
        action="scale_out",
        service="inventory-worker",
    )
    scaling = ServiceScaling(
        min_replicas=1,
        max_replicas=8,
        burn_signals=(BurnSignal(slo="read-latency", window="30s", target=14.4),),
        verify_after=timedelta(seconds=5),
    )
    spec = shipped.spec.model_copy(
        update={"rules": (rule,), "scaling": {"inventory-worker": scaling}}
    )
    return shipped.model_copy(update={"spec": spec})


def engine_for(
    runtime: Runtime, actuator: KubernetesActuator, burn: BurnSource, policy: ActionPolicy
) -> ActionEngine:
    return ActionEngine(
        policy=policy,
        database=runtime.database,
        leadership=runtime.leadership,
        lease_name=runtime.settings.leader.leader_name,
        actuator=actuator,
        burn_reader=burn.reader(),
        capacity=load_capacity_policy(),
    )


def audit(runtime: Runtime) -> list[StoredAuditEntry]:
    with runtime.database.reader() as session:
        return list(reversed(list_audit(session)))


def decisions(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    return [(e.action, e.decision, e.outcome) for e in audit(runtime)]


def stored(runtime: Runtime, decision_id: str) -> StoredAuditEntry:
    (entry,) = [e for e in audit(runtime) if e.decision_id == decision_id]
    return entry


def open_unfulfilled(runtime: Runtime) -> list[str]:
    with runtime.database.reader() as session:
        return [f.subject for f in list_findings(session, open_only=True, kind=UNFULFILLED)]


def verified(engine: ActionEngine, runtime: Runtime, decision_id: str) -> dict[str, Any]:
    """Run the engine's verification once it is due; the evidence it wrote."""

    def done() -> bool:
        engine.verify_due()
        return "verification" in stored(runtime, decision_id).evidence

    wait_for(done, timeout=30, what="the scale-out's verification")
    verification: dict[str, Any] = stored(runtime, decision_id).evidence["verification"]
    return verification


# -- the tests -------------------------------------------------------------------------------
def test_a_burn_raises_the_hpa_minimum_and_the_real_controllers_bring_ready_pods(
    cluster: Cluster, actuator: KubernetesActuator, runtime: Runtime, burn: BurnSource
) -> None:
    engine = engine_for(runtime, actuator, burn, quick(load_action_policy()))
    burn.set("inventory", "read-latency", BURN)
    try:
        (entry,) = engine.on_burn()
        assert (entry.action, entry.decision, entry.outcome) == ("scale_out", "taken", "succeeded")
        assert entry.outcome_detail == "hpa-bounds: 3 → 5 (asked 5)"
        hpa = cluster.hpa()
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (5, CEILING)
        # The HPA controller (not the engine) moves the Deployment.
        wait_for(
            lambda: cluster.hpa().status.desired_replicas == 5, timeout=SETTLE, what="HPA wants 5"
        )
        wait_for(lambda: cluster.deployment().spec.replicas == 5, timeout=SETTLE, what="5 asked")
        wait_for(lambda: cluster.ready() == 5, timeout=SETTLE, what="5 ready replicas")
        (replica_set,) = cluster.replica_sets()
        assert replica_set.spec.replicas == 5
        assert replica_set.status.ready_replicas == 5
        pods = cluster.pods()
        assert len(pods) == 5
        assert all(placed_and_ready(pod) for pod in pods)
        assert {pod.spec.node_name for pod in pods} <= cluster.node_names()

        burn.set("inventory", "read-latency", 1.0)  # the burn falls (no traffic reaches KWOK)
        verification = verified(engine, runtime, entry.decision_id)
        assert (verification["requested"], verification["ready"]) == (5, 5)
        assert verification["burn_reduced"] is True
        assert open_unfulfilled(runtime) == []
        assert decisions(runtime) == [("scale_out", "taken", "succeeded")]
        evidence = stored(runtime, entry.decision_id).evidence
        assert evidence["result"] == {"before": 3, "after": 5, "via": "hpa-bounds"}
        assert evidence["inputs"]["read-latency burn 30s"]["value"] == BURN
        assert [c["check"] for c in evidence["gate"]][-1] == "mode"
    finally:
        cluster.restore_inventory()


def test_pods_that_cannot_be_placed_leave_the_scale_out_unfulfilled_until_they_are(
    cluster: Cluster, actuator: KubernetesActuator, runtime: Runtime, burn: BurnSource
) -> None:
    engine = engine_for(runtime, actuator, burn, quick(load_action_policy()))
    burn.set("inventory", "read-latency", BURN)
    cluster.set_schedulable(False)  # every node cordoned: new pods stay Pending
    try:
        (entry,) = engine.on_burn()
        assert entry.outcome == "succeeded"  # the HPA took the new minimum
        wait_for(lambda: cluster.deployment().spec.replicas == 5, timeout=SETTLE, what="5 asked")
        wait_for(lambda: len(cluster.pods()) == 5, timeout=SETTLE, what="5 pods created")
        assert sum(1 for pod in cluster.pods() if not pod.spec.node_name) == 2

        verification = verified(engine, runtime, entry.decision_id)
        assert (verification["requested"], verification["ready"]) == (5, 3)
        assert open_unfulfilled(runtime) == ["service/inventory"]

        cluster.set_schedulable(True)
        wait_for(lambda: cluster.ready() == 5, timeout=SETTLE, what="the pending pods placed")
        assert engine.recheck_unfulfilled() == ["inventory"]
        assert open_unfulfilled(runtime) == []
    finally:
        cluster.set_schedulable(True)
        cluster.restore_inventory()


def test_a_deployment_without_an_hpa_gets_its_scale_subresource_patched(
    cluster: Cluster, actuator: KubernetesActuator, runtime: Runtime, burn: BurnSource
) -> None:
    hpas = cluster.autoscaling.list_namespaced_horizontal_pod_autoscaler(NAMESPACE).items
    assert "inventory-worker" not in {h.spec.scale_target_ref.name for h in hpas}
    before = cluster.deployment("inventory-worker").spec.replicas
    assert before == 4
    engine = engine_for(runtime, actuator, burn, worker_policy())
    burn.set("inventory-worker", "read-latency", BURN)
    try:
        (entry,) = engine.on_burn()
        assert (entry.action, entry.decision, entry.outcome) == ("scale_out", "taken", "succeeded")
        assert entry.outcome_detail == "deployment-scale: 4 → 6 (asked 6)"
        assert cluster.deployment("inventory-worker").spec.replicas == 6
        wait_for(
            lambda: cluster.ready("inventory-worker") == 6, timeout=SETTLE, what="6 ready workers"
        )
        (replica_set,) = cluster.replica_sets("inventory-worker")
        assert replica_set.spec.replicas == 6
        pods = cluster.pods("inventory-worker")
        assert len(pods) == 6
        assert all(placed_and_ready(pod) for pod in pods)

        verification = verified(engine, runtime, entry.decision_id)
        assert (verification["requested"], verification["ready"]) == (6, 6)
    finally:
        cluster.apps.patch_namespaced_deployment_scale(
            "inventory-worker", NAMESPACE, {"spec": {"replicas": before}}
        )
        wait_for(
            lambda: cluster.settled("inventory-worker", before),
            timeout=SETTLE,
            what="inventory-worker back at 4",
        )


def test_after_the_calm_window_the_scale_in_gives_the_hpa_its_bounds_back(
    cluster: Cluster, actuator: KubernetesActuator, runtime: Runtime, burn: BurnSource
) -> None:
    engine = engine_for(runtime, actuator, burn, quick(load_action_policy()))
    burn.set("inventory", "read-latency", BURN)
    try:
        (out,) = engine.on_burn()
        assert out.outcome_detail == "hpa-bounds: 3 → 5 (asked 5)"
        wait_for(lambda: cluster.settled("inventory", 5), timeout=SETTLE, what="5 ready pods")

        burn.calm("inventory")  # every burn signal under its target from now on

        def scaled_in() -> bool:
            engine.tick()
            return any(e.action == "scale_in" for e in audit(runtime))

        wait_for(scaled_in, timeout=60, what="the scale-in after the calm window", every=1.0)
        back = audit(runtime)[-1]
        assert (back.action, back.decision, back.outcome) == ("scale_in", "taken", "succeeded")
        assert back.outcome_detail == "hpa-bounds: 5 → 3 (asked 3)"
        # The capacity policy's minimum, though the action policy's own would allow 1.
        assert back.evidence["release"]["target"] == FLOOR
        assert back.evidence["release"]["raised_by"] == out.decision_id
        assert stored(runtime, out.decision_id).evidence["verification"]["ready"] == 5
        hpa = cluster.hpa()
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (FLOOR, CEILING)

        # The HPA shrinks the Deployment itself, once its downscale stabilisation has passed.
        wait_for(
            lambda: cluster.settled("inventory", FLOOR), timeout=SETTLE, what="the HPA back at 3"
        )
        assert cluster.replica_sets()[0].spec.replicas == FLOOR
        engine.tick()  # everything given back: nothing more to decide
        assert decisions(runtime) == [
            ("scale_out", "taken", "succeeded"),
            ("scale_in", "taken", "succeeded"),
        ]
    finally:
        cluster.restore_inventory()


def test_with_the_kill_switch_on_a_burn_changes_nothing_in_the_cluster(
    cluster: Cluster, actuator: KubernetesActuator, runtime: Runtime, burn: BurnSource
) -> None:
    engine = engine_for(runtime, actuator, burn, quick(load_action_policy()))
    hpa, deployment = cluster.hpa(), cluster.deployment()
    with runtime.database.writer() as session:
        set_flag(session, name=KILL_SWITCH, enabled=True, at=datetime.now(UTC), by="ops")
    burn.set("inventory", "read-latency", BURN)
    try:
        (entry,) = engine.on_burn()
        assert (entry.decision, entry.outcome) == ("refused", None)
        assert entry.reason.startswith("kill_switch")
        assert decisions(runtime) == [("scale_out", "refused", None)]
        after = cluster.hpa()
        assert after.metadata.generation == hpa.metadata.generation
        assert (after.spec.min_replicas, after.spec.max_replicas) == (FLOOR, CEILING)
        assert cluster.deployment().metadata.generation == deployment.metadata.generation
        assert cluster.settled("inventory", FLOOR)
    finally:
        burn.set("inventory", "read-latency", 1.0)
        cluster.restore_inventory()


def test_a_second_scale_out_inside_the_cooldown_is_refused_and_changes_nothing(
    cluster: Cluster, actuator: KubernetesActuator, runtime: Runtime, burn: BurnSource
) -> None:
    engine = engine_for(runtime, actuator, burn, quick(load_action_policy()))
    burn.set("inventory", "read-latency", BURN * 2)  # ceil(3 × 3) = 9
    try:
        (first,) = engine.on_burn()
        # The HPA's rate limit the recommendation applies: 4 pods more at once.
        assert first.outcome_detail == "hpa-bounds: 3 → 7 (asked 7)"
        raised = cluster.hpa()
        alert = AlertChange(
            alert_id=1,
            fingerprint="k1",
            starts_at=datetime.now(UTC),
            status="firing",
            outcome="opened",
            labels={
                "alertname": "ErrorBudgetBurn1h5m",
                "service": "inventory",
                "slo": "read-latency",
            },
        )
        (second,) = engine.on_alert_changes([alert])
        assert second.decision == "refused"
        assert second.reason.startswith("cooldown")
        after = cluster.hpa()
        assert after.metadata.generation == raised.metadata.generation
        assert after.spec.min_replicas == 7
        assert decisions(runtime) == [
            ("scale_out", "taken", "succeeded"),
            ("scale_out", "refused", None),
        ]
    finally:
        burn.set("inventory", "read-latency", 1.0)
        cluster.restore_inventory()


def test_serve_builds_the_engine_on_kubernetes_from_its_settings(
    cluster: Cluster, service_account: Path, tmp_path: Path
) -> None:
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": tmp_path / "store"},
            "webhook": {"webhook_token": "t" * 32},
            "orchestrator": {"kind": "kubernetes", "kubernetes_kubeconfig": service_account},
        }
    )
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        service = ActionService.from_settings(settings, runtime=runtime)
        engine = service.engine
        assert isinstance(engine.actuator, KubernetesActuator)
        assert engine.capacity is not None  # the HPAs' bounds are the capacity policy's
        assert engine.actuator.ready_replicas("inventory") == cluster.ready() == FLOOR
        reader = runtime.orchestration.reader if runtime.orchestration else None
        assert isinstance(reader, KubernetesOrchestrator)
        (inventory,) = [w for w in reader.workloads() if w.service == "inventory"]
        assert inventory.autoscaler is not None
        assert (inventory.autoscaler.min_replicas, inventory.autoscaler.max_replicas) == (
            FLOOR,
            CEILING,
        )
        assert reader.deployments.watching
        assert reader.autoscalers.watching
    finally:
        runtime.stop()
    assert not reader.deployments.watching  # the runtime's stop ends the watch threads
    assert not reader.autoscalers.watching
