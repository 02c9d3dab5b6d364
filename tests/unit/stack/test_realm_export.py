"""`controlplane stack realm`: the realm a deployment imports, and the secrets folder beside it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlplane.cli import app as cli
from controlplane.stack.keycloak import (
    DEPLOYED_CLIENTS,
    deployable_realm,
    read_deployment_secrets,
    write_deployment_secrets,
)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["stack", "realm", *args])
    return result.exit_code, result.output


def test_the_export_has_the_deployed_clients_their_placeholders_and_the_console_redirects(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sub" / "realm.json"
    code, output = run("--out", str(out), "--console-url", "https://console.example:8443/")
    assert code == 0, output
    realm = json.loads(out.read_text(encoding="utf-8"))
    assert realm["realm"] == "inventory"
    clients = {client["clientId"]: client for client in realm["clients"]}
    assert set(clients) == {
        "inventory-console",
        "inventory-traffic",
        "controlplane-probe",
        "inventory-reader",
        "inventory-writer",
        "controlplane-automation",
    }
    assert clients["inventory-traffic"]["secret"] == "${REALM_SECRET_INVENTORY_TRAFFIC}"
    assert clients["controlplane-automation"]["secret"] == "${REALM_SECRET_CONTROLPLANE_AUTOMATION}"
    assert clients["inventory-console"]["redirectUris"] == [
        "https://console.example:8443/auth/callback",
        "https://console.example:8443/",
    ]
    # No people unless asked for; their service accounts are there.
    usernames = {user["username"] for user in realm["users"]}
    assert usernames == {f"service-account-{c}" for c in clients if c != "inventory-console"}
    with_people = deployable_realm(["http://localhost:8050"], dev_users=True)
    assert {"vera", "oscar", "ada"} <= {user["username"] for user in with_people["users"]}


@pytest.mark.parametrize(
    "url", ["localhost:8050", "ftp://console.example", "https://console.example/app", "https://"]
)
def test_a_console_address_that_is_not_a_bare_http_url_is_refused(tmp_path: Path, url: str) -> None:
    out = tmp_path / "realm.json"
    code, output = run("--out", str(out), "--console-url", url)
    assert code == 2
    assert "Invalid value" in output
    assert not out.exists()


def test_secrets_are_made_once_and_values_of_your_own_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    own = folder / "inventory-traffic.secret"
    own.write_text("my-own-traffic-secret\n", encoding="utf-8")
    first = write_deployment_secrets(folder)
    assert first[own] is False
    written = {path.name for path, made in first.items() if made}
    assert written == {
        *(f"{c.client_id}.secret" for c in DEPLOYED_CLIENTS if c.client_id != "inventory-traffic"),
        "keycloak-admin.password",
        "console-session.secret",
    }
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    values = {path: path.read_text(encoding="utf-8") for path in first}
    assert all(len(value.strip()) >= 32 for path, value in values.items() if path != own)
    # A second run (the CLI's too) changes nothing.
    code, output = run(
        "--out",
        str(tmp_path / "r.json"),
        "--console-url",
        "http://x:1",
        "--secrets-dir",
        str(folder),
    )
    assert code == 0, output
    assert output.count("kept") == len(first)
    assert {path: path.read_text(encoding="utf-8") for path in first} == values
    environment = read_deployment_secrets(folder)
    assert environment["REALM_SECRET_INVENTORY_TRAFFIC"] == "my-own-traffic-secret"
    assert len(environment) == len(DEPLOYED_CLIENTS)


def test_reading_the_secrets_names_a_missing_file(tmp_path: Path) -> None:
    write_deployment_secrets(tmp_path)
    (tmp_path / "controlplane-probe.secret").unlink()
    with pytest.raises(ValueError, match="controlplane-probe"):
        read_deployment_secrets(tmp_path)
