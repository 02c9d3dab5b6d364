"""Packages above the control plane plug routers in through an entry-point group, so a
composition root inside ``controlplane`` (``controlplane serve``) never imports them."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.api import create_app
from controlplane.api.app import EXTENSIONS_ENTRY_POINT_GROUP, installed_extensions
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.conftest import WEBHOOK_TOKEN, settings_for
from tests.unit.controlplane.payloads import webhook_payload


def _install(site: Path, name: str, target: str) -> None:
    """A minimal installed distribution offering one entry point."""
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{EXTENSIONS_ENTRY_POINT_GROUP}]\n{name} = {target}\n", encoding="utf-8"
    )


def test_an_installed_extension_is_mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path)
    before = installed_extensions(settings)
    _install(tmp_path / "site", "webhook_plugin", "alerts.wiring:api_extensions")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    extensions = installed_extensions(settings)
    assert [e.name for e in extensions] == [e.name for e in before] + ["alertmanager-webhook"]
    app = create_app(settings, extensions=extensions[len(before) :])
    with AppClient(app) as client:
        answer = client.post(
            "/api/v1/alerts/webhook",
            json=webhook_payload(),
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    assert answer.status_code == 200


def test_a_plugin_that_returns_something_else_fails_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # list(settings) yields (field, value) pairs, not extensions.
    _install(tmp_path / "site", "broken_plugin", "builtins:list")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(TypeError, match="not an ApiExtension"):
        installed_extensions(settings_for(tmp_path))
