"""One factory builds the orchestrator the settings name: its reader and its actuator."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.actuators.local import LocalGunicornActuator
from controlplane.core.config import OrchestratorSettings, SettingsError
from controlplane.orchestrator.local import LocalOrchestrator
from controlplane.orchestrator.registry import build_orchestration

pytestmark = pytest.mark.unit


def test_none_builds_nothing() -> None:
    assert build_orchestration(OrchestratorSettings()) is None


def test_local_reads_and_scales_the_configured_gunicorn_master(tmp_path: Path) -> None:
    settings = OrchestratorSettings(
        kind="local",
        local_pidfile=tmp_path / "gunicorn.pid",
        local_service="inventory",
        local_replicas=3,
        local_min_replicas=2,
        local_max_replicas=6,
        local_target_cpu_percent=60,
    )
    orchestration = build_orchestration(settings)
    assert orchestration is not None
    assert orchestration.kind == "local"
    assert orchestration.services == frozenset({"inventory"})
    reader, actuator = orchestration.reader, orchestration.actuator
    assert isinstance(reader, LocalOrchestrator)
    assert isinstance(actuator, LocalGunicornActuator)
    assert reader.pidfile == actuator.pidfile == tmp_path / "gunicorn.pid"
    assert (reader.desired_replicas, reader.min_replicas, reader.max_replicas) == (3, 2, 6)
    assert reader.target_cpu_percent == 60


def test_kubernetes_without_credentials_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    with pytest.raises(SettingsError, match="CONTROLPLANE_ORCHESTRATOR=kubernetes"):
        build_orchestration(OrchestratorSettings(kind="kubernetes"))


def test_kubernetes_with_an_unusable_kubeconfig_names_the_setting(tmp_path: Path) -> None:
    settings = OrchestratorSettings(kind="kubernetes", kubeconfig=tmp_path / "missing")
    with pytest.raises(SettingsError, match=r"CONTROLPLANE_KUBECONFIG .*missing is not usable"):
        build_orchestration(settings)
