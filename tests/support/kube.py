"""Helpers of the tests that use the real Kubernetes cluster (``kubernetes_cluster``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.stack.kubernetes import KubernetesCluster

#: (apiGroup, resource, verb) the control plane's Kubernetes adapters use, and so exactly what
#: deploy/k8s's Role grants: list + watch (the orchestrator's caches; the actuator lists HPAs to
#: find a Deployment's), get of a Deployment (the actuator's ready replicas, read by the engine's
#: verification), patch of HPA bounds, and the scale subresource.
CONTROLPLANE_ROLE_CALLS = frozenset(
    {
        ("apps", "deployments", "get"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("autoscaling", "horizontalpodautoscalers", "watch"),
        ("autoscaling", "horizontalpodautoscalers", "patch"),
    }
)


def client_for(kubeconfig: Path) -> k8s.ApiClient:
    """An API client of the official library from a kubeconfig file."""
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    return k8s.ApiClient(configuration)


def admin_client(cluster: KubernetesCluster) -> k8s.ApiClient:
    return client_for(cluster.admin_kubeconfig)


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.25) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s: {what}")
        time.sleep(every)
