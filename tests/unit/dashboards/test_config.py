"""Settings and the command line: a console without a usable token does not start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dashboards.__main__ import main
from dashboards.config import DashboardSettings, SettingsError


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("cpt_from_file\n", encoding="utf-8")
    assert DashboardSettings(token_file=token_file).resolved_token() == "cpt_from_file"
    assert DashboardSettings(token="cpt_direct").resolved_token() == "cpt_direct"
    with pytest.raises(ValidationError, match="not both"):
        DashboardSettings(token="a", token_file=token_file)
    with pytest.raises(SettingsError, match="no API token"):
        DashboardSettings().resolved_token()
    with pytest.raises(SettingsError, match="cannot read"):
        DashboardSettings(token_file=tmp_path / "missing").resolved_token()


def test_defaults_and_validation() -> None:
    settings = DashboardSettings(control_plane_url="http://cp.example:8080/")
    assert settings.control_plane_url == "http://cp.example:8080"
    assert (settings.host, settings.port, settings.refresh_interval_seconds) == (
        "127.0.0.1",
        8050,
        15.0,
    )
    with pytest.raises(ValidationError, match="http"):
        DashboardSettings(control_plane_url="cp.example:8080")


def test_the_console_refuses_to_start_without_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DASHBOARDS_TOKEN", "DASHBOARDS_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--control-plane", "http://127.0.0.1:9"]) == 2
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    assert main(["--token-file", str(empty)]) == 2
