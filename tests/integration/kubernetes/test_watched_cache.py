"""The orchestrator's list+watch cache against a real API server, through what a long-running
control plane meets: BOOKMARK events and watch renewals (a watch request ends after its
timeout and is resumed), a watch the API server starts refusing (here: its RoleBinding
deleted) — reads fail once the cache is stale and work again once the watch is back — and an
API server that stops answering with a watch open.

Watch timeouts are cut to seconds so that what takes minutes in production happens here.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from controlplane.orchestrator import kubernetes as orchestrator_kubernetes
from controlplane.orchestrator.kubernetes import (
    StaleCacheError,
    WatchedCache,
    kubernetes_client,
)
from controlplane.stack.kubernetes import INVENTORY_NAMESPACE, KubernetesCluster
from tests.support.kube import admin_client, wait_for

pytestmark = pytest.mark.integration

NAMESPACE = INVENTORY_NAMESPACE
PROBE = "watch-probe"


def hpa_cache(api: k8s.ApiClient, **options: Any) -> WatchedCache:
    return WatchedCache(
        kind="horizontalpodautoscalers",
        list_call=k8s.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler,
        namespace=NAMESPACE,
        **options,
    )


def max_replicas(cache: WatchedCache, name: str) -> int:
    return int({h.metadata.name: h for h in cache.items()}[name].spec.max_replicas)


def patch_max(cluster: KubernetesCluster, name: str, value: int) -> None:
    cluster.kubectl(
        f"--namespace={NAMESPACE}",
        "patch",
        f"hpa/{name}",
        "--type=merge",
        f'--patch={{"spec": {{"maxReplicas": {value}}}}}',
    )


@pytest.fixture
def admin(kubernetes_cluster: KubernetesCluster) -> Iterator[k8s.ApiClient]:
    client = admin_client(kubernetes_cluster)
    try:
        yield client
    finally:
        client.close()


def test_bookmarks_and_renewed_watches_keep_the_cache_current_without_listing_again(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    admin: k8s.ApiClient,
) -> None:
    cache = hpa_cache(admin, watch_timeout_s=3)
    try:
        assert max_replicas(cache, "analytics") == 8
        # The API server sends a bookmark before a watch's deadline; the watch then ends and is
        # resumed from the bookmark's resourceVersion, again and again (one watch every 3 s; a
        # loaded API server skips some bookmarks, hence the margin).
        wait_for(lambda: cache.bookmarks >= 2, timeout=90, what="two watch bookmarks")
        patch_max(kubernetes_cluster, "analytics", 7)
        try:
            wait_for(
                lambda: max_replicas(cache, "analytics") == 7,
                timeout=20,
                what="the change seen through the renewed watch",
            )
        finally:
            patch_max(kubernetes_cluster, "analytics", 8)
        wait_for(lambda: max_replicas(cache, "analytics") == 8, timeout=20, what="put back")
        assert cache.watching
        assert cache.healthy
        assert cache.lists == 1
    finally:
        cache.close()


def probe_account(state: str) -> list[dict[str, Any]]:
    """A ServiceAccount that may list and watch HPAs while its RoleBinding exists."""
    meta = {"name": PROBE, "namespace": NAMESPACE}
    documents: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": ["autoscaling"],
                    "resources": ["horizontalpodautoscalers"],
                    "verbs": ["list", "watch"],
                }
            ],
        },
    ]
    if state == "bound":
        documents.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PROBE},
                "subjects": [{"kind": "ServiceAccount", "name": PROBE, "namespace": NAMESPACE}],
            }
        )
    return documents


def test_a_watch_refused_for_too_long_makes_reads_fail_until_it_works_again(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    cluster = kubernetes_cluster
    cluster.apply(probe_account("bound"), field_manager="test")
    kubeconfig = cluster.service_account_kubeconfig(
        tmp_path / "probe.kubeconfig", namespace=NAMESPACE, name=PROBE
    )
    client = kubernetes_client(kubeconfig)
    cache = hpa_cache(client, watch_timeout_s=2, stale_after_s=3)
    try:
        assert max_replicas(cache, "inventory") == 20
        cluster.kubectl(f"--namespace={NAMESPACE}", "delete", f"rolebinding/{PROBE}")
        # The running watch ends within its 2 s; each renewal is now refused with 403.
        wait_for(lambda: not cache.healthy, timeout=20, what="the watch refused")
        assert cache.last_error is not None
        assert "403" in cache.last_error

        def stale() -> bool:
            try:
                cache.items()
            except StaleCacheError:
                return True
            return False

        wait_for(stale, timeout=20, what="reads refused once the cache is stale")
        with pytest.raises(StaleCacheError, match="horizontalpodautoscalers watch broken"):
            cache.items()
        assert cache.watching  # the thread keeps trying

        cluster.apply(probe_account("bound"), field_manager="test")
        # Retries back off up to 30 s between tries.
        wait_for(lambda: cache.healthy, timeout=45, what="the watch working again")
        assert max_replicas(cache, "inventory") == 20
    finally:
        cache.close()
        client.close()
        cluster.kubectl(
            f"--namespace={NAMESPACE}",
            "delete",
            f"rolebinding/{PROBE}",
            f"role/{PROBE}",
            f"serviceaccount/{PROBE}",
            "--ignore-not-found",
        )


def test_an_api_server_that_stops_answering_is_noticed_and_the_watch_resumes(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API server frozen (SIGSTOP: connections accepted by the kernel, never answered) with
    a watch open: the open watch would wait forever. Its client-side read limit ends it, the
    cache turns unhealthy with the timeout as its error, and the watch resumes once the server
    answers again."""
    monkeypatch.setattr(orchestrator_kubernetes, "WATCH_GRACE_S", 1.0)
    monkeypatch.setattr(orchestrator_kubernetes, "CONNECT_TIMEOUT_S", 1.0)
    api = admin_client(kubernetes_cluster)
    cache = hpa_cache(api, watch_timeout_s=2, stale_after_s=60)
    process = kubernetes_cluster.apiserver.process
    assert process is not None
    assert process.pid is not None
    try:
        assert max_replicas(cache, "inventory") == 20
        wait_for(lambda: cache.healthy, timeout=10, what="the watch running")
        os.kill(process.pid, signal.SIGSTOP)
        try:
            # An open watch is cut by its read limit (2 s of watch + 1 s of grace); a renewal
            # sent to the frozen server waits as long for its answer, and urllib3 retries a
            # GET whose answer timed out up to three times.
            wait_for(lambda: not cache.healthy, timeout=25, what="the frozen server noticed")
        finally:
            os.kill(process.pid, signal.SIGCONT)
        assert cache.last_error is not None
        assert "timed out" in cache.last_error.lower()
        wait_for(lambda: cache.healthy, timeout=30, what="the watch working again")
        assert max_replicas(cache, "inventory") == 20
    finally:
        cache.close()
        api.close()
