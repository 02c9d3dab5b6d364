"""The Kubernetes round of ``make bench-scaling``, on the real cluster of the test stack
(etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes, metrics-server).

**Scale reaction** (``k8s_scale_reaction_s``): the production overlay of ``deploy/k8s`` runs on
the cluster; at onset the read-latency burn the action engine reads jumps to 28.8× (a source the
benchmark controls: KWOK's pods serve no traffic). The engine, ticking every second as in
``controlplane serve``, decides a scale-out through its gate, raises the HPA's minReplicas; the
real HPA controller raises the Deployment, the ReplicaSet controller creates pods, the scheduler
places them, KWOK makes them Ready. Measured: onset → the Deployment's readyReplicas reaches the
decided count. Baseline in the same rounds: the **CPU-only HPA** — at onset the pods' simulated
CPU jumps to the same load (what a utilisation-driven autoscaler sees of an overload) and
nothing else happens; measured: onset → the HPA controller has the Deployment's readyReplicas
above the minimum, through metrics-server (10 s resolution) and the HPA's 5 s sync.

**Capacity cycle** (``capacity_check_1000_workloads_s``): 1,000 Deployments with HPAs are created
in a namespace of their own and the capacity check of a 1,000-service policy runs over them:
ours reads the orchestrator's list+watch caches (synced once, then kept current by the watch);
the baseline reads each Deployment and each HPA with its own GET every cycle (2,000 requests).
The controller manager is stopped for this part so that reconciling 1,000 HPAs does not load the
machine while it is measured; the objects are the same either way.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from bench.bench_api import log
from controlplane.actions.engine import ActionEngine
from controlplane.actions.gate import InputValue
from controlplane.actions.policy import load_action_policy
from controlplane.actuators.kubernetes import KubernetesActuator
from controlplane.core.config import DEFAULT_ACTION_POLICY, ControlPlaneSettings
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator, workload_state
from controlplane.runtime import Runtime
from controlplane.stack.kubernetes import (
    CPU_USAGE_ANNOTATION,
    INVENTORY_NAMESPACE,
    KubeControllerManager,
    KubernetesCluster,
)
from controlplane.stack.settings import StackSettings
from controlplane.store.audit import list_audit
from controlplane.targets.capacity import check_capacity
from controlplane.targets.policy import CapacityPolicy, load_capacity_policy

SERVICE = "inventory"
#: The burn at onset: twice the page factor (the engine sizes its step by it).
ONSET_BURN = 28.8
#: The CPU baseline's load: 900m per pod on a 200m request (450 %, far above the 70 % target).
ONSET_CPU = "900m"
BENCH_NAMESPACE = "bench-capacity"


@dataclass
class ScaleRound:
    reaction_s: float | None
    decided_s: float | None
    replicas: int | None
    cpu_hpa_reaction_s: float | None
    cpu_hpa_replicas: int | None


@dataclass
class CapacityFigures:
    workloads: int
    watched_cycle_s: float
    get_per_object_cycle_s: float
    initial_sync_s: float
    findings: int


def _log(line: str) -> None:
    log(f"k8s: {line}")


def _client(kubeconfig: Path) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 8
    return k8s.ApiClient(configuration)


@contextmanager
def running_cluster(home: Path) -> Iterator[KubernetesCluster]:
    """The test stack's cluster with deploy/k8s rolled out; everything stopped afterwards."""
    cluster = KubernetesCluster.on_free_ports(settings=StackSettings(), base=home)
    started = []
    try:
        for backend in cluster.backends:
            _log(f"starting {backend.describe()}")
            backend.start()
            started.append(backend)
        cluster.after_start()
        cluster.deploy_inventory()
        yield cluster
    finally:
        for backend in reversed(started):
            backend.stop()


def _wait(check: Callable[[], bool], *, timeout: float) -> float | None:
    """Seconds until ``check`` holds (polled every 100 ms), None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def _ready(apps: k8s.AppsV1Api, name: str) -> int:
    deployment: Any = apps.read_namespaced_deployment(name, INVENTORY_NAMESPACE)
    return int(deployment.status.ready_replicas or 0)


def _scaled_and_ready(apps: k8s.AppsV1Api, name: str, above: int) -> bool:
    """The Deployment asks for more than ``above`` replicas and all of them are Ready."""
    deployment: Any = apps.read_namespaced_deployment(name, INVENTORY_NAMESPACE)
    wanted = int(deployment.spec.replicas or 0)
    return wanted > above and int(deployment.status.ready_replicas or 0) >= wanted


def _restore(cluster: KubernetesCluster, apps: k8s.AppsV1Api, minimum: int) -> None:
    """HPA back to the policy's bounds, no simulated CPU, Deployment back at the minimum."""
    cluster.kubectl(
        "patch",
        "hpa",
        SERVICE,
        f"--namespace={INVENTORY_NAMESPACE}",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"minReplicas": minimum, "maxReplicas": 20}}),
    )
    _set_cpu(cluster, None)
    # The HPA brings it down after its stabilisation window (15 s on this cluster).
    _wait(
        lambda: (
            apps.read_namespaced_deployment(SERVICE, INVENTORY_NAMESPACE).spec.replicas == minimum
            and _ready(apps, SERVICE) == minimum
        ),
        timeout=120,
    )


def _set_cpu(cluster: KubernetesCluster, usage: str | None) -> None:
    """The simulated CPU of the running inventory API pods (KWOK reads the annotation at each
    scrape; pods the HPA adds start idle, as new replicas do)."""
    cluster.kubectl(
        "annotate",
        "pods",
        f"--namespace={INVENTORY_NAMESPACE}",
        "--selector=app.kubernetes.io/name=inventory,app.kubernetes.io/component=api",
        "--overwrite",
        f"{CPU_USAGE_ANNOTATION}={usage}" if usage else f"{CPU_USAGE_ANNOTATION}-",
    )


def scale_round(
    number: int, *, cluster: KubernetesCluster, kubeconfig: Path, work: Path
) -> ScaleRound:
    api = _client(kubeconfig)  # the control plane's: its ServiceAccount, deploy/k8s's Role
    observer = _client(cluster.admin_kubeconfig)  # the benchmark reads the cluster as admin
    apps = k8s.AppsV1Api(observer)
    service = load_capacity_policy().spec.service(SERVICE)
    assert service is not None
    minimum = service.replicas.min
    burn = {"value": 0.0}

    def burn_reader(service: str, slo: str, window: str) -> InputValue:
        return InputValue(value=burn["value"], observed_at=datetime.now(UTC))

    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": work / f"round-{number}"},
            "webhook": {"webhook_token": "b" * 32},
            "leader": {
                "leader_acquire_interval_seconds": 0.2,
                "leader_check_interval_seconds": 0.2,
            },
        }
    )
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        if _wait(lambda: runtime.leadership.status().is_leader, timeout=30) is None:
            raise SystemExit("the benchmark's control plane never became leader")
        engine = ActionEngine(
            policy=load_action_policy(DEFAULT_ACTION_POLICY),
            database=runtime.database,
            leadership=runtime.leadership,
            lease_name=settings.leader.leader_name,
            actuator=KubernetesActuator(api_client=api, namespace=INVENTORY_NAMESPACE),
            burn_reader=burn_reader,
        )
        # -- ours: burn onset → decision → HPA → Deployment → ready pods -------------------
        onset_wall = datetime.now(UTC)
        burn["value"] = ONSET_BURN
        decided: list[int] = []

        def tick_and_check() -> bool:
            engine.tick()  # `controlplane serve` ticks the engine every second
            if not decided:
                with runtime.database.reader() as session:
                    taken = [
                        e
                        for e in list_audit(session, action="scale_out")
                        if e.decision == "taken" and e.outcome == "succeeded"
                    ]
                if taken:
                    decided.append(int(taken[0].evidence["desired_replicas"]))
            return bool(decided) and _ready(apps, SERVICE) >= decided[0]

        reaction = _wait_ticking(tick_and_check, timeout=120)
        with runtime.database.reader() as session:
            first = min(
                (e.at for e in list_audit(session, action="scale_out") if e.decision == "taken"),
                default=None,
            )
        decided_s = None if first is None else (first - onset_wall).total_seconds()
        burn["value"] = 0.0
        replicas = decided[0] if decided else None
        _log(
            f"round {number}: ours {reaction if reaction is None else round(reaction, 2)} s "
            f"to {replicas} ready replicas"
        )
    finally:
        runtime.stop()
    _restore(cluster, apps, minimum)
    # -- baseline: the CPU-only HPA on the same overload -------------------------------------
    _set_cpu(cluster, ONSET_CPU)
    cpu_reaction = _wait(lambda: _scaled_and_ready(apps, SERVICE, minimum), timeout=180)
    cpu_replicas = _ready(apps, SERVICE) if cpu_reaction is not None else None
    _log(f"round {number}: CPU-only HPA {cpu_reaction} s to {cpu_replicas} ready replicas")
    _restore(cluster, apps, minimum)
    api.close()  # type: ignore[no-untyped-call]
    observer.close()  # type: ignore[no-untyped-call]
    return ScaleRound(
        reaction_s=None if reaction is None else round(reaction, 2),
        decided_s=None if decided_s is None else round(decided_s, 2),
        replicas=replicas,
        cpu_hpa_reaction_s=None if cpu_reaction is None else round(cpu_reaction, 2),
        cpu_hpa_replicas=cpu_replicas,
    )


def _wait_ticking(check: Callable[[], bool], *, timeout: float) -> float | None:
    """Seconds until ``check`` (which ticks the engine) holds, calling it once a second."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(1.0)
    return None


def _bench_objects(count: int) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BENCH_NAMESPACE}}
    ]
    for index in range(count):
        name = f"svc-{index:04d}"
        labels = {"app.kubernetes.io/name": name}
        objects.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": BENCH_NAMESPACE, "labels": labels},
                "spec": {
                    "replicas": 2,
                    # Paused: the objects are what is measured, not 2,000 simulated pods.
                    "paused": True,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [
                                {
                                    "name": "app",
                                    "image": "registry.example.com/bench:1",
                                    "resources": {
                                        "requests": {"cpu": "200m", "memory": "512Mi"},
                                        "limits": {"cpu": "1", "memory": "2Gi"},
                                    },
                                }
                            ]
                        },
                    },
                },
            }
        )
        objects.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": BENCH_NAMESPACE, "labels": labels},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": 2,
                    "maxReplicas": 10,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 70},
                            },
                        }
                    ],
                },
            }
        )
    return objects


def _policy(count: int) -> CapacityPolicy:
    return CapacityPolicy.model_validate(
        {
            "apiVersion": "controlplane/v1",
            "kind": "CapacityPolicy",
            "metadata": {"name": "bench"},
            "spec": {
                "namespace": BENCH_NAMESPACE,
                "node_pools": [],
                "services": [
                    {
                        "name": f"svc-{index:04d}",
                        "tier": "standard",
                        "replicas": {"min": 2, "max": 10},
                        "target_cpu_percent": 70,
                        "resources": {
                            "requests": {"cpu": "200m", "memory": "512Mi"},
                            "limits": {"cpu": "1000m", "memory": "2Gi"},
                        },
                    }
                    for index in range(count)
                ],
            },
        }
    )


def capacity_cycles(
    *, cluster: KubernetesCluster, kubeconfig: Path, count: int, cycles: int
) -> CapacityFigures:
    controllers = next(b for b in cluster.backends if isinstance(b, KubeControllerManager))
    controllers.stop()
    objects = _bench_objects(count)
    _log(f"creating {count} Deployments and {count} HPAs in namespace {BENCH_NAMESPACE}")
    cluster.apply(objects[:1], field_manager="bench")
    for start in range(1, len(objects), 400):
        cluster.apply(objects[start : start + 400], field_manager="bench")
    policy = _policy(count)
    api = _client(kubeconfig)
    try:
        # ours: one list per kind, then the watch keeps the caches current
        orchestrator = KubernetesOrchestrator(api_client=api, namespace=BENCH_NAMESPACE)
        began = time.perf_counter()
        first = orchestrator.workloads()
        initial_sync = time.perf_counter() - began
        if len(first) != count:
            raise SystemExit(f"expected {count} workloads, read {len(first)}")
        watched = []
        findings = 0
        for _ in range(cycles):
            began = time.perf_counter()
            findings = len(check_capacity(policy, orchestrator.workloads()))
            watched.append(time.perf_counter() - began)
        orchestrator.close()
        # baseline: a GET for each Deployment and each HPA, every cycle
        apps, autoscaling = k8s.AppsV1Api(api), k8s.AutoscalingV2Api(api)
        per_object = []
        for _ in range(cycles):
            began = time.perf_counter()
            workloads = [
                workload_state(
                    apps.read_namespaced_deployment(s.name, BENCH_NAMESPACE),
                    autoscaling.read_namespaced_horizontal_pod_autoscaler(s.name, BENCH_NAMESPACE),
                )
                for s in policy.spec.services
            ]
            baseline_findings = len(check_capacity(policy, workloads))
            per_object.append(time.perf_counter() - began)
        if baseline_findings != findings:
            raise SystemExit(f"the two reads disagree: {findings} vs {baseline_findings} findings")
    finally:
        api.close()  # type: ignore[no-untyped-call]
    return CapacityFigures(
        workloads=count,
        watched_cycle_s=round(statistics.median(watched), 4),
        get_per_object_cycle_s=round(statistics.median(per_object), 3),
        initial_sync_s=round(initial_sync, 3),
        findings=findings,
    )


def run(*, rounds: int, workloads: int, cycles: int) -> tuple[list[ScaleRound], CapacityFigures]:
    home = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    home.chmod(0o755)
    with running_cluster(home) as cluster:
        kubeconfig = cluster.service_account_kubeconfig(
            home / "controlplane.kubeconfig", namespace=INVENTORY_NAMESPACE, name="controlplane"
        )
        scale = [
            scale_round(n, cluster=cluster, kubeconfig=kubeconfig, work=home)
            for n in range(1, rounds + 1)
        ]
        capacity = capacity_cycles(
            cluster=cluster, kubeconfig=cluster.admin_kubeconfig, count=workloads, cycles=cycles
        )
    return scale, capacity
