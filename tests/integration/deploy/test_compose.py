"""docker-compose.yml is valid for Debian's docker-compose and mirrors the local stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.backends import require_tool

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
BACKENDS = {
    "postgres-primary",
    "postgres-replica",
    "redis",
    "prometheus",
    "alertmanager",
    "elasticsearch",
    "jaeger",
}


def compose_config() -> dict[str, object]:
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
    config: dict[str, object] = yaml.safe_load(done.stdout)
    return config


def test_compose_file_is_valid_and_has_every_backend_with_a_healthcheck() -> None:
    services = compose_config()["services"]
    assert isinstance(services, dict)
    assert set(services) >= BACKENDS
    for name in BACKENDS:
        assert "test" in services[name]["healthcheck"], name


def test_compose_replica_waits_for_a_healthy_primary_and_ports_match_the_demo() -> None:
    services = compose_config()["services"]
    assert isinstance(services, dict)
    replica = services["postgres-replica"]
    assert replica["depends_on"]["postgres-primary"]["condition"] == "service_healthy"
    # docker-compose 1.x prints the short syntax: "127.0.0.1:9093:9093/tcp"
    published = {
        name: {str(port).split(":")[1] for port in service.get("ports", [])}
        for name, service in services.items()
    }
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{port} is published beyond loopback"
    assert published["postgres-primary"] == {"5432"}
    assert published["postgres-replica"] == {"5433"}
    assert published["redis"] == {"6379"}
    assert published["prometheus"] == {"9090"}
    assert published["alertmanager"] == {"9093"}
    assert published["elasticsearch"] == {"9200"}
    assert {"16686", "4317", "4318"} <= published["jaeger"]


def test_compose_mounted_files_exist() -> None:
    services = compose_config()["services"]
    assert isinstance(services, dict)
    for service in services.values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("/"):  # a bind mount of a file of this repository
                assert Path(source).exists(), source
