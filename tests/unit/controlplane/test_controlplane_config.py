"""Settings come from CONTROLPLANE_* variables, with defaults, and refuse unusable values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controlplane.core.config import ControlPlaneSettings, SettingsError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CONTROLPLANE_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_documented_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = ControlPlaneSettings()
    assert settings.sqlalchemy_url == (
        f"sqlite:///{tmp_path}/inventory-slo-controlplane/controlplane.db"
    )
    assert settings.evaluation_interval_seconds == 30
    assert settings.port == 8080
    assert settings.prometheus_url == "http://127.0.0.1:9090"
    assert settings.elasticsearch_url == "http://127.0.0.1:9200"
    assert settings.jaeger_url == "http://127.0.0.1:16686"
    assert settings.max_webhook_body_bytes == 1_048_576
    assert settings.resolved_webhook_token() is None
    # Building settings touches nothing on disk.
    assert not (tmp_path / "inventory-slo-controlplane").exists()


def test_environment_variables_with_the_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_DATABASE_URL", "postgresql://cp@127.0.0.1:5432/controlplane")
    monkeypatch.setenv("CONTROLPLANE_EVALUATION_INTERVAL_SECONDS", "10")
    monkeypatch.setenv("CONTROLPLANE_PROMETHEUS_URL", "http://prom.internal:9090/")
    monkeypatch.setenv("CONTROLPLANE_WEBHOOK_TOKEN", "s3cret")
    settings = ControlPlaneSettings()
    assert settings.sqlalchemy_url == "postgresql+psycopg://cp@127.0.0.1:5432/controlplane"
    assert not settings.is_sqlite
    assert settings.evaluation_interval_seconds == 10
    assert settings.prometheus_url == "http://prom.internal:9090"
    assert settings.resolved_webhook_token() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("CONTROLPLANE_DATABASE_URL", "mysql://root@localhost/cp", "database_url"),
        ("CONTROLPLANE_DATABASE_URL", "postgresql+asyncpg://x@h/db", "database_url"),
        ("CONTROLPLANE_PROMETHEUS_URL", "prometheus:9090", "prometheus_url"),
        ("CONTROLPLANE_SOURCE_TIMEOUT_SECONDS", "0", "source_timeout_seconds"),
        ("CONTROLPLANE_EVALUATION_INTERVAL_SECONDS", "-5", "evaluation_interval_seconds"),
        ("CONTROLPLANE_PORT", "70000", "port"),
    ],
)
def test_unusable_values_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        ControlPlaneSettings()
    assert field in str(caught.value)


def test_webhook_token_comes_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "webhook.token"
    token_file.write_text("from-a-file\n", encoding="utf-8")
    settings = ControlPlaneSettings(webhook_token_file=token_file)
    assert settings.resolved_webhook_token() == "from-a-file"

    token_file.write_text("  \n", encoding="utf-8")
    with pytest.raises(SettingsError, match="empty"):
        settings.resolved_webhook_token()
    with pytest.raises(SettingsError, match="cannot read"):
        ControlPlaneSettings(webhook_token_file=tmp_path / "missing").resolved_webhook_token()


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        ControlPlaneSettings.model_validate(
            {"webhook_token": "a", "webhook_token_file": tmp_path / "t"}
        )
