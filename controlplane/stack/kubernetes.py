"""A real Kubernetes control plane on loopback, every piece but the container runtime.

etcd, kube-apiserver, kube-controller-manager (deployment, replicaset, HPA, garbage-collector and
namespace controllers), kube-scheduler and KWOK, which plays the kubelet of fake nodes shaped like
the seed's application pool (8 vCPU / 32 GiB): a pod the scheduler places on one becomes Running
and Ready without any container, and metrics-server reads the CPU KWOK simulates for it, so the
real HPA controller computes utilisation. All binaries are built by ``make bootstrap`` from the Go
module proxy at the versions of ``deploy/versions.env``.

:class:`KubernetesCluster` owns the shared files (certificates, the static token file, one
kubeconfig per identity) and the backends, in start order; the local stack and the test fixtures
start them like any other backend, then call :meth:`KubernetesCluster.after_start`.

Identities (static tokens, RBAC authorisation):

* ``stack-admin`` (group ``system:masters``): the user's kubeconfig and the fixtures;
* ``system:kube-controller-manager`` and ``system:kube-scheduler``: the bootstrap roles the API
  server creates for those components;
* ``kwok`` and ``metrics-server`` (``system:masters``: simulators of the node agent, not the
  product's concern).

The control plane itself never uses these: it runs with its ServiceAccount's token (see
:meth:`KubernetesCluster.service_account_kubeconfig`), so ``deploy/k8s``'s RBAC is what it gets.
"""

from __future__ import annotations

import csv
import functools
import os
import secrets
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
import yaml

from controlplane.core.processes import BackendStartError, free_ports, run_checked
from controlplane.stack.backends import BOOTSTRAP_HINT, Backend, Etcd
from controlplane.stack.pki import ClusterPKI
from controlplane.stack.settings import REPO_ROOT, StackSettings

__all__ = [
    "KUBERNETES_ORDER",
    "KUBE_ETCD",
    "KubeAPIServer",
    "KubeControllerManager",
    "KubeScheduler",
    "KubernetesCluster",
    "Kwok",
    "MetricsServer",
    "NodeShape",
]

#: Service addresses of the cluster (no kube-proxy: nothing routes them; the API server's own
#: ``kubernetes`` service takes the first one).
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.1/16"
#: The product's manifests and the overlay the stack deploys.
MANIFESTS = REPO_ROOT / "deploy" / "k8s"
PRODUCTION_OVERLAY = MANIFESTS / "overlays" / "production"
#: The policy's two other services, which their own teams deploy in a real cluster.
PEER_SERVICES = Path(__file__).with_name("k8s") / "peer-services.yaml"
#: The namespace of deploy/k8s (and of the capacity policy).
INVENTORY_NAMESPACE = "inventory"

#: The cluster's own etcd (the stack's ``etcd`` is Patroni's): its backend name.
KUBE_ETCD = "kube-etcd"

#: The APIService metrics-server answers for (through the aggregation layer).
METRICS_API = "v1beta1.metrics.k8s.io"
#: Marks the nodes KWOK manages (and only those).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
#: A pod carrying this label with value "true" is kept Running but not Ready by KWOK (a stuck
#: readiness probe); removing the label makes it Ready again.
NOT_READY_LABEL = "stack.inventory-slo/not-ready"
#: A pod's simulated CPU use (a quantity such as ``900m``), read by KWOK's resource usage.
CPU_USAGE_ANNOTATION = "kwok.x-k8s.io/usage-cpu"

#: The controllers the cluster runs: what Deployments and HPAs need, nothing that expects real
#: kubelets (no node lifecycle, no service-account tokens).
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "horizontal-pod-autoscaler-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "disruption-controller",
)


class _KubeBackend(Backend):
    """A Kubernetes component: its binary is cached by ``make bootstrap`` under a versioned
    name, and it talks to the API server with the kubeconfig of its identity."""

    #: versions.env key of the version the binary is built at.
    version_key: ClassVar[str] = "K8S_VERSION"
    #: Identity in the static token file (None: the component is not an API client).
    identity: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        cluster: KubernetesCluster,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.cluster = cluster

    def executable(self) -> Path:
        return self.settings.kubernetes_binary(self.name, self.version_key)

    @property
    def kubeconfig(self) -> Path:
        assert self.identity is not None
        return self.cluster.kubeconfig_for(self.identity)

    def query_version(self) -> str:
        return self.binary_version()


class KubeAPIServer(_KubeBackend):
    name = "kube-apiserver"

    @property
    def port(self) -> int:
        return self.ports["https"]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        self.cluster.prepare()  # certificates, tokens, kubeconfigs: kept when present

    def command(self) -> list[str]:
        pki = self.cluster.pki
        return [
            str(self.executable()),
            f"--etcd-servers={self.cluster.etcd.url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki.apiserver_cert}",
            f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={self.cluster.token_file}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=true",  # /readyz, /livez and /version stay public (as in any cluster)
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # No controller creates default service accounts, so the admission plugin that
            # requires them would refuse every pod; and no node lifecycle controller runs to lift
            # the not-ready taint TaintNodesByCondition puts on a new node (KWOK's nodes are
            # Ready from their first status).
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            # The `kubernetes` service's endpoints would be 127.0.0.1, which Endpoints refuse.
            "--endpoint-reconciler-type=none",
            # The aggregation layer: metrics.k8s.io is served by metrics-server behind this one.
            f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
            f"--requestheader-allowed-names={ClusterPKI.FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy_client_cert}",
            f"--proxy-client-key-file={pki.front_proxy_client_key}",
            "--profiling=false",
            "--v=1",
        ]

    def healthy(self) -> bool:
        answer = httpx.get(f"{self.url}/readyz", verify=self.cluster.tls(), timeout=2)
        return answer.status_code == 200

    def query_version(self) -> str:
        answer = httpx.get(f"{self.url}/version", verify=self.cluster.tls(), timeout=2)
        answer.raise_for_status()
        return f"Kubernetes {answer.json()['gitVersion']}"


class _SecureComponent(_KubeBackend):
    """A component whose health endpoint is served on its own HTTPS port (self-signed)."""

    @property
    def port(self) -> int:
        return self.ports["https"]

    def serving_flags(self) -> list[str]:
        return [
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def healthy(self) -> bool:
        # The health paths are always allowed; the serving certificate is self-signed.
        answer = httpx.get(f"https://127.0.0.1:{self.port}/healthz", verify=False, timeout=2)
        return answer.status_code == 200


class KubeControllerManager(_SecureComponent):
    name = "kube-controller-manager"
    identity = "system:kube-controller-manager"

    def command(self) -> list[str]:
        settings = self.cluster
        return [
            str(self.executable()),
            *self.serving_flags(),
            "--controllers=" + ",".join(CONTROLLERS),
            # Each controller acts as its own service account, with the bootstrap roles RBAC
            # gives it (system:controller:*).
            "--use-service-account-credentials=true",
            f"--horizontal-pod-autoscaler-sync-period={settings.hpa_sync_period_s}s",
            "--horizontal-pod-autoscaler-downscale-stabilization="
            f"{settings.hpa_downscale_stabilization_s}s",
            "--v=1",
        ]


class KubeScheduler(_SecureComponent):
    name = "kube-scheduler"
    identity = "system:kube-scheduler"

    def command(self) -> list[str]:
        return [str(self.executable()), *self.serving_flags(), "--v=1"]


class Kwok(_KubeBackend):
    """KWOK managing the nodes annotated ``kwok.x-k8s.io/node=fake``, with this project's
    stages (see :func:`kwok_configuration`)."""

    name = "kwok"
    identity = "kwok"
    version_key = "KWOK_VERSION"

    @property
    def port(self) -> int:
        return self.ports["http"]

    @property
    def config_path(self) -> Path:
        return self.workdir / "kwok.yaml"

    def prepare(self) -> None:
        self.config_path.write_text(
            yaml.safe_dump_all(kwok_configuration(), sort_keys=False), encoding="utf-8"
        )

    def command(self) -> list[str]:
        return [
            str(self.executable()),
            f"--config={self.config_path}",
            f"--kubeconfig={self.kubeconfig}",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--node-ip=127.0.0.1",
            f"--node-port={self.port}",
            f"--cidr={POD_CIDR}",
            f"--server-address=127.0.0.1:{self.port}",
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["HOME"] = str(self.workdir)  # kwok keeps its own state under ~/.kwok
        return env

    def healthy(self) -> bool:
        return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200


class MetricsServer(_SecureComponent):
    """metrics-server scraping KWOK's simulated kubelet resource metrics; the API server serves
    its ``metrics.k8s.io`` through the aggregation layer."""

    name = "metrics-server"
    identity = "metrics-server"
    version_key = "METRICS_SERVER_VERSION"

    def command(self) -> list[str]:
        flags = [flag for flag in self.serving_flags() if not flag.startswith("--leader-elect")]
        return [
            str(self.executable()),
            *flags,
            "--kubelet-insecure-tls",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            "--kubelet-request-timeout=3s",
            f"--metric-resolution={self.cluster.metric_resolution_s}s",
            "--v=1",
        ]

    def healthy(self) -> bool:
        # /readyz waits for a first scrape, which needs the nodes made after the start.
        answer = httpx.get(f"https://127.0.0.1:{self.port}/livez", verify=False, timeout=2)
        return answer.status_code == 200


#: Start order of the cluster's backends (stop runs in reverse).
KUBERNETES_ORDER: tuple[str, ...] = (
    KUBE_ETCD,
    KubeAPIServer.name,
    KubeControllerManager.name,
    KubeScheduler.name,
    Kwok.name,
    MetricsServer.name,
)

#: Ports each backend needs, by label.
KUBERNETES_PORT_LABELS: dict[str, tuple[str, ...]] = {
    KubeAPIServer.name: ("https",),
    KubeControllerManager.name: ("https",),
    KubeScheduler.name: ("https",),
    Kwok.name: ("http",),
    MetricsServer.name: ("https",),
}


def _status_template(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n"


def _stage(
    name: str, kind: str, expressions: list[dict[str, Any]], nxt: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": kind},
            "selector": {"matchExpressions": expressions},
            "next": nxt,
        },
    }


_NOT_DELETED = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_READY_STATUS = '.status.conditions.[] | select( .type == "Ready" ) | .status'
_HOLD = f'.metadata.labels["{NOT_READY_LABEL}"]'


def _pod_status(*, ready: bool) -> str:
    flag = "true" if ready else "false"
    state = '"True"' if ready else '"False"'
    return _status_template(
        [
            "{{ $now := Now }}",
            "conditions:",
            "- {type: PodScheduled, status: 'True', lastTransitionTime: {{ $now | Quote }}}",
            "- {type: Initialized, status: 'True', lastTransitionTime: {{ $now | Quote }}}",
            "- {type: ContainersReady, status: "
            + state
            + ", lastTransitionTime: {{ $now | Quote }}}",
            "- {type: Ready, status: " + state + ", lastTransitionTime: {{ $now | Quote }}}",
            "containerStatuses:",
            "{{ range .spec.containers }}",
            "- name: {{ .name | Quote }}",
            "  image: {{ .image | Quote }}",
            f"  ready: {flag}",
            "  started: true",
            "  restartCount: 0",
            "  state: {running: {startedAt: {{ $now | Quote }}}}",
            "{{ end }}",
            "initContainerStatuses:",
            "{{ range .spec.initContainers }}",
            "- name: {{ .name | Quote }}",
            "  image: {{ .image | Quote }}",
            "  ready: true",
            "  restartCount: 0",
            "  state: {terminated: {exitCode: 0, reason: Completed, "
            "startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}",
            "{{ end }}",
            "{{ with NodeIPWith .spec.nodeName }}",
            "hostIP: {{ . | Quote }}",
            "{{ end }}",
            "{{ with PodIPWith .spec.nodeName false .metadata.uid .metadata.name "
            ".metadata.namespace }}",
            "podIP: {{ . | Quote }}",
            "{{ end }}",
            "phase: Running",
            "{{ if not .status.startTime }}startTime: {{ $now | Quote }}{{ end }}",
        ]
    )


_NODE_STATUS = _status_template(
    [
        "{{ $now := Now }}",
        "conditions:",
        "{{ range NodeConditions }}",
        "- type: {{ .type | Quote }}",
        "  status: {{ .status | Quote }}",
        "  reason: {{ .reason | Quote }}",
        "  message: {{ .message | Quote }}",
        "  lastHeartbeatTime: {{ $now | Quote }}",
        "  lastTransitionTime: {{ $now | Quote }}",
        "{{ end }}",
        "addresses:",
        "- {type: InternalIP, address: {{ NodeIP | Quote }}}",
        "- {type: Hostname, address: {{ .metadata.name | Quote }}}",
        "daemonEndpoints: {kubeletEndpoint: {Port: {{ NodePort }}}}",
        "allocatable:",
        "{{ YAML .status.capacity 1 }}",
        "capacity:",
        "{{ YAML .status.capacity 1 }}",
        "nodeInfo:",
        "  architecture: amd64",
        "  operatingSystem: linux",
        '  kubeletVersion: {{ printf "kwok-%s" Version | Quote }}',
        '  kubeProxyVersion: {{ printf "kwok-%s" Version | Quote }}',
        "phase: Running",
    ]
)


def _annotated_quantity(annotation: str, default: str) -> str:
    """A CEL expression: the pod's ``annotation`` as a quantity, else ``default``."""
    value = f'pod.metadata.annotations["{annotation}"]'
    return f'"{annotation}" in pod.metadata.annotations ? Quantity({value}) : Quantity("{default}")'


def kwok_configuration() -> list[dict[str, Any]]:
    """KWOK's configuration documents (its options stay the defaults): the node and pod
    stages, the kubelet resource metrics and the simulated resource use (CPU from the pod's
    ``kwok.x-k8s.io/usage-cpu`` annotation, else 1m).

    Stages: a managed node becomes Ready; a pod placed on one becomes Running and Ready, or
    Running and not Ready while it carries ``NOT_READY_LABEL=true`` (Ready again once the label
    is gone); a pod being deleted is removed.
    """
    return [
        _stage(
            "node-ready",
            "Node",
            [{"key": _READY_STATUS, "operator": "NotIn", "values": ["True"]}],
            {"statusTemplate": _NODE_STATUS},
        ),
        _stage(
            "pod-ready",
            "Pod",
            [
                _NOT_DELETED,
                {"key": _HOLD, "operator": "NotIn", "values": ["true"]},
                {"key": _READY_STATUS, "operator": "NotIn", "values": ["True"]},
            ],
            {"statusTemplate": _pod_status(ready=True)},
        ),
        _stage(
            "pod-held-not-ready",
            "Pod",
            [
                _NOT_DELETED,
                {"key": _HOLD, "operator": "In", "values": ["true"]},
                {"key": _READY_STATUS, "operator": "NotIn", "values": ["False"]},
            ],
            {"statusTemplate": _pod_status(ready=False)},
        ),
        _stage(
            "pod-delete",
            "Pod",
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            {"delete": True},
        ),
        resource_metrics(),
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterResourceUsage",
            "metadata": {"name": "usage-from-annotation"},
            "spec": {
                "usages": [
                    {
                        "usage": {
                            "cpu": {"expression": _annotated_quantity(CPU_USAGE_ANNOTATION, "1m")},
                            "memory": {"expression": 'Quantity("64Mi")'},
                        }
                    }
                ]
            },
        },
    ]


def _container_metric(name: str, kind: str, value: str) -> dict[str, Any]:
    return {
        "name": name,
        "dimension": "container",
        "kind": kind,
        "labels": [
            {"name": "container", "value": "container.name"},
            {"name": "namespace", "value": "pod.metadata.namespace"},
            {"name": "pod", "value": "pod.metadata.name"},
        ],
        "value": value,
    }


def _pod_metric(name: str, kind: str, value: str) -> dict[str, Any]:
    return {
        "name": name,
        "dimension": "pod",
        "kind": kind,
        "labels": [
            {"name": "namespace", "value": "pod.metadata.namespace"},
            {"name": "pod", "value": "pod.metadata.name"},
        ],
        "value": value,
    }


#: Where KWOK serves a node's kubelet resource metrics (the node annotation
#: ``metrics.k8s.io/resource-metrics-path`` tells metrics-server).
RESOURCE_METRICS_PATH = "/metrics/nodes/{nodeName}/metrics/resource"


def resource_metrics() -> dict[str, Any]:
    """The kubelet's ``/metrics/resource`` series metrics-server reads (CPU seconds, working
    set), computed by KWOK from the simulated usage."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Metric",
        "metadata": {"name": "resource-metrics"},
        "spec": {
            "path": RESOURCE_METRICS_PATH,
            "metrics": [
                {"name": "scrape_error", "dimension": "node", "kind": "gauge", "value": "0"},
                _container_metric("container_start_time_seconds", "gauge", "pod.SinceSecond()"),
                _container_metric(
                    "container_cpu_usage_seconds_total",
                    "counter",
                    'pod.CumulativeUsage("cpu", container.name)',
                ),
                _container_metric(
                    "container_memory_working_set_bytes",
                    "gauge",
                    'pod.Usage("memory", container.name)',
                ),
                _pod_metric("pod_cpu_usage_seconds_total", "counter", 'pod.CumulativeUsage("cpu")'),
                _pod_metric("pod_memory_working_set_bytes", "gauge", 'pod.Usage("memory")'),
                {
                    "name": "node_cpu_usage_seconds_total",
                    "dimension": "node",
                    "kind": "counter",
                    "value": 'node.CumulativeUsage("cpu")',
                },
                {
                    "name": "node_memory_working_set_bytes",
                    "dimension": "node",
                    "kind": "gauge",
                    "value": 'node.Usage("memory")',
                },
            ],
        },
    }


class NodeShape:
    """A fake node of the seed's application pool (seed 001: 8 vCPU / 32 GiB, three zones)."""

    CPU = "8"
    MEMORY = "32Gi"
    PODS = "110"
    ZONES = ("zone-a", "zone-b", "zone-c")
    POOL = "application"

    @classmethod
    def manifest(cls, index: int) -> dict[str, Any]:
        zone = cls.ZONES[index % len(cls.ZONES)]
        name = f"{cls.POOL}-{index}"
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {
                    KWOK_NODE_ANNOTATION: "fake",
                    "metrics.k8s.io/resource-metrics-path": RESOURCE_METRICS_PATH.replace(
                        "{nodeName}", name
                    ),
                },
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": zone,
                    "node.kubernetes.io/pool": cls.POOL,
                    "type": "kwok",
                },
            },
            "status": {
                "capacity": {"cpu": cls.CPU, "memory": cls.MEMORY, "pods": cls.PODS},
                "allocatable": {"cpu": cls.CPU, "memory": cls.MEMORY, "pods": cls.PODS},
            },
        }


class KubernetesCluster:
    """The cluster's shared files and its backends.

    ``home`` holds ``pki/``, ``tokens.csv`` and one kubeconfig per identity
    (``kubeconfig-<identity>``); ``admin_kubeconfig`` is the user's.
    """

    #: The backend whose presence marks a stack with a cluster.
    API_SERVER: ClassVar[str] = KubeAPIServer.name

    #: Identities of the static token file and their groups.
    IDENTITIES: ClassVar[dict[str, tuple[str, ...]]] = {
        "stack-admin": ("system:masters",),
        "system:kube-controller-manager": (),
        "system:kube-scheduler": (),
        "kwok": ("system:masters",),
        "metrics-server": ("system:masters",),
    }

    def __init__(
        self,
        *,
        settings: StackSettings,
        home: Path,
        workdirs: Mapping[str, Path],
        ports: Mapping[str, Mapping[str, int]],
        nodes: int = 3,
        hpa_sync_period_s: int = 5,
        hpa_downscale_stabilization_s: int = 15,
        metric_resolution_s: int = 10,
        with_metrics: bool = True,
    ) -> None:
        self.settings = settings
        self.home = home
        self.nodes = nodes
        self.hpa_sync_period_s = hpa_sync_period_s
        self.hpa_downscale_stabilization_s = hpa_downscale_stabilization_s
        self.metric_resolution_s = metric_resolution_s
        self.with_metrics = with_metrics
        self.pki = ClusterPKI(home / "pki")
        self.etcd = Etcd(
            settings=settings,
            workdir=workdirs[KUBE_ETCD],
            ports=ports[KUBE_ETCD],
            name=KUBE_ETCD,
            # As kubeadm runs a cluster's etcd: the API server's watch cache hears the current
            # revision every 5 s, so a watch of a quiet resource still gets its bookmarks.
            progress_notify_interval_s=5,
        )
        self.apiserver = KubeAPIServer(
            settings=settings,
            workdir=workdirs[KubeAPIServer.name],
            ports=ports[KubeAPIServer.name],
            cluster=self,
        )
        components: list[Backend] = [self.etcd, self.apiserver]
        for cls in (KubeControllerManager, KubeScheduler, Kwok, MetricsServer):
            if cls is MetricsServer and not with_metrics:
                continue
            components.append(
                cls(
                    settings=settings,
                    workdir=workdirs[cls.name],
                    ports=ports[cls.name],
                    cluster=self,
                )
            )
        self.backends: list[Backend] = components

    @classmethod
    def on_free_ports(
        cls, *, settings: StackSettings, base: Path, **options: Any
    ) -> KubernetesCluster:
        """A cluster with its folders under ``base`` and every backend on free loopback ports
        (tests and benchmarks; the local stack uses its demo ports)."""
        ports: dict[str, dict[str, int]] = {}
        for name in KUBERNETES_ORDER:
            labels = KUBERNETES_PORT_LABELS.get(name) or Etcd.port_labels
            ports[name] = dict(zip(labels, free_ports(len(labels)), strict=True))
        return cls(
            settings=settings,
            home=base / "kubernetes",
            workdirs={name: base / name for name in KUBERNETES_ORDER},
            ports=ports,
            **options,
        )

    # -- files -----------------------------------------------------------------------------
    @property
    def token_file(self) -> Path:
        return self.home / "tokens.csv"

    @property
    def url(self) -> str:
        return self.apiserver.url

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig_for("stack-admin")

    def kubeconfig_for(self, identity: str) -> Path:
        return self.home / f"kubeconfig-{identity.replace(':', '-')}"

    def tokens(self) -> dict[str, str]:
        """identity -> bearer token, from the token file."""
        with self.token_file.open(encoding="utf-8", newline="") as handle:
            return {row[1]: row[0] for row in csv.reader(handle) if row}

    @property
    def admin_token(self) -> str:
        return self.tokens()["stack-admin"]

    def prepare(self) -> None:
        """Certificates, tokens and kubeconfigs (kept when present), before the first start."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.pki.ensure(service_ip=SERVICE_IP)
        if not self.token_file.is_file():
            with self.token_file.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                for number, (identity, groups) in enumerate(self.IDENTITIES.items(), 1):
                    row = [secrets.token_urlsafe(32), identity, f"uid-{number}"]
                    if groups:
                        row.append(",".join(groups))
                    writer.writerow(row)
            self.token_file.chmod(0o600)
        for identity, token in self.tokens().items():
            write_kubeconfig(
                self.kubeconfig_for(identity),
                server=self.url,
                ca_file=self.pki.ca_cert,
                user=identity,
                token=token,
            )

    # -- after the backends run ---------------------------------------------------------------
    def after_start(self, *, timeout: float = 120.0) -> None:
        """The fake nodes (Ready through KWOK) and, with metrics, the ``metrics.k8s.io``
        APIService answering; raises BackendStartError naming what did not come up."""
        documents = [NodeShape.manifest(index) for index in range(self.nodes)]
        if self.with_metrics:
            documents.extend(self.metrics_api_documents())
        self.apply(documents)
        deadline = time.monotonic() + timeout
        while not self._nodes_ready():
            if time.monotonic() > deadline:
                raise BackendStartError("kwok", f"the {self.nodes} fake nodes are not Ready")
            time.sleep(0.25)
        if self.with_metrics:
            while not self._metrics_available():
                if time.monotonic() > deadline:
                    raise BackendStartError(
                        "metrics-server", "the metrics.k8s.io APIService is not Available"
                    )
                time.sleep(0.5)

    def metrics_api_documents(self) -> list[dict[str, Any]]:
        """The APIService that makes the API server proxy ``metrics.k8s.io`` to metrics-server.

        The API server reaches an extension server through its Service. With no kube-proxy and
        with loopback addresses refused in Endpoints, the Service is an ExternalName one naming
        ``localhost`` at metrics-server's port: the aggregator dials that name and port.
        """
        port = next(b for b in self.backends if isinstance(b, MetricsServer)).port
        return [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "metrics-server", "namespace": "kube-system"},
                "spec": {
                    "type": "ExternalName",
                    "externalName": "localhost",
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                },
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": METRICS_API},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"name": "metrics-server", "namespace": "kube-system", "port": port},
                    "insecureSkipTLSVerify": True,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        ]

    @functools.cache  # noqa: B019 - one context per cluster, for its lifetime
    def tls(self) -> ssl.SSLContext:
        """TLS trusting the cluster's CA (what its kubeconfigs trust)."""
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def _get(self, path: str) -> Any:
        answer = httpx.get(
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            verify=self.tls(),
            timeout=5,
        )
        answer.raise_for_status()
        return answer.json()

    def _nodes_ready(self) -> bool:
        try:
            nodes = self._get("/api/v1/nodes")["items"]
        except httpx.HTTPError:
            return False
        ready = [
            node
            for node in nodes
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= self.nodes

    def _metrics_available(self) -> bool:
        try:
            service = self._get(f"/apis/apiregistration.k8s.io/v1/apiservices/{METRICS_API}")
        except httpx.HTTPError:
            return False
        return any(
            c.get("type") == "Available" and c.get("status") == "True"
            for c in service.get("status", {}).get("conditions", [])
        )

    # -- kubectl ---------------------------------------------------------------------------
    @property
    def kubectl_path(self) -> Path:
        return self.settings.kubernetes_binary("kubectl", "K8S_VERSION")

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (or with ``kubeconfig``); raises BackendStartError with its
        output when it fails and ``check`` is set."""
        config = kubeconfig or self.admin_kubeconfig
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={config}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise BackendStartError(
                "kubectl", f"`kubectl {' '.join(args)}` failed: {result.stderr.strip()}"
            )
        return result

    def apply(self, documents: Sequence[Mapping[str, Any]], *, field_manager: str = "stack") -> str:
        """Server-side apply of ``documents`` as the admin; kubectl's output."""
        text = yaml.safe_dump_all(list(documents), sort_keys=False)
        return self.kubectl(
            "apply", "--server-side", f"--field-manager={field_manager}", "-f", "-", stdin=text
        ).stdout

    def render(self, folder: Path = PRODUCTION_OVERLAY) -> list[dict[str, Any]]:
        """``kustomize build folder`` with the pinned kustomize, as objects."""
        kustomize = self.settings.kustomize_binary()
        if not kustomize.is_file():
            raise BackendStartError("kustomize", f"not found at {kustomize} ({BOOTSTRAP_HINT})")
        output = run_checked(
            "kustomize", [str(kustomize), "build", str(folder)], user=None, timeout=120
        )
        return [doc for doc in yaml.safe_load_all(output) if doc]

    def deploy_inventory(
        self, *, overlay: Path = PRODUCTION_OVERLAY, timeout: float = 120.0
    ) -> list[dict[str, Any]]:
        """Apply the rendered ``overlay`` and the peer services server-side, then wait until
        every Deployment has as many ready pods as it (or its HPA's minimum) asks for. Returns
        the applied objects. The pods run no container: KWOK reports them Ready."""
        objects = self.render(overlay)
        objects += [doc for doc in yaml.safe_load_all(PEER_SERVICES.read_text()) if doc]
        # Namespaces first: the rest lives in them.
        self.apply([o for o in objects if o["kind"] == "Namespace"], field_manager="deploy")
        self.apply([o for o in objects if o["kind"] != "Namespace"], field_manager="deploy")
        deployments = [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"]
        deadline = time.monotonic() + timeout
        while True:
            pending = self._not_rolled_out(deployments)
            if not pending:
                return objects
            if time.monotonic() > deadline:
                raise BackendStartError(
                    "kube-controller-manager",
                    "Deployments not rolled out: " + ", ".join(sorted(pending)),
                )
            time.sleep(0.5)

    def _not_rolled_out(self, names: Sequence[str]) -> list[str]:
        base = f"/apis/apps/v1/namespaces/{INVENTORY_NAMESPACE}"
        hpas = {
            h["spec"]["scaleTargetRef"]["name"]: h["spec"].get("minReplicas", 1)
            for h in self._get(
                f"/apis/autoscaling/v2/namespaces/{INVENTORY_NAMESPACE}/horizontalpodautoscalers"
            )["items"]
        }
        live = {d["metadata"]["name"]: d for d in self._get(f"{base}/deployments")["items"]}
        pending = []
        for name in names:
            deployment = live.get(name)
            if deployment is None:
                pending.append(name)
                continue
            wanted = max(deployment["spec"].get("replicas", 1), hpas.get(name, 1))
            if deployment.get("status", {}).get("readyReplicas", 0) < wanted:
                pending.append(name)
        return pending

    def service_account_token(self, namespace: str, name: str, *, hours: int = 24) -> str:
        """A bound token of ServiceAccount ``namespace/name`` (TokenRequest API)."""
        return self.kubectl(
            "create", "token", name, f"--namespace={namespace}", f"--duration={hours}h"
        ).stdout.strip()

    def service_account_kubeconfig(
        self, path: Path, *, namespace: str, name: str, hours: int = 24
    ) -> Path:
        """A kubeconfig at ``path`` authenticating as ServiceAccount ``namespace/name`` (a
        bound token valid for ``hours``)."""
        write_kubeconfig(
            path,
            server=self.url,
            ca_file=self.pki.ca_cert,
            user=f"system:serviceaccount:{namespace}:{name}",
            token=self.service_account_token(namespace, name, hours=hours),
            namespace=namespace,
        )
        return path

    def binary_versions(self) -> dict[str, str]:
        """kubectl's client version (the other binaries report through their backends)."""
        output = run_checked(
            "kubectl", [str(self.kubectl_path), "version", "--client"], user=None, timeout=30
        )
        return {"kubectl": output.strip().splitlines()[0] if output.strip() else "?"}


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_file: Path,
    user: str,
    token: str,
    namespace: str | None = None,
) -> None:
    """A kubeconfig with one cluster, one user (bearer token) and one current context."""
    context: dict[str, Any] = {"cluster": "inventory-slo", "user": user}
    if namespace is not None:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "inventory-slo",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "inventory-slo", "context": context}],
        "current-context": "inventory-slo",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


__all__ += ["BOOTSTRAP_HINT", "write_kubeconfig"]
