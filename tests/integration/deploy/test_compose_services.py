"""docker-compose.yml runs the product's own processes beside the backends: the API, its stream
workers, the control plane and the dashboards, built from deploy/docker/Dockerfile as the images
the Kubernetes base names, on loopback ports, each with a health check."""

from __future__ import annotations

import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.integration.deploy.images import (
    PROBE_IN_IMAGE,
    REPO,
    TARGETS,
    base_manifests,
    controlplane_variables,
    dockerfile_stages,
    inventory_variables,
)
from tests.support.backends import require_tool

pytestmark = pytest.mark.integration

PUBLISHED = {"app": {"8000"}, "worker": set(), "controlplane": {"8080"}, "dashboards": {"8050"}}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = require_tool("docker-compose")
    done = subprocess.run(
        [compose, "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return found


def test_each_process_is_built_from_its_dockerfile_target_as_the_image_kubernetes_runs(
    services: dict[str, Any],
) -> None:
    stages = dockerfile_stages()
    kubernetes_images = {
        container["image"]
        for obj in base_manifests()
        if obj["kind"] == "Deployment"
        for container in obj["spec"]["template"]["spec"]["containers"]
    }
    for name in TARGETS:
        build = services[name]["build"]
        assert build["context"] == str(REPO), name
        assert build["dockerfile"] == "deploy/docker/Dockerfile", name
        assert build["target"] == name
        assert name in stages
        assert services[name]["image"] == f"inventory-slo/{name}:dev"
        assert services[name]["image"] in kubernetes_images


def test_processes_publish_their_demo_ports_on_loopback_only_with_a_health_check(
    services: dict[str, Any],
) -> None:
    for name, ports in PUBLISHED.items():
        published = services[name].get("ports", [])
        # docker-compose 1.x prints the short syntax: "127.0.0.1:8000:8000/tcp"
        assert all(str(port).startswith("127.0.0.1:") for port in published), published
        assert {str(port).split(":")[1] for port in published} == ports, name
        check = services[name]["healthcheck"]["test"]
        assert check[:3] == ["CMD", "python", PROBE_IN_IMAGE], name


def test_processes_start_after_what_they_need_is_healthy(services: dict[str, Any]) -> None:
    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert waits_for("app") == {
        "keycloak": "service_healthy",
        "postgres-primary": "service_healthy",
        "postgres-replica": "service_healthy",
        "redis": "service_healthy",
    }
    # The API migrates the schema before it turns healthy.
    assert "--migrate" in services["app"]["command"]
    assert waits_for("worker") == {"app": "service_healthy"}
    assert waits_for("dashboards") == {
        "controlplane": "service_healthy",
        "keycloak": "service_healthy",
    }
    assert set(waits_for("controlplane")) == {"prometheus", "elasticsearch", "jaeger", "keycloak"}


def test_settings_are_variables_the_processes_read_and_name_compose_services(
    services: dict[str, Any],
) -> None:
    known = inventory_variables() | controlplane_variables()
    # A service answers to its name and to its network aliases (keycloak.localhost).
    hosts = set(services) | {
        alias
        for service in services.values()
        for network in (service.get("networks") or {}).values()
        for alias in (network or {}).get("aliases", [])
    }
    for name in TARGETS:
        environment: dict[str, str] = services[name].get("environment", {})
        ours = {key for key in environment if key.startswith(("INVENTORY_", "CONTROLPLANE_"))}
        assert ours - known == set(), name
        for key, value in environment.items():
            if "://" in str(value):
                host = urlsplit(str(value)).hostname
                assert host in hosts, f"{name}: {key} points at {host}, not a service"
    assert {"INVENTORY_DATABASE_URL", "INVENTORY_REDIS_URL"} <= set(services["app"]["environment"])
    assert {"INVENTORY_DATABASE_URL", "INVENTORY_REDIS_URL"} <= set(
        services["worker"]["environment"]
    )
