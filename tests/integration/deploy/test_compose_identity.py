"""docker-compose.yml runs Keycloak with the realm `controlplane stack realm` exports, and the
API, the control plane and the console trust it: one issuer for browsers and services, the
clients' secrets from files that are never committed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from controlplane.cli import app as cli
from controlplane.stack.keycloak import (
    CONTROLPLANE_API,
    DEPLOYED_CLIENTS,
    INVENTORY_API,
    deployable_realm,
    realm_json,
    secret_variable,
    write_deployment_secrets,
)
from tests.integration.deploy.images import REPO
from tests.integration.deploy.test_compose import compose_config

pytestmark = pytest.mark.integration

REALM_FILE = REPO / "deploy" / "compose" / "keycloak" / "inventory-realm.json"
REALM_IN_CONTAINER = "/opt/keycloak/data/import/inventory-realm.json"
SECRETS_DIR = REPO / "deploy" / "compose" / "secrets"
#: The addresses browsers open the console at (its published port).
CONSOLE_URLS = ("http://localhost:8050", "http://127.0.0.1:8050")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config()


def _env(config: dict[str, Any], service: str) -> dict[str, str]:
    environment: dict[str, str] = config["services"][service].get("environment", {})
    return environment


def _secret_path(config: dict[str, Any], service: str, variable: str) -> Path:
    """The host file behind ``variable`` (a /run/secrets/<name> path) of ``service``."""
    in_container = _env(config, service)[variable]
    name = in_container.removeprefix("/run/secrets/")
    assert in_container == f"/run/secrets/{name}", f"{service}: {variable}={in_container}"
    listed = {entry["source"] for entry in config["services"][service].get("secrets", [])}
    assert name in listed, f"{service} reads {in_container} but is not given the secret {name}"
    return Path(config["secrets"][name]["file"])


def test_keycloak_runs_the_pinned_image_with_the_realm_and_a_health_check(
    config: dict[str, Any],
) -> None:
    keycloak = config["services"]["keycloak"]
    assert keycloak["image"] == "quay.io/keycloak/keycloak:26.7.3"
    assert "--import-realm" in keycloak["command"]
    mounts = {str(v).split(":")[1]: Path(str(v).split(":")[0]) for v in keycloak["volumes"]}
    assert mounts[REALM_IN_CONTAINER] == REALM_FILE
    entrypoint = keycloak["entrypoint"]
    assert mounts[entrypoint[-1]].is_file()
    check = " ".join(keycloak["healthcheck"]["test"])
    assert "/health/ready" in check
    assert keycloak["environment"]["KC_HEALTH_ENABLED"] == "true"


def test_every_service_trusts_one_issuer_that_browsers_and_services_both_reach(
    config: dict[str, Any],
) -> None:
    services = config["services"]
    keycloak = services["keycloak"]
    issuers = {
        "app": _env(config, "app")["INVENTORY_AUTH_ISSUER"],
        "controlplane": _env(config, "controlplane")["CONTROLPLANE_OIDC_ISSUER"],
        "dashboards": _env(config, "dashboards")["DASHBOARDS_OIDC_ISSUER"],
    }
    realm = deployable_realm(CONSOLE_URLS)["realm"]
    hostname = keycloak["environment"]["KC_HOSTNAME"]
    # Tokens carry KC_HOSTNAME's issuer: the one every service checks.
    assert set(issuers.values()) == {f"{hostname}/realms/{realm}"}
    parts = urlsplit(hostname)
    assert parts.hostname is not None
    assert parts.hostname.endswith(".localhost")
    # Services resolve it to Keycloak by its alias, and reach it on the port it listens on ...
    aliases = keycloak["networks"]["default"]["aliases"]
    assert parts.hostname in aliases
    assert str(parts.port) == keycloak["environment"]["KC_HTTP_PORT"]
    # ... browsers resolve *.localhost to loopback, where the same port is published.
    assert f"127.0.0.1:{parts.port}:{parts.port}/tcp" in keycloak["ports"]
    for name in issuers:
        assert services[name]["depends_on"]["keycloak"]["condition"] == "service_healthy"


def test_audiences_and_clients_are_those_of_the_realm(config: dict[str, Any]) -> None:
    clients = {client.client_id: client for client in DEPLOYED_CLIENTS}
    assert _env(config, "app")["INVENTORY_AUTH_AUDIENCE"] == INVENTORY_API
    assert _env(config, "controlplane")["CONTROLPLANE_OIDC_AUDIENCE"] == CONTROLPLANE_API
    probe = clients[_env(config, "controlplane")["CONTROLPLANE_INVENTORY_CLIENT_ID"]]
    assert probe.service_account
    assert INVENTORY_API in probe.audiences
    console = clients[_env(config, "dashboards")["DASHBOARDS_OIDC_CLIENT_ID"]]
    assert console.browser_login
    assert CONTROLPLANE_API in console.audiences


def test_the_realm_file_is_the_export_of_the_python_definition(tmp_path: Path) -> None:
    out = tmp_path / "realm.json"
    command = ["stack", "realm", "--out", str(out), "--dev-users"]
    for url in CONSOLE_URLS:
        command += ["--console-url", url]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == REALM_FILE.read_text(encoding="utf-8")
    assert realm_json(deployable_realm(CONSOLE_URLS, dev_users=True)) == out.read_text("utf-8")
    text = REALM_FILE.read_text(encoding="utf-8")
    # No secret in the file: each client's is a placeholder Keycloak fills at import.
    placeholders = set(re.findall(r"\$\{(REALM_SECRET_[A-Z_]+)\}", text))
    assert placeholders == {secret_variable(c.client_id) for c in DEPLOYED_CLIENTS}
    assert '"tests-password"' not in text
    assert '"short-lived"' not in text
    for url in CONSOLE_URLS:
        assert f'"{url}/auth/callback"' in text


def test_secrets_come_from_files_the_export_writes_and_git_ignores(
    config: dict[str, Any], tmp_path: Path
) -> None:
    keycloak_secrets = {entry["source"] for entry in config["services"]["keycloak"]["secrets"]}
    # Keycloak gets one secret per client the realm names (the entrypoint exports each).
    assert keycloak_secrets == {c.client_id for c in DEPLOYED_CLIENTS} | {"keycloak-admin"}
    files = {
        _secret_path(config, "controlplane", "CONTROLPLANE_INVENTORY_CLIENT_SECRET_FILE"),
        _secret_path(config, "dashboards", "DASHBOARDS_OIDC_CLIENT_SECRET_FILE"),
        _secret_path(config, "dashboards", "DASHBOARDS_SESSION_SECRET_FILE"),
        *(Path(config["secrets"][name]["file"]) for name in keycloak_secrets),
    }
    assert {path.parent for path in files} == {SECRETS_DIR}
    # The names are those `controlplane stack realm --secrets-dir` writes.
    written = {path.name for path in write_deployment_secrets(tmp_path)}
    assert {path.name for path in files} == written
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(SECRETS_DIR / "inventory-traffic.secret")],
        cwd=REPO,
        check=False,
    )
    assert ignored.returncode == 0, "deploy/compose/secrets/ files would be committed"


def test_the_export_refuses_a_console_address_with_a_path(tmp_path: Path) -> None:
    out = tmp_path / "realm.json"
    result = CliRunner().invoke(
        cli, ["stack", "realm", "--out", str(out), "--console-url", "https://console.example/x"]
    )
    assert result.exit_code == 2
    assert "no path" in result.output
    assert not out.exists()
