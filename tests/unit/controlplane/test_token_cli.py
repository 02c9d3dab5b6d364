"""``controlplane token``: the secret is printed once and only its hash is stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.wiring import create_app
from controlplane.commands.token import app
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.conftest import settings_for


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/controlplane.db"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_token_once_and_stores_only_a_hash(
    tmp_path: Path, database_url: str
) -> None:
    code, out, err = _run(
        "create", "--name", "dashboards", "--role", "viewer", "--database-url", database_url
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("cpt_")
    assert len(secret) > 40
    assert "shown only this once" in err
    raw = (tmp_path / "controlplane.db").read_bytes()
    assert secret.encode() not in raw
    with sqlite3.connect(tmp_path / "controlplane.db") as connection:
        rows = connection.execute("SELECT name, role, token_hash FROM api_tokens").fetchall()
    assert [(name, role) for name, role, _ in rows] == [("dashboards", "viewer")]
    assert rows[0][2] != secret

    # The token works against the API on the same store.
    api = create_app(settings_for(tmp_path))
    with AppClient(api) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["name"] == "dashboards"
    assert me.json()["role"] == "viewer"
    assert me.json()["kind"] == "token"


def test_names_are_unique_roles_are_checked_and_revoke_works(database_url: str) -> None:
    assert (
        _run("create", "--name", "ops", "--role", "admin", "--database-url", database_url)[0] == 0
    )
    code, _, err = _run(
        "create", "--name", "ops", "--role", "admin", "--database-url", database_url
    )
    assert code == 1
    assert "already exists" in err
    code, _, _ = _run("create", "--name", "x", "--role", "root", "--database-url", database_url)
    assert code == 2
    code, out, _ = _run("list", "--database-url", database_url)
    assert code == 0
    assert "ops" in out
    assert "admin" in out
    assert _run("revoke", "--name", "ops", "--database-url", database_url)[0] == 0
    assert _run("revoke", "--name", "ops", "--database-url", database_url)[0] == 1
    code, out, _ = _run("list", "--database-url", database_url)
    assert "ops" not in out


def test_the_database_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTROLPLANE_DATABASE_URL", f"sqlite:///{tmp_path}/from-env.db")
    code, _, err = _run("create", "--name", "ci", "--role", "operator")
    assert code == 0, err
    assert (tmp_path / "from-env.db").exists()
