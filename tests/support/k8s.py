"""A loopback stand-in for the Kubernetes API that replays recorded objects (contract tests).

No API server is part of the test stack yet. This serves recorded ``apps/v1`` and
``autoscaling/v2`` objects at their real paths, applies merge patches the way the API server does
for ``application/merge-patch+json`` (and strategic merge for the simple fields used here), and
records every request, so the official client can be exercised end to end.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED = (
    Path(__file__).resolve().parents[1] / "unit" / "controlplane" / "orchestrator" / "recorded"
)


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


@dataclass
class FakeKubernetes:
    namespace: str = "inventory"
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    hpas: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    url: str = ""

    @classmethod
    def recorded(cls) -> FakeKubernetes:
        fake = cls()
        for item in json.loads((RECORDED / "deployments.json").read_text())["items"]:
            fake.deployments[item["metadata"]["name"]] = item
        for item in json.loads((RECORDED / "hpas.json").read_text())["items"]:
            fake.hpas[item["metadata"]["name"]] = item
        return fake

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self.fail_with is not None:
            return self.fail_with, _status(self.fail_with, "Forbidden")
        apps = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        hpa = f"/apis/autoscaling/v2/namespaces/{self.namespace}/horizontalpodautoscalers"
        if path == apps and method == "GET":
            return 200, {
                "kind": "DeploymentList",
                "apiVersion": "apps/v1",
                "metadata": {},
                "items": list(self.deployments.values()),
            }
        if path == hpa and method == "GET":
            return 200, {
                "kind": "HorizontalPodAutoscalerList",
                "apiVersion": "autoscaling/v2",
                "metadata": {},
                "items": list(self.hpas.values()),
            }
        if path.startswith(apps + "/"):
            rest = path[len(apps) + 1 :].split("/")
            deployment = self.deployments.get(rest[0])
            if deployment is None:
                return 404, _status(404, "NotFound")
            if len(rest) == 2 and rest[1] == "scale":
                if method == "PATCH":
                    merge(deployment, {"spec": {"replicas": body["spec"]["replicas"]}})
                return 200, _scale(deployment)
            if method == "PATCH":
                merge(deployment, body)
            return 200, deployment
        if path.startswith(hpa + "/"):
            item = self.hpas.get(path[len(hpa) + 1 :])
            if item is None:
                return 404, _status(404, "NotFound")
            if method == "PATCH":
                merge(item, body)
            return 200, item
        return 404, _status(404, "NotFound")


def _status(code: int, reason: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "code": code,
    }


def _scale(deployment: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": deployment["metadata"]["name"],
            "namespace": deployment["metadata"]["namespace"],
        },
        "spec": {"replicas": deployment["spec"]["replicas"]},
        "status": {"replicas": deployment.get("status", {}).get("replicas", 0)},
    }


@contextmanager
def serve(fake: FakeKubernetes) -> Iterator[FakeKubernetes]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path = self.path.split("?")[0]
            fake.requests.append((self.command, path, body))
            status, payload = fake._route(self.command, path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _handle
        do_PATCH = _handle

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
