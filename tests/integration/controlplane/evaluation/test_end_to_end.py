"""The whole alert path with real binaries, in one test: Prometheus loaded with the generated
rules (``alerts/rules``) scrapes a target the test makes burn, the page alert fires,
Alertmanager (configured from ``alerts/alertmanager.yml``) posts the webhook to
``controlplane serve``, which stores it, and the API lists it — while the control plane's own
evaluation shows the same SLO burning."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.core.processes import free_ports
from controlplane.stack.backends import Alertmanager, Prometheus
from tests.integration.controlplane.evaluation.support import (
    REPO,
    InventoryTarget,
    ServeProcess,
    api_get,
    eventually,
    serve_target,
    viewer_token,
)
from tests.support.backends import BackendPool, PrometheusFactory, launch

pytestmark = pytest.mark.integration

RULES = REPO / "alerts" / "rules"
ALERTMANAGER_CONFIG = REPO / "alerts" / "alertmanager.yml"
INTERVAL = 2.0


def alertmanager_config(*, port: int, token_file: Path) -> dict[str, Any]:
    """The shipped configuration, pointed at the test's control plane, with test timing."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    webhook = config["receivers"][0]["webhook_configs"][0]
    webhook["url"] = webhook["url"].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update(group_wait="1s", group_interval="1s")
    return config


@dataclass
class Pipeline:
    target: InventoryTarget
    prometheus: Prometheus
    control_plane: ServeProcess
    headers: dict[str, str]

    def get(self, path: str, **params: Any) -> Any:
        return api_get(f"{self.control_plane.url}{path}", self.headers, **params)


@pytest.fixture
def pipeline(
    backend_pool: BackendPool, prometheus_factory: PrometheusFactory, tmp_path: Path
) -> Iterator[Pipeline]:
    token_file = tmp_path / "webhook.token"
    token_file.write_text(uuid.uuid4().hex + "\n", encoding="utf-8")
    token_file.chmod(0o644)  # Alertmanager may run as another account
    database_url = f"sqlite:///{tmp_path}/controlplane.db"
    headers = viewer_token(database_url)
    (port,) = free_ports(1)
    target = InventoryTarget()
    with serve_target(target) as address:
        alertmanager = launch(
            backend_pool,
            Alertmanager,
            config=alertmanager_config(port=port, token_file=token_file),
        )
        prometheus = prometheus_factory(
            config={
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}
                    ]
                },
                "scrape_configs": [
                    {"job_name": "inventory", "static_configs": [{"targets": [address]}]}
                ],
            },
            # Test timing: the period groups run every 5 m, and Prometheus first evaluates a
            # group at an offset anywhere in its interval; every 1 s here, like the others.
            rules={
                path.name: path.read_text(encoding="utf-8").replace("interval: 5m", "interval: 1s")
                for path in RULES.glob("*.yml")
            },
        )
        control_plane = ServeProcess(
            settings={
                "database_url": database_url,
                "webhook_token_file": str(token_file),
                "prometheus_url": prometheus.url,
                "elasticsearch_url": f"http://127.0.0.1:{free_ports(1)[0]}",
                "evaluation_interval_seconds": str(INTERVAL),
            },
            log_path=tmp_path / "controlplane.log",
            port=port,
        ).start()
        try:
            yield Pipeline(
                target=target, prometheus=prometheus, control_plane=control_plane, headers=headers
            )
        finally:
            control_plane.stop()
            backend_pool.stop(alertmanager)
            backend_pool.stop(prometheus)


def test_a_burning_target_pages_and_the_control_plane_stores_and_lists_the_alert(
    pipeline: Pipeline,
) -> None:
    seen: dict[str, Any] = {}

    def slo(name: str) -> dict[str, Any] | None:
        for status in pipeline.get("/api/v1/slos"):
            if status["slo_id"] == name:
                seen.update(last=status)
                if status["state"] == "ok":
                    return dict(status)
        return None

    try:
        healthy = eventually(lambda: slo("api-availability"), timeout=60)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; last status: {seen.get('last')!r}; control plane log:\n"
            + pipeline.control_plane.log_tail()
        ) from exc
    assert healthy["sli"] == pytest.approx(1.0)
    assert pipeline.get("/api/v1/alerts", status="firing") == []

    pipeline.target.burn(0.5)  # half the requests fail: a burn of ~500x a 99.9 % budget

    def page() -> dict[str, Any] | None:
        for alert in pipeline.get("/api/v1/alerts", status="firing"):
            labels = alert["labels"]
            if alert["alertname"] == "ErrorBudgetBurn1h5m" and labels["slo"] == (
                "api-availability"
            ):
                return dict(alert)
        return None

    alert = eventually(page, timeout=120)
    assert alert["severity"] == "page"
    assert alert["receiver"] == "controlplane"
    assert alert["labels"]["service"] == "inventory"
    assert alert["annotations"]["runbook_url"]
    (delivery, *_) = pipeline.get("/api/v1/alerts/deliveries")
    assert delivery["receiver"] == "controlplane"

    def burning() -> dict[str, Any] | None:
        status = slo("api-availability")
        if status is None or (status["burn_rates"].get("5m") or 0) <= 14.4:
            return None
        return status

    status = eventually(burning, timeout=30)
    firing = [(a["long"], a["short"]) for a in status["details"]["alerts"] if a["firing"]]
    assert ("1h", "5m") in firing
