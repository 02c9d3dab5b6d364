"""The Capacity page of a console whose control plane reads the real Kubernetes cluster (API
process with ``CONTROLPLANE_ORCHESTRATOR=kubernetes`` and the ``controlplane`` ServiceAccount's
kubeconfig, as deploy/k8s runs it): the header names the cluster, and the Deployments table shows
the namespace's Deployments with their HPAs, those outside the policy marked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.security import Role
from controlplane.stack.kubernetes import INVENTORY_NAMESPACE, KubernetesCluster
from controlplane.stack.settings import read_versions
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.integration.dashboards.browser import Browser, ConsoleProcess
from tests.integration.dashboards.seed import utc_now

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster_console(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    workdir: Path,
) -> Iterator[ConsoleProcess]:
    """A control plane API reading the cluster as the ``controlplane`` ServiceAccount, and a
    console (viewer token) on it."""
    database_url = f"sqlite:///{workdir}/cluster-controlplane.db"
    database = Database.from_url(database_url)
    database.migrate()
    with database.writer() as session:
        _, token = create_token(session, name="console", role=Role.VIEWER, at=utc_now())
    database.dispose()
    kubeconfig = kubernetes_cluster.service_account_kubeconfig(
        workdir / "controlplane.kubeconfig", namespace=INVENTORY_NAMESPACE, name="controlplane"
    )
    control_plane = ControlPlaneProcess(
        settings={
            "database_url": database_url,
            "webhook_token": "console-webhook-token",
            "leader_election": "false",
            "orchestrator": "kubernetes",
            "kubernetes_namespace": INVENTORY_NAMESPACE,
        },
        log_path=workdir / "cluster-controlplane.log",
        extra_environment={"KUBECONFIG": str(kubeconfig)},
    ).start()
    try:
        folder = workdir / "cluster-console"
        folder.mkdir(exist_ok=True)
        console = ConsoleProcess(
            control_plane=control_plane.url, token=token, workdir=folder
        ).start()
        try:
            yield console
        finally:
            console.stop()
    finally:
        control_plane.stop()


def test_the_capacity_page_shows_the_clusters_deployments_and_hpas(
    browser: Browser, cluster_console: ConsoleProcess, kubernetes_cluster: KubernetesCluster
) -> None:
    browser.driver.execute_script("window.sessionStorage.clear()")
    browser.open(f"{cluster_console.url}/capacity")
    browser.wait_for('tr[data-workload="inventory-worker"]')
    browser.wait_idle()
    assert browser.text("#capacity-orchestrator") == (
        f"Kubernetes {read_versions()['K8S_VERSION']} · namespace {INVENTORY_NAMESPACE} · "
        f"{kubernetes_cluster.url}"
    )
    worker = browser.text('tr[data-workload="inventory-worker"]')
    assert "outside the policy" in worker
    assert "4/4" in worker  # the production overlay's four stream workers, all ready
    assert "no HPA" in worker
    inventory = browser.text('tr[data-workload="inventory"]')
    assert "covered" in inventory
    assert "inventory: 3–20" in inventory
    assert "/ 70 %" in inventory
    outside = browser.driver.execute_script(
        "return Array.from(document.querySelectorAll('tr[data-in-policy=\"false\"]'))"
        ".map(row => row.getAttribute('data-workload'))"
    )
    assert sorted(outside) == ["controlplane", "dashboards", "inventory-worker", "keycloak"]
    # The policy's own table is still there, next to it.
    assert browser.find('tr[data-service="inventory"]')
    assert browser.console_errors() == []
    browser.wait(  # the charts under the tables, for the screenshot
        lambda: len(browser.find(".dash-graph .main-svg")) >= len(browser.find(".dash-graph")) > 0,
        what="every graph drawn",
    )
    browser.screenshot("capacity-kubernetes")
