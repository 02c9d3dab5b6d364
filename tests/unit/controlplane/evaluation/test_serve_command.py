"""``controlplane serve`` refuses to start on a configuration that cannot work: exit code 2 and
one line per problem, before anything listens."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from controlplane.api import app as app_module
from controlplane.commands import serve as serve_module
from controlplane.commands.serve import EXIT_CONFIG, serve

pytestmark = pytest.mark.unit


def run(tmp_path: Path, **env: str | None) -> tuple[int, str]:
    """Invoke ``serve`` with these ``CONTROLPLANE_*`` values (None: unset)."""
    app = typer.Typer()
    app.command()(serve)
    variables: dict[str, str | None] = {
        "CONTROLPLANE_DATA_DIR": str(tmp_path),
        "CONTROLPLANE_WEBHOOK_TOKEN": "secret",
        "CONTROLPLANE_LEADER_ELECTION": "false",
        **{f"CONTROLPLANE_{key.upper()}": value for key, value in env.items()},
    }
    result = CliRunner().invoke(app, [], env=variables)
    return result.exit_code, result.output


def test_an_invalid_spec_names_the_file_and_field(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(
        "apiVersion: controlplane.slo/v1\nkind: SLO\nmetadata: {name: x}\n"
        "spec: {service: s, tier: critical, objective: 1.5, window: 30d,"
        " sli: {ratio: {bad: a, total: b}}}\n",
        encoding="utf-8",
    )
    code, output = run(tmp_path, slo_specs=str(spec))
    assert code == EXIT_CONFIG
    assert f"{spec}: spec.objective" in output


def test_a_setting_that_cannot_work_is_named(tmp_path: Path) -> None:
    code, output = run(tmp_path, local_min_replicas="2")
    assert code == EXIT_CONFIG
    assert (
        "set CONTROLPLANE_LOCAL_MIN_REPLICAS and CONTROLPLANE_LOCAL_MAX_REPLICAS together" in output
    )


def test_an_unusable_value_names_its_variable_whatever_its_group(tmp_path: Path) -> None:
    code, output = run(
        tmp_path, database_nodes="primary=127.0.0.1", action_interval_seconds="0", port="0"
    )
    assert code == EXIT_CONFIG
    lines = output.splitlines()
    assert any(
        line.startswith("CONTROLPLANE_DATABASE_NODES:") and "is not name=host:port" in line
        for line in lines
    )
    assert any(line.startswith("CONTROLPLANE_ACTION_INTERVAL_SECONDS:") for line in lines)
    assert any(line.startswith("CONTROLPLANE_PORT:") for line in lines)


def test_the_receiver_needs_its_token(tmp_path: Path) -> None:
    code, output = run(tmp_path, webhook_token=None, webhook_token_file=None)
    assert code == EXIT_CONFIG
    assert "set CONTROLPLANE_WEBHOOK_TOKEN or CONTROLPLANE_WEBHOOK_TOKEN_FILE" in output


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    code, output = run(tmp_path, dr_policy=str(tmp_path / "nope.yaml"))
    assert code == EXIT_CONFIG
    assert "nope.yaml: cannot read" in output


def test_an_action_policy_that_cannot_work_is_named(tmp_path: Path) -> None:
    policy = tmp_path / "actions.yaml"
    policy.write_text(
        "apiVersion: controlplane/v1\nkind: ActionPolicy\nmetadata: {name: x, version: 1}\n"
        "spec:\n  rules:\n    - {name: r, trigger: {}, action: scale_out, service: s}\n",
        encoding="utf-8",
    )
    code, output = run(tmp_path, action_policy=str(policy), evaluation_enabled="false")
    assert code == EXIT_CONFIG
    assert "spec.rules.0.trigger" in output
    assert "exactly one of alert or burn" in output


def test_a_local_orchestrator_without_its_pidfile_is_named(tmp_path: Path) -> None:
    code, output = run(tmp_path, orchestrator="local", evaluation_enabled="false")
    assert code == EXIT_CONFIG
    assert "CONTROLPLANE_LOCAL_PIDFILE" in output


def test_malformed_data_folders_are_named(tmp_path: Path) -> None:
    code, output = run(tmp_path, database_data_dirs="primary")
    assert code == EXIT_CONFIG
    assert "CONTROLPLANE_DATABASE_DATA_DIRS" in output
    assert "'primary' is not name=path" in output


def test_kubernetes_without_credentials_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    code, output = run(
        tmp_path,
        orchestrator="kubernetes",
        evaluation_enabled="false",
    )
    assert code == EXIT_CONFIG
    assert "no in-cluster credentials and no usable kubeconfig" in output


@pytest.fixture
def without_extensions(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """As if the alerts package were not installed (no package offers an API extension); the
    apps ``serve`` would run are collected instead of served."""
    monkeypatch.setattr(app_module, "entry_points", lambda group: [])
    served: list[object] = []
    monkeypatch.setattr(serve_module.uvicorn, "run", lambda app, **options: served.append(app))
    return served


def test_a_required_extension_that_is_not_installed_stops_the_start(
    tmp_path: Path, without_extensions: list[object]
) -> None:
    code, output = run(tmp_path, evaluation_enabled="false")
    assert (code, without_extensions) == (EXIT_CONFIG, [])
    assert "alertmanager-webhook" in output
    assert "CONTROLPLANE_REQUIRED_EXTENSIONS" in output


def test_no_required_extension_lets_it_start_without_the_webhook(
    tmp_path: Path, without_extensions: list[object]
) -> None:
    code, output = run(tmp_path, evaluation_enabled="false", required_extensions="")
    assert code == 0, output
    assert len(without_extensions) == 1


def test_a_variable_that_is_no_setting_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code, _ = run(tmp_path, prometeus_url="http://p:9090", dr_policy=str(tmp_path / "nope.yaml"))
    assert code == EXIT_CONFIG  # stopped later, by the missing policy file
    assert "CONTROLPLANE_PROMETEUS_URL is not a setting of the control plane" in caplog.text
