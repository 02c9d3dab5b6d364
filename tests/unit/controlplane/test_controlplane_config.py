"""Settings come from CONTROLPLANE_* variables into one root of groups, with defaults, and refuse
unusable values naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from controlplane.core.config import (
    ControlPlaneSettings,
    NodeAddress,
    SettingsError,
    WebhookSettings,
    environment_names,
    setting_name,
    unknown_environment,
)

pytestmark = pytest.mark.unit

#: Every variable the control plane reads (all but `required_extensions` predate the groups):
#: the demo stack, the deployment files and the tests set them, so none may change its name.
VARIABLES = {
    f"CONTROLPLANE_{name.upper()}"
    for name in [
        "action_interval_seconds",
        "action_policy",
        "actions_crash_point",
        "actions_enabled",
        "backup_check_interval_seconds",
        "backup_schedule_enabled",
        "backup_timeout_seconds",
        "capacity_policy",
        "data_dir",
        "database_data_dirs",
        "database_name",
        "database_nodes",
        "database_pool_size",
        "database_pool_timeout_seconds",
        "database_url",
        "dr_policy",
        "drill_interval_hours",
        "elasticsearch_log_index",
        "elasticsearch_timestamp_field",
        "elasticsearch_trace_id_field",
        "elasticsearch_url",
        "evaluation_enabled",
        "evaluation_interval_seconds",
        "evaluation_retention_days",
        "failover_driver",
        "failover_enabled",
        "failover_mode",
        "failover_probe_interval_seconds",
        "failover_probe_threshold",
        "host",
        "jaeger_url",
        "kubernetes_kubeconfig",
        "kubernetes_namespace",
        "leader_acquire_interval_seconds",
        "leader_check_interval_seconds",
        "leader_election",
        "leader_lease_ttl_seconds",
        "leader_lock_key",
        "leader_name",
        "leader_query_timeout_seconds",
        "local_max_replicas",
        "local_min_replicas",
        "local_pidfile",
        "local_replicas",
        "local_service",
        "local_target_cpu_percent",
        "max_webhook_body_bytes",
        "migrate_on_start",
        "orchestrator",
        "patroni_urls",
        "pgbackrest_binary",
        "pgbackrest_config",
        "pgbackrest_stanza",
        "pgbackrest_user",
        "port",
        "required_extensions",
        "prometheus_url",
        "replica_id",
        "restore_pg_bindir",
        "restore_port",
        "restore_scratch_dir",
        "restore_timeout_seconds",
        "slo_specs",
        "source_retry_attempts",
        "source_retry_max_wait_seconds",
        "source_timeout_seconds",
        "sqlite_busy_timeout_seconds",
        "target_checks_interval_seconds",
        "webhook_token",
        "webhook_token_file",
        "oidc_issuer",
        "oidc_audience",
        "oidc_role_groups",
        "oidc_mfa_role",
        "oidc_mfa_methods",
        "oidc_jwks_min_refresh_seconds",
        "oidc_jwks_max_age_seconds",
        "oidc_leeway_seconds",
        "oidc_timeout_seconds",
        "inventory_client_id",
        "inventory_client_secret_file",
        "inventory_token_url",
    ]
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CONTROLPLANE_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_documented_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = ControlPlaneSettings()
    assert settings.store.sqlalchemy_url == (
        f"sqlite:///{tmp_path}/inventory-slo-controlplane/controlplane.db"
    )
    assert settings.evaluation.evaluation_interval_seconds == 30
    assert settings.api.port == 8080
    assert settings.sources.prometheus_url == "http://127.0.0.1:9090"
    assert settings.sources.elasticsearch_url == "http://127.0.0.1:9200"
    assert settings.sources.jaeger_url == "http://127.0.0.1:16686"
    assert settings.webhook.max_webhook_body_bytes == 1_048_576
    assert settings.webhook.resolved_token() is None
    assert settings.orchestrator.kind == "none"
    assert settings.failover.database_nodes == ()
    assert settings.failover.failover_probe_interval_seconds == 0.5
    # Building settings touches nothing on disk.
    assert not (tmp_path / "inventory-slo-controlplane").exists()


def test_every_variable_keeps_its_name() -> None:
    assert set(environment_names()) == VARIABLES


def test_environment_variables_with_the_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_DATABASE_URL", "postgresql://cp@127.0.0.1:5432/controlplane")
    monkeypatch.setenv("CONTROLPLANE_EVALUATION_INTERVAL_SECONDS", "10")
    monkeypatch.setenv("CONTROLPLANE_PROMETHEUS_URL", "http://prom.internal:9090/")
    monkeypatch.setenv("CONTROLPLANE_WEBHOOK_TOKEN", "s3cret")
    settings = ControlPlaneSettings()
    assert settings.store.sqlalchemy_url == "postgresql+psycopg://cp@127.0.0.1:5432/controlplane"
    assert not settings.store.is_sqlite
    assert settings.evaluation.evaluation_interval_seconds == 10
    assert settings.sources.prometheus_url == "http://prom.internal:9090"
    assert settings.webhook.resolved_token() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_the_acting_side_reads_the_same_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What used to be a second settings class (actions, orchestrator, database topology) is
    read by the same root, from the same variables."""
    for name, value in {
        "CONTROLPLANE_ORCHESTRATOR": "local",
        "CONTROLPLANE_LOCAL_PIDFILE": str(tmp_path / "gunicorn.pid"),
        "CONTROLPLANE_LOCAL_MIN_REPLICAS": "2",
        "CONTROLPLANE_LOCAL_MAX_REPLICAS": "4",
        "CONTROLPLANE_ACTION_INTERVAL_SECONDS": "1.5",
        "CONTROLPLANE_DRILL_INTERVAL_HOURS": "24",
        "CONTROLPLANE_DATABASE_NODES": "primary=127.0.0.1:5432, replica_1=127.0.0.1:5433",
        "CONTROLPLANE_DATABASE_DATA_DIRS": "primary=/pg/0,replica_1=/pg/1",
        "CONTROLPLANE_SLO_SPECS": os.pathsep.join(["/specs/a", "/specs/b.yaml"]),
    }.items():
        monkeypatch.setenv(name, value)
    settings = ControlPlaneSettings()
    assert settings.orchestrator.kind == "local"
    assert settings.orchestrator.local_pidfile == tmp_path / "gunicorn.pid"
    assert (settings.orchestrator.local_min_replicas, settings.orchestrator.local_max_replicas) == (
        2,
        4,
    )
    assert settings.actions.action_interval_seconds == 1.5
    assert settings.failover.drill_interval_hours == 24
    assert settings.failover.database_nodes == (
        NodeAddress(name="primary", host="127.0.0.1", port=5432),
        NodeAddress(name="replica_1", host="127.0.0.1", port=5433),
    )
    assert settings.failover.database_data_dirs == {
        "primary": Path("/pg/0"),
        "replica_1": Path("/pg/1"),
    }
    assert settings.evaluation.slo_specs == (Path("/specs/a"), Path("/specs/b.yaml"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONTROLPLANE_DATABASE_URL", "mysql://root@localhost/cp"),
        ("CONTROLPLANE_DATABASE_URL", "postgresql+asyncpg://x@h/db"),
        ("CONTROLPLANE_PROMETHEUS_URL", "prometheus:9090"),
        ("CONTROLPLANE_SOURCE_TIMEOUT_SECONDS", "0"),
        ("CONTROLPLANE_EVALUATION_INTERVAL_SECONDS", "-5"),
        ("CONTROLPLANE_PORT", "70000"),
        ("CONTROLPLANE_ORCHESTRATOR", "docker"),
        ("CONTROLPLANE_ACTION_INTERVAL_SECONDS", "0"),
        ("CONTROLPLANE_DATABASE_NODES", "primary=127.0.0.1:port"),
        ("CONTROLPLANE_DATABASE_NODES", "primary=h:1,primary=h:2"),
        ("CONTROLPLANE_DATABASE_DATA_DIRS", "primary"),
        ("CONTROLPLANE_FAILOVER_PROBE_THRESHOLD", "0"),
        ("CONTROLPLANE_FAILOVER_DRIVER", "kubernetes"),
        ("CONTROLPLANE_FAILOVER_MODE", "manual"),
        ("CONTROLPLANE_PATRONI_URLS", "127.0.0.1:8008"),
    ],
)
def test_unusable_values_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        ControlPlaneSettings()
    (error,) = caught.value.errors()
    assert setting_name(error["loc"]) == variable


def test_the_patroni_driver_reads_its_urls_and_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_FAILOVER_DRIVER", "patroni")
    monkeypatch.setenv("CONTROLPLANE_PATRONI_URLS", "http://127.0.0.1:8008/, http://127.0.0.1:8009")
    settings = ControlPlaneSettings().failover
    assert settings.patroni_urls == ("http://127.0.0.1:8008", "http://127.0.0.1:8009")
    assert settings.mode == "auto"  # Patroni fails over by itself unless told otherwise

    monkeypatch.setenv("CONTROLPLANE_FAILOVER_MODE", "controlled")
    assert ControlPlaneSettings().failover.mode == "controlled"


def test_the_local_driver_is_the_default_and_only_controlled() -> None:
    settings = ControlPlaneSettings().failover
    assert (settings.failover_driver, settings.mode) == ("local", "controlled")


@pytest.mark.parametrize(
    ("failover", "named"),
    [
        ({"failover_driver": "patroni"}, "needs CONTROLPLANE_PATRONI_URLS"),
        ({"patroni_urls": "http://127.0.0.1:8008"}, "CONTROLPLANE_FAILOVER_DRIVER is local"),
        ({"failover_mode": "auto"}, "CONTROLPLANE_FAILOVER_MODE=auto needs"),
    ],
)
def test_failover_settings_that_disagree_are_refused(failover: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        ControlPlaneSettings.model_validate({"failover": failover})


def test_webhook_token_comes_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "webhook.token"
    token_file.write_text("from-a-file\n", encoding="utf-8")
    settings = ControlPlaneSettings(webhook=WebhookSettings(webhook_token_file=token_file))
    assert settings.webhook.resolved_token() == "from-a-file"

    token_file.write_text("  \n", encoding="utf-8")
    with pytest.raises(SettingsError, match="empty"):
        settings.webhook.resolved_token()
    with pytest.raises(SettingsError, match="cannot read"):
        WebhookSettings(webhook_token_file=tmp_path / "missing").resolved_token()


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        ControlPlaneSettings.model_validate(
            {"webhook": {"webhook_token": "a", "webhook_token_file": tmp_path / "t"}}
        )


def test_a_local_orchestrator_needs_its_pidfile() -> None:
    with pytest.raises(ValidationError, match="needs CONTROLPLANE_LOCAL_PIDFILE"):
        ControlPlaneSettings.model_validate({"orchestrator": {"kind": "local"}})


def test_given_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_ORCHESTRATOR", "kubernetes")
    monkeypatch.setenv("CONTROLPLANE_KUBERNETES_NAMESPACE", "shop")
    settings = ControlPlaneSettings.model_validate({"orchestrator": {"kind": "none"}})
    assert (settings.orchestrator.kind, settings.orchestrator.kubernetes_namespace) == (
        "none",
        "shop",
    )


def test_values_changed_later_are_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_HOST", "0.0.0.0")
    monkeypatch.setenv("CONTROLPLANE_ORCHESTRATOR", "kubernetes")
    settings = ControlPlaneSettings().with_values(api={"port": 9000})
    assert (settings.api.host, settings.api.port) == ("0.0.0.0", 9000)
    assert settings.orchestrator.kind == "kubernetes"
    with pytest.raises(ValidationError) as caught:
        settings.with_values(api={"port": 0})
    (error,) = caught.value.errors()
    assert setting_name(error["loc"]) == "CONTROLPLANE_PORT"


def test_a_variable_that_is_no_setting_is_reported() -> None:
    environ = {
        "CONTROLPLANE_PROMETHEUS_URL": "http://p:9090",
        "CONTROLPLANE_PROMETEUS_URL": "http://p:9090",
        "PATH": "/bin",
    }
    assert unknown_environment(environ) == ["CONTROLPLANE_PROMETEUS_URL"]
