"""Contract test of the Kubernetes adapter: the official client against recorded API responses.

No API server runs here yet, so a loopback HTTP server replays recorded list responses of
``apps/v1`` Deployments and ``autoscaling/v2`` HorizontalPodAutoscalers. The official client
builds the requests and deserialises the answers; the capacity check then runs on the result.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from controlplane.orchestrator.base import OrchestratorError
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator
from controlplane.targets.capacity import check_capacity
from controlplane.targets.policy import load_capacity_policy

pytestmark = pytest.mark.unit

RECORDED = Path(__file__).with_name("recorded")
DEPLOYMENTS = "/apis/apps/v1/namespaces/inventory/deployments"
HPAS = "/apis/autoscaling/v2/namespaces/inventory/horizontalpodautoscalers"


class RecordedApi:
    def __init__(self) -> None:
        self.responses: dict[str, tuple[int, dict[str, Any]]] = {
            DEPLOYMENTS: (200, json.loads((RECORDED / "deployments.json").read_text())),
            HPAS: (200, json.loads((RECORDED / "hpas.json").read_text())),
        }
        self.requests: list[str] = []


@pytest.fixture
def api() -> Iterator[tuple[RecordedApi, str]]:
    recorded = RecordedApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorded.requests.append(self.path)
            path = self.path.split("?")[0]
            status, body = recorded.responses.get(
                path,
                (404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}),
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorded, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def orchestrator(url: str) -> tuple[KubernetesOrchestrator, k8s.ApiClient]:
    configuration = k8s.Configuration(host=url)
    api_client = k8s.ApiClient(configuration)
    return KubernetesOrchestrator(api_client=api_client, namespace="inventory"), api_client


def test_adapter_reads_deployments_and_pairs_their_hpas(api: tuple[RecordedApi, str]) -> None:
    recorded, url = api
    adapter, api_client = orchestrator(url)
    try:
        workloads = {w.service: w for w in adapter.workloads()}
    finally:
        api_client.close()
    assert [p.split("?")[0] for p in recorded.requests] == [DEPLOYMENTS, HPAS]
    inventory = workloads["inventory"]
    assert (inventory.desired_replicas, inventory.ready_replicas, inventory.current_replicas) == (
        20,
        18,
        20,
    )
    assert inventory.autoscaler is not None
    assert (inventory.autoscaler.min_replicas, inventory.autoscaler.max_replicas) == (3, 20)
    assert inventory.autoscaler.target_cpu_percent == 70
    assert inventory.cpu_percent == 88
    assert inventory.resources is not None
    assert (inventory.resources.cpu_request, inventory.resources.memory_limit) == ("200m", "2Gi")


def test_recorded_situation_raises_the_right_findings_and_they_clear_when_fixed(
    api: tuple[RecordedApi, str],
) -> None:
    recorded, url = api
    policy = load_capacity_policy()
    adapter, api_client = orchestrator(url)
    try:
        found = {(f.subject, f.kind) for f in check_capacity(policy, adapter.workloads())}
        assert found == {
            ("service/inventory", "capacity.replicas_not_ready"),
            ("service/inventory", "capacity.at_max_replicas"),
            ("service/demand-planning", "capacity.hpa_drift"),
            ("service/analytics", "capacity.workload_missing"),
        }

        deployments = copy.deepcopy(recorded.responses[DEPLOYMENTS][1])
        deployments["items"][0]["status"]["readyReplicas"] = 20
        hpas = copy.deepcopy(recorded.responses[HPAS][1])
        hpas["items"][0]["status"]["currentMetrics"][0]["resource"]["current"][
            "averageUtilization"
        ] = 64
        hpas["items"][1]["spec"]["minReplicas"] = 2
        recorded.responses[DEPLOYMENTS] = (200, deployments)
        recorded.responses[HPAS] = (200, hpas)
        fixed = {(f.subject, f.kind) for f in check_capacity(policy, adapter.workloads())}
        assert fixed == {("service/analytics", "capacity.workload_missing")}
    finally:
        api_client.close()


def test_api_refusal_is_a_typed_error(api: tuple[RecordedApi, str]) -> None:
    recorded, url = api
    recorded.responses[DEPLOYMENTS] = (
        403,
        {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403},
    )
    adapter, api_client = orchestrator(url)
    try:
        with pytest.raises(OrchestratorError, match="403"):
            adapter.workloads()
    finally:
        api_client.close()
